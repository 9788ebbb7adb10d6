r"""The exact expected size loss by enumeration (paper eq. 10), for tiny images.

.. math::
    \mathcal{L} = \sum_{y \in \{\pm 1\}^V} \Pr(Y = y)\, l(s, g(y)),\qquad
    \Pr(Y = y) = \prod_i p_i^{[y_i = +1]} (1 - p_i)^{[y_i = -1]},\ p_i = \sigma(a_i / \tau).

It sums 2^V terms, so it refuses images with more than 16 pixels. It is differentiable by
autograd: the ground truth that tests compare :class:`~sizeseg.SizeLoss`'s sampled gradient with,
and a way to see what the sampled loss estimates.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sizeseg.checks import check_reduction
from sizeseg.ops import object_size

from .size_criteria import SizeCriterion, get_criterion
from .size_loss import DEFAULT_NOISE_SCALE, check_noise_scale, check_size_loss_inputs, reduce_size_loss, size_cap

MAX_EXACT_PIXELS = 16


def _all_masks(spatial: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """All 2^V binary masks of the given spatial shape, as a bool tensor (2^V, V)."""
    v = math.prod(spatial)
    codes = torch.arange(2 ** v, device=device).unsqueeze(1)
    return (codes >> torch.arange(v, device=device)) & 1 == 1


def enumerate_segmentations(logits: torch.Tensor, noise_scale: float | torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """All 2^V segmentations ``(2^V, *spatial)`` (bool) of (B, C, *spatial) logits and their
    log-probabilities ``(B, C, 2^V)`` under :math:`p_i = \\sigma(a_i / \\tau)`, differentiable
    w.r.t. the logits; refuses images of more than :data:`MAX_EXACT_PIXELS` pixels."""
    spatial = tuple(logits.shape[2:])
    v = math.prod(spatial)
    if v > MAX_EXACT_PIXELS:
        raise ValueError(f"logits: exact enumeration needs at most {MAX_EXACT_PIXELS} pixels per "
                         f"image (2^V terms), got spatial shape {spatial} = {v} pixels")
    b, c = logits.shape[:2]
    masks = _all_masks(spatial, logits.device)  # (2^V, V)
    tau = check_noise_scale(noise_scale, (b, c), logits.device)
    flat = logits.reshape(b, c, v) / tau[..., None].to(logits.dtype)
    log_on, log_off = nn.functional.logsigmoid(flat), nn.functional.logsigmoid(-flat)
    log_prob = log_off.sum(-1, keepdim=True) + (log_on - log_off) @ masks.to(flat.dtype).T
    return masks.reshape((-1,) + spatial), log_prob


def exact_size_loss(logits: torch.Tensor, sizes: torch.Tensor, reduction: str = "mean",
                    border: str = "background",
                    criterion: str | SizeCriterion = "squared",
                    noise_scale: float | torch.Tensor = DEFAULT_NOISE_SCALE) -> torch.Tensor:
    """Exact E[l(s, g(Y))] over all 2^V segmentations; arguments as in :func:`sizeseg.size_loss`.

    Args:
        logits: (B, C, H, W) or (B, C, D, H, W) with at most 16 pixels per image.
        sizes: (B, C) or (B,) sizes (or (..., 2) bounds for ``criterion="bounds"``); NaN = none.
        reduction: "mean" (over annotated entries), "sum" or "none".
        border: border of the distance transform ("background" by default, like SizeLoss).
        criterion: "squared", "absolute", "relative", "bounds" or a SizeCriterion.
        noise_scale: the logistic noise's scale tau (a number or a (B, C)-broadcastable tensor).

    Returns:
        The reduced expected loss, differentiable w.r.t. ``logits`` by autograd.

    Example:
        >>> import torch
        >>> logits = torch.zeros(1, 1, 3, 3, requires_grad=True)
        >>> loss = exact_size_loss(logits, torch.tensor([2.0]))
        >>> loss.backward(); logits.grad.shape
        torch.Size([1, 1, 3, 3])
    """
    crit = get_criterion(criterion)
    target, dropped = check_size_loss_inputs(logits, sizes, crit, border, reduction)
    spatial = tuple(logits.shape[2:])
    b, c = logits.shape[:2]
    masks, log_prob = enumerate_segmentations(logits, noise_scale)
    g = object_size(masks, len(spatial), border)
    g = g.to(logits.device).clamp(max=size_cap(spatial))  # (2^V,)
    target_filled = torch.where(torch.isnan(target), torch.zeros_like(target), target)
    pair = target_filled.shape[2:]
    losses = crit(g, target_filled.reshape((b, c, 1) + pair))  # (B, C, 2^V)
    per_entry = (log_prob.exp() * losses.to(log_prob.dtype)).sum(-1)
    return reduce_size_loss(per_entry, crit.annotated(target), reduction, dropped)


class ExactSizeLoss(nn.Module):
    """Module form of :func:`exact_size_loss`.

    Example:
        >>> import torch
        >>> ExactSizeLoss()(torch.zeros(1, 1, 2, 2), torch.tensor([2.0])).item() > 0
        True
    """

    def __init__(self, reduction: str = "mean", border: str = "background",
                 criterion: str | SizeCriterion = "squared", noise_scale: float = DEFAULT_NOISE_SCALE):
        super().__init__()
        check_reduction(reduction)
        check_noise_scale(noise_scale, (1, 1), torch.device("cpu"))
        self.reduction, self.border, self.criterion = reduction, border, get_criterion(criterion)
        self.noise_scale = float(noise_scale)

    def forward(self, logits: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        return exact_size_loss(logits, sizes, self.reduction, self.border, self.criterion, self.noise_scale)


__all__ = ["exact_size_loss", "ExactSizeLoss", "MAX_EXACT_PIXELS", "enumerate_segmentations"]
