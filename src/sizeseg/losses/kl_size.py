"""KL divergence to approximate size targets (Fan, Zhang and Boykov, 2025)."""

from __future__ import annotations

import torch
from torch import nn

from sizeseg.checks import check_reduction, check_tensor, probability_tolerance, reduce, validate_args_enabled
from sizeseg.losses.constrained import accumulation_dtype, class_probabilities

_EPS = 1e-8


def check_size_targets(target: torch.Tensor, probs: torch.Tensor, name: str = "target", validate: bool = True) -> None:
    """Raise unless ``target`` is a ``(B, K)`` class-proportion vector per image (>= 0, sums to 1).

    The values are checked only when ``validate``.
    """
    check_tensor(target, name, floating=True)
    if tuple(target.shape) != tuple(probs.shape[:2]):
        raise ValueError(f"{name}: expected shape (B, K) = {tuple(probs.shape[:2])}, got {tuple(target.shape)}")
    if not validate or not target.numel():
        return
    if torch.isnan(target).any() or (target < 0).any():
        raise ValueError(f"{name}: expected non-negative proportions, got NaN or a negative value")
    err = (target.sum(-1, dtype=torch.float32) - 1).abs().max().item()
    tol = probability_tolerance(target.dtype, target.shape[1])
    if err > tol:
        raise ValueError(f"{name}: expected proportions summing to one over classes, got a largest deviation of {err:.4g}")


def size_targets(sizes: torch.Tensor, pixels: int) -> torch.Tensor:
    """Binary proportion targets ``[1 - size/N, size/N]``, shape ``(B, 2)``, from object sizes in pixels.

    >>> size_targets(torch.tensor([4.0]), 16)
    tensor([[0.7500, 0.2500]])
    """
    sizes = torch.as_tensor(sizes, dtype=torch.float32)
    if sizes.ndim != 1 or (sizes < 0).any() or (sizes > pixels).any():
        raise ValueError(f"sizes: expected a (B,) tensor of sizes in [0, {pixels}], got {sizes}")
    fg = sizes / pixels
    return torch.stack([1 - fg, fg], dim=-1)


def kl_size_loss(probs: torch.Tensor, target: torch.Tensor, *, eps: float = _EPS, reduction: str = "mean",
                 sigmoid: bool = False, softmax: bool = False, validate_args: bool | None = None) -> torch.Tensor:
    r"""KL divergence between target class proportions and the mean predicted proportions.

    .. math:: \bar S_{ik} = \frac{1}{N}\sum_p S_{ikp}, \qquad
              L_i = \mathrm{KL}(v_i \,\|\, \bar S_i) = \sum_k v_{ik} \log\frac{v_{ik}}{\bar S_{ik}}

    with :math:`0 \log 0 = 0`; :math:`v_i` is the (approximate) target proportion vector of image
    ``i``, e.g. :func:`size_targets` of a noisy size.

    Args:
        probs: ``(B, K, *spatial)`` probabilities summing to one over K; or logits with ``sigmoid``/``softmax``.
        target: ``(B, K)`` proportions summing to one.
        eps: added to the mean proportions inside the log.
        reduction: ``'mean'`` over images (as :func:`~sizeseg.losses.size_penalty.size_penalty`), ``'sum'`` or ``'none'``.
        sigmoid: ``probs`` is one-channel logits ``(B, 1, *spatial)``; class 1 = ``sigmoid(x)``.
        softmax: ``probs`` is logits ``(B, K, *spatial)``; softmax over K.
        validate_args: run the value checks (host syncs); None = :func:`sizeseg.checks.set_validate_args`.

    Example:
        >>> probs = torch.tensor([[[[0.5, 0.5]], [[0.5, 0.5]]]])
        >>> kl_size_loss(probs, torch.tensor([[0.5, 0.5]]))
        tensor(0.)
    """
    check_reduction(reduction)
    probs = class_probabilities(probs, sigmoid=sigmoid, softmax=softmax, validate_args=validate_args)
    check_size_targets(target, probs, validate=validate_args_enabled(validate_args))
    mean = probs.flatten(2).mean(-1, dtype=accumulation_dtype(probs.dtype))
    target = target.to(mean.dtype)
    log_ratio = torch.log(torch.where(target > 0, target, torch.ones_like(target))) - torch.log(mean + eps)
    per_image = (target * log_ratio).sum(-1)
    return reduce(per_image, reduction)


class KLSizeLoss(nn.Module):
    """Module form of :func:`kl_size_loss`.

    Example:
        >>> KLSizeLoss()(torch.full((1, 2, 2, 2), 0.5), torch.tensor([[0.5, 0.5]]))
        tensor(0.)
    """

    def __init__(self, eps: float = _EPS, reduction: str = "mean", *, sigmoid: bool = False, softmax: bool = False,
                 validate_args: bool | None = None) -> None:
        super().__init__()
        check_reduction(reduction)
        self.eps, self.reduction = eps, reduction
        self.sigmoid, self.softmax, self.validate_args = sigmoid, softmax, validate_args

    def forward(self, probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return kl_size_loss(probs, target, eps=self.eps, reduction=self.reduction, sigmoid=self.sigmoid,
                            softmax=self.softmax, validate_args=self.validate_args)
