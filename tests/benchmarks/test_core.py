"""The pieces of `sizeseg bench core` that can be checked without timing anything."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sizeseg.benchmarks.core import _brute_flip_sizes, blob_masks, format_rows
from sizeseg.benchmarks.timing import time_call
from sizeseg.cli import main
from sizeseg.ops import flip_sizes


def test_blob_masks_cover_the_requested_fraction():
    masks = blob_masks((3, 40, 30), 2, seed=1, fill=0.25)
    assert masks.dtype == np.uint8 and masks.shape == (3, 40, 30)
    np.testing.assert_allclose(masks.mean(axis=(1, 2)), 0.25, atol=0.02)


def test_brute_force_anchor_agrees_with_flip_sizes():
    masks = blob_masks((2, 9, 7), 2, seed=2, fill=0.5)
    np.testing.assert_array_equal(_brute_flip_sizes(masks, "background"),
                                  flip_sizes(masks, border="background"))


def test_timing_memory_and_table():
    calls = []
    assert time_call(lambda: calls.append(1), repeats=3, warmup=2) >= 0 and len(calls) == 5
    # In a fresh process, as the benchmark measures: a long-lived one (pytest) may hand the
    # allocation pages that are already resident, and then less than 8 MB is added.
    code = ("import json, numpy as np; from sizeseg.benchmarks.timing import peak_extra_memory_mb; "
            "print(json.dumps(peak_extra_memory_mb(lambda: np.ones(8 * 2**20, np.uint8))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak = json.loads(out.stdout.strip().splitlines()[-1])  # 8 MB touched
    assert peak is None or 7 <= peak < 64
    text = format_rows([dict(case="x", ours_s=0.001, anchor="y", anchor_s=0.002, ratio=0.5,
                             target="<= 1.0", ok=True)])
    assert "0.500" in text and "ok" in text


def test_bench_command_rejects_bad_arguments(capsys):
    assert main(["bench", "core", "--repeats", "0"]) == 2
    assert "--repeats" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "core", "--device", "tpu"])
