"""Shared pieces of the constrained (size-bound) losses: activations, soft sizes, bounds.

The constrained losses (:mod:`~sizeseg.losses.size_penalty`, :mod:`~sizeseg.losses.partial_ce`,
:mod:`~sizeseg.losses.proposals`, :mod:`~sizeseg.losses.log_barrier`,
:mod:`~sizeseg.losses.kl_size`) all work on class probabilities ``probs`` of shape
``(B, K, *spatial)`` (2D: ``(B, K, H, W)``, 3D: ``(B, K, D, H, W)``) that sum to one over ``K``.

They also take raw network outputs, as MONAI's losses do (:func:`class_probabilities`):

* ``softmax=True``: logits ``(B, K, *spatial)``, K >= 2, turned into probabilities by a softmax over K;
* ``sigmoid=True``: one-channel logits ``(B, 1, *spatial)`` of a sigmoid network, turned into the
  two classes ``[1 - sigmoid(x), sigmoid(x)]`` (:func:`two_class_probabilities`), so class 1 is
  the object.

Bounds are a tensor ``(B, K, 2)`` (or ``(K, 2)``, shared by every image) holding, per image and
class, the lower bound ``a`` and the upper bound ``b`` on the soft size ``sum_p S_{k,p}`` in
pixels (voxels). ``NaN`` means "no bound on that side": a NaN lower bound is 0, a NaN upper bound
is +inf. Bounds must satisfy ``0 <= a <= b``.

Input checks follow :mod:`sizeseg.checks`: shapes and dtypes always, values (NaN, sums to one,
bound order) only with ``validate_args`` (default: the switch :func:`sizeseg.checks.set_validate_args`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from sizeseg.checks import (check_bounds, check_finite, check_probabilities, check_reduction, check_tensor,
                            validate_args_enabled)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype sums over pixels run in: ``dtype``, at least float32 (float16 overflows at 65504)."""
    return torch.promote_types(dtype, torch.float32)


def soft_sizes(probs: torch.Tensor) -> torch.Tensor:
    """Soft size per image and class: ``sum_p S_{b,k,p}``, shape ``(B, K)``, in :func:`accumulation_dtype`."""
    return probs.flatten(2).sum(-1, dtype=accumulation_dtype(probs.dtype))


def group_sizes(
    sizes: torch.Tensor, bounds: torch.Tensor, groups: torch.Tensor, validate: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sum soft sizes over the images of each group (e.g. all slices of one patient).

    Returns ``(group_sizes (G, K), group_bounds (G, K, 2), images_per_group (G,))``; the bounds
    of a group are those of its first image; with ``validate``, all its images must agree.
    Finding the groups reads them back to the host (``torch.unique``), with or without ``validate``.
    """
    groups = torch.as_tensor(groups, device=sizes.device)
    if groups.ndim != 1 or groups.shape[0] != sizes.shape[0]:
        raise ValueError(f"groups: expected shape (B,) = ({sizes.shape[0]},), got {tuple(groups.shape)}")
    if groups.is_floating_point():
        raise TypeError(f"groups: expected integer group ids, got dtype {groups.dtype}")
    uniq, inverse = torch.unique(groups, return_inverse=True)  # a data-dependent shape: one host sync
    count = uniq.numel()
    out = sizes.new_zeros(count, sizes.shape[1]).index_add(0, inverse, sizes)
    first = torch.full((count,), sizes.shape[0], dtype=torch.long, device=sizes.device)
    first = first.scatter_reduce(0, inverse, torch.arange(sizes.shape[0], device=sizes.device), reduce="amin")
    gbounds = bounds[first]
    if validate and not torch.equal(gbounds[inverse], bounds):
        raise ValueError("bounds: expected equal bounds for all images of one group (per-volume bounds), "
                         "got different ones")
    per_group = torch.bincount(inverse, minlength=count).to(sizes.dtype)
    return out, gbounds, per_group


def bounded_sizes(
    input: torch.Tensor, bounds: torch.Tensor, groups: torch.Tensor | None, reduction: str, *,
    sigmoid: bool = False, softmax: bool = False, validate_args: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check the inputs of a size-bound loss; return soft sizes, resolved bounds and pixel counts.

    ``input`` is probabilities, or logits with ``sigmoid``/``softmax`` (:func:`class_probabilities`).
    Sizes ``(B, K)``, bounds ``(B, K, 2)`` and pixel counts ``(B,)``, or, with ``groups``, one row
    per group (volume) with the sizes and pixel counts summed over its images.
    """
    check_reduction(reduction)
    probs = class_probabilities(input, sigmoid=sigmoid, softmax=softmax, validate_args=validate_args)
    validate = validate_args_enabled(validate_args)
    ab = check_bounds(bounds, probs, validate=validate)
    sizes = soft_sizes(probs)
    pixels = sizes.new_full((sizes.shape[0],), float(math.prod(probs.shape[2:])))  # B may be 0
    if groups is not None:
        sizes, ab, count = group_sizes(sizes, ab, groups, validate)
        pixels = count * probs[0, 0].numel()
    return sizes, ab, pixels


def two_class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Adapt a one-channel sigmoid output ``(B, 1, *spatial)`` to ``(B, 2, *spatial)`` probabilities.

    >>> two_class_probabilities(torch.zeros(1, 1, 2, 2)).sum(1)
    tensor([[[1., 1.],
             [1., 1.]]])
    """
    check_tensor(logits, "logits", floating=True)
    if logits.ndim < 3 or logits.shape[1] != 1:
        raise ValueError(f"logits: expected shape (B, 1, *spatial), got {tuple(logits.shape)}")
    fg = torch.sigmoid(logits)
    return torch.cat([1 - fg, fg], dim=1)


def _check_activation(input: torch.Tensor, sigmoid: bool, softmax: bool, name: str) -> None:
    if sigmoid and softmax:
        raise ValueError("sigmoid, softmax: expected at most one of them True, got both")
    if not (sigmoid or softmax):
        return
    check_tensor(input, name, floating=True)
    if sigmoid and (input.ndim < 3 or input.shape[1] != 1):
        raise ValueError(f"{name}: expected one-channel logits (B, 1, *spatial) with sigmoid=True, "
                         f"got shape {tuple(input.shape)}")
    if softmax and (input.ndim < 3 or input.shape[1] < 2):
        raise ValueError(f"{name}: expected logits (B, K, *spatial) with K >= 2 with softmax=True, "
                         f"got shape {tuple(input.shape)}")


def class_probabilities(input: torch.Tensor, *, sigmoid: bool = False, softmax: bool = False,
                        validate_args: bool | None = None, name: str = "probs") -> torch.Tensor:
    """Class probabilities ``(B, K, *spatial)`` from a loss's input, checked.

    ``input`` is returned as it is (probabilities, the default); with ``softmax=True`` it is
    softmaxed over axis 1; with ``sigmoid=True`` a one-channel logit map becomes the two classes
    ``[1 - sigmoid(x), sigmoid(x)]``. Value checks (probabilities: finite, in [0, 1], summing to
    one; logits: finite) follow ``validate_args`` (see :mod:`sizeseg.checks`).

    >>> x = torch.tensor([[[[0.0]], [[1.0]]]])                       # (1, 2, 1, 1) logits
    >>> class_probabilities(x, softmax=True).flatten()
    tensor([0.2689, 0.7311])
    >>> class_probabilities(x[:, 1:], sigmoid=True).flatten()
    tensor([0.2689, 0.7311])
    """
    _check_activation(input, sigmoid, softmax, name)
    validate = validate_args_enabled(validate_args)
    if not (sigmoid or softmax):
        check_probabilities(input, name, validate=validate)
        return input
    check_finite(input, name, validate)
    return two_class_probabilities(input) if sigmoid else torch.softmax(input, dim=1)


def class_log_probabilities(input: torch.Tensor, *, sigmoid: bool = False, softmax: bool = False,
                            eps: float = 0.0, validate_args: bool | None = None,
                            name: str = "probs") -> torch.Tensor:
    """Log class probabilities ``(B, K, *spatial)``, checked as in :func:`class_probabilities`.

    From logits directly (log-softmax, log-sigmoid: exact where the probability underflows), or
    ``log(probs + eps)`` from probabilities (in float32 at least).

    >>> x = torch.tensor([[[[-200.0]]]])                             # sigmoid(x) underflows float32
    >>> class_log_probabilities(x, sigmoid=True).flatten()
    tensor([   0., -200.])
    """
    _check_activation(input, sigmoid, softmax, name)
    validate = validate_args_enabled(validate_args)
    if not (sigmoid or softmax):
        check_probabilities(input, name, validate=validate)
        return torch.log(input.to(accumulation_dtype(input.dtype)) + eps)  # eps 1e-8 is 0 in float16
    check_finite(input, name, validate)
    if sigmoid:
        return torch.cat([F.logsigmoid(-input), F.logsigmoid(input)], dim=1)
    return torch.log_softmax(input, dim=1)


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
        raise ValueError(f"present: expected shape (B, K), got {tuple(present.shape)}")
    bounds = torch.as_tensor(bounds)
    if bounds.ndim == 2:
        bounds = bounds.unsqueeze(0).expand(present.shape[0], -1, -1)
    if bounds.shape != (*present.shape, 2):
        raise ValueError(f"bounds: expected shape (K, 2) or (B, K, 2) = {(*present.shape, 2)}, got {tuple(bounds.shape)}")
    return torch.where(present.unsqueeze(-1), bounds, torch.zeros_like(bounds))
