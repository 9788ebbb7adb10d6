import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sizeseg.training import evaluate_model, load_model
from tests.training.helpers import tiny_data

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_cpu_ddp_matches_single_process(tmp_path):
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), OMP_NUM_THREADS="1",
               PYTHONWARNINGS="ignore")
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([sys.executable, str(ROOT / "tests/training/ddp_worker.py"), str(tmp_path)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    # Gradients were all-reduced: both processes hold the same weights after training.
    assert reports[0]["param_sum"] == pytest.approx(reports[1]["param_sum"], rel=1e-9)
    # Sums and counts are reduced, not per-process means: (1 + 2 + 3 + 10) / 4, not (1 + 5) / 2.
    assert reports[0]["uneven_mean"] == reports[1]["uneven_mean"] == pytest.approx(4.0)
    # Validation metrics gathered over both processes equal one process evaluating every image.
    model = load_model(tmp_path / "run" / "checkpoints" / "last.ckpt")
    single = evaluate_model(model, tiny_data(24).split("val"))
    for report in reports:
        assert report["val"]["val/IoU"] == pytest.approx(single["IoU"], abs=1e-5)
        assert report["val"]["val/Dice"] == pytest.approx(single["Dice"], abs=1e-5)
        assert report["val"]["val/E"] == pytest.approx(single["E"], rel=1e-5)
