r"""Criteria l(target, s) comparing a predicted object size s with its annotation.

:class:`~sizeseg.SizeLoss` and :func:`~sizeseg.exact_size_loss` learn through any of these; the
sampled gradient (paper eq. 21) only needs l's values, never its derivative, so a criterion may be
non-smooth or flat (the bound penalty is 0 inside the bounds).

=================  ============================  =====================================================
criterion          annotation per image/class    l(target, s)
=================  ============================  =====================================================
``"squared"``      size ``t`` (shape ``(...)``)   :math:`(t - s)^2` (the paper's eq. 7; the default)
``"absolute"``     size ``t`` (shape ``(...)``)   :math:`|t - s|`
``"relative"``     size ``t`` (shape ``(...)``)   :math:`(t - s)^2 / \max(t, 1)^2` (one weight for any size)
``"symmetric"``    size ``t`` (shape ``(...)``)   :math:`(t - s)^2 / \max(t, s, 1)^2` (in [0, 1]; t and s alike)
``"bounds"``       ``[lower, upper]``             :math:`\max(0, lower - s)^2 + \max(0, s - upper)^2`
                   (shape ``(..., 2)``)
=================  ============================  =====================================================

Annotation rules (checked before any work, ValueError otherwise):

* a NaN marks a missing annotation: that image/class contributes nothing (for bounds, a NaN in
  either ``lower`` or ``upper`` marks the pair as missing);
* sizes and bounds are >= 0; sizes are finite; ``lower`` is finite and ``upper`` may be ``+inf``
  (one-sided: "at least lower"); ``lower <= upper``. Use ``lower = 0`` for "at most upper".

A criterion is a small object with ``n_values`` (1: a size, 2: a ``[lower, upper]`` pair),
``__call__(predicted, target)`` (elementwise, broadcasting ``target`` against ``predicted``; for
pairs the last dim of ``target`` is the pair), ``annotated(target)`` and ``validate(target,
name)``. Subclass :class:`SizeCriterion` for another loss on sizes.

Example:
    >>> import torch
    >>> pred = torch.tensor([2.0, 6.0, 12.0])
    >>> bound_penalty(pred, torch.tensor([[4.0, 10.0]] * 3))
    tensor([4., 0., 4.])
    >>> squared_error(pred, torch.tensor([6.0, 6.0, 6.0]))
    tensor([16.,  0., 36.])
    >>> relative_squared_error(pred, torch.tensor([4.0, 6.0, 24.0]))
    tensor([0.2500, 0.0000, 0.2500])
"""

from __future__ import annotations

import torch


def squared_error(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """:math:`(t - s)^2`, elementwise (broadcasting)."""
    return (target - predicted) ** 2


def absolute_error(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """:math:`|t - s|`, elementwise (broadcasting)."""
    return (target - predicted).abs()


def relative_squared_error(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r""":math:`(t - s)^2 / \max(t, 1)^2`, elementwise (broadcasting): the squared error relative to
    the annotated size, so an error of 10 % weighs 0.01 for an object of 4 px as of 80 px (the
    floor 1 keeps an empty object, :math:`t = 0`, finite)."""
    return ((target - predicted) / target.clamp(min=1.0)) ** 2


def symmetric_relative_error(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r""":math:`(t - s)^2 / \max(t, s, 1)^2`, elementwise (broadcasting): the squared error relative
    to the larger of the two sizes, symmetric in ``t`` and ``s`` and at most 1. For lists of
    objects (:class:`~sizeseg.losses.object_size_loss.ObjectSizeLoss`) an unmatched predicted
    object (``t = 0``) and a missed annotated one (``s = 0``) both cost exactly 1, whatever their
    size; under ``"relative"`` the first costs :math:`s^2` and the second 1."""
    return ((target - predicted) / torch.maximum(target, predicted).clamp(min=1.0)) ** 2


def bound_penalty(predicted: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    r""":math:`\max(0, lower - s)^2 + \max(0, s - upper)^2` with ``bounds[..., 0] = lower``,
    ``bounds[..., 1] = upper``; 0 inside ``[lower, upper]``, squared distance to it outside."""
    lower, upper = bounds[..., 0], bounds[..., 1]
    return torch.relu(lower - predicted) ** 2 + torch.relu(predicted - upper) ** 2


class SizeCriterion:
    """Base class: a loss on sizes for :class:`~sizeseg.SizeLoss` (see the module docstring)."""

    name = "custom"
    n_values = 1
    #: how the loss scales with the unit of size: l(c t, c s) = c^degree l(t, s) (None: not known).
    #: Training terms use it to express a loss in fractions of the image (``units="image"``).
    degree: int | None = None

    def __call__(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def annotated(self, target: torch.Tensor) -> torch.Tensor:
        """Bool mask of the entries that carry an annotation (no NaN)."""
        missing = torch.isnan(target)
        return ~(missing.any(dim=-1) if self.n_values == 2 else missing)

    def validate(self, target: torch.Tensor, name: str = "sizes") -> None:
        """Raise ValueError for negative or infinite sizes (NaN = missing is allowed)."""
        present = target[~torch.isnan(target)]
        if bool((present < 0).any()):
            raise ValueError(f"{name}: expected sizes >= 0 (NaN marks a missing one), "
                             f"got minimum {present.min().item()}")
        if bool(torch.isinf(present).any()):
            raise ValueError(f"{name}: expected finite sizes (NaN marks a missing one), got inf")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SquaredError(SizeCriterion):
    """(t - s)^2: the paper's loss (eq. 7)."""

    name = "squared"
    degree = 2

    def __call__(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return squared_error(predicted, target)


class AbsoluteError(SizeCriterion):
    """|t - s|: less sensitive to a few badly annotated sizes."""

    name = "absolute"
    degree = 1

    def __call__(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return absolute_error(predicted, target)


class RelativeSquaredError(SizeCriterion):
    """(t - s)^2 / max(t, 1)^2: the squared error relative to the annotated size."""

    name = "relative"
    degree = 0

    def __call__(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return relative_squared_error(predicted, target)


class SymmetricRelativeError(SizeCriterion):
    """(t - s)^2 / max(t, s, 1)^2: relative to the larger size; an unmatched object costs 1 either way."""

    name = "symmetric"
    degree = 0

    def __call__(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return symmetric_relative_error(predicted, target)


class BoundPenalty(SizeCriterion):
    """0 inside ``[lower, upper]``, squared distance to the interval outside.

    ``sizes`` then carries pairs: shape ``(B, C, 2)`` (or ``(B, 2)`` for one channel) holding
    ``[lower, upper]`` in the object-size unit (2 x max Chebyshev distance, in pixels).
    """

    name = "bounds"
    degree = 2
    n_values = 2

    def __call__(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return bound_penalty(predicted, target)

    def validate(self, target: torch.Tensor, name: str = "sizes") -> None:
        keep = ~torch.isnan(target).any(dim=-1)
        lower, upper = target[keep][:, 0], target[keep][:, 1]
        if bool((lower < 0).any()) or bool(torch.isinf(lower).any()):
            raise ValueError(f"{name}: expected finite lower bounds (sizes[..., 0]) >= 0, "
                             f"got {lower[(lower < 0) | torch.isinf(lower)][:3].tolist()}")
        if bool((upper < lower).any()):
            bad = torch.nonzero(upper < lower)[:3].flatten().tolist()
            raise ValueError(f"{name}: expected lower <= upper (sizes[..., 0] <= sizes[..., 1]), "
                             f"got lower > upper at annotated entries {bad}")


CRITERIA = {"squared": SquaredError, "absolute": AbsoluteError, "relative": RelativeSquaredError,
            "symmetric": SymmetricRelativeError, "bounds": BoundPenalty}


def get_criterion(criterion: str | SizeCriterion) -> SizeCriterion:
    """A criterion from its name ("squared", "absolute", "relative", "symmetric", "bounds") or the object itself."""
    if isinstance(criterion, SizeCriterion):
        return criterion
    if isinstance(criterion, str) and criterion in CRITERIA:
        return CRITERIA[criterion]()
    raise ValueError(f"criterion: expected one of {sorted(CRITERIA)} or a SizeCriterion, "
                     f"got {criterion!r}")


__all__ = ["SizeCriterion", "SquaredError", "AbsoluteError", "RelativeSquaredError", "SymmetricRelativeError",
           "BoundPenalty", "squared_error", "absolute_error", "relative_squared_error", "symmetric_relative_error",
           "bound_penalty", "get_criterion", "CRITERIA"]
