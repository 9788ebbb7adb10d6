import json
import math

import numpy as np
import pytest

from sizeseg.experiments import hippocampus as H
from sizeseg.experiments.report import mean_sd, read_csv


def test_pretrain_config_keeps_the_step_budget():
    profile = H.PROFILES["cpu"]
    for m in (10, 85, 340, None):
        cfg = H.pretrain_config(profile, m, n_train=3715, seed=0)
        per_epoch = max(1, (3715 if m is None else m) // profile.batch_size)
        assert cfg.max_epochs % cfg.val_every == 0  # ends on a validated epoch
        assert profile.pretrain_steps <= cfg.max_epochs * per_epoch < profile.pretrain_steps + cfg.val_every * per_epoch
        assert abs(cfg.val_every * per_epoch - profile.pretrain_val_steps) <= per_epoch or cfg.val_every == 1


def test_report_pretraining_means_and_paired_gains(tmp_path):
    rng = np.random.default_rng(0)
    truth = {}
    for m in ("10", "85", "all"):
        for seed in (0, 1, 2):
            rows = []
            for stage in ("pretrained", "size fine-tuned", "mixed") + (
                    ("true-size oracle", H.CONTROL_STAGE, "mixed (IoU selection)", H.IOU_CONTROL_STAGE) if m == "10" else ()):
                iou, e = float(rng.uniform(0.4, 0.8)), float(rng.uniform(0.5, 3.0))
                truth[(m, seed, stage)] = iou
                truth[(m, seed, stage, "E")] = e
                rows.append({"m": m, "seed": seed, "stage": stage, "IoU": iou, "Dice": iou, "E": e,
                             "epochs": 2, "seconds": 1.0})
            run = tmp_path / "runs" / "pretraining" / f"m{m}-s{seed}"
            run.mkdir(parents=True)
            (run / "result.json").write_text(json.dumps(rows))
    text = H.report_pretraining(tmp_path, H.PROFILES["quick"], "cmd")
    assert "Command: `cmd`" in text and "paper (Fig. 7)" in text
    summary = {r["m"]: r for r in read_csv(tmp_path / "pretraining_summary.csv")}
    assert list(summary) == ["10", "85", "all"]
    assert all(row["seeds"] == "3" for row in summary.values())
    for m, row in summary.items():
        mean, sd, _ = mean_sd(truth[(m, s, "mixed")] for s in range(3))
        assert row["mixed IoU"] == f"{mean:.4f} ± {sd:.4f}"
        gains = [truth[(m, s, "size fine-tuned")] - truth[(m, s, "pretrained")] for s in range(3)]
        g, gsd, _ = mean_sd(gains)
        assert row["size fine-tuned gain"] == f"{g:+.4f} ± {gsd:.4f}"
        e_mean, e_sd, _ = mean_sd(truth[(m, s, "pretrained", "E")] for s in range(3))
        assert row["pretrained E"] == f"{e_mean:.2f} ± {e_sd:.2f}"
    assert len(read_csv(tmp_path / "pretraining.csv")) == 39
    assert summary["10"]["true-size oracle IoU"] and not summary["85"]["true-size oracle IoU"]
    # the mixed stage against the mask-only control, paired by seed, where the control ran
    g, gsd, _ = mean_sd(truth[("10", s, "mixed")] - truth[("10", s, H.CONTROL_STAGE)] for s in range(3))
    assert summary["10"]["mixed − control"] == f"{g:+.4f} ± {gsd:.4f}" and summary["85"]["mixed − control"] == ""
    assert "size fine-tuned − control" not in summary["10"]  # not a mixed stage: other batches
    # an IoU-selected mixed stage against the control picked the same way; the controls against nothing
    g, gsd, _ = mean_sd(truth[("10", s, "mixed (IoU selection)")] - truth[("10", s, H.IOU_CONTROL_STAGE)] for s in range(3))
    assert summary["10"]["mixed (IoU selection) − control"] == f"{g:+.4f} ± {gsd:.4f}"
    assert not any(key.startswith((H.CONTROL_STAGE, H.IOU_CONTROL_STAGE)) and key.endswith("− control")
                   for key in summary["10"])
    assert "'− control' is a mixed stage's paired difference" in text
    assert (tmp_path / "pretraining.png").stat().st_size > 0


def test_report_samples_relative_epoch_time(tmp_path):
    base = tmp_path / "runs" / "samples"
    (base / "supervised").mkdir(parents=True)
    (base / "start.json").write_text(json.dumps({"E": 9.0, "IoU": 0.5}))
    (base / "supervised" / "result.json").write_text(json.dumps(
        [{"epoch": e, "epoch_time": t} for e, t in ((1, 9.0), (2, 2.0), (3, 2.0))]))
    for n, t in ((1, 2.4), (2, 3.0)):
        (base / f"n{n}").mkdir()
        (base / f"n{n}" / "result.json").write_text(json.dumps(
            [{"epoch": e, "epoch_time": 50.0 if e == 1 else t, "val_E": 10.0 / e, "val_IoU": 0.5} for e in (1, 2, 3)]))
    H.report_samples(tmp_path, H.PROFILES["quick"], "cmd")
    timing = read_csv(tmp_path / "samples_timing.csv")
    assert [float(r["relative"]) for r in timing] == pytest.approx([1.0, 1.2, 1.5])  # first epoch left out
    curves = read_csv(tmp_path / "samples.csv")
    assert len(curves) == 8 and math.isclose(float(curves[0]["val_E"]), 9.0)


def test_experiment_cli_rejects_bad_lists():
    from sizeseg.experiments.options import int_list

    with pytest.raises(ValueError, match="--n: expected"):
        int_list("1,x", "--n")
    with pytest.raises(ValueError, match="--m: expected values >= 1, got 0"):
        int_list("10,0", "--m", allow_all=True)
    with pytest.raises(ValueError, match="--seeds: expected values >= 0, got -1"):
        int_list("0,-1", "--seeds", minimum=0)
    assert int_list("10,all", "--m", allow_all=True) == [10, None] and int_list(None, "--m") is None


def test_experiment_cli_rejects_unknown_stages():
    assert H.stage_list("size fine-tuned, size-matched") == ["size fine-tuned", "size-matched"]
    with pytest.raises(ValueError, match="--stages: expected comma-separated names of size fine-tuned, mixed, size-matched, "
                                         r"size \(defaults\), mixed \(defaults\), size \(image units\), mixed \(image units\), "
                                         r"mixed \(area bounds\), masks only \(control\), size \(IoU selection\), "
                                         r"mixed \(IoU selection\), control \(IoU selection\), true-size oracle"):
        H.stage_list("size,mixed")


def test_defaults_stages_swap_the_papers_size_loss_for_the_librarys():
    from sizeseg.experiments.hippocampus.profiles import FINETUNE_STAGES, PROFILES
    from sizeseg.experiments.hippocampus.runs import PAPER_SIZE_LOSS, finetune_config, stage_settings
    from sizeseg.training import TrainConfig

    paper = finetune_config(PROFILES["quick"], 10, 0)
    assert {k: getattr(paper, k) for k in PAPER_SIZE_LOSS} == PAPER_SIZE_LOSS
    library = TrainConfig()
    for stage in ("size (defaults)", "mixed (defaults)"):
        settings = stage_settings(FINETUNE_STAGES[stage][2])
        assert settings == {k: getattr(library, k) for k in PAPER_SIZE_LOSS} != PAPER_SIZE_LOSS
    assert stage_settings(FINETUNE_STAGES["size-matched"][2]) == {"size_matched_weight": 1.0}
    area = stage_settings(FINETUNE_STAGES["mixed (area bounds)"][2])
    image = {"size_units": "image", "size_weight": 4.0}
    assert area == {**{k: getattr(library, k) for k in PAPER_SIZE_LOSS}, **image, "area_weight": 40.0}
    assert PAPER_SIZE_LOSS["size_units"] == "pixels" == library.size_units
    control = stage_settings(FINETUNE_STAGES["masks only (control)"][2])
    assert FINETUNE_STAGES["masks only (control)"][1] == FINETUNE_STAGES["mixed (defaults)"][1] == "mixed"
    assert control == {**stage_settings(FINETUNE_STAGES["mixed (defaults)"][2]), "size_weight": 0.0}
    for stage in ("size (image units)", "mixed (image units)"):  # README step 4's size term
        assert stage_settings(FINETUNE_STAGES[stage][2]) == {**{k: getattr(library, k) for k in PAPER_SIZE_LOSS},
                                                             **image}
    # the IoU-selection stages are their E-selected pairs with the monitor changed, and nothing else
    for by_iou, by_e in (("size (IoU selection)", "size (defaults)"), ("mixed (IoU selection)", "mixed (defaults)"),
                         ("control (IoU selection)", "masks only (control)")):
        assert FINETUNE_STAGES[by_iou][1] == FINETUNE_STAGES[by_e][1]
        assert FINETUNE_STAGES[by_iou][0] != FINETUNE_STAGES[by_e][0]
        assert stage_settings(FINETUNE_STAGES[by_iou][2]) == {**stage_settings(FINETUNE_STAGES[by_e][2]),
                                                              "monitor": "val/IoU"}
        assert finetune_config(PROFILES["cpu"], 10, 0).monitor == "val/E"  # the paper's selection, as recorded


class _StageResult:
    def __init__(self, run_dir):
        self.best, self.metrics_csv = run_dir / "best.ckpt", run_dir / "metrics.csv"


class _TrainTestSplits:
    splits = np.array(["train"] * 40 + ["test"] * 5)

    def split(self, name):
        return None


def _fake_stage_training(monkeypatch, calls: list, call=lambda run_dir, mode, cfg: run_dir.name):
    """Training replaced by a record of its call and a ``done.json`` as ``train`` leaves; fixed scores."""
    def fake_train_once(mode, data, run_dir, cfg, init=None, progress_bar=False):
        calls.append(call(run_dir, mode, cfg))
        H.runs.write_json(run_dir / "done.json", {"seconds": 0.0, "config": cfg.to_dict()})
        return _StageResult(run_dir)

    monkeypatch.setattr(H.runs, "_train_once", fake_train_once)
    monkeypatch.setattr(H.runs, "_scores", lambda ckpt, split: {"IoU": 0.5, "Dice": 0.6, "E": 1.0})
    monkeypatch.setattr(H.runs, "read_epochs", lambda csv: [])
    monkeypatch.setattr(H.runs, "true_size_scores", lambda ckpt, split: {"IoU": 0.55, "Dice": 0.65, "E": 0.0})
    monkeypatch.setattr(H.runs, "best_checkpoint_of", lambda run_dir: run_dir / "best.ckpt")
    return fake_train_once


def test_pretraining_item_trains_only_the_missing_stage(tmp_path, monkeypatch):
    calls = []
    fake_train_once = _fake_stage_training(monkeypatch, calls, lambda run_dir, mode, cfg: (run_dir.name, mode, cfg.size_matched_weight))
    Data = _TrainTestSplits

    profile = H.PROFILES["quick"]
    rows = H.run_pretraining_item(Data(), tmp_path, profile, 10, 0)
    assert [r["stage"] for r in rows] == ["pretrained", "size fine-tuned", "mixed", "true-size oracle"]
    assert rows[-1]["IoU"] == 0.55
    assert [c[0] for c in calls] == ["pretrain", "finetune", "mixed"]
    calls.clear()
    rows = H.run_pretraining_item(Data(), tmp_path, profile, 10, 0, stages=["size fine-tuned", "size-matched"])
    assert calls == [("pretrain", "pretrain", 0.0), ("size_matched", "finetune", 1.0)]
    assert [r["stage"] for r in rows] == ["pretrained", "size fine-tuned", "size-matched"]
    calls.clear()
    H.run_pretraining_item(Data(), tmp_path, profile, 10, 0, stages=["mixed", "size-matched"])
    assert calls == []
    cached = json.loads((tmp_path / "runs" / "pretraining" / "m10-s0" / "result.json").read_text())
    assert sorted(r["stage"] for r in cached) == ["mixed", "pretrained", "size fine-tuned", "size-matched", "true-size oracle"]
    # an item killed during its second stage keeps the first stage's scores, and is not trained again
    calls.clear()
    monkeypatch.setattr(H.runs, "_train_once", lambda mode, data, run_dir, cfg, init=None, progress_bar=False: (
        (_ for _ in ()).throw(KeyboardInterrupt) if run_dir.name == "mixed" else fake_train_once(mode, data, run_dir, cfg)))
    with pytest.raises(KeyboardInterrupt):
        H.run_pretraining_item(Data(), tmp_path / "killed", profile, 10, 0, stages=["size fine-tuned", "mixed"])
    cached = json.loads((tmp_path / "killed" / "runs" / "pretraining" / "m10-s0" / "result.json").read_text())
    assert [r["stage"] for r in cached] == ["pretrained", "size fine-tuned"]
    calls.clear()
    monkeypatch.setattr(H.runs, "_train_once", fake_train_once)
    H.run_pretraining_item(Data(), tmp_path / "killed", profile, 10, 0, stages=["size fine-tuned", "mixed"])
    assert [c[0] for c in calls] == ["pretrain", "mixed"]


def _cached_item(tmp_path, monkeypatch, stages):
    """One quick-profile cell with ``stages`` trained by the fake; (the calls list, the cell's folder)."""
    calls = []
    _fake_stage_training(monkeypatch, calls)
    H.run_pretraining_item(_TrainTestSplits(), tmp_path, H.PROFILES["quick"], 10, 0, stages=stages)
    return calls, tmp_path / "runs" / "pretraining" / "m10-s0"


def _record_set(run_dir, key, value):
    """Change one config value in ``run_dir/done.json``; the value it had."""
    record = json.loads((run_dir / "done.json").read_text())
    old, record["config"][key] = record["config"][key], value
    (run_dir / "done.json").write_text(json.dumps(record))
    return old


def test_cached_stage_rows_count_only_with_the_settings_their_runs_record(tmp_path, monkeypatch):
    """A row cached under a stage name is reused only while its run folder records that stage's settings now."""
    Data = _TrainTestSplits
    profile = H.PROFILES["quick"]
    stages = ["size (defaults)", "size (image units)"]
    calls, run = _cached_item(tmp_path, monkeypatch, stages)
    # the stage's meaning changed since its row was written (here: its run recorded another weight)
    _record_set(run / "finetune_image", "size_weight", 2.0)
    with pytest.raises(ValueError, match=r"finetune_image/done.json: this finished run was trained with other "
                                         r"settings \(size_weight=2.0, not 4.0\); use another --out"):
        H.run_pretraining_item(Data(), tmp_path, profile, 10, 0, stages=["size (defaults)"])
    # a row whose run left no record is trained again, not reported as it was
    (run / "finetune_image" / "done.json").unlink()
    calls.clear()
    rows = H.run_pretraining_item(Data(), tmp_path, profile, 10, 0, stages=stages)
    assert calls == ["pretrain", "finetune_image"]
    assert [r["stage"] for r in rows] == ["pretrained", "size (defaults)", "size (image units)"]
    calls.clear()
    H.run_pretraining_item(Data(), tmp_path, profile, 10, 0, stages=stages)
    assert calls == []
    # and the pre-trained network's row only with the pre-training settings asked for now
    _record_set(run / "pretrain", "m", 20)
    with pytest.raises(ValueError, match=r"pretrain/done.json: .*\(m=20, not 10\)"):
        H.run_pretraining_item(Data(), tmp_path, profile, 10, 0, stages=stages)


def test_runs_recorded_when_fine_tunings_default_was_validation_e_stay_valid(tmp_path, monkeypatch):
    """An empty monitor recorded by a size-mode run meant validation E then; in pre-training it meant IoU."""
    stages = ["size (defaults)", "size (IoU selection)"]
    calls, run = _cached_item(tmp_path, monkeypatch, stages)
    for folder, was in (("finetune_defaults", "val/E"), ("pretrain", "")):
        assert _record_set(run / folder, "monitor", "") == was  # "": as the library wrote it before
    calls.clear()
    H.run_pretraining_item(_TrainTestSplits(), tmp_path, H.PROFILES["quick"], 10, 0, stages=stages)
    assert calls == []
    # the IoU-selected run's empty monitor cannot pass for its own val/IoU
    _record_set(run / "finetune_iou", "monitor", "")
    with pytest.raises(ValueError, match=r"finetune_iou/done.json: .*\(monitor='val/E', not 'val/IoU'\)"):
        H.run_pretraining_item(_TrainTestSplits(), tmp_path, H.PROFILES["quick"], 10, 0, stages=stages)


def test_pretraining_items_in_two_worker_processes_match_one_process(tmp_path):
    from dataclasses import replace

    from sizeseg.data.synthetic import synthetic_data

    data = synthetic_data(40, shape=(32, 32), seed=0)
    profile = replace(H.PROFILES["quick"], model="unet-tiny", batch_size=4, pretrain_steps=4, pretrain_val_steps=2,
                      finetune_epochs=1, finetune_batches=2, stages=("size fine-tuned",))
    for out, workers in ((tmp_path / "one", 1), (tmp_path / "two", 2)):
        H.run_experiment("pretraining", data, out, profile, "pytest", seeds=[0, 1], m_values=[4], workers=workers)

    def rows(out):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in read_csv(out / "pretraining.csv")]

    assert len(rows(tmp_path / "one")) == 4 and rows(tmp_path / "one") == rows(tmp_path / "two")


def test_pretraining_picked_by_validation_sizes_and_cached_runs_keep_their_settings(tmp_path):
    from dataclasses import replace

    import torch

    from sizeseg.data.synthetic import synthetic_data

    data = synthetic_data(40, shape=(32, 32), seed=0)
    profile = replace(H.PROFILES["quick"], model="unet-tiny", batch_size=4, pretrain_steps=8, pretrain_val_steps=2,
                      pretrain_patience=0, finetune_epochs=1, finetune_batches=2, stages=("size fine-tuned",),
                      pretrain_monitor="val/E", keep_checkpoints=True)
    H.run_pretraining_item(data, tmp_path, profile, 8, 0)
    run = tmp_path / "runs" / "pretraining" / "m8-s0" / "pretrain"
    assert json.loads((run / "done.json").read_text())["config"]["monitor"] == "val/E"
    epochs = [e for e in H.read_epochs(run / "metrics.csv") if "val_E" in e]
    best = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["epoch"]
    assert len(epochs) > 1 and best + 1 == min(epochs, key=lambda e: (e["val_E"], e["epoch"]))["epoch"]
    # a missing stage re-uses the pre-trained run only with the same settings
    with pytest.raises(ValueError, match="other settings \\(monitor='val/E', not ''\\); use another --out"):
        H.run_pretraining_item(data, tmp_path, replace(profile, pretrain_monitor="val/IoU"), 8, 0, stages=["mixed"])
    assert "best validation E kept" in H.report_pretraining(tmp_path, profile, "cmd")
