"""scripts/gpu-check.sh and its Python steps, on a CPU: the pieces a GPU run relies on work.

The whole dry run (``scripts/gpu-check.sh --dry-run``, a few minutes on 2 cores) is documented in
results/gpu/README.md; here each piece runs small.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu-check.sh"


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shell_script_parses_and_refuses_unknown_arguments():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    proc = subprocess.run(["bash", str(SCRIPT), "--gpu"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown argument '--gpu'" in proc.stderr


def test_training_steps_are_timed_with_and_without_size_loss(tmp_path):
    module = _gpu_check()
    rows = module.time_steps([("tiny", (2, 1, 16, 16))], "cpu", repeats=1, warmup=1, model="unet-plain")
    assert [r["variant"] for r in rows][:2] == ["BCE step", "SizeLoss step (n=1)"]
    assert len(rows) == 6 and all(r["ms"] > 0 and r["repeats"] == 1 for r in rows)
    assert rows[0]["vs_bce_step"] == 1.0
    module.steps_figure(rows, "test", tmp_path / "steps.png")
    assert (tmp_path / "steps.png").stat().st_size > 1000


def test_bench_figure_from_the_bench_json(tmp_path):
    rows = [{"case": "distance_transform (4, 8, 8)", "ours_s": 1e-3, "anchor": "cv2 DIST_C per image",
             "anchor_s": 2e-3, "ratio": 0.5, "target": "<= 1.0", "ok": True},
            {"case": "flip_sizes peak extra memory MB", "ours_s": 12.0, "anchor": "MB", "anchor_s": 12.0,
             "ratio": 12.0, "target": "< 200 MB", "ok": True}]
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"rows": rows, "environment": {"device": "cpu"}}))
    assert _gpu_check().main(["figures", "--bench", str(bench), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "bench-core.png").stat().st_size > 1000


def test_steps_refuse_cuda_where_there_is_none(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the refusal is for machines without one")
    with pytest.raises(SystemExit) as exit_:
        _gpu_check().main(["steps", "--out", str(tmp_path), "--device", "cuda"])
    assert exit_.value.code == 2 and "--dry-run" in capsys.readouterr().err
