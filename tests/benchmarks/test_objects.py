"""The pieces of `sizeseg bench objects` that can be checked without trusting a timing."""

from __future__ import annotations

import numpy as np

from sizeseg.benchmarks.objects import bench_object_flips, bench_object_loss, brute_flip_multisets
from sizeseg.cli import main


def test_flip_row_is_exact_on_a_small_batch():
    (row,) = bench_object_flips(repeats=1, shape=(3, 12, 16), brute_pixels=300)
    assert "equal to brute force: True" in row["case"]
    assert row["ratio"] > 0 and row["anchor_s"] > 0
    assert "300 px scaled" in row["anchor"]


def test_brute_force_on_a_subset_of_pixels_matches_all_pixels():
    rng = np.random.default_rng(0)
    mask = rng.random((5, 6)) < 0.5
    every = brute_flip_multisets(mask, 2, "background", None, chunk=7)
    some = brute_flip_multisets(mask, 2, "background", None, pixels=np.array([3, 17, 29]))
    assert some == [every[3], every[17], every[29]]


def test_loss_row_and_command_arguments(capsys):
    (row,) = bench_object_loss(repeats=1, shape=(2, 1, 16, 12))
    assert row["ours_s"] > 0 and row["anchor"] == "SizeLoss n=1 fwd+bwd"
    assert main(["bench", "objects", "--repeats", "0"]) == 2
    assert "--repeats" in capsys.readouterr().err
