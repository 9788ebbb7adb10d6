r"""The exact expected per-object size loss by enumeration, for tiny images.

.. math::
    \mathcal{L} = \sum_{y \in \{\pm 1\}^V} \Pr(Y = y)\, l(T, S(y)),\qquad
    p_i = \sigma(a_i / \tau),

with :math:`S(y)` the multiset of component sizes and :math:`l` the sorted-matching loss of
:mod:`sizeseg.losses.object_size_loss`. It sums 2^V terms (V <= 16) and is differentiable by
autograd: the ground truth for :class:`~sizeseg.losses.object_size_loss.ObjectSizeLoss`'s sampled
gradient.
"""

from __future__ import annotations

import torch
from torch import nn

from sizeseg.ops.components import object_sizes

from .exact import enumerate_segmentations
from .object_size_loss import check_object_size_inputs, matched_size_loss, object_criterion
from .size_criteria import SizeCriterion
from .size_loss import DEFAULT_NOISE_SCALE, REDUCTIONS, reduce_size_loss, size_cap


def exact_object_size_loss(logits: torch.Tensor, sizes: torch.Tensor, reduction: str = "mean",
                           border: str = "background", criterion: str | SizeCriterion = "squared",
                           connectivity: int | None = None,
                           noise_scale: float | torch.Tensor = DEFAULT_NOISE_SCALE) -> torch.Tensor:
    """Exact E[l(T, S(Y))] over all 2^V segmentations; arguments as in
    :func:`~sizeseg.losses.object_size_loss.object_size_loss`.

    Example:
        >>> import torch
        >>> logits = torch.zeros(1, 1, 3, 3, requires_grad=True)
        >>> loss = exact_object_size_loss(logits, torch.tensor([[2.0, 2.0]]))
        >>> loss.backward(); logits.grad.shape
        torch.Size([1, 1, 3, 3])
    """
    object_criterion(criterion)
    target, dropped = check_object_size_inputs(logits, sizes, border, reduction, connectivity)
    spatial = tuple(logits.shape[2:])
    b, c = logits.shape[:2]
    masks, log_prob = enumerate_segmentations(logits, noise_scale)
    _, found = object_sizes(masks, len(spatial), border, connectivity)
    found = found.to(logits.device).clamp(max=size_cap(spatial))  # (2^V, K_max), NaN-padded
    losses = matched_size_loss(found, target.reshape(b, c, 1, -1), criterion)  # (B, C, 2^V)
    per_entry = (log_prob.exp() * losses.to(log_prob.dtype)).sum(-1)
    return reduce_size_loss(per_entry, ~torch.isnan(target).all(-1), reduction, dropped)


class ExactObjectSizeLoss(nn.Module):
    """Module form of :func:`exact_object_size_loss`.

    Example:
        >>> import torch
        >>> ExactObjectSizeLoss()(torch.zeros(1, 1, 2, 2), torch.tensor([[2.0]])).item() > 0
        True
    """

    def __init__(self, reduction: str = "mean", border: str = "background",
                 criterion: str | SizeCriterion = "squared", connectivity: int | None = None,
                 noise_scale: float = DEFAULT_NOISE_SCALE):
        super().__init__()
        self.noise_scale = noise_scale
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")
        self.criterion, _ = object_criterion(criterion)
        self.reduction, self.border, self.connectivity = reduction, border, connectivity

    def forward(self, logits: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        return exact_object_size_loss(logits, sizes, self.reduction, self.border, self.criterion,
                                      self.connectivity, self.noise_scale)


__all__ = ["exact_object_size_loss", "ExactObjectSizeLoss"]
