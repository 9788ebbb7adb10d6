"""The README's user path on a folder of one's own: defaults a user can see, splits that respect the
masks, a scored start, outputs that say what they hold, and ``sizeseg oracle``."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from sizeseg.cli import build_parser, main
from sizeseg.commands.train import FINETUNE_FLAGS, PRETRAIN_FLAGS, TRAIN_FLAGS, _config
from sizeseg.data.prepared import save_prepared
from sizeseg.training import TrainConfig, load_model
from tests.builders import make_photo_folder
from tests.training.helpers import tiny_data

TINY = ["--model", "unet-tiny", "--epochs", "1", "--batch-size", "4", "--patience", "0"]


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit):
        main(argv + ["--help"])
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("command,flags", [("pretrain", {**TRAIN_FLAGS, **PRETRAIN_FLAGS}),
                                           ("finetune", {**TRAIN_FLAGS, **FINETUNE_FLAGS})])
def test_help_shows_every_default(command, flags, capsys):
    text = _help([command], capsys)
    defaults = TrainConfig()
    for flag, (key, _, _) in flags.items():
        value = getattr(defaults, key)
        shown = "all" if value is None else repr(value) if value == "" else str(value)
        assert f"{flag} " in text and f"(default: {shown})" in text, flag
    assert "--print-config" in text and "--progress" in text and "default: auto" in text


def test_model_help_names_every_registered_network(capsys):
    from sizeseg.models.registry import MODELS

    text = _help(["pretrain"], capsys).replace("- ", "-")  # argparse may wrap a name at its hyphen
    assert all(name in text for name in MODELS)


def test_training_defaults_are_the_measured_ones():
    # results/sizes-acdc/ and results/sizes-noise/: the squared criterion at tau 0.25, weight 1e-3 per pixel
    # beside BCE; results/hippocampus/: image units as the default lost IoU there
    cfg = TrainConfig()
    assert (cfg.size_criterion, cfg.noise_scale, cfg.size_weight, cfg.size_units) == ("squared", 0.25, 1e-3, "pixels")


def test_print_config_lists_every_key_and_is_a_valid_config(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["finetune", "--print-config"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    values = yaml.safe_load(text)
    assert list(values) == TrainConfig.keys()
    assert TrainConfig.from_mapping(values) == TrainConfig()  # the printed file is a valid --config
    assert all("  # " in line for line in text.splitlines()[1:])  # every key says what it does


def test_size_weight_noise_scale_and_criterion_flags_reach_the_config(tmp_path, capsys):
    args = build_parser().parse_args(["finetune", "--data", "d", "--out", "o", "--size-weight", "0.1",
                                      "--noise-scale", "0.5", "--size-criterion", "squared", "--bce-weight", "2"])
    cfg = _config(args)
    assert (cfg.size_weight, cfg.noise_scale, cfg.size_criterion, cfg.bce_weight) == (0.1, 0.5, "squared", 2.0)
    code = main(["finetune", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--size-criterion", "huber"])
    assert code == 2 and "--size-criterion expects" in capsys.readouterr().err
    code = main(["finetune", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--noise-scale", "0"])
    assert code == 2 and "--noise-scale expects" in capsys.readouterr().err
    # mixed training's flips: off unless asked, a finetune flag only
    assert _config(build_parser().parse_args(["finetune", "--data", "d", "--out", "o"])).mixed_flips is False
    assert _config(build_parser().parse_args(["finetune", "--data", "d", "--out", "o", "--mixed-flips"])).mixed_flips
    with pytest.raises(SystemExit):
        build_parser().parse_args(["pretrain", "--data", "d", "--out", "o", "--mixed-flips"])


def _prepared(tmp_path, masked_val: bool = True):
    data = tiny_data(24)
    if not masked_val:
        data.has_mask[data.splits == "val"] = False
        data.masks[data.splits == "val"] = 0
    return save_prepared(data, tmp_path / "prep")


def test_training_prints_one_line_per_epoch_and_no_advertisement(tmp_path, capsys):
    prep = _prepared(tmp_path)
    assert main(["pretrain", "--data", str(prep), "--out", str(tmp_path / "pre"), *TINY, "--epochs", "2",
                 "--progress", "lines"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert "loss" in lines[0] and "val E" in lines[0] and "IoU" in lines[0]
    assert "litlogger" not in captured.out + captured.err and "Tip:" not in captured.out + captured.err


def test_pretraining_selects_by_validation_e_when_validation_has_sizes_only(tmp_path, capsys):
    prep = _prepared(tmp_path, masked_val=False)
    assert main(["pretrain", "--data", str(prep), "--out", str(tmp_path / "pre"), *TINY, "--progress", "none"]) == 0
    assert "validation split has sizes only" in capsys.readouterr().out
    code = main(["pretrain", "--data", str(prep), "--out", str(tmp_path / "p2"), *TINY, "--monitor", "val/IoU"])
    assert code == 2 and "monitor: val/IoU needs validation images with masks" in capsys.readouterr().err


def test_finetuning_scores_its_start_and_keeps_it_when_never_beaten(tmp_path, capsys, monkeypatch):
    import sizeseg.training.selection as selection

    prep = _prepared(tmp_path)
    assert main(["pretrain", "--data", str(prep), "--out", str(tmp_path / "pre"), *TINY, "--progress", "none"]) == 0
    init = tmp_path / "pre" / "checkpoints" / "best.ckpt"
    capsys.readouterr()
    real_start = selection.start_scores
    monkeypatch.setattr(selection, "start_scores", lambda model, val, monitor: (0.0, None))  # E = 0: unbeatable
    assert main(["finetune", "--data", str(prep), "--out", str(tmp_path / "ft"), "--init", str(init), *TINY,
                 "--lr", "1e-2", "--progress", "none", "--monitor", "val/E"]) == 0
    printed = capsys.readouterr().out
    assert "start (best.ckpt): val/E 0 on validation" in printed
    assert "fine-tuning never beat its start" in printed and "best.ckpt is the start" in printed
    kept, start = load_model(tmp_path / "ft" / "checkpoints" / "best.ckpt"), load_model(init)
    for a, b in zip(kept.state_dict().values(), start.state_dict().values()):
        assert torch.equal(a, b)
    monkeypatch.setattr(selection, "start_scores", lambda model, val, monitor: (float("inf"),
                                                                               real_start(model, val, monitor)[1]))
    assert main(["finetune", "--data", str(prep), "--out", str(tmp_path / "ft2"), "--init", str(init), *TINY,
                 "--progress", "none", "--monitor", "val/E"]) == 0
    printed = capsys.readouterr().out
    assert "validation val/E: start inf, best epoch" in printed and "never" not in printed
    assert "validation IoU: start 0." in printed and ", best.ckpt 0." in printed  # E picked it: IoU beside
    # the area bounds the sizes imply: the range measured on the masked training images is printed
    assert main(["finetune", "--data", str(prep), "--out", str(tmp_path / "ft3"), "--init", str(init), *TINY,
                 "--mixed", "--area-weight", "0.01", "--area-margin", "0.2", "--progress", "none"]) == 0
    printed = capsys.readouterr().out
    assert "area bounds: area / size^2 in [" in printed and "widened by 0.2)" in printed
    # unasked, validation IoU on the validation masks picks best.ckpt; no overlap line, as IoU picked it
    assert "start (best.ckpt): val/IoU " in printed and "validation IoU: start" not in printed
    code = main(["finetune", "--data", str(prep), "--out", str(tmp_path / "ft4"), "--area-margin", "-1"])
    assert code == 2 and "--area-margin expects" in capsys.readouterr().err
    # weights in image units (the same balance at any --shape), and a unit that does not exist
    assert main(["finetune", "--data", str(prep), "--out", str(tmp_path / "ft5"), "--init", str(init), *TINY,
                 "--mixed", "--size-units", "image", "--size-weight", "4", "--area-weight", "40",
                 "--progress", "none"]) == 0
    capsys.readouterr()
    # with fewer than 5 masked validation images fine-tuning picks by validation E, and says so
    few = tiny_data(24)
    few.has_mask[np.flatnonzero(few.splits == "val")[:2]] = False
    few_prep = save_prepared(few, tmp_path / "few")
    assert main(["finetune", "--data", str(few_prep), "--out", str(tmp_path / "ft7"), "--init", str(init), *TINY,
                 "--progress", "none"]) == 0
    printed = capsys.readouterr().out
    assert "note: 4 validation image(s) have masks, fewer than 5: best.ckpt is selected" in printed
    assert "start (best.ckpt): val/E " in printed
    code = main(["finetune", "--data", str(prep), "--out", str(tmp_path / "ft6"), "--size-units", "cm"])
    err = capsys.readouterr().err
    assert code == 2 and "--size-units expects one of pixels, image, got 'cm'" in err and "Traceback" not in err


def test_evaluate_counts_masks_and_sizes_and_writes_per_image_iou_and_dice(tmp_path, capsys):
    data = tiny_data(24)
    test = np.flatnonzero(data.splits == "test")
    data.has_mask[test[:2]] = False  # two test images with a size only
    data.masks[test[:2]] = 0
    prep = save_prepared(data, tmp_path / "prep")
    assert main(["pretrain", "--data", str(prep), "--out", str(tmp_path / "pre"), *TINY, "--progress", "none"]) == 0
    capsys.readouterr()
    ckpt = tmp_path / "pre" / "checkpoints" / "best.ckpt"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(prep), "--out", str(tmp_path / "ev")]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("test: 6 images; 4 with masks: IoU ") and "; 6 with sizes: E " in line
    with open(tmp_path / "ev" / "per_image.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["has_mask"] for r in rows] == ["0", "0", "1", "1", "1", "1"]
    assert rows[0]["IoU"] == rows[0]["Dice"] == "" and all(0 <= float(r["Dice"]) <= 1 for r in rows[2:])
    scores = json.loads((tmp_path / "ev" / "scores.json").read_text())
    assert (scores["n"], scores["n_masks"], scores["n_sizes"]) == (6, 4, 6)
    assert scores["IoU"] == pytest.approx(np.mean([float(r["IoU"]) for r in rows[2:]]), rel=1e-4)  # CSV rounds


def test_predict_original_size_and_oracle_on_a_user_folder(tmp_path, capsys):
    folder = make_photo_folder(tmp_path / "mine", n=16, masked=10)
    prep = tmp_path / "prep"
    assert main(["prepare", "folder", "--images", str(folder / "images"), "--masks", str(folder / "masks"),
                 "--sizes", str(folder / "sizes.csv"), "--out", str(prep), "--shape", "32", "32",
                 "--fractions", "0.5", "0.5", "--no-test"]) == 0
    assert main(["pretrain", "--data", str(prep), "--out", str(tmp_path / "pre"), *TINY, "--progress", "none"]) == 0
    ckpt = tmp_path / "pre" / "checkpoints" / "best.ckpt"
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(ckpt), "--data", str(prep), "--out", str(tmp_path / "pred"),
                 "--original-size"]) == 0
    names = sorted(p.name for p in (tmp_path / "pred" / "masks").iterdir())
    assert names == sorted(p.name for p in (folder / "images").iterdir())  # IMD000.png ..., no collisions
    assert np.asarray(Image.open(tmp_path / "pred" / "masks" / "IMD003.png")).shape == (60, 80)
    with open(tmp_path / "pred" / "sizes.csv") as fh:  # images named as the user's files, nothing appended
        assert sorted(row["id"] for row in csv.DictReader(fh)) == names
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(prep), "--split", "val",
                 "--out", str(tmp_path / "ev")]) == 0
    with open(tmp_path / "ev" / "per_image.csv") as fh:
        assert {row["id"] for row in csv.DictReader(fh)} <= set(names)
    assert main(["predict", "--checkpoint", str(ckpt), "--data", str(prep), "--out", str(tmp_path / "small")]) == 0
    assert np.asarray(Image.open(tmp_path / "small" / "masks" / "IMD003.png")).shape == (32, 32)
    capsys.readouterr()
    assert main(["oracle", "--checkpoint", str(ckpt), "--data", str(prep), "--out", str(tmp_path / "or")]) == 0
    printed = capsys.readouterr().out
    assert "val: 5 masked images" in printed and "moved to true sizes: IoU" in printed
    assert "sizes already exact:" in printed and "moving every prediction onto its true size" in printed
    assert "warning" not in printed  # 5 masked images: enough
    result = json.loads((tmp_path / "or" / "oracle.json").read_text())
    assert result["n"] == 5 and result["gain_IoU"] == pytest.approx(result["oracle_IoU"] - result["IoU"])
    assert result["oracle_E"] <= result["E"]


def test_oracle_warns_when_it_rests_on_few_masked_images(tmp_path, capsys):
    from sizeseg.data.prepared import load_prepared

    data = tiny_data(24)
    drop = np.flatnonzero(data.splits == "val")[2:]  # validation keeps 2 of its masks
    data.has_mask[drop] = False
    data.masks[drop] = 0
    prep = save_prepared(data, tmp_path / "prep")
    assert main(["pretrain", "--data", str(prep), "--out", str(tmp_path / "pre"), *TINY, "--progress", "none"]) == 0
    ckpt = str(tmp_path / "pre" / "checkpoints" / "best.ckpt")
    data = load_prepared(prep)
    for split in ("val", "all"):
        n = int(data.has_mask.sum() if split == "all" else data.split(split).has_mask.sum())
        capsys.readouterr()
        assert main(["oracle", "--checkpoint", ckpt, "--data", str(prep), "--split", split]) == 0
        printed = capsys.readouterr().out
        assert f"{split}: {n} masked images" in printed
        assert (f"warning: the oracle rests on {n} masked image(s), fewer than 5" in printed) == (split == "val"), n


def test_predict_original_size_and_oracle_refuse_what_they_cannot_do(tmp_path, capsys):
    prep = _prepared(tmp_path, masked_val=False)
    assert main(["pretrain", "--data", str(prep), "--out", str(tmp_path / "pre"), *TINY, "--progress", "none"]) == 0
    ckpt = tmp_path / "pre" / "checkpoints" / "best.ckpt"
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(ckpt), "--data", str(prep), "--out", str(tmp_path / "p"),
                 "--original-size"]) == 2
    assert "--original-size:" in capsys.readouterr().err
    assert main(["oracle", "--checkpoint", str(ckpt), "--data", str(prep)]) == 2
    assert "--split val: none of its 6 images has a mask" in capsys.readouterr().err
    assert main(["oracle", "--checkpoint", str(tmp_path / "none.ckpt"), "--data", str(prep)]) == 2
    assert "--checkpoint:" in capsys.readouterr().err


def test_finetuning_warns_when_best_by_validation_e_lost_overlap(tmp_path, capsys, monkeypatch):
    import sizeseg.training.pipeline as pipeline
    from sizeseg.data.prepared import load_prepared
    import sizeseg.training.selection as selection

    prep = _prepared(tmp_path)
    assert main(["pretrain", "--data", str(prep), "--out", str(tmp_path / "pre"), *TINY, "--progress", "none"]) == 0
    init = tmp_path / "pre" / "checkpoints" / "best.ckpt"
    real_start = selection.start_scores  # scored for real, then beatable by any epoch
    monkeypatch.setattr(selection, "start_scores", lambda model, val, monitor: (float("inf"),
                                                                               real_start(model, val, monitor)[1]))
    real, calls = pipeline.evaluate_model, []

    def perfect_start(model, data, batch_size=64):  # the first scoring is the start's overlap
        calls.append(1)
        return {**real(model, data, batch_size), **({"IoU": 1.0} if len(calls) == 1 else {})}

    monkeypatch.setattr(pipeline, "evaluate_model", perfect_start)
    capsys.readouterr()
    assert main(["finetune", "--data", str(prep), "--out", str(tmp_path / "ft"), "--init", str(init), *TINY,
                 "--progress", "none", "--monitor", "val/E"]) == 0
    printed = capsys.readouterr().out
    best = real(load_model(tmp_path / "ft" / "checkpoints" / "best.ckpt"), load_prepared(prep).split("val"))["IoU"]
    assert len(calls) == 2 and f"validation IoU: start 1.0000, best.ckpt {best:.4f}" in printed
    assert (f"warning: best.ckpt, picked by validation E, has validation IoU {best:.3f} against its start's 1.000 "
            f"(") in printed and f"with the start ({init}) on masks you trust" in printed
    # picked by the masks (the default with 5 or more of them), there is nothing to warn of and no second
    # scoring: the start's only
    calls.clear()
    assert main(["finetune", "--data", str(prep), "--out", str(tmp_path / "ft2"), "--init", str(init), *TINY,
                 "--progress", "none"]) == 0
    assert calls == [1] and "warning: best.ckpt" not in capsys.readouterr().out
