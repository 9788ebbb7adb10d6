"""Partial cross-entropy: cross-entropy on the labelled pixels only."""

from __future__ import annotations

import torch
from torch import nn

from sizeseg.losses.constrained import IGNORE_INDEX, check_probabilities, check_weak

_EPS = 1e-8


def partial_cross_entropy(probs: torch.Tensor, weak: torch.Tensor, *, eps: float = _EPS) -> torch.Tensor:
    r"""Cross-entropy over the labelled pixels :math:`\Omega_L` only.

    .. math:: L = -\frac{1}{|\Omega_L|} \sum_{p \in \Omega_L} \log(S_{y_p, p} + \epsilon)

    averaged over all labelled pixels of the batch; 0 (still differentiable) when nothing is
    labelled. Pixels with ``weak == -1`` (``IGNORE_INDEX``) are ignored.

    Args:
        probs: class probabilities ``(B, K, *spatial)`` summing to one over K.
        weak: ``(B, *spatial)`` int64 class indices, -1 where unlabelled.
        eps: added inside the log.

    Example:
        >>> probs = torch.tensor([[[[0.5, 0.9]], [[0.5, 0.1]]]])      # (1, 2, 1, 2)
        >>> weak = torch.tensor([[[1, -1]]])
        >>> partial_cross_entropy(probs, weak, eps=0.0)               # -log 0.5
        tensor(0.6931)
    """
    check_probabilities(probs)
    check_weak(weak, probs)
    labelled = weak != IGNORE_INDEX
    index = weak.clamp_min(0).unsqueeze(1)
    picked = probs.gather(1, index).squeeze(1)
    count = labelled.sum()
    if count == 0:
        return probs.sum() * 0.0
    return -(torch.log(picked + eps) * labelled).sum() / count


class PartialCrossEntropy(nn.Module):
    """Module form of :func:`partial_cross_entropy`.

    Example:
        >>> PartialCrossEntropy(eps=0.0)(torch.tensor([[[[0.5]], [[0.5]]]]), torch.tensor([[[0]]]))
        tensor(0.6931)
    """

    def __init__(self, eps: float = _EPS) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, probs: torch.Tensor, weak: torch.Tensor) -> torch.Tensor:
        return partial_cross_entropy(probs, weak, eps=self.eps)
