"""The CLI with several classes and per-object sizes: training end to end, and bad size CSVs."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from sizeseg.cli import main
from sizeseg.data.prepared import save_prepared
from sizeseg.data.synthetic_objects import synthetic_objects_data
from tests.training.helpers import tiny_data

TINY = ["--model", "unet-tiny", "--epochs", "1", "--batch-size", "4", "--patience", "0"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("objects")
    two = tiny_data(16)
    two.masks[:, :, 16:] *= 2  # the right half of each rectangle is class 2
    save_prepared(two, root / "two")
    save_prepared(synthetic_objects_data(16, shape=(32, 32), seed=0, objects=(1, 3)), root / "objects")
    with open(root / "classes.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "left", "right"])
        for i in range(16):
            writer.writerow([f"tiny:{i}", 6, 4 if i % 2 else ""])
    return root


def _metrics(run):
    with open(run / "metrics.csv") as fh:
        return [r for r in csv.DictReader(fh) if r.get("val/E")]  # the validation rows


def test_two_classes_pretrain_then_finetune_on_class_sizes(env, tmp_path, capsys):
    assert main(["pretrain", "--data", str(env / "two"), "--out", str(tmp_path / "pre"), "--classes", "left,right",
                 *TINY]) == 0
    rows = _metrics(tmp_path / "pre")
    assert {"val/IoU_left", "val/IoU_right"} <= set(rows[-1]) and float(rows[-1]["val/IoU"]) >= 0
    ckpt = tmp_path / "pre" / "checkpoints" / "best.ckpt"
    assert main(["finetune", "--data", str(env / "two"), "--out", str(tmp_path / "fine"), "--init", str(ckpt),
                 "--sizes", str(env / "classes.csv"), "--classes", "left,right", *TINY]) == 0
    assert "val/E" in _metrics(tmp_path / "fine")[-1]
    best = str(tmp_path / "fine" / "checkpoints" / "best.ckpt")
    assert main(["evaluate", "--checkpoint", best, "--data", str(env / "two"), "--out", str(tmp_path / "ev")]) == 0
    with open(tmp_path / "ev" / "per_image.csv") as fh:
        assert all(len(r["predicted_size"].split(";")) == 2 for r in csv.DictReader(fh))
    assert main(["predict", "--checkpoint", best, "--data", str(env / "two"), "--out", str(tmp_path / "pr")]) == 0
    from PIL import Image

    labels = np.asarray(Image.open(sorted((tmp_path / "pr" / "masks").glob("*.png"))[0]))
    assert labels.shape == (32, 32) and set(np.unique(labels)) <= {0, 1, 2}
    # a one-channel start cannot fine-tune two classes
    assert main(["pretrain", "--data", str(env / "two"), "--out", str(tmp_path / "one"), *TINY]) == 0
    capsys.readouterr()
    assert main(["finetune", "--data", str(env / "two"), "--out", str(tmp_path / "bad"), "--sizes",
                 str(env / "classes.csv"), "--init", str(tmp_path / "one" / "checkpoints" / "best.ckpt"), *TINY]) == 2
    assert "1 output channel(s), but the data has 2 class(es)" in capsys.readouterr().err


def test_acdc_three_classes_prepare_pretrain_and_finetune_on_its_class_sizes(acdc, tmp_path, capsys):
    data = tmp_path / "acdc3"
    assert main(["prepare", "acdc", "--data", str(acdc), "--out", str(data), "--size", "32", "--resolution", "16",
                 "--classes", "LV,RV,MYO"]) == 0
    assert "train with --classes LV,RV,MYO" in capsys.readouterr().out
    assert main(["pretrain", "--data", str(data), "--out", str(tmp_path / "pre"), *TINY]) == 0  # classes from the data
    rows = _metrics(tmp_path / "pre")
    assert {"val/IoU_LV", "val/IoU_RV", "val/IoU_MYO"} <= set(rows[-1])
    ckpt = str(tmp_path / "pre" / "checkpoints" / "best.ckpt")
    assert main(["finetune", "--data", str(data), "--out", str(tmp_path / "fine"), "--init", ckpt,
                 "--classes", "LV,RV,MYO", *TINY]) == 0  # the prepared per-class sizes
    assert float(_metrics(tmp_path / "fine")[-1]["val/E"]) >= 0
    capsys.readouterr()
    assert main(["pretrain", "--data", str(data), "--out", str(tmp_path / "bad"), "--classes", "RV,LV,MYO", *TINY]) == 2
    err = capsys.readouterr().err
    assert "prepared with classes LV,RV,MYO" in err and "--classes RV,LV,MYO" in err and len(err.splitlines()) == 1
    assert main(["prepare", "acdc", "--data", str(acdc), "--out", str(tmp_path / "x"), "--classes", "LV,PA"]) == 2
    assert "--classes: expected distinct names from LV, RV, MYO, got LV,PA ('PA' is not an ACDC class)" in \
        capsys.readouterr().err


def test_per_object_finetuning_logs_per_object_errors(env, tmp_path):
    assert main(["finetune", "--data", str(env / "objects"), "--out", str(tmp_path / "run"), "--size-loss", "objects",
                 *TINY]) == 0
    last = _metrics(tmp_path / "run")[-1]
    assert float(last["val/E_obj"]) >= 0 and float(last["val/AE_obj"]) >= 0 and "train/object_size" in last


@pytest.mark.parametrize("text, extra, message", [
    ("image,left,right\ntiny:0,6,4\ntiny:1,6;3,4\n", [], "row 3, column 'left': 2 size(s) for 'tiny:1', expected 1"),
    ("image,sizes\ntiny:0,6;-4\n", ["--size-loss", "objects"], "row 2, column 'sizes': size -4 of 'tiny:0' is negative"),
    ("image,sizes\ntiny:0,6;inf\n", ["--size-loss", "objects"], "row 2, column 'sizes': size 'inf' of 'tiny:0' is not a finite"),
    ("image,left,right\ntiny:0,6,4\n", ["--classes", "left,right,top"], "row 1: class column 'top' missing"),
    ("image,sizes\ntiny:0," + ";".join(["2"] * 257) + "\n", ["--size-loss", "objects"],
     "row 2, column 'sizes': 257 objects for 'tiny:0', more than the 256 separate objects that fit a (32, 32) image"),
])
def test_bad_size_csv_is_one_line_naming_file_row_and_column(env, tmp_path, capsys, text, extra, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    code = main(["finetune", "--data", str(env / "two"), "--out", str(tmp_path / "run"), "--sizes", str(path),
                 *extra, *TINY])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"{path}, {message}" in err
    assert not (tmp_path / "run").exists()


def test_demo_with_several_objects(tmp_path, capsys):
    code = main(["demo", "--objects", "3", "--out", str(tmp_path / "demo"), "--images", "20", "--masks", "4",
                 "--pretrain-steps", "1", "--finetune-epochs", "1", "--model", "unet-tiny", "--area-weight", "0.01"])
    out = capsys.readouterr().out
    report = (tmp_path / "demo" / "report.md").read_text()
    assert code == 0 and "1 to 3 separate objects" in report and "--area-weight 0.01" in report
    header = next(line for line in out.splitlines() if "test IoU" in line)
    assert "test E per object" in header and "after size fine-tuning" in out
    with open(tmp_path / "demo" / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and all(float(r["AE_obj"]) >= 0 and 0 <= float(r["IoU"]) <= 1 for r in rows)
    assert main(["demo", "--objects", "13", "--out", str(tmp_path / "d2")]) == 2
    assert "--objects" in capsys.readouterr().err
