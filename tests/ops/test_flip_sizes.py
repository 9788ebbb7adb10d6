"""flip_sizes against brute force (one scipy transform per flipped copy)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import sizeseg
from sizeseg.ops import FlipSizes, flip_sizes, flip_sizes_and_size, object_size

from _chebyshev_reference import brute_flip_sizes, random_masks

BACKENDS = ["numba", "torch"]
BORDERS = ["open", "background"]


def _flips(mask: np.ndarray, spatial_dims: int, border: str, backend: str) -> np.ndarray:
    x = torch.from_numpy(mask) if backend == "torch" else mask
    out = flip_sizes(x, spatial_dims, border, backend=backend)
    return out.numpy() if isinstance(out, torch.Tensor) else out


def _masks(spatial_dims: int, max_side: int):
    shapes = st.tuples(*[st.integers(1, max_side)] * spatial_dims)
    return shapes.flatmap(lambda s: arrays(np.bool_, s))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("border", BORDERS)
@settings(max_examples=150, deadline=None, derandomize=True)
@given(mask=_masks(2, 7))
def test_2d_equals_brute_force(mask, border, backend):
    np.testing.assert_array_equal(_flips(mask, 2, border, backend), brute_flip_sizes(mask, 2, border))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("border", BORDERS)
@settings(max_examples=60, deadline=None, derandomize=True)
@given(mask=_masks(3, 4))
def test_3d_equals_brute_force(mask, border, backend):
    np.testing.assert_array_equal(_flips(mask, 3, border, backend), brute_flip_sizes(mask, 3, border))


@pytest.mark.parametrize("border", BORDERS)
def test_structured_masks_equal_brute_force(border):
    """Thousands of flips on dense, boxy and line masks (where the hard cases live)."""
    rng = np.random.default_rng(11)
    for spatial_dims, n, side in ((2, 120, 9), (3, 30, 5)):
        for mask in random_masks(rng, n, spatial_dims, side):
            expected = brute_flip_sizes(mask, spatial_dims, border)
            for backend in BACKENDS:
                np.testing.assert_array_equal(_flips(mask, spatial_dims, border, backend), expected,
                                              err_msg=f"{backend} {mask.astype(int).tolist()}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_shape_and_size(backend):
    rng = np.random.default_rng(5)
    masks = rng.random((2, 3, 10, 8)) < 0.85
    x = torch.from_numpy(masks) if backend == "torch" else masks
    flips, sizes = flip_sizes_and_size(x, 2, "background", backend=backend)
    assert tuple(flips.shape) == masks.shape and tuple(sizes.shape) == (2, 3)
    np.testing.assert_array_equal(np.asarray(sizes), np.asarray(object_size(masks, border="background")))
    for idx in np.ndindex(2, 3):
        np.testing.assert_array_equal(np.asarray(flips[idx]), brute_flip_sizes(masks[idx], 2, "background"))


def test_module_and_public_name():
    m = torch.ones(4, 4)
    assert sizeseg.flip_sizes is flip_sizes
    assert torch.equal(FlipSizes(border="background")(m), flip_sizes(m, border="background"))
    with pytest.raises(TypeError, match="mask"):
        flip_sizes([[1.0]])


def test_thread_pool_path_matches_serial(monkeypatch):
    """Large batches run on the kernel thread pool; force it on a small batch and compare."""
    import numba

    from sizeseg.ops import _numba_kernels as nk
    from sizeseg.ops import distance_transform

    rng = np.random.default_rng(8)
    masks = rng.random((5, 2, 12, 9)) < 0.85
    serial = (distance_transform(masks), object_size(masks, border="background"),
              flip_sizes(masks, border="background"))
    monkeypatch.setattr(nk, "PARALLEL_MIN_VOXELS", 0)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 3)  # uneven chunks over 10 images
    pooled = (distance_transform(masks), object_size(masks, border="background"),
              flip_sizes(masks, border="background"))
    assert nk._POOL and nk._POOL[0]._max_workers == 3  # the pool did run
    for a, b in zip(serial, pooled):
        np.testing.assert_array_equal(a, b)


def test_cpu_kernels_leave_torchs_thread_count_alone():
    """numba's OpenMP layer, once launched, resets the process's OpenMP threads: torch set to one
    thread then runs on every core. The kernels, their thread pool and the size loss must not
    launch it (checked in a fresh process, since a launch is process-wide)."""
    import subprocess
    import sys

    code = (
        "import torch; torch.set_num_threads(1)\n"
        "import sizeseg\n"
        "big = torch.rand(8, 1, 256, 256) < 0.5\n"  # above the thread pool's threshold
        "sizeseg.flip_sizes(big)\n"
        "logits = torch.randn(4, 1, 32, 32, requires_grad=True)\n"
        "sizeseg.SizeLoss(criterion='bounds')(logits, torch.tensor([[2.0, 20.0]] * 4)).backward()\n"
        "x = torch.randn(64, 64); (x @ x).sum()\n"
        "print(torch.get_num_threads())\n"
    )
    env = {**os.environ, "NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "1"
