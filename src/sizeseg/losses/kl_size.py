"""KL divergence to approximate size targets (Fan, Zhang and Boykov, 2025)."""

from __future__ import annotations

import torch
from torch import nn

from sizeseg.losses.constrained import check_probabilities, check_reduction, reduce

_EPS = 1e-8


def check_size_targets(target: torch.Tensor, probs: torch.Tensor, name: str = "target") -> None:
    """Raise unless ``target`` is a ``(B, K)`` class-proportion vector per image (>= 0, sums to 1)."""
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(target).__name__}")
    if tuple(target.shape) != tuple(probs.shape[:2]):
        raise ValueError(f"{name} must have shape (B, K) = {tuple(probs.shape[:2])}, got {tuple(target.shape)}")
    if torch.isnan(target).any() or (target < 0).any():
        raise ValueError(f"{name} must be non-negative proportions without NaN")
    err = (target.sum(-1) - 1).abs().max().item()
    if err > 1e-3:
        raise ValueError(f"{name} must sum to one over classes, largest deviation {err:.4g}")


def size_targets(sizes: torch.Tensor, pixels: int) -> torch.Tensor:
    """Binary proportion targets ``[1 - size/N, size/N]``, shape ``(B, 2)``, from object sizes in pixels.

    >>> size_targets(torch.tensor([4.0]), 16)
    tensor([[0.7500, 0.2500]])
    """
    sizes = torch.as_tensor(sizes, dtype=torch.float32)
    if sizes.ndim != 1 or (sizes < 0).any() or (sizes > pixels).any():
        raise ValueError(f"sizes must be a (B,) tensor in [0, {pixels}], got {sizes}")
    fg = sizes / pixels
    return torch.stack([1 - fg, fg], dim=-1)


def kl_size_loss(probs: torch.Tensor, target: torch.Tensor, *, eps: float = _EPS, reduction: str = "mean") -> torch.Tensor:
    r"""KL divergence between target class proportions and the mean predicted proportions.

    .. math:: \bar S_{ik} = \frac{1}{N}\sum_p S_{ikp}, \qquad
              L_i = \mathrm{KL}(v_i \,\|\, \bar S_i) = \sum_k v_{ik} \log\frac{v_{ik}}{\bar S_{ik}}

    with :math:`0 \log 0 = 0`; :math:`v_i` is the (approximate) target proportion vector of image
    ``i``, e.g. :func:`size_targets` of a noisy size.

    Args:
        probs: ``(B, K, *spatial)`` probabilities summing to one over K.
        target: ``(B, K)`` proportions summing to one.

    Example:
        >>> probs = torch.tensor([[[[0.5, 0.5]], [[0.5, 0.5]]]])
        >>> kl_size_loss(probs, torch.tensor([[0.5, 0.5]]))
        tensor(0.)
    """
    check_probabilities(probs)
    check_size_targets(target, probs)
    check_reduction(reduction)
    mean = probs.flatten(2).mean(-1)
    target = target.to(probs.dtype)
    log_ratio = torch.log(torch.where(target > 0, target, torch.ones_like(target))) - torch.log(mean + eps)
    per_image = (target * log_ratio).sum(-1)
    return reduce(per_image, reduction)


class KLSizeLoss(nn.Module):
    """Module form of :func:`kl_size_loss`.

    Example:
        >>> KLSizeLoss()(torch.full((1, 2, 2, 2), 0.5), torch.tensor([[0.5, 0.5]]))
        tensor(0.)
    """

    def __init__(self, eps: float = _EPS, reduction: str = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.eps, self.reduction = eps, reduction

    def forward(self, probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return kl_size_loss(probs, target, eps=self.eps, reduction=self.reduction)
