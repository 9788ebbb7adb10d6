"""Partial cross-entropy: cross-entropy on the labelled pixels only."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sizeseg.checks import IGNORE_INDEX, check_weak, validate_args_enabled
from sizeseg.losses.constrained import accumulation_dtype, class_log_probabilities

_EPS = 1e-8


def partial_cross_entropy(probs: torch.Tensor, weak: torch.Tensor, *, eps: float = _EPS, sigmoid: bool = False,
                          softmax: bool = False, validate_args: bool | None = None) -> torch.Tensor:
    r"""Cross-entropy over the labelled pixels :math:`\Omega_L` only.

    .. math:: L = -\frac{1}{|\Omega_L|} \sum_{p \in \Omega_L} \log(S_{y_p, p} + \epsilon)

    averaged over all labelled pixels of the batch (in float32 at least, for half inputs);
    0 (still differentiable) when nothing is labelled. Pixels with ``weak == -1`` (:data:`~sizeseg.checks.IGNORE_INDEX`) are ignored.
    This is :func:`torch.nn.functional.nll_loss` with ``ignore_index=-1``, except that a batch
    without labelled pixels gives 0 rather than NaN.

    Args:
        probs: class probabilities ``(B, K, *spatial)`` summing to one over K; or logits with
            ``sigmoid``/``softmax`` (then the log-probabilities come from ``log_softmax`` /
            ``logsigmoid`` directly and ``eps`` is not used).
        weak: ``(B, *spatial)`` integer class indices, -1 where unlabelled.
        eps: added inside the log of probabilities.
        sigmoid: ``probs`` is one-channel logits ``(B, 1, *spatial)``; class 1 = ``sigmoid(x)``.
        softmax: ``probs`` is logits ``(B, K, *spatial)``; softmax over K.
        validate_args: run the value checks (host syncs); None = :func:`sizeseg.checks.set_validate_args`.

    Example:
        >>> probs = torch.tensor([[[[0.5, 0.9]], [[0.5, 0.1]]]])      # (1, 2, 1, 2)
        >>> weak = torch.tensor([[[1, -1]]])
        >>> partial_cross_entropy(probs, weak, eps=0.0)               # -log 0.5
        tensor(0.6931)
        >>> partial_cross_entropy(torch.zeros(1, 1, 1, 2), weak, sigmoid=True)
        tensor(0.6931)
    """
    log_probs = class_log_probabilities(probs, sigmoid=sigmoid, softmax=softmax, eps=eps, validate_args=validate_args)
    check_weak(weak, log_probs, validate=validate_args_enabled(validate_args))
    # the sum over pixels overflows float16: accumulate in float32 at least
    total = F.nll_loss(log_probs.to(accumulation_dtype(log_probs.dtype)), weak.long(), ignore_index=IGNORE_INDEX,
                       reduction="sum")
    # nll_loss's mean over no labelled pixel is 0/0 = NaN: divide by at least 1 (no host sync)
    return total / (weak != IGNORE_INDEX).sum().clamp(min=1)


class PartialCrossEntropy(nn.Module):
    """Module form of :func:`partial_cross_entropy`; ``loss(probs_or_logits, weak)``.

    Example:
        >>> PartialCrossEntropy(eps=0.0)(torch.tensor([[[[0.5]], [[0.5]]]]), torch.tensor([[[0]]]))
        tensor(0.6931)
    """

    def __init__(self, eps: float = _EPS, *, sigmoid: bool = False, softmax: bool = False,
                 validate_args: bool | None = None) -> None:
        super().__init__()
        self.eps, self.sigmoid, self.softmax, self.validate_args = eps, sigmoid, softmax, validate_args

    def forward(self, probs: torch.Tensor, weak: torch.Tensor) -> torch.Tensor:
        return partial_cross_entropy(probs, weak, eps=self.eps, sigmoid=self.sigmoid, softmax=self.softmax,
                                     validate_args=self.validate_args)
