"""The mask of a network's own ranking whose object size matches an annotated size.

Raising the threshold of a score map shrinks its foreground, and the object size (twice the
largest Chebyshev distance to the background) can only fall as the foreground shrinks. So along
the nested masks "the top N − k pixels by score", k = 0 … N, the size is a non-increasing step
function of k, and the masks of a given size form one contiguous run of k. Binary search finds,
per image, the run whose size is closest to the annotation, and in it the mask closest to the
current prediction (``score > threshold``). It is the network's prediction moved, as little as
possible, onto the annotated size: a pseudo-label for the pixels the size cannot name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .distance import object_size

__all__ = ["size_matched_mask", "size_matched_rank"]


def _check(scores: torch.Tensor, sizes: torch.Tensor, spatial_dims: int) -> None:
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims: expected 2 or 3, got {spatial_dims!r}")
    if scores.ndim < spatial_dims:
        raise ValueError(f"scores: expected at least {spatial_dims} dims (*batch, *spatial), got shape {tuple(scores.shape)}")
    batch_shape = tuple(scores.shape[: scores.ndim - spatial_dims])
    if tuple(sizes.shape) != batch_shape:
        raise ValueError(f"sizes: expected shape {batch_shape} (the batch dims of scores {tuple(scores.shape)}), got {tuple(sizes.shape)}")
    finite = sizes[~torch.isnan(sizes)]
    if bool((finite < 0).any()) or bool(torch.isinf(finite).any()):
        raise ValueError("sizes: expected finite sizes >= 0 (NaN for 'no size'), got a negative or infinite one")


class _RankedMasks:
    """f(k) = object size of "rank >= k" for every image of a flat batch, k = 0 … N (f(N) = 0)."""

    def __init__(self, scores: torch.Tensor, spatial: tuple[int, ...], spatial_dims: int, border: str) -> None:
        flat = scores.reshape(scores.shape[0], -1)
        order = torch.argsort(flat, dim=1, stable=True)
        self.rank = torch.empty_like(order)
        self.rank.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
        self.spatial, self.spatial_dims, self.border = spatial, spatial_dims, border
        self.n = flat.shape[1]

    def mask(self, k: torch.Tensor) -> torch.Tensor:
        return (self.rank >= k[:, None]).reshape((-1,) + self.spatial)

    def size(self, k: torch.Tensor) -> torch.Tensor:
        k = k.clamp(0, self.n)
        return torch.as_tensor(object_size(self.mask(k), self.spatial_dims, self.border), device=k.device).float()

    def first(self, below: torch.Tensor, strict: bool) -> torch.Tensor:
        """Smallest k with f(k) <= below (f(k) < below if strict); N + 1 where there is none."""
        lo = torch.zeros_like(below, dtype=torch.long)
        hi = torch.full_like(lo, self.n + 1)
        while bool((lo < hi).any()):
            mid = (lo + hi) // 2
            f = self.size(mid)
            ok = (f < below) if strict else (f <= below)
            ok = ok | (mid > self.n)
            active = lo < hi
            hi = torch.where(active & ok, mid, hi)
            lo = torch.where(active & ~ok, mid + 1, lo)
        return lo


def _match(scores: Any, sizes: Any, spatial_dims: int, threshold: float,
           border: str) -> tuple[_RankedMasks | None, torch.Tensor, torch.Tensor]:
    """The flat batch's ranked masks (None when empty), k* per image (flat) and the scores' tensor."""
    scores = torch.as_tensor(scores).detach()
    sizes = torch.as_tensor(sizes, device=scores.device).detach().float()
    _check(scores, sizes, spatial_dims)
    spatial = tuple(scores.shape[scores.ndim - spatial_dims:])
    flat_scores = scores.reshape((-1,) + spatial).float()
    target = sizes.reshape(-1)
    k0 = (flat_scores.flatten(1) <= threshold).sum(1)
    if flat_scores.shape[0] == 0:
        return None, k0, scores
    known = ~torch.isnan(target)
    s = torch.where(known, target, torch.zeros_like(target))
    f = _RankedMasks(flat_scores, spatial, spatial_dims, border)

    a = f.first(s, strict=False)  # first k whose size is <= s (a <= N, since f(N) = 0)
    f_a, f_before = f.size(a), f.size(a - 1)
    exact = f_a == s
    # Not exact: f(a) < s < f(a - 1); take the nearer size; on a tie, the side k0 lies on.
    gap_below, gap_above = s - f_a, f_before - s
    take_above = (a > 0) & ((gap_above < gap_below) | ((gap_above == gap_below) & (k0 < a)))
    z = torch.where(exact, s, torch.where(take_above, f_before, f_a))
    lo, hi = f.first(z, strict=False), f.first(z, strict=True) - 1
    k = torch.minimum(torch.maximum(k0, lo), hi)
    return f, torch.where(known, k, k0), scores


def size_matched_rank(scores: Any, sizes: Any, spatial_dims: int = 2, threshold: float = 0.0,
                      border: str = "background") -> torch.Tensor:
    r"""Per image, how many of the lowest-scoring pixels the size-matched mask drops (see module doc).

    With :math:`M_k` the pixels of rank :math:`\ge k` (ranks 0 … N−1 by ascending score, ties by
    position) and :math:`f(k) = g(M_k)` the object size, the result is

    .. math::
        k^\star = \arg\min_k \big(|f(k) - s|,\; |k - k_0|\big) \quad \text{(lexicographic)},

    where :math:`k_0` is the number of pixels with score :math:`\le` ``threshold`` (so
    :math:`M_{k_0}` is the current prediction). Images whose size is NaN get :math:`k_0`.

    Args:
        scores: logits or probabilities, shape (*batch, *spatial) (torch or numpy).
        sizes: annotated sizes, shape (*batch,); NaN for none.
        spatial_dims: 2 or 3.
        threshold: the score above which a pixel is predicted foreground.
        border: as in :func:`sizeseg.object_size`.

    Returns:
        long tensor of shape (*batch,).
    """
    _, k, scores = _match(scores, sizes, spatial_dims, threshold, border)
    return k.reshape(tuple(scores.shape[: scores.ndim - spatial_dims]))


def size_matched_mask(scores: Any, sizes: Any, spatial_dims: int = 2, threshold: float = 0.0,
                      border: str = "background") -> Any:
    r"""The mask closest to ``scores > threshold`` among the masks "top pixels by score" whose
    object size is nearest the annotated size (see :func:`size_matched_rank`).

    Args:
        scores: logits or probabilities, shape (*batch, *spatial) (torch or numpy).
        sizes: annotated sizes, shape (*batch,); NaN keeps ``scores > threshold``.
        spatial_dims, threshold, border: as in :func:`size_matched_rank`.

    Returns:
        bool mask shaped like ``scores`` (a numpy array for numpy input).

    Example:
        >>> import torch
        >>> scores = torch.zeros(1, 7, 7); scores[0, 1:6, 1:6] = 1.0; scores[0, 2:5, 2:5] = 2.0
        >>> [int(object_size(size_matched_mask(scores, torch.tensor([s])))[0]) for s in (6.0, 2.0, 4.0)]
        [6, 2, 4]
    """
    ranked, k, scores_t = _match(scores, sizes, spatial_dims, threshold, border)
    masks = ranked.mask(k).reshape(scores_t.shape) if ranked is not None else torch.zeros(scores_t.shape, dtype=torch.bool, device=scores_t.device)
    return masks.cpu().numpy() if isinstance(scores, np.ndarray) else masks
