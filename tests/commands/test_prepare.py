"""``sizeseg prepare ...``: help, a run on fixtures, cache reuse, bad input as exit code 2."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sizeseg.cli import main
from sizeseg.data.prepared import load_prepared


@pytest.mark.parametrize("dataset", ["hippocampus", "folder", "acdc"])
def test_help(dataset, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", dataset, "--help"])
    assert exit_info.value.code == 0
    assert "--out" in capsys.readouterr().out


def test_prepare_hippocampus_and_acdc(decathlon, acdc, tmp_path, capsys):
    out = tmp_path / "hippo"
    assert main(["prepare", "hippocampus", "--data", str(decathlon), "--out", str(out), "--split-by", "slice"]) == 0
    assert "prepared" in capsys.readouterr().out
    assert main(["prepare", "hippocampus", "--data", str(decathlon), "--out", str(out), "--split-by", "slice"]) == 0
    assert "reused cached" in capsys.readouterr().out
    assert load_prepared(out).params["split_by"] == "slice"
    assert main(["prepare", "acdc", "--data", str(acdc), "--out", str(tmp_path / "a"), "--size", "32",
                 "--resolution", "16"]) == 0
    assert load_prepared(tmp_path / "a").images.shape[2:] == (16, 16)


def test_prepare_folder_and_bad_input(tmp_path, capsys):
    images = tmp_path / "images"; images.mkdir()
    Image.fromarray(np.zeros((10, 8), np.uint8)).save(images / "x.png")
    (tmp_path / "sizes.csv").write_text("x.png,-1\n")
    code = main(["prepare", "folder", "--images", str(images), "--sizes", str(tmp_path / "sizes.csv"),
                 "--out", str(tmp_path / "out")])
    assert code == 2 and "negative" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing written before the input is checked
    (tmp_path / "sizes.csv").write_text("x.png,3\n")
    assert main(["prepare", "folder", "--images", str(images), "--sizes", str(tmp_path / "sizes.csv"),
                 "--out", str(tmp_path / "out"), "--shape", "12", "12", "--fit", "pad"]) == 0
    assert load_prepared(tmp_path / "out").sizes.tolist() == [3.0]  # padding keeps the CSV's size
