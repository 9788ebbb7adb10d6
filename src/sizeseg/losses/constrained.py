"""Shared pieces of the constrained (size-bound) losses: input checks and soft sizes.

The constrained losses (:mod:`~sizeseg.losses.size_penalty`, :mod:`~sizeseg.losses.partial_ce`,
:mod:`~sizeseg.losses.proposals`, :mod:`~sizeseg.losses.log_barrier`,
:mod:`~sizeseg.losses.kl_size`) all work on class probabilities ``probs`` of shape
``(B, K, *spatial)`` (2D: ``(B, K, H, W)``, 3D: ``(B, K, D, H, W)``) that sum to one over ``K``.

A one-channel sigmoid network is adapted by stacking ``[1 - sigmoid(x), sigmoid(x)]`` along the
channel axis (:func:`two_class_probabilities`), so class 1 is the object.

Bounds are a tensor ``(B, K, 2)`` (or ``(K, 2)``, shared by every image) holding, per image and
class, the lower bound ``a`` and the upper bound ``b`` on the soft size ``sum_p S_{k,p}`` in
pixels (voxels). ``NaN`` means "no bound on that side": a NaN lower bound is 0, a NaN upper bound
is +inf. Bounds must satisfy ``0 <= a <= b``.
"""

from __future__ import annotations

import math

import torch

IGNORE_INDEX = -1
"""Weak-label value of an unlabelled pixel."""

_SUM_TOLERANCE = 1e-3


def check_probabilities(probs: torch.Tensor, name: str = "probs") -> None:
    """Raise unless ``probs`` is a float tensor ``(B, K, *spatial)`` in [0, 1] summing to one over K."""
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(probs).__name__}")
    if not probs.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {probs.dtype}")
    if probs.ndim < 3:
        raise ValueError(
            f"{name} must have shape (B, K, *spatial) with at least one spatial axis, got {tuple(probs.shape)}"
        )
    if probs.shape[1] < 2:
        raise ValueError(
            f"{name} must hold K >= 2 class probabilities along axis 1, got shape {tuple(probs.shape)}; "
            "for a one-channel sigmoid network use two_class_probabilities(logits)"
        )
    with torch.no_grad():
        finite = torch.isfinite(probs)
        if not bool(finite.all()):  # NaN passes every range check below
            raise ValueError(f"{name} must be finite, got {int((~finite).sum())} NaN or infinite value(s) "
                             f"in shape {tuple(probs.shape)}")
        if probs.numel() and (probs.min() < -_SUM_TOLERANCE or probs.max() > 1 + _SUM_TOLERANCE):
            raise ValueError(
                f"{name} must lie in [0, 1], got values in [{probs.min().item():.4g}, {probs.max().item():.4g}]"
            )
        err = (probs.sum(dim=1) - 1).abs().max().item() if probs.numel() else 0.0
        if err > _SUM_TOLERANCE:
            raise ValueError(
                f"{name} must sum to one over the class axis 1 (apply softmax first); largest deviation {err:.4g}"
            )


def check_bounds(bounds: torch.Tensor, probs: torch.Tensor, name: str = "bounds") -> torch.Tensor:
    """Validate ``bounds`` against ``probs`` and return them as ``(B, K, 2)`` with NaNs resolved.

    The returned tensor has lower NaNs replaced by 0 and upper NaNs by +inf, on the device and
    dtype of ``probs``.
    """
    if not isinstance(bounds, torch.Tensor):
        bounds = torch.as_tensor(bounds, dtype=probs.dtype)
    batch, classes = probs.shape[:2]
    if bounds.ndim == 2:
        bounds = bounds.unsqueeze(0).expand(batch, -1, -1)
    if bounds.ndim != 3 or bounds.shape != (batch, classes, 2):
        raise ValueError(
            f"{name} must have shape (B, K, 2) = ({batch}, {classes}, 2) or (K, 2) = ({classes}, 2) "
            f"to match probs {tuple(probs.shape)}, got {tuple(bounds.shape)}"
        )
    bounds = bounds.to(device=probs.device, dtype=probs.dtype)
    if torch.isinf(bounds[..., 0]).any():
        raise ValueError(f"{name}: a lower bound must be finite (NaN for none), got inf")
    lower = torch.nan_to_num(bounds[..., 0], nan=0.0)
    upper = torch.where(torch.isnan(bounds[..., 1]), torch.full_like(bounds[..., 1], float("inf")), bounds[..., 1])
    if (lower < 0).any() or (upper < 0).any():
        raise ValueError(f"{name} must be non-negative, got minimum {torch.minimum(lower, upper).min().item():.4g}")
    if (lower > upper).any():
        idx = tuple(torch.nonzero(lower > upper)[0].tolist())
        raise ValueError(
            f"{name} need lower <= upper, got a={lower[idx].item():.4g} > b={upper[idx].item():.4g} "
            f"at (image, class) {idx}"
        )
    return torch.stack([lower, upper], dim=-1)


def check_weak(weak: torch.Tensor, probs: torch.Tensor, name: str = "weak") -> None:
    """Raise unless ``weak`` is an integer tensor ``(B, *spatial)`` of classes in ``[0, K)`` or -1."""
    if not isinstance(weak, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(weak).__name__}")
    if weak.is_floating_point() or weak.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of class indices, got dtype {weak.dtype}")
    expected = (probs.shape[0], *probs.shape[2:])
    if tuple(weak.shape) != expected:
        raise ValueError(f"{name} must have shape (B, *spatial) = {expected} to match probs, got {tuple(weak.shape)}")
    if weak.numel():
        bad = (weak != IGNORE_INDEX) & ((weak < 0) | (weak >= probs.shape[1]))
        if bad.any():
            raise ValueError(
                f"{name} must hold class indices in [0, {probs.shape[1]}) or {IGNORE_INDEX} (unlabelled), "
                f"got value {weak[bad][0].item()}"
            )


def check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def reduce(per_image: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply ``reduction`` ('mean', 'sum', 'none') over the image axis of a ``(B,)`` tensor."""
    if reduction == "mean":
        # an empty batch contributes 0 (still in the graph), not the NaN of an empty mean
        return per_image.mean() if per_image.numel() else per_image.sum()
    if reduction == "sum":
        return per_image.sum()
    return per_image


def soft_sizes(probs: torch.Tensor) -> torch.Tensor:
    """Soft size per image and class: ``sum_p S_{b,k,p}``, shape ``(B, K)``."""
    return probs.flatten(2).sum(-1)


def group_sizes(
    sizes: torch.Tensor, bounds: torch.Tensor, groups: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sum soft sizes over the images of each group (e.g. all slices of one patient).

    Returns ``(group_sizes (G, K), group_bounds (G, K, 2), images_per_group (G,))``; the bounds
    of a group are those of its images, which must all agree.
    """
    groups = torch.as_tensor(groups, device=sizes.device)
    if groups.ndim != 1 or groups.shape[0] != sizes.shape[0]:
        raise ValueError(f"groups must have shape (B,) = ({sizes.shape[0]},), got {tuple(groups.shape)}")
    if groups.is_floating_point():
        raise TypeError(f"groups must hold integer group ids, got dtype {groups.dtype}")
    uniq, inverse = torch.unique(groups, return_inverse=True)
    count = uniq.numel()
    out = sizes.new_zeros(count, sizes.shape[1]).index_add(0, inverse, sizes)
    first = torch.full((count,), sizes.shape[0], dtype=torch.long, device=sizes.device)
    first = first.scatter_reduce(0, inverse, torch.arange(sizes.shape[0], device=sizes.device), reduce="amin")
    gbounds = bounds[first]
    if not torch.equal(gbounds[inverse], bounds):
        raise ValueError("bounds must be equal for all images of one group (per-volume bounds)")
    per_group = torch.bincount(inverse, minlength=count).to(sizes.dtype)
    return out, gbounds, per_group


def bounded_sizes(
    probs: torch.Tensor, bounds: torch.Tensor, groups: torch.Tensor | None, reduction: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check the inputs of a size-bound loss; return soft sizes, resolved bounds and pixel counts.

    Sizes ``(B, K)``, bounds ``(B, K, 2)`` and pixel counts ``(B,)``, or, with ``groups``, one row
    per group (volume) with the sizes and pixel counts summed over its images.
    """
    check_probabilities(probs)
    check_reduction(reduction)
    ab = check_bounds(bounds, probs)
    sizes = soft_sizes(probs)
    pixels = sizes.new_full((sizes.shape[0],), float(math.prod(probs.shape[2:])))  # B may be 0
    if groups is not None:
        sizes, ab, count = group_sizes(sizes, ab, groups)
        pixels = count * probs[0, 0].numel()
    return sizes, ab, pixels


def two_class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Adapt a one-channel sigmoid output ``(B, 1, *spatial)`` to ``(B, 2, *spatial)`` probabilities.

    >>> two_class_probabilities(torch.zeros(1, 1, 2, 2)).sum(1)
    tensor([[[1., 1.],
             [1., 1.]]])
    """
    if logits.ndim < 3 or logits.shape[1] != 1:
        raise ValueError(f"logits must have shape (B, 1, *spatial), got {tuple(logits.shape)}")
    fg = torch.sigmoid(logits)
    return torch.cat([1 - fg, fg], dim=1)


def tag_bounds(present: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """Image-level tags to bounds: where a class is absent its bounds become ``[0, 0]`` (suppression).

    ``present`` is a bool tensor ``(B, K)``; ``bounds`` is ``(K, 2)`` or ``(B, K, 2)``.
    Returns ``(B, K, 2)``.

    >>> tag_bounds(torch.tensor([[True, False]]), torch.tensor([[0., 10.], [0., 10.]]))
    tensor([[[ 0., 10.],
             [ 0.,  0.]]])
    """
    present = torch.as_tensor(present, dtype=torch.bool)
    if present.ndim != 2:
        raise ValueError(f"present must have shape (B, K), got {tuple(present.shape)}")
    bounds = torch.as_tensor(bounds)
    if bounds.ndim == 2:
        bounds = bounds.unsqueeze(0).expand(present.shape[0], -1, -1)
    if bounds.shape != (*present.shape, 2):
        raise ValueError(f"bounds must have shape (K, 2) or (B, K, 2) = {(*present.shape, 2)}, got {tuple(bounds.shape)}")
    return torch.where(present.unsqueeze(-1), bounds, torch.zeros_like(bounds))
