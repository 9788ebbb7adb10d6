"""distance_transform and object_size against scipy's chessboard transform."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sizeseg
from sizeseg.ops import NO_BACKGROUND, DistanceTransform, ObjectSize, distance_transform, object_size

from _chebyshev_reference import random_masks, reference_dt, reference_size

BACKENDS = ["numba", "torch"]


def _as_input(mask: np.ndarray, backend: str):
    return torch.from_numpy(mask) if backend == "torch" else mask


def _to_numpy(x):
    return x.numpy() if isinstance(x, torch.Tensor) else x


def _expected_dt(mask, spatial_dims, border):
    ref = reference_dt(mask, spatial_dims, border)
    return np.full(mask.shape, NO_BACKGROUND, np.int32) if ref is None else ref


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("border", ["open", "background"])
@pytest.mark.parametrize("spatial_dims,n,side", [(2, 1500, 12), (3, 400, 7)])
def test_matches_scipy_on_random_masks(backend, border, spatial_dims, n, side):
    rng = np.random.default_rng(1000 * spatial_dims + len(border))
    for mask in random_masks(rng, n, spatial_dims, side):
        got = distance_transform(_as_input(mask, backend), spatial_dims, border, backend=backend)
        np.testing.assert_array_equal(_to_numpy(got), _expected_dt(mask, spatial_dims, border),
                                      err_msg=f"mask {mask.astype(int).tolist()}")
        size = _to_numpy(object_size(_as_input(mask, backend), spatial_dims, border, backend=backend))
        assert size.shape == () and float(size) == reference_size(mask, spatial_dims, border)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("border", ["open", "background"])
def test_batches_and_larger_images(backend, border):
    rng = np.random.default_rng(7)
    masks = rng.random((3, 2, 40, 33)) < 0.9
    got = _to_numpy(distance_transform(_as_input(masks, backend), 2, border, backend=backend))
    sizes = _to_numpy(object_size(_as_input(masks, backend), 2, border, backend=backend))
    assert got.shape == masks.shape and got.dtype == np.int32
    assert sizes.shape == (3, 2) and sizes.dtype == np.float32
    for idx in np.ndindex(3, 2):
        np.testing.assert_array_equal(got[idx], _expected_dt(masks[idx], 2, border))
        assert sizes[idx] == reference_size(masks[idx], 2, border)
    vol = rng.random((2, 9, 30, 20)) < 0.95
    got3 = _to_numpy(distance_transform(_as_input(vol, backend), 3, border, backend=backend))
    for i in range(2):
        np.testing.assert_array_equal(got3[i], _expected_dt(vol[i], 3, border))


@pytest.mark.parametrize("backend", BACKENDS)
def test_edge_cases(backend):
    one_fg, one_bg = np.ones((1, 1), bool), np.zeros((1, 1), bool)
    dt = lambda m, b: _to_numpy(distance_transform(_as_input(m, backend), border=b, backend=backend))
    size = lambda m, b: float(_to_numpy(object_size(_as_input(m, backend), border=b, backend=backend)))
    assert dt(one_fg, "open").tolist() == [[NO_BACKGROUND]] and size(one_fg, "open") == np.inf
    assert dt(one_fg, "background").tolist() == [[1]] and size(one_fg, "background") == 2.0
    assert dt(one_bg, "open").tolist() == [[0]] and size(one_bg, "open") == 0.0
    full = np.ones((4, 6), bool)
    assert (dt(full, "open") == NO_BACKGROUND).all()
    assert size(full, "background") == 4.0
    assert size(np.zeros((5, 5), bool), "background") == 0.0
    assert NO_BACKGROUND > 4 + 6


@pytest.mark.parametrize("backend", BACKENDS)
def test_input_forms_agree(backend):
    rng = np.random.default_rng(3)
    fg = rng.random((4, 11, 13)) < 0.8
    expected = _to_numpy(distance_transform(fg, backend="numba"))
    for form in (fg, fg.astype(np.uint8), fg.astype(np.float32), np.where(fg, 1, -1).astype(np.int64)):
        got = distance_transform(_as_input(form, backend), backend=backend)
        np.testing.assert_array_equal(_to_numpy(got), expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_tensors(backend):
    rng = np.random.default_rng(4)
    base = torch.from_numpy(rng.random((12, 3, 9)) < 0.85)
    view = base.permute(1, 2, 0)  # (3, 9, 12), not contiguous
    assert not view.is_contiguous()
    got = distance_transform(view, border="background", backend=backend)
    for i in range(3):
        np.testing.assert_array_equal(got[i].numpy(), _expected_dt(view[i].numpy(), 2, "background"))
    strided = np.asarray(rng.random((10, 16)) < 0.8)[::2, ::3]
    np.testing.assert_array_equal(_to_numpy(distance_transform(_as_input(np.ascontiguousarray(strided), backend), backend=backend)),
                                  _expected_dt(strided, 2, "background"))
    np.testing.assert_array_equal(distance_transform(strided, border="open"), _expected_dt(strided, 2, "open"))


def test_output_kinds_and_public_names():
    m = torch.ones(2, 3, 3)
    assert isinstance(distance_transform(m), torch.Tensor)
    assert isinstance(distance_transform(m.numpy()), np.ndarray)
    assert sizeseg.distance_transform is distance_transform and sizeseg.object_size is object_size
    assert sizeseg.NO_BACKGROUND == NO_BACKGROUND
    np.testing.assert_array_equal(DistanceTransform(border="background")(m).numpy(),
                                  distance_transform(m, border="background").numpy())
    assert ObjectSize(border="background")(m).tolist() == [4.0, 4.0]
    for backend in BACKENDS:
        empty = torch.zeros(0, 2, 4, 4)
        assert distance_transform(empty, backend=backend).shape == (0, 2, 4, 4)
        assert object_size(empty, backend=backend).shape == (0, 2)
        assert sizeseg.flip_sizes(empty, backend=backend).shape == (0, 2, 4, 4)
    assert distance_transform(np.zeros((0, 4, 4))).shape == (0, 4, 4)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(mask=[[1, 0]]), TypeError, "mask: expected a torch.Tensor or numpy.ndarray"),
        (dict(mask=np.ones(4)), ValueError, "at least 2 dimensions"),
        (dict(mask=np.ones((2, 2)), spatial_dims=4), ValueError, "spatial_dims"),
        (dict(mask=np.ones((2, 2)), border="reflect"), ValueError, "border"),
        (dict(mask=np.ones((2, 0))), ValueError, "at least 1 pixel"),
        (dict(mask=np.ones((2, 2), complex)), TypeError, "dtype"),
        (dict(mask=np.ones((2, 2)), backend="torch"), TypeError, "backend='torch'"),
        (dict(mask=np.ones((2, 2)), backend="cuda"), ValueError, "backend"),
    ],
)
def test_bad_input(kwargs, error, match):
    for op in (distance_transform, object_size):
        with pytest.raises(error, match=match):
            op(**kwargs)
