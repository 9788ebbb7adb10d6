"""size_matched_rank / size_matched_mask against exhaustive enumeration of every threshold rank."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sizeseg.ops.size_match import size_matched_mask, size_matched_rank

from _chebyshev_reference import reference_size


def _brute_force_rank(scores: np.ndarray, size: float, threshold: float, border: str, spatial_dims: int) -> int:
    flat = scores.reshape(-1)
    rank = np.empty(flat.size, int)
    rank[np.argsort(flat, kind="stable")] = np.arange(flat.size)
    k0 = int((flat <= threshold).sum())
    best = None
    for k in range(flat.size + 1):
        f = reference_size((rank >= k).reshape(scores.shape), spatial_dims, border)
        key = (abs(f - size), abs(k - k0))
        if best is None or key < best[0]:
            best = (key, k)
    return best[1]


@pytest.mark.parametrize("border", ["background", "open"])
@pytest.mark.parametrize("spatial_dims,shape", [(2, (6, 5)), (3, (3, 4, 4))])
def test_rank_matches_exhaustive_enumeration(border, spatial_dims, shape):
    rng = np.random.default_rng(7 + spatial_dims)
    for trial in range(60):
        # few distinct values -> many ties; smooth blobs -> realistic shapes
        scores = np.round(rng.normal(size=(4,) + shape) * 2) / 2 if trial % 2 else rng.normal(size=(4,) + shape)
        sizes = rng.integers(0, 9, size=4).astype(np.float32) + (0.5 if trial % 3 == 0 else 0.0)
        threshold = float(rng.choice([0.0, 0.5, -0.5]))
        got = size_matched_rank(torch.from_numpy(scores), torch.from_numpy(sizes), spatial_dims, threshold, border)
        want = [_brute_force_rank(scores[i], float(sizes[i]), threshold, border, spatial_dims) for i in range(4)]
        assert got.tolist() == want, f"trial {trial}: scores {scores.tolist()} sizes {sizes.tolist()}"


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.0, 2.0, 4.0, 6.0, float("nan")]))
def test_mask_keeps_ranking_and_moves_least(seed, size):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(7, 6)).astype(np.float32)
    mask = size_matched_mask(scores[None], np.array([size], np.float32))[0]
    current = scores > 0
    if np.isnan(size):
        np.testing.assert_array_equal(mask, current)
        return
    # nested: every chosen pixel outranks every dropped one
    if mask.any() and (~mask).any():
        assert scores[mask].min() >= scores[~mask].max()
    k = int((~mask).sum())
    assert k == _brute_force_rank(scores, size, 0.0, "background", 2)


def test_batch_dims_and_nan_sizes():
    scores = torch.randn(2, 3, 8, 8)
    sizes = torch.tensor([[2.0, float("nan"), 4.0], [0.0, 6.0, float("nan")]])
    masks = size_matched_mask(scores, sizes)
    assert masks.shape == scores.shape and masks.dtype == torch.bool
    assert torch.equal(masks[0, 1], scores[0, 1] > 0) and torch.equal(masks[1, 2], scores[1, 2] > 0)
    assert not masks[1, 0].any()
    empty = size_matched_mask(torch.zeros(0, 5, 5), torch.zeros(0))
    assert empty.shape == (0, 5, 5) and size_matched_rank(torch.zeros(0, 5, 5), torch.zeros(0)).shape == (0,)


@pytest.mark.parametrize("sizes,message", [
    (torch.zeros(3), "sizes: expected shape (2,)"),
    (torch.tensor([1.0, -2.0]), "sizes: expected finite sizes >= 0"),
    (torch.tensor([1.0, float("inf")]), "sizes: expected finite sizes >= 0"),
])
def test_bad_sizes_are_named(sizes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        size_matched_rank(torch.zeros(2, 5, 5), sizes)
