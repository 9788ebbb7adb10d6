"""The scripts in scripts/ run as their usage lines say, on a tiny prepared synthetic set."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

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
    assert ablation.main(["--data", str(acdc), "--out", str(out), "--steps", "base,temperature,enet",
                          "--workers", "1", "--extra", extra]) == 0
    rows = list(csv.DictReader(open(out / "ablation.csv")))
    assert [r["step"] for r in rows] == ["base", "temperature", "enet"]
    assert rows[1]["flags"] == "--temperature 0.1"
    assert "--slices lv --split frames --model enet" in rows[2]["flags"]  # a branch carries every step up to its base
    for r in rows:
        assert 0 <= float(r["two_bounds_dsc_3d"]) <= 1 and 0 <= float(r["full_dsc_pooled_soft"]) <= 1
    import json

    assert json.loads((out / "temperature" / "runs" / "full" / "result.json").read_text())["temperature"] == 0.1
    assert "| temperature |" in (out / "ablation.md").read_text()
    with pytest.raises(SystemExit):
        ablation.main(["--data", str(acdc), "--out", str(out), "--steps", "nonsense"])
