"""Squared size error E (paper 1, eq. 22): the square loss between true and predicted object size."""

from __future__ import annotations

import torch
from torch import nn


def squared_size_error(pred_size: torch.Tensor, target_size: torch.Tensor) -> torch.Tensor:
    r"""Per-image :math:`E = (s - \hat s)^2`; NaN where the target size is NaN (unknown).

    Args:
        pred_size: predicted sizes (B,).
        target_size: annotated sizes (B,), NaN where absent.

    Returns:
        float32 (B,).

    Example:
        >>> squared_size_error(torch.tensor([4.0, 2.0]), torch.tensor([6.0, float("nan")]))
        tensor([4., nan])
    """
    for name, value in (("pred_size", pred_size), ("target_size", target_size)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
        if value.ndim != 1:
            raise ValueError(f"{name}: expected shape (B,), got {tuple(value.shape)}")
    if pred_size.shape != target_size.shape:
        raise ValueError(
            f"pred_size and target_size: expected equal shapes, got {tuple(pred_size.shape)} and {tuple(target_size.shape)}"
        )
    if bool((target_size < 0).any()):
        raise ValueError("target_size: expected sizes >= 0 (or NaN), got a negative size")
    return (target_size.float() - pred_size.float()) ** 2


def predicted_size(logits: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    r"""Object size :math:`g(\hat y)` of the thresholded prediction ``logits > threshold``.

    ``g`` is :func:`sizeseg.object_size` with ``border="background"`` (2 × the largest Chebyshev
    distance of a foreground pixel to the background), the size the data preparation stores.

    Args:
        logits: (B, 1, *spatial) or (B, *spatial) logits of a one-channel network.
        threshold: logit threshold (0 ↔ probability 0.5).

    Returns:
        float32 (B,).

    Example:
        >>> logits = torch.full((1, 1, 5, 5), -1.0); logits[0, 0, 1:4, 1:4] = 1.0
        >>> predicted_size(logits)
        tensor([4.])
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits: expected a torch.Tensor, got {type(logits).__name__}")
    if logits.ndim >= 3 and logits.shape[1] == 1:
        logits = logits[:, 0]
    if logits.ndim not in (2, 3, 4):
        raise ValueError(f"logits: expected (B, 1, *spatial) or (B, *spatial), got {tuple(logits.shape)}")
    from sizeseg.ops import object_size

    sizes = object_size((logits.detach() > threshold).cpu(), border="background")
    return torch.as_tensor(sizes, dtype=torch.float32).reshape(logits.shape[0]).to(logits.device)


class SquaredSizeError(nn.Module):
    """Module form: ``E`` of logits against annotated sizes.

    Example:
        >>> logits = torch.full((1, 1, 5, 5), -1.0); logits[0, 0, 1:4, 1:4] = 1.0
        >>> SquaredSizeError()(logits, torch.tensor([6.0]))
        tensor([4.])
    """

    def __init__(self, threshold: float = 0.0) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, logits: torch.Tensor, target_size: torch.Tensor) -> torch.Tensor:
        return squared_size_error(predicted_size(logits, self.threshold), target_size)
