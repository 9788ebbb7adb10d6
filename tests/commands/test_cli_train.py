import argparse
import csv
import json

import numpy as np
import pytest
from PIL import Image

from sizeseg.cli import build_parser, main
from sizeseg.data.prepared import save_prepared
from tests.training.helpers import tiny_data


def every_command(parser=None, prefix=()):
    """Every command path of the CLI, read from the parser itself, so a new command cannot be left out."""
    parser = parser or build_parser()
    yield list(prefix)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from every_command(sub, prefix + (name,))


COMMANDS = list(every_command())


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a) or "sizeseg")
def test_help_of_every_command(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv + ["--help"])
    assert exit_.value.code == 0
    assert "usage: sizeseg" in capsys.readouterr().out


def test_unknown_config_key_fails_before_training(tmp_path, capsys):
    config = tmp_path / "cfg.yaml"
    config.write_text("lr: 0.001\nlearning_rate: 0.1\n")
    code = main(["pretrain", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run"), "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2 and f"{config}: unknown key 'learning_rate'" in err
    assert not (tmp_path / "run").exists()


def test_missing_prepared_folder_and_bad_flags(tmp_path, capsys):
    assert main(["pretrain", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run")]) == 2
    assert "not a prepared data folder" in capsys.readouterr().err
    assert main(["finetune", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--init", str(tmp_path / "x.ckpt")]) == 2
    assert "--init" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path / "d"), "--masks", "0"]) == 2
    assert "--masks" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path / "d"), "--area-weight", "-1"]) == 2
    assert "--area-weight: expected a finite number >= 0, got -1.0" in capsys.readouterr().err
    assert main(["experiment", "pretraining", "--data", str(tmp_path), "--out", str(tmp_path / "e"), "--m", "ten"]) == 2
    assert "--m: expected comma-separated" in capsys.readouterr().err
    assert main(["experiment", "pretraining", "--data", str(tmp_path), "--out", str(tmp_path / "e"), "--workers", "0"]) == 2
    assert "--workers: expected a positive int, got 0" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_pretrain_evaluate_predict(tmp_path, capsys):
    data = tiny_data(24)
    save_prepared(data, tmp_path / "prep")
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(tmp_path / "prep"), "--out", str(run), "--model", "unet-tiny",
                 "--epochs", "1", "--batch-size", "4", "--m", "6"]) == 0
    ckpt = run / "checkpoints" / "best.ckpt"
    assert ckpt.is_file() and (run / "metrics.csv").is_file()
    ft = tmp_path / "ft"
    assert main(["finetune", "--data", str(tmp_path / "prep"), "--out", str(ft), "--init", str(ckpt), "--epochs", "1",
                 "--batch-size", "4", "--limit-train-batches", "2", "--size-matched-weight", "0.5"]) == 0
    with open(ft / "metrics.csv") as fh:
        assert any(r.get("train/size_matched") for r in csv.DictReader(fh))
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(tmp_path / "prep"), "--split", "val",
                 "--out", str(tmp_path / "eval")]) == 0
    scores = json.loads((tmp_path / "eval" / "scores.json").read_text())
    assert scores["n"] == 6 and 0 <= scores["IoU"] <= 1
    assert main(["predict", "--checkpoint", str(ckpt), "--data", str(tmp_path / "prep"), "--split", "test",
                 "--out", str(tmp_path / "pred")]) == 0
    with open(tmp_path / "pred" / "sizes.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6
    from tests.training.helpers import reference_size

    for row in rows:
        mask = np.asarray(Image.open(tmp_path / "pred" / row["file"])) > 0
        assert mask.shape == (32, 32)
        assert float(row["predicted_size"]) == reference_size(mask)  # the CSV agrees with the written mask
    assert not list((tmp_path / "pred").rglob("*.part"))
    assert main(["predict", "--checkpoint", str(ckpt), "--data", str(tmp_path / "prep"), "--split", "val",
                 "--out", str(tmp_path / "nii"), "--format", "nifti"]) == 0
    import nibabel as nib

    first = sorted((tmp_path / "nii" / "masks").glob("*.nii.gz"))[0]
    assert nib.load(first).shape == (32, 32)


def test_demo_smoke(tmp_path, capsys):
    code = main(["demo", "--out", str(tmp_path / "demo"), "--images", "30", "--masks", "4",
                 "--pretrain-steps", "1", "--finetune-epochs", "1", "--model", "unet-tiny"])
    assert code == 0
    out = capsys.readouterr().out
    assert "test IoU" in out and "after size fine-tuning" in out
    for name in ("report.md", "results.csv", "finetune_curve.png", "examples.png"):
        assert (tmp_path / "demo" / name).is_file()
