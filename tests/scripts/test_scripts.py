"""The scripts in scripts/ run as their usage lines say, on a tiny prepared synthetic set."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sizeseg.data.prepared import save_prepared
from sizeseg.data.synthetic import synthetic_data

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_convergence_check_gradient_norms_and_oracle_run(tmp_path, capsys):
    prepared = save_prepared(synthetic_data(40, seed=0), tmp_path / "prep")
    out = tmp_path / "out"
    assert _script("convergence_check").main([str(prepared), str(out), "--m", "4", "--model", "unet-tiny",
                                             "--pretrain-epochs", "1", "--finetune-epochs", "1",
                                             "--batches", "1", "--modes", "finetune,mixed"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"pretrain", "finetune", "mixed"}
    assert 0 <= summary["mixed"]["last_test"]["IoU"] <= 1
    checkpoint = out / "pretrain" / "checkpoints" / "best.ckpt"
    capsys.readouterr()
    assert _script("gradient_norms").main([str(prepared), str(checkpoint), "--batch", "4", "--repeats", "1"]) == 0
    printed = capsys.readouterr().out
    assert "bce loss" in printed and "size loss" in printed
    assert _script("true_size_oracle").main([str(prepared), str(checkpoint)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "test size histogram" in lines[0] and lines[1]["ckpt"] == str(checkpoint)
    assert 0 <= lines[1]["IoU_size_matched"] <= 1


@pytest.mark.slow
def test_constrained_ablation_runs_its_steps_and_tabulates_them(tmp_path, acdc, capsys):
    import csv

    ablation = _script("constrained_ablation")
    out = tmp_path / "ablation"
    extra = "--quick --epochs 1 --batch-size 2 --model enet --field 32 --resolution 16"
    assert ablation.main(["--data", str(acdc), "--out", str(out), "--steps", "base,temperature,enet,weak-budget",
                          "--workers", "1", "--extra", extra]) == 0
    rows = list(csv.DictReader(open(out / "ablation.csv")))
    assert [r["step"] for r in rows] == ["base", "temperature", "enet", "weak-budget"]
    assert rows[3]["flags"] == "--weak erosion-budget" and rows[3]["full_dsc_3d"] == rows[0]["full_dsc_3d"]
    assert not (out / "weak-budget" / "runs" / "full").exists()  # full supervision does not see the weak labels
    assert rows[1]["flags"] == "--temperature 0.1"
    assert "--slices lv --split frames --model enet" in rows[2]["flags"]  # a branch carries every step up to its base
    for r in rows:
        assert 0 <= float(r["two_bounds_dsc_3d"]) <= 1 and 0 <= float(r["full_dsc_pooled_soft"]) <= 1
    import json

    assert json.loads((out / "temperature" / "runs" / "full" / "result.json").read_text())["temperature"] == 0.1
    assert "| temperature |" in (out / "ablation.md").read_text()
    with pytest.raises(SystemExit):
        ablation.main(["--data", str(acdc), "--out", str(out), "--steps", "nonsense"])


@pytest.mark.slow
def test_sizes_noise_network_part_scores_every_method_per_band(tmp_path):
    import csv

    out = tmp_path / "noise"
    assert _script("sizes_noise").main(["--out", str(out), "--images", "24", "--train", "16", "--masks", "4",
                                        "--side", "48", "--free-steps", "1", "--pretrain-epochs", "1",
                                        "--epochs", "1", "--batch", "4", "--model", "unet-tiny",
                                        "--methods", "control,relative tau=0.25,size+area tau=0.25,"
                                        "mixed+area tau=0.25,full", "--area-weight", "4", "--blur", "0.5", "1.2"]) == 0
    rows = [r for r in csv.DictReader(open(out / "results.csv")) if r["part"] == "B"]
    assert [r["method"] for r in rows if r["band"] == "all"] == ["start (pre-trained)", "control", "relative tau=0.25",
                                                                 "size+area tau=0.25", "mixed+area tau=0.25", "full"]
    part_a = [r["method"] for r in csv.DictReader(open(out / "results.csv")) if r["part"] == "A" and r["band"] == "all"]
    assert part_a == ["start (sized wrong)", "relative tau=0.25"]  # no masked images in part A
    assert all(float(r["area_ratio"]) > 0 and 0 <= float(r["from_object"]) <= 1 for r in rows)
    assert "| mixed+area tau=0.25 | " in (out / "report.md").read_text().split("Predicted area over true area")[1]
    assert "size+area: weights 4 and 4 in image units; relative area bounds: weight 0.1)" in (out / "report.md").read_text()
    assert "blur σ 0.5-1.2 px;" in (out / "report.md").read_text()
    assert {r["band"] for r in rows} == {"4-10", "10-20", "20-40", "40-80", "all"}
    assert "## B. Size fine-tuning of a network" in (out / "report.md").read_text()


@pytest.mark.slow
def test_sizes_acdc_runs_each_m_and_seed_once_and_reports_the_control(tmp_path, acdc, capsys):
    import csv

    script = _script("sizes_acdc")
    out = tmp_path / "acdc"
    argv = ["--data", str(acdc), "--cache", str(tmp_path / "prep"), "--out", str(out), "--field", "16",
            "--resolution", "16", "--m", "2", "--seeds", "0,1", "--pretrain-steps", "2", "--finetune-steps", "1",
            "--batch", "4", "--model", "unet-plain"]
    assert script.main(argv) == 0
    rows = list(csv.DictReader(open(out / "runs.csv")))
    assert [(r["seed"], r["method"]) for r in rows] == [
        (s, m) for s in "01" for m in ("pre-trained", "true-size oracle", "control", "size", "size-relative", "matched",
                                   "mixed", "mixed-matched", "area", "size-area", "mixed-area")]
    for r in rows:
        assert 0 <= float(r["IoU"]) <= 1 and float(r["E"]) >= 0
    oracle = [r for r in rows if r["method"] == "true-size oracle"]
    assert all(float(r["E"]) <= float(p["E"]) for r, p in zip(oracle, rows[::11]))  # moved onto the true sizes
    assert all(0 <= int(r["restarts"]) <= 3 for r in rows)
    for r in rows:  # what a prediction did: missed and false-positive pixels against the truth, empties
        assert float(r["fp"]) >= 0 and float(r["fn"]) >= 0 and 0 <= float(r["empty"]) <= 1
    text = (out / "report.md").read_text()
    assert "size − control" in text and "mixed-matched − control" in text and "grad size/BCE" in text
    assert "mixed-area − control" in text
    capsys.readouterr()
    assert script.main(argv) == 0  # finished (m, seed) cells are not run again
    assert "m 2 seed" not in capsys.readouterr().out
    assert len(list(csv.DictReader(open(out / "runs.csv")))) == 22
    with pytest.raises(SystemExit):
        script.main(argv + ["--methods", "size,nonsense"])


@pytest.mark.parametrize("criterion, scale", [("squared", 256), ("absolute", 16)])
def test_sizes_acdc_image_units_equal_pixel_weights_times_the_unit_scale(tmp_path, acdc, criterion, scale):
    import csv

    script = _script("sizes_acdc")
    base = ["--data", str(acdc), "--cache", str(tmp_path / "prep"), "--field", "16", "--resolution", "16", "--m", "2",
            "--seeds", "0", "--pretrain-steps", "2", "--finetune-steps", "1", "--batch", "4", "--model", "unet-plain",
            "--methods", "mixed,mixed-area", "--criterion", criterion]
    ratios = {}
    for units, size_weight, area_weight in (("pixels", 1e-3, 0.01), ("image", 1e-3 * scale, 0.01 * 256)):
        out = tmp_path / units
        assert script.main(base + ["--out", str(out), "--units", units, "--size-weight", str(size_weight),
                                   "--area-weight", str(area_weight)]) == 0
        ratios[units] = {r["method"]: float(r["grad_ratio"]) for r in csv.DictReader(open(out / "runs.csv"))
                         if r["method"] in ("mixed", "mixed-area")}
    # 16 x 16 images: a size weight w in image units is w / 256 in pixels for the squared error (degree 2),
    # w / 16 for the absolute one (degree 1); an area weight w / 256
    assert ratios["image"] == pytest.approx(ratios["pixels"], rel=1e-4)
    assert all(v > 0 for v in ratios["pixels"].values())
    if criterion == "absolute":  # the criterion reached the size term: squared gives another gradient
        assert script.main(base[:-2] + ["--out", str(tmp_path / "sq"), "--size-weight", "1e-3"]) == 0
        squared = [float(r["grad_ratio"]) for r in csv.DictReader(open(tmp_path / "sq" / "runs.csv"))
                   if r["method"] == "mixed"][0]
        assert squared != pytest.approx(ratios["pixels"]["mixed"], rel=1e-2)


def test_sizes_acdc_chooses_the_area_weight_on_validation_slices(tmp_path, acdc):
    import csv

    script = _script("sizes_acdc")
    out = tmp_path / "val"
    argv = ["--data", str(acdc), "--cache", str(tmp_path / "prep"), "--field", "16", "--resolution", "16", "--m", "2",
            "--seeds", "0", "--pretrain-steps", "2", "--finetune-steps", "1", "--batch", "4", "--model", "unet-plain",
            "--out", str(out), "--val", "3", "--area-weights", "0,0.01,100", "--methods", "mixed-area,mixed-area-val"]
    assert script.main(argv) == 0
    rows = {r["method"]: r for r in csv.DictReader(open(out / "runs.csv"))}
    chosen = rows["mixed-area-val"]
    assert float(chosen["area_weight"]) in (0.0, 0.01, 100.0)
    assert 0 <= float(chosen["val_IoU"]) <= 1 and 0 <= float(rows["pre-trained"]["val_IoU"]) <= 1
    assert "the area weight chosen on the validation slices" in (out / "report.md").read_text()
    alone = {}  # each weight run on its own: the chosen one has the best validation IoU
    for w in ("0", "0.01", "100"):
        assert script.main(argv[:-1] + ["mixed-area", "--area-weight", w, "--out", str(tmp_path / w)]) == 0
        alone[float(w)] = float(next(r for r in csv.DictReader(open(tmp_path / w / "runs.csv"))
                                     if r["method"] == "mixed-area")["val_IoU"])
    assert float(chosen["val_IoU"]) == pytest.approx(max(alone.values()))
    assert alone[float(chosen["area_weight"])] == pytest.approx(max(alone.values()))
    for bad in (["--val", "0"], ["--area-weights", "a,b"], ["--area-weights", "-1"], ["--val", "-2"]):
        with pytest.raises(SystemExit):
            script.main(argv + bad)


def test_sizes_acdc_pairs_size_weights_with_area_weights_on_validation(tmp_path, acdc):
    import csv

    script = _script("sizes_acdc")
    argv = ["--data", str(acdc), "--cache", str(tmp_path / "prep"), "--field", "16", "--resolution", "16", "--m", "2",
            "--seeds", "0", "--pretrain-steps", "2", "--finetune-steps", "1", "--batch", "4", "--model", "unet-plain",
            "--val", "3", "--area-weights", "0.01,100", "--size-weights", "1000,0"]
    assert script.main(argv + ["--out", str(tmp_path / "pairs"), "--methods", "mixed-area-val"]) == 0
    chosen = next(r for r in csv.DictReader(open(tmp_path / "pairs" / "runs.csv")) if r["method"] == "mixed-area-val")
    pair = (float(chosen["area_weight"]), float(chosen["size_weight"]))
    assert pair in ((0.01, 1000.0), (100.0, 0.0))  # the weights travel as pairs, never crossed
    assert "area weight / size weight chosen" in (tmp_path / "pairs" / "report.md").read_text()
    # the chosen pair run alone gives the same validation IoU
    alone = tmp_path / "alone"
    assert script.main(argv + ["--out", str(alone), "--methods", "mixed-area", "--area-weight", str(pair[0]),
                               "--size-weight", str(pair[1])]) == 0
    row = next(r for r in csv.DictReader(open(alone / "runs.csv")) if r["method"] == "mixed-area")
    assert float(row["val_IoU"]) == pytest.approx(float(chosen["val_IoU"]))
    assert float(row["size_weight"]) == pair[1]
    for bad in (["--size-weights", "1"], ["--size-weights", "x,y"], ["--size-weights", "-1,1"]):
        with pytest.raises(SystemExit):
            script.main(argv + ["--out", str(tmp_path / "bad"), "--methods", "mixed-area-val"] + bad)


def test_acdc_classes_scores_each_class_and_resumes(tmp_path, acdc, capsys):
    import csv

    script = _script("acdc_classes")
    out = tmp_path / "classes"
    argv = ["--data", str(acdc), "--out", str(out), "--field", "32", "--resolution", "16", "--m", "3",
            "--seeds", "0,1", "--val-patients", "1", "--eval-every", "1", "--patience", "1", "--drops", "1",
            "--min-pretrain-steps", "2", "--max-pretrain-steps", "4", "--finetune-steps", "1", "--batch", "4", "--model", "unet-tiny"]
    assert script.main(argv) == 0
    rows = list(csv.DictReader(open(out / "runs.csv")))
    assert [(r["seed"], r["arm"]) for r in rows] == [
        (s, a) for s in ("0", "1") for a in ("pre-trained", "true-size oracle", "control", "sizes", "mixed")]
    for r in rows:
        for c in ("LV", "RV", "MYO"):
            assert 0 <= float(r[f"IoU_{c}"]) <= 1 and float(r[f"E_{c}"]) >= 0
        assert float(r["IoU_mean"]) == pytest.approx(np.mean([float(r[f"IoU_{c}"]) for c in ("LV", "RV", "MYO")]),
                                                     abs=1e-4)
    assert all(float(r["E_mean"]) < 0.5 for r in rows if r["arm"] == "true-size oracle")  # moved onto the sizes
    assert "paired difference to the control" in (out / "report.md").read_text()
    assert len(list((out / "work").glob("start-slices-m3-seed*.pt"))) == 2
    capsys.readouterr()
    assert script.main(argv) == 0  # finished cells are skipped
    assert "m 3 seed" not in capsys.readouterr().out
    with pytest.raises(SystemExit):
        script.main(argv + ["--arms", "sizes,nonsense"])
    # m patients: every slice of both frames of m patients carries its mask
    patients = argv[:3] + [str(tmp_path / "p")] + argv[4:] + ["--unit", "patients"]
    patients[patients.index("--m") + 1], patients[patients.index("--seeds") + 1] = "1", "0"
    assert script.main(patients) == 0
    assert '"unit": "patients"' in (tmp_path / "p" / "report.md").read_text()
    masked = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("m 1 patients seed 0:"))
    assert int(masked.split(": ")[1].split()[0]) > 1  # the slices of one patient


def test_objects_synthetic_runs_every_arm_and_criterion(tmp_path, capsys):
    import csv

    script = _script("objects_synthetic")
    out = tmp_path / "objects"
    argv = ["--out", str(out), "--seeds", "0", "--images", "20", "--side", "32", "--objects", "3", "--masks", "4",
            "--pretrain-epochs", "2", "--pretrain-patience", "1", "--epochs", "1", "--model", "unet-tiny",
            "--criteria", "relative,symmetric"]
    assert script.main(argv) == 0
    rows = list(csv.DictReader(open(out / "runs.csv")))
    assert [r["arm"] for r in rows] == ["pretrained", "objects (relative)", "objects (symmetric)", "object (relative)",
                                        "object (symmetric)", "masks"]
    for r in rows:
        assert 0 <= float(r["IoU"]) <= 1 and float(r["AE_obj"]) >= 0 and float(r["count_error"]) >= 0
    assert "pretrain_epochs" in capsys.readouterr().out
    assert "objects (symmetric)" in (out / "summary.md").read_text()
    with pytest.raises(SystemExit):
        script.main(argv[:-1] + ["nonsense"])
    # mixed training and the area bounds, from the same (cached) start
    more = argv[:-1] + ["symmetric", "--arms", "objects,object", "--modes", "finetune,mixed", "--area-weights", "0,1",
                        "--out", str(tmp_path / "more"), "--work", str(out / "work")]
    assert script.main(more) == 0
    rows = list(csv.DictReader(open(tmp_path / "more" / "runs.csv")))
    assert [r["arm"] for r in rows][:5] == ["pretrained", "objects (symmetric)", "objects (symmetric, area 1)",
                                            "objects (symmetric, mixed)", "objects (symmetric, area 1, mixed)"]
    assert len(rows) == 9
    for bad in (["--modes", "semi"], ["--area-weights", "x"], ["--area-weights", "-1"], ["--samples", "0"]):
        with pytest.raises(SystemExit):
            script.main(argv + bad)
    # the diagnosis reads the same cached runs
    capsys.readouterr()
    diagnosis = _script("objects_diagnosis")
    assert diagnosis.main(["--work", str(out / "work"), "--seeds", "0", "--images", "20", "--side", "32", "--objects",
                           "3", "--runs", "pretrain,masks", "--sampled"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["run"] for r in lines] == ["pretrain", "masks"]
    for r in lines:
        parts = r["train_sampled"]
        assert parts["loss"] == pytest.approx(parts["unmatched"] + parts["matched"], abs=2e-3)
        assert r["FP"] + r["FN"] <= r["pred_px"] + r["true_px"]


def test_objects_diagnosis_splits_the_sorted_matching_loss():
    diagnosis = _script("objects_diagnosis")
    pred = np.zeros((1, 12, 12), bool)
    pred[0, 1:5, 1:5] = True  # size 4, true object
    pred[0, 8, 8] = True  # size 2, spurious
    truth = np.zeros_like(pred)
    truth[0, 1:5, 1:5] = truth[0, 8:10, 1:3] = True  # sizes 4 and 2, the second elsewhere than the blob
    parts = diagnosis.loss_parts(pred, np.array([[4.0, 2.0, np.nan]]))
    assert parts == {"loss": 0.0, "unmatched": 0.0, "matched": 0.0, "matched_error_px": 0.0, "count": 2.0,
                     "true_count": 2.0, "area": 17.0}
    parts = diagnosis.loss_parts(pred, np.array([[6.0, np.nan, np.nan]]))  # one object of 6: the blob is spurious
    assert parts["unmatched"] == 1.0 and parts["matched"] == pytest.approx(round(4 / 36, 3))
    counts = diagnosis.object_breakdown(pred, truth)
    assert (counts["spurious"], counts["missed"], counts["merged"], counts["FP"], counts["FN"]) == (1, 1, 0, 1, 4)


def test_constrained_tables_join_protocols_with_ratios_to_full(tmp_path, capsys):
    import csv

    tables = _script("constrained_tables")
    head = "method,protocol,label,seeds,dsc_3d,dsc_3d_sd,dsc_pooled,dsc_pooled_sd,dsc_pooled_soft,dsc_pooled_soft_sd,paper_dsc\n"
    for name, weak, full in (("ours", 0.45, 0.9), ("authors", 0.2, 0.8)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "table1.csv").write_text(
            head + f"size_two_bounds,{name},two bounds,3,{weak},0.01,{weak},0.01,{weak},0.01,0.8415\n"
            f"full,{name},full,3,{full},0.01,{full},0.01,{full},0.01,0.9284\n")
    out = tmp_path / "table1.csv"
    assert tables.main([str(tmp_path / "ours"), str(tmp_path / "authors"), "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert [(r["method"], r["protocol"]) for r in rows] == [("size_two_bounds", "ours"), ("full", "ours"),
                                                             ("size_two_bounds", "authors"), ("full", "authors")]
    assert [r["ratio_to_full_3d"] for r in rows] == ["0.500", "1.000", "0.250", "1.000"]
    with pytest.raises(SystemExit) as err:
        tables.main([str(tmp_path / "missing"), "--out", str(out)])
    assert err.value.code == 2 and "missing: no table1.csv" in capsys.readouterr().err


@pytest.mark.slow
def test_constrained_saturation_reads_each_runs_temperature(tmp_path, acdc, capsys):
    from sizeseg.cli import main

    out = tmp_path / "exp"
    flags = ["--quick", "--epochs", "1", "--batch-size", "2", "--model", "enet", "--field", "32", "--resolution", "16",
             "--workers", "1", "--no-timing", "--methods", "size_two_bounds"]
    assert main(["experiment", "constrained", "--data", str(acdc), "--out", str(out), "--temperature", "0.1"] + flags) == 0
    run = out / "runs" / "size_two_bounds"
    capsys.readouterr()
    saturation = _script("constrained_saturation")
    assert saturation.main(["--data", str(acdc), "--prepared", str(out), str(run)]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    values = dict(zip(header.split(","), row.split(",")))
    assert values["run"] == "size_two_bounds" and float(values["temperature"]) == 0.1
    assert 0 <= float(values["saturated_fg_outside"]) <= min(float(values["saturated"]), float(values["fg"]))
    assert 0 < float(values["true_fg"]) < 1
    with pytest.raises(SystemExit):
        saturation.main(["--data", str(acdc), "--prepared", str(out), str(tmp_path)])  # no result.json there


def test_saturation_shares_match_a_hand_computation():
    import torch

    shares = _script("constrained_saturation").saturation_shares
    z = torch.tensor([[[0.0, 5.0], [-5.0, 5.0]]])
    lv = torch.tensor([[[True, True], [False, False]]])
    # T = 1: p(1-p) is 0.25 at z = 0 and 0.0066 at |z| = 5, all above 1e-3
    assert shares(z, lv, temperature=1.0) == pytest.approx({"fg": 0.5, "true_fg": 0.5, "saturated": 0.0,
                                                            "saturated_fg_outside": 0.0})
    # T = 0.1: |z| / T = 50 saturates three pixels; one of them is foreground outside the LV
    assert shares(z, lv, temperature=0.1) == pytest.approx({"fg": 0.5, "true_fg": 0.5, "saturated": 0.75,
                                                            "saturated_fg_outside": 0.25})


def test_user_folder_path_refuses_an_unknown_run_before_any_work(tmp_path):
    import subprocess

    script = SCRIPTS / "user_folder_path.sh"
    done = subprocess.run(["bash", str(script), str(SCRIPTS.parent), str(tmp_path / "no-acdc"), "0", "unet-small",
                           "control bogus"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "RUNS: unknown run 'bogus'; expected some of:" in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing exported, prepared or trained


def test_user_folder_path_runs_the_readmes_step_4_settings():
    # the recorded user-folder runs train with the README's recipe: its flags and the script's give one config
    import re

    from sizeseg.cli import build_parser
    from sizeseg.commands.train import _config

    script = (SCRIPTS / "user_folder_path.sh").read_text()
    readme = (SCRIPTS.parent / "README.md").read_text()
    lines = readme.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith("sizeseg finetune --data prepared/mine --out runs/ft "))
    step4 = lines[start + 1].split()
    recorded = re.search(r'\[mixed-area-image\]="(.*)"', script).group(1).split()
    by_iou = re.search(r'\[mixed-area-image-iou\]="(.*)"', script).group(1).split()
    assert step4 == ["--mixed", "--size-units", "image", "--size-weight", "4", "--area-weight", "40"]

    def config(flags):
        return _config(build_parser().parse_args(["finetune", "--data", "d", "--out", "o", *flags]))

    # the recorded run with the selection of its day, the -iou run with the one step 4 now makes on 5+ masks
    assert config([*step4, "--monitor", "val/E"]) == config(recorded) != config(["--mixed", "--monitor", "val/E"])
    assert config([*step4, "--monitor", "val/IoU"]) == config(by_iou)


def test_user_folder_path_iou_runs_differ_from_their_pair_only_in_the_monitor():
    import re
    from dataclasses import replace

    from sizeseg.cli import build_parser
    from sizeseg.commands.train import _config

    script = (SCRIPTS / "user_folder_path.sh").read_text()

    def config(run):
        flags = re.search(rf'\[{run}\]="(.*)"', script).group(1).split()
        return _config(build_parser().parse_args(["finetune", "--data", "d", "--out", "o", *flags]))

    for run in ("control", "mixed-area-image"):
        by_iou = config(f"{run}-iou")
        assert by_iou.monitor == "val/IoU" and config(run).monitor == "val/E"
        assert replace(by_iou, monitor="val/E") == config(run)


@pytest.mark.slow
def test_size_weight_probe_fine_tunes_each_weight_and_seed_from_one_start(tmp_path, capsys):
    prepared = save_prepared(synthetic_data(40, shape=(32, 32), seed=0), tmp_path / "prep")
    probe = _script("size_weight_probe")
    args = [str(prepared), str(tmp_path / "out"), "--m", "4", "--profile", "quick", "--model", "unet-tiny",
            "--weights", "1e-3,1", "--finetune-seeds", "0,1"]
    assert probe.main(args) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 0.001 |") or line.startswith("| 1 |")]
    assert [row.split(" | ")[:2] for row in rows] == [["| 0.001", "0"], ["| 0.001", "1"], ["| 1", "0"], ["| 1", "1"]]
    idle, damped = probe.eps_shares(tmp_path / "out" / "w0.001-s0" / "checkpoints" / "last.ckpt")
    assert 0.0 <= idle + damped <= 1.0 and rows[0].endswith(f"| {idle:.1%} | {damped:.1%} |")
    # a thousand times larger loss leaves fewer weights where eps outweighs sqrt(v)
    assert probe.eps_shares(tmp_path / "out" / "w1-s0" / "checkpoints" / "last.ckpt")[1] <= damped
    assert probe.main(args) == 0  # cached: nothing trained again, the same table
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:] == rows


def test_size_weight_probe_refuses_a_bad_weight_list_in_one_line(tmp_path, capsys):
    assert _script("size_weight_probe").main(["data", str(tmp_path / "out"), "--weights", "big"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "size_weight_probe: error: expected comma-separated numbers, got 'big'"
    assert not (tmp_path / "out").exists()
    assert _script("size_weight_probe").main([str(tmp_path / "none"), str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == f"size_weight_probe: error: --data: {tmp_path / 'none'} is not a folder"
    assert not (tmp_path / "out").exists()


def test_selection_check_reads_the_epoch_validation_e_picks_and_warns_as_training_would(tmp_path, capsys):
    from sizeseg.training.selection import overlap_warning

    cell = tmp_path / "runs" / "pretraining" / "m10-s1"

    def metrics(folder: str, rows: list[tuple[float, float]]) -> None:
        (cell / folder).mkdir(parents=True)
        lines = ["epoch,epoch_time,val/E,val/IoU"] + [f"{i},,{e},{iou}" for i, (e, iou) in enumerate(rows)]
        (cell / folder / "metrics.csv").write_text("\n".join(lines) + "\n")

    metrics("pretrain", [(3.0, 0.40), (2.16, 0.583), (2.0, 0.55)])  # the start: best IoU 0.583, its E 2.16
    metrics("mixed_defaults", [(2.09, 0.561), (1.72, 0.411), (1.72, 0.40)])  # E falls, IoU with it
    metrics("finetune_defaults", [(2.5, 0.60), (2.2, 0.59)])  # never beats the start's E: the start is kept
    (cell / "result.json").write_text(json.dumps([
        {"stage": "pretrained", "IoU": 0.5758}, {"stage": "mixed (defaults)", "IoU": 0.4149},
        {"stage": "size (defaults)", "IoU": 0.5758}]))
    assert _script("selection_check").main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| m10-s1 | mixed (defaults) | 0.583 | 2.16 | 2 | 0.411 | yes | 0.583 | -0.161 |" in out
    assert "| m10-s1 | size (defaults) | 0.583 | 2.16 | start | 0.583 |  | 0.600 | +0.000 |" in out
    assert overlap_warning(0.583, 0.411, "val/E", 9, "pre.ckpt") is not None  # the library agrees
    assert "warned: 1 runs, mean test gain -0.1609" in out and "not warned: 1 runs, mean test gain +0.0000" in out
    assert "no epoch beat the start's validation IoU in 1 of 2 runs" in out
    assert _script("selection_check").main([str(tmp_path / "none")]) == 2
    capsys.readouterr()
    assert _script("selection_check").main([str(tmp_path), "--stages", "mixed (defaults)"]) == 0
    assert [line[:29] for line in capsys.readouterr().out.splitlines() if line.startswith("| m10")] == [
        "| m10-s1 | mixed (defaults) |"]
    assert _script("selection_check").main([str(tmp_path), "--stages", "bogus"]) == 2
    assert "--stages: unknown stage(s) bogus" in capsys.readouterr().err


def test_size_weight_probe_eps_shares_match_a_hand_count(tmp_path):
    # bias correction at step 1 with beta2 0.999: v_hat = v / 0.001, so v = 1e-22 gives sqrt(v_hat) ~ 3.2e-10
    v = torch.tensor([0.0, 0.0, 1e-22, 1e-22, 1e-22, 1.0, 1.0, 1.0])
    state = {0: {"step": torch.tensor(1.0), "exp_avg_sq": v[:4]}, 1: {"step": torch.tensor(1.0), "exp_avg_sq": v[4:]}}
    torch.save({"optimizer_states": [{"state": state}]}, tmp_path / "last.ckpt")
    assert _script("size_weight_probe").eps_shares(tmp_path / "last.ckpt") == (2 / 8, 3 / 8)


def _result(out, cell, rows):
    folder = out / "runs" / "pretraining" / cell
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps(
        [{"stage": stage, "IoU": iou, "Dice": 0.5, "E": 1.0} for stage, iou in rows.items()]))


def test_selection_compare_pairs_each_stage_with_its_iou_twin_and_refuses_different_starts(tmp_path, capsys):
    control = "masks only (control)"
    _result(tmp_path / "e", "m10-s0", {"pretrained": 0.5, "size (defaults)": 0.4, "mixed (defaults)": 0.45, control: 0.3})
    _result(tmp_path / "e", "m10-s1", {"pretrained": 0.6, "size (defaults)": 0.62, "mixed (defaults)": 0.6, control: 0.6})
    _result(tmp_path / "iou", "m10-s0", {"pretrained": 0.5, "size (IoU selection)": 0.5, "mixed (IoU selection)": 0.52,
                                         "control (IoU selection)": 0.5})
    _result(tmp_path / "iou", "m10-s1", {"pretrained": 0.6, "size (IoU selection)": 0.6, "mixed (IoU selection)": 0.61,
                                         "control (IoU selection)": 0.6})
    compare = _script("selection_compare")
    assert compare.main([str(tmp_path / "e"), str(tmp_path / "iou")]) == 0
    out = capsys.readouterr().out
    assert "| m10-s0 | 0.500 | -0.100 / +0.000 | -0.050 / +0.020 | -0.200 / +0.000 |" in out
    assert "| m10-s1 | 0.600 | +0.020 / +0.000 | +0.000 / +0.010 | +0.000 / +0.000 |" in out
    # means over the two cells (runs that lost in brackets); mixed - control: (0.15 + 0) / 2 by E, (0.02 + 0.01) / 2 by IoU
    assert "| m10 | 2 | -0.040 (1) / +0.000 (0) | -0.025 (1) / +0.015 (0) | -0.100 (1) / +0.000 (0) | +0.075 / +0.015 |" in out
    # one pair only: no mixed - control column
    assert compare.main([str(tmp_path / "e"), str(tmp_path / "iou"), "--pairs", "size (defaults)=size (IoU selection)"]) == 0
    assert "| all | 2 | -0.040 (1) / +0.000 (0) |\n" in capsys.readouterr().out + "\n"
    for args, message in (([str(tmp_path / "e"), str(tmp_path / "none")], f"{tmp_path / 'none'}: no runs/pretraining/*/result.json"),
                          ([str(tmp_path / "e"), str(tmp_path / "iou"), "--pairs", "size (defaults)"],
                           "--pairs: expected 'E stage=IoU stage' items, got 'size (defaults)'"),
                          ([str(tmp_path / "e"), str(tmp_path / "iou"), "--pairs", "size (defaults)=bogus"],
                           "--pairs: unknown stage(s) bogus")):
        assert compare.main(args) == 2
        err = capsys.readouterr().err
        assert err == f"selection_compare: error: {message}\n"
    _result(tmp_path / "iou2", "m10-s0", {"pretrained": 0.51, "size (IoU selection)": 0.5})
    assert compare.main([str(tmp_path / "e"), str(tmp_path / "iou2")]) == 2
    assert "m10-s0: the two folders pre-trained different networks (test IoU 0.5000 and 0.5100)" in capsys.readouterr().err


def test_sizes_noise_size_and_area_loss_adds_each_weighted_term():
    from sizeseg.training.loss_terms import AreaBoundTerm, SizeTerm

    noise = _script("sizes_noise")
    logits = torch.full((2, 1, 16, 16), 3.0)  # every pixel in: the soft area (256) is far above the bounds
    masks, sizes = torch.zeros(2, 1, 16, 16), torch.tensor([4.0, 6.0])
    area = AreaBoundTerm((1.0, 2.0), noise_scale=0.25, per_object=False, units="image")(logits, {"size": sizes})
    size = SizeTerm(1, units="image", criterion="squared", noise_scale=0.25, seed=0)(logits, {"size": sizes})
    assert area > 0 and size > 0
    both = noise.loss_fn("size+area tau=0.25", 1, 0, (1.0, 2.0), (4.0, 40.0))(logits, masks, sizes)
    assert both.item() == pytest.approx(4.0 * size.item() + 40.0 * area.item(), rel=1e-5)
    assert noise.loss_fn("size+area tau=0.25", 1, 0, (1.0, 2.0), (4.0, 0.0))(logits, masks, sizes).item() == \
        pytest.approx(4.0 * size.item(), rel=1e-5)
    absolute = SizeTerm(1, units="image", criterion="absolute", noise_scale=0.25, seed=0)(logits, {"size": sizes})
    assert absolute.item() != pytest.approx(size.item(), rel=1e-3)
    assert noise.loss_fn("size+area tau=0.25 criterion=absolute", 1, 0, (1.0, 2.0), (4.0, 0.0))(
        logits, masks, sizes).item() == pytest.approx(4.0 * absolute.item(), rel=1e-5)


def test_sizes_noise_mixed_terms_are_the_library_mixed_mode_with_or_without_the_bounds():
    noise = _script("sizes_noise")
    with_bounds = noise.mixed_terms("mixed+area tau=0.5", (1.0, 2.0), (4.0, 40.0))
    assert [(t.name, t.weight) for t in with_bounds] == [("bce", 1.0), ("size", 4.0), ("area_bound", 40.0)]
    assert with_bounds[1].units == "image" and with_bounds[2].noise_scale == 0.5
    assert [t.name for t in noise.mixed_terms("mixed tau=0.5", (1.0, 2.0), (4.0, 40.0))] == ["bce", "size"]
    assert with_bounds[1].loss_kwargs["criterion"] == "squared"
    absolute = noise.mixed_terms("mixed tau=0.5 criterion=absolute", (1.0, 2.0), (1.0, 0.0))[1]
    assert absolute.loss_kwargs["criterion"] == "absolute" and absolute.weight == 1.0


def test_sizes_noise_relative_area_bound_costs_the_same_excess_alike_at_any_size():
    noise = _script("sizes_noise")
    term = noise.RelativeAreaBound((1.0, 2.0), 0.1, noise_scale=0.25)
    logits = torch.full((3, 1, 32, 32), -30.0)
    logits[0, 0, :8, :8] = 30.0   # area 64 for size 4: twice the upper bound 32
    logits[1, 0, :, :16] = 30.0   # area 512 for size 16: the upper bound itself, no cost
    logits[2, 0, :4, :8] = 30.0   # area 32 for size 8: half the lower bound 64
    costs = [term(logits[i:i + 1], {"size": torch.tensor([t])}).item() for i, t in enumerate((4.0, 16.0, 8.0))]
    assert costs == pytest.approx([1.0, 0.0, 0.25], abs=1e-6)
    both = term(logits, {"size": torch.tensor([4.0, float("nan"), 8.0])})  # the unsized image adds nothing
    assert both.item() == pytest.approx(0.625, abs=1e-6)
    terms = noise.mixed_terms("mixed+relarea tau=0.25", (1.0, 2.0), (4.0, 40.0), 0.3)
    assert [(t.name, t.weight) for t in terms] == [("bce", 1.0), ("size", 4.0), ("relative_area", 0.3)]


def test_sizes_noise_mixed_steps_draw_masked_images_at_the_mask_fraction_and_hide_the_other_masks():
    noise = _script("sizes_noise")
    n, masked = 40, np.arange(40) < 4  # 4 masked images of 40: half of the draws should be among them
    images = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()
    seen, hidden = [], []

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            seen.extend(x[:, 0, 0, 0].long().tolist())
            return x * 0 + self.bias

    class MaskSpy:
        name, weight = "spy", 1.0

        def __call__(self, logits, batch):
            hidden.append(bool((batch["has_mask"] == torch.from_numpy(masked[np.array(seen[-len(logits):])])).all()))
            return logits.sum()

    noise.mixed_steps(Recorder(), images, torch.zeros(n, 1, 4, 4), torch.ones(n), masked, [MaskSpy()], steps=200,
                      batch=10, lr=1e-3, seed=0)
    share = masked[np.array(seen)].mean()
    assert len(seen) == 2000 and abs(share - 0.5) < 0.05  # uniform draws would give 0.1
    assert all(hidden)


def test_sizes_noise_size_from_object_names_the_part_that_gives_the_size():
    from scipy import ndimage

    from sizeseg.metrics import predicted_size

    noise = _script("sizes_noise")
    masks = torch.zeros(4, 1, 10, 10)
    masks[:, :, 1:3, 1:3] = 1
    logits = torch.full((4, 1, 10, 10), -1.0)
    logits[0, 0, 1:4, 1:4] = 1  # on the object
    logits[1, 0, 5:9, 5:9] = 1  # a larger false-positive blob gives the size; a small part touches the object
    logits[1, 0, 1, 1] = 1
    logits[2, 0, 6:8, 6:8] = 1  # a tie: one part of size 4 elsewhere, one on the object
    logits[2, 0, 1:3, 1:3] = 1
    assert noise.size_from_object(logits, masks).tolist() == [True, False, True, False]  # image 3: nothing predicted
    # the chessboard distance it uses gives the library's size
    rng = np.random.default_rng(0)
    blobs = torch.from_numpy(ndimage.gaussian_filter(rng.normal(size=(8, 1, 24, 24)), (0, 0, 2, 2)) * 10).float()
    for blob in blobs:
        dist = ndimage.distance_transform_cdt(np.pad(blob[0].numpy() > 0, 1), metric="chessboard")
        assert 2 * dist.max() == predicted_size(blob[None]).item()


def test_sizes_noise_refuses_a_reversed_blur_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        _script("sizes_noise").main(["--out", str(tmp_path / "out"), "--blur", "2", "1"])
    assert stop.value.code == 2 and "--blur: expected 0 <= LOW <= HIGH, got 2 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_sizes_noise_refuses_an_unknown_method_before_any_work(tmp_path, capsys):
    for bad in ("mixed tau=0", "mixed+bounds tau=0.25", "size tau=x", "controls", "size tau=1 criterion=absolute",
                "mixed tau=0.25 criterion=bounds", "mixed+area tau=0.25 criterion=cubic"):
        with pytest.raises(SystemExit) as stop:
            _script("sizes_noise").main(["--out", str(tmp_path / "out"), "--methods", f"control,{bad}"])
        assert stop.value.code == 2 and "--methods: expected control, full, matched or" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_sizes_noise_starts_from_the_same_network_in_every_process(tmp_path, monkeypatch):
    # torch's global generator is seeded at random in each process: the script must seed the network itself
    import sizeseg.models

    built, real = [], sizeseg.models.build_model

    def recording(*args, **kwargs):
        model = real(*args, **kwargs)
        built.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        return model

    monkeypatch.setattr(sizeseg.models, "build_model", recording)
    args = ["--images", "24", "--train", "16", "--masks", "4", "--side", "48", "--free-steps", "1",
            "--pretrain-epochs", "1", "--epochs", "1", "--batch", "4", "--model", "unet-tiny", "--methods", "control"]
    for i, other in enumerate((123, 456)):  # two processes' global states
        torch.manual_seed(other)
        assert _script("sizes_noise").main(["--out", str(tmp_path / str(i)), *args]) == 0
    assert len(built) == 2 and torch.equal(built[0], built[1])


def test_sizes_noise_refuses_a_negative_weight_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        _script("sizes_noise").main(["--out", str(tmp_path / "out"), "--area-weight", "-1"])
    assert stop.value.code == 2 and "--area-weight: expected a number >= 0, got -1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _noise_seed(folder, rows):
    """A sizes_noise results.csv with part B rows {(method, band): (E, dIoU, dIoU_se)}."""
    import csv

    folder.mkdir(parents=True)
    with open(folder / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["part", "method", "band", "E", "dIoU", "dIoU_se"])
        writer.writeheader()
        writer.writerow({"part": "A", "method": "start (sized wrong)", "band": "all", "E": 1, "dIoU": 0, "dIoU_se": 0})
        for (method, band), (e, d, se) in rows.items():
            writer.writerow({"part": "B", "method": method, "band": band, "E": e, "dIoU": d, "dIoU_se": se})


def test_sizes_noise_seeds_pools_the_seeds_and_checks_the_target_per_seed(tmp_path, capsys):
    pool = _script("sizes_noise_seeds")
    start = {("start (pre-trained)", b): (e, 0, 0) for b, e in (("small", 10), ("large", 100), ("all", 55))}
    _noise_seed(tmp_path / "s0", {**start, ("m", "small"): (5, 0.01, 0.01), ("m", "large"): (90, -0.01, 0.01),
                                  ("m", "all"): (47.5, 0.0, 0.01)})
    # seed 1: E fell in both bands, but the large band's IoU fell by 3 standard errors
    _noise_seed(tmp_path / "s1", {**start, ("m", "small"): (9, 0.03, 0.01), ("m", "large"): (99, -0.03, 0.01),
                                  ("m", "all"): (54, 0.0, 0.01)})
    # seed 2: the small band's E rose
    _noise_seed(tmp_path / "s2", {**start, ("m", "small"): (11, 0.02, 0.01), ("m", "large"): (80, 0.0, 0.01),
                                  ("m", "all"): (45.5, 0.01, 0.01)})
    assert pool.main([str(tmp_path / s) for s in ("s0", "s1", "s2")] + ["--out", str(tmp_path / "r.md")]) == 0
    text = capsys.readouterr().out
    assert text == (tmp_path / "r.md").read_text()
    assert "- m: 2 / 2 / 1 of 3" in text
    assert "| m | 8.3 | 89.7 | 49.0 | +0.020 ± 0.006 | -0.013 ± 0.009 | +0.003 ± 0.003 |" in text
    assert pool.seed_verdict(pool.read_seed(tmp_path / "s1"), "m", ["small", "large"], noise_se=3.0) == (True, True)


def test_sizes_noise_seeds_merges_runs_of_one_seed_and_refuses_other_starts(tmp_path, capsys):
    pool = _script("sizes_noise_seeds")
    start = {("start (pre-trained)", b): (e, 0, 0) for b, e in (("small", 10), ("all", 10))}
    _noise_seed(tmp_path / "a" / "seed0", {**start, ("m", "small"): (5, 0.01, 0.01), ("m", "all"): (5, 0.01, 0.01)})
    _noise_seed(tmp_path / "b" / "seed0", {**start, ("n", "small"): (20, -0.1, 0.01), ("n", "all"): (20, -0.1, 0.01)})
    assert pool.main([str(tmp_path / "a" / "seed0"), str(tmp_path / "b" / "seed0")]) == 0
    text = capsys.readouterr().out
    assert "Mean over 1 seeds (seed0)" in text and "- m: 1 / 1 / 1 of 1" in text and "- n: 0 / 0 / 0 of 1" in text
    _noise_seed(tmp_path / "c" / "seed0", {("start (pre-trained)", "small"): (11, 0, 0),
                                           ("start (pre-trained)", "all"): (11, 0, 0)})
    assert pool.main([str(tmp_path / "a" / "seed0"), str(tmp_path / "c" / "seed0")]) == 2
    assert "start from different networks (band small); pool them separately" in capsys.readouterr().err


def test_sizes_noise_seeds_names_a_folder_it_cannot_read(tmp_path, capsys):
    pool = _script("sizes_noise_seeds")
    assert pool.main([str(tmp_path / "missing")]) == 2
    assert f"sizes_noise_seeds: error: {tmp_path / 'missing'}: expected a sizes_noise output folder with results.csv" in capsys.readouterr().err
