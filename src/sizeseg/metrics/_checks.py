"""Input checks shared by the metrics."""

from __future__ import annotations

import torch


def binary_pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two binary masks of equal shape (B, *spatial) and flatten them to (B, V) bools."""
    for name, value in (("pred", pred), ("target", target)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
        if value.ndim < 2:
            raise ValueError(f"{name}: expected shape (B, *spatial), got {tuple(value.shape)}")
        if value.dtype != torch.bool and not bool(((value == 0) | (value == 1)).all()):
            raise ValueError(f"{name}: expected a binary mask (bool or values in {{0, 1}}), got other values")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target: expected equal shapes, got {tuple(pred.shape)} and {tuple(target.shape)}")
    return pred.reshape(pred.shape[0], -1).bool(), target.reshape(target.shape[0], -1).bool()
