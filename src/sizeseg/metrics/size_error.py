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


def _spatial_dims_of(logits: torch.Tensor, spatial_dims: int | None) -> int:
    """The spatial dims of ``logits`` (B, 1, *spatial) or (B, *spatial); see :func:`predicted_size`."""
    if spatial_dims is None:
        if logits.ndim == 5:
            return 3
        if logits.ndim == 4:
            return 2 if logits.shape[1] == 1 else 3
        if logits.ndim == 3:
            return 2
    elif spatial_dims in (2, 3) and logits.ndim in (spatial_dims + 1, spatial_dims + 2):
        return spatial_dims
    elif spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims: expected 2, 3 or None, got {spatial_dims!r}")
    raise ValueError("logits: expected (B, 1, H, W), (B, H, W), (B, 1, D, H, W) or (B, D, H, W)"
                     f"{'' if spatial_dims is None else f' with spatial_dims={spatial_dims}'}, got {tuple(logits.shape)}")


def predicted_size(logits: torch.Tensor, threshold: float = 0.0, spatial_dims: int | None = None) -> torch.Tensor:
    r"""Object size :math:`g(\hat y)` of the thresholded prediction ``logits > threshold``.

    ``g`` is :func:`sizeseg.object_size` with its default ``border="background"`` (2 × the
    largest Chebyshev distance of a foreground pixel to the background, outside the array
    counting as background), the size the data preparation stores. For 3D logits it is the 3D
    Chebyshev size of the volume. Runs on the logits' device (no copy to the host).

    Args:
        logits: (B, 1, *spatial) or (B, *spatial) logits of a one-channel network, 2D or 3D.
        threshold: logit threshold (0 ↔ probability 0.5).
        spatial_dims: 2 or 3; None infers it: 5 dims are (B, 1, D, H, W), 4 dims (B, 1, H, W)
            when dim 1 has size 1 and (B, D, H, W) otherwise, 3 dims (B, H, W).

    Returns:
        float32 (B,) on the logits' device.

    Example:
        >>> logits = torch.full((1, 1, 5, 5), -1.0); logits[0, 0, 1:4, 1:4] = 1.0
        >>> predicted_size(logits)
        tensor([4.])
        >>> volume = torch.full((2, 1, 4, 5, 6), -1.0); volume[0, 0, :, 1:4, 1:5] = 1.0
        >>> predicted_size(volume)                       # 3D: the 4-voxel-deep block has size 4
        tensor([4., 0.])
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits: expected a torch.Tensor, got {type(logits).__name__}")
    dims = _spatial_dims_of(logits, spatial_dims)
    if logits.ndim == dims + 2:
        if logits.shape[1] != 1:
            raise ValueError(f"logits: expected one channel (B, 1, *spatial), got {tuple(logits.shape)}")
        logits = logits[:, 0]
    from sizeseg.ops import object_size

    sizes = object_size(logits.detach() > threshold, spatial_dims=dims)
    return torch.as_tensor(sizes, dtype=torch.float32).reshape(logits.shape[0]).to(logits.device)


class SquaredSizeError(nn.Module):
    """Module form: ``E`` of logits against annotated sizes.

    Example:
        >>> logits = torch.full((1, 1, 5, 5), -1.0); logits[0, 0, 1:4, 1:4] = 1.0
        >>> SquaredSizeError()(logits, torch.tensor([6.0]))
        tensor([4.])
    """

    def __init__(self, threshold: float = 0.0, spatial_dims: int | None = None) -> None:
        super().__init__()
        self.threshold, self.spatial_dims = threshold, spatial_dims

    def forward(self, logits: torch.Tensor, target_size: torch.Tensor) -> torch.Tensor:
        return squared_size_error(predicted_size(logits, self.threshold, self.spatial_dims), target_size)
