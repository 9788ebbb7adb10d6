"""object_sizes and object_flip_sizes against scipy labelling + transforms (brute force).

Masks checked against brute force (one labelling and one transform per flipped copy):
the batched test below covers 2D 8064 and 3D 2880 random masks (10 944), the hypothesis tests
about 1 000 more, the hand-made cases a few dozen.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sizeseg.ops.components import (ObjectFlipSizes, ObjectSizes, object_flip_sizes,
                                    object_sizes)

from _component_reference import (brute_flip_multisets, predicted_multisets, random_object_masks,
                                  reference_sizes)

BORDERS = ["background", "open"]
CONNECTIVITY = {2: [None, 4], 3: [None, 6]}


def _check_against_brute_force(masks: np.ndarray, spatial_dims: int, border: str,
                               connectivity: int | None) -> None:
    flips = object_flip_sizes(masks, spatial_dims, border, connectivity)
    labels, sizes = object_sizes(masks, spatial_dims, border, connectivity)
    for k, mask in enumerate(masks):
        ref_labels, ref_sizes = reference_sizes(mask, spatial_dims, border, connectivity)
        where = f"{spatial_dims}D {border} conn={connectivity} mask={mask.astype(int).tolist()}"
        np.testing.assert_array_equal(labels[k], ref_labels, err_msg=where)
        np.testing.assert_array_equal(flips.labels[k], ref_labels, err_msg=where)
        got = sizes[k][~np.isnan(sizes[k])]
        np.testing.assert_array_equal(got, np.asarray(ref_sizes, np.float32), err_msg=where)
        np.testing.assert_array_equal(flips.sizes[k][: len(got)], got, err_msg=where)
        predicted = predicted_multisets(flips.sizes[k], flips.removed[k], flips.added[k])
        expected = brute_flip_multisets(mask, spatial_dims, border, connectivity)
        for i, (p, e) in enumerate(zip(predicted, expected)):
            assert p == e, f"{where} pixel {np.unravel_index(i, mask.shape)}: {dict(p)} != {dict(e)}"


SHAPES_2D = [(1, 9), (6, 1), (2, 2), (3, 3), (2, 7), (4, 6), (5, 5), (7, 5), (6, 8)]
SHAPES_3D = [(1, 1, 6), (1, 4, 4), (2, 2, 2), (2, 3, 3), (3, 3, 3), (3, 4, 2), (4, 3, 4), (1, 5, 3),
             (3, 1, 4)]


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_random_masks_equal_brute_force(spatial_dims, border):
    """Noise, thin walks (cut pixels), rings, touching boxes and near-full masks, in batches of
    one shape: 2D 9 shapes x 2 connectivities x 224 masks, 3D 9 x 2 x 80, per border."""
    rng = np.random.default_rng(17 + spatial_dims + len(border))
    shapes, n = (SHAPES_2D, 224) if spatial_dims == 2 else (SHAPES_3D, 80)
    for shape in shapes:
        for connectivity in CONNECTIVITY[spatial_dims]:
            masks = random_object_masks(rng, n, shape)
            _check_against_brute_force(masks, spatial_dims, border, connectivity)


def _masks(spatial_dims: int, max_side: int):
    shapes = st.tuples(*[st.integers(1, max_side)] * spatial_dims)
    return shapes.flatmap(lambda s: arrays(np.bool_, s))


@pytest.mark.parametrize("connectivity", [None, 4])
@pytest.mark.parametrize("border", BORDERS)
@settings(max_examples=150, deadline=None, derandomize=True)
@given(mask=_masks(2, 7))
def test_2d_equals_brute_force(mask, border, connectivity):
    _check_against_brute_force(mask[None], 2, border, connectivity)


@pytest.mark.parametrize("connectivity", [None, 6])
@pytest.mark.parametrize("border", BORDERS)
@settings(max_examples=80, deadline=None, derandomize=True)
@given(mask=_masks(3, 4))
def test_3d_equals_brute_force(mask, border, connectivity):
    _check_against_brute_force(mask[None], 3, border, connectivity)


def _pixel(flips, index):
    """(removed, added) of one pixel as sorted lists without the NaN padding."""
    r, a = flips.removed[index], flips.added[index]
    return sorted(r[~np.isnan(r)].tolist()), sorted(a[~np.isnan(a)].tolist())


def test_merge_of_four_components_and_split_into_four():
    """A background pixel touching four corners merges them; a plus's centre splits it in four."""
    m = np.zeros((7, 7), bool)
    m[0:3, 0:3] = m[0:3, 4:7] = m[4:7, 0:3] = m[4:7, 4:7] = True  # four 3x3 squares
    m[3, 3] = False
    f = object_flip_sizes(m)
    assert sorted(f.sizes.tolist()) == [4.0] * 4
    assert _pixel(f, (3, 3)) == ([4.0] * 4, [4.0])  # the cross arms stay background
    ring = np.ones((5, 5), bool)
    ring[2, 2] = False
    assert _pixel(object_flip_sizes(ring), (2, 2)) == ([2.0], [6.0])  # filling the hole grows it
    plus = np.zeros((5, 5), bool)
    plus[2, :] = plus[:, 2] = True
    f = object_flip_sizes(plus, connectivity=4)
    assert _pixel(f, (2, 2)) == ([2.0], [2.0] * 4)
    f8 = object_flip_sizes(plus)  # 8-connected, the arms touch diagonally: no split
    assert _pixel(f8, (2, 2)) == ([2.0], [2.0])


def test_3d_merge_of_eight_corners():
    """The most a 26-connected flip can merge: the 8 corners of a 3x3x3 cube."""
    m = np.zeros((3, 3, 3), bool)
    m[::2, ::2, ::2] = True
    f = object_flip_sizes(m, spatial_dims=3)
    assert f.removed.shape == (3, 3, 3, 8)
    assert _pixel(f, (1, 1, 1)) == ([2.0] * 8, [2.0])
    f6 = object_flip_sizes(m, spatial_dims=3, connectivity=6)
    assert f6.removed.shape == (3, 3, 3, 6)
    assert _pixel(f6, (1, 1, 1)) == ([], [2.0])  # corners are not face neighbours


def test_lone_pixels_and_borders():
    m = np.zeros((4, 4), bool)
    f = object_flip_sizes(m)
    assert f.sizes.shape == (0,) and (f.added[..., 0] == 2).all()  # a lone pixel appears
    m[1, 1] = True
    f = object_flip_sizes(m)
    assert _pixel(f, (1, 1)) == ([2.0], [])  # and disappears
    full = np.ones((3, 4), bool)
    assert object_sizes(full)[1].tolist() == [4.0]  # background border: 2 x 2
    f = object_flip_sizes(full, border="open")
    assert f.sizes.tolist() == [np.inf]
    assert _pixel(f, (0, 0)) == ([np.inf], [6.0])  # farthest pixel 3 columns away
    assert _pixel(object_flip_sizes(np.ones((1, 1), bool), border="open"), (0, 0)) == ([np.inf], [])
    assert _pixel(object_flip_sizes(np.zeros((1, 1), bool), border="open"), (0, 0)) == ([], [np.inf])


def test_batch_shapes_torch_and_modules():
    rng = np.random.default_rng(3)
    masks = rng.random((2, 3, 6, 5)) < 0.5
    f = object_flip_sizes(masks)
    assert f.labels.shape == masks.shape and f.removed.shape == masks.shape + (4,)
    assert f.sizes.shape[:2] == (2, 3)
    for idx in np.ndindex(2, 3):
        _check_against_brute_force(masks[idx][None], 2, "background", None)
        single = object_flip_sizes(masks[idx])
        np.testing.assert_array_equal(single.added, f.added[idx])
    t = torch.from_numpy(masks.astype(np.float32))
    ft = ObjectFlipSizes()(t)
    assert isinstance(ft.added, torch.Tensor) and ft.added.dtype == torch.float32
    np.testing.assert_array_equal(ft.added.numpy(), f.added)
    labels, sizes = ObjectSizes()(t)
    assert labels.dtype == torch.int32
    np.testing.assert_array_equal(sizes.numpy(), f.sizes)


def test_thread_pool_path_matches_serial(monkeypatch):
    import numba

    from sizeseg.ops import _numba_kernels as nk

    rng = np.random.default_rng(8)
    masks = rng.random((7, 9, 8)) < 0.6
    serial = object_flip_sizes(masks)
    monkeypatch.setattr(nk, "PARALLEL_MIN_VOXELS", 0)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 3)
    pooled = object_flip_sizes(masks)
    for a, b in zip(serial, pooled):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(mask=[[1, 0]]), TypeError, "mask"),
    (dict(mask=np.zeros((3, 3)), connectivity=6), ValueError, r"connectivity: expected one of \(4, 8\)"),
    (dict(mask=np.zeros((3, 3, 3)), spatial_dims=3, connectivity=18), ValueError, "connectivity"),
    (dict(mask=np.zeros((3, 3)), connectivity=True), ValueError, "connectivity"),
    (dict(mask=np.zeros((3, 3)), border="wrap"), ValueError, "border"),
    (dict(mask=np.zeros(3)), ValueError, "mask"),
])
def test_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        object_flip_sizes(**kwargs)
    with pytest.raises(error, match=match):
        object_sizes(**kwargs)


def test_counter_helper_rejects_a_removed_size_that_is_not_there():
    """The reference check itself can fail (a wrong removal is caught, not silently dropped)."""
    with pytest.raises(AssertionError, match="removed"):
        predicted_multisets(np.array([4.0]), np.array([[2.0]]), np.array([[np.nan]]))
    assert predicted_multisets(np.array([4.0]), np.array([[4.0]]), np.array([[2.0]])) == [Counter({2.0: 1})]
