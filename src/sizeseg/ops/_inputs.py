"""Input checking and layout helpers shared by the ops (no numerics here).

Every op takes a mask of shape ``(..., H, W)`` (``spatial_dims=2``) or ``(..., D, H, W)``
(``spatial_dims=3``). The kernels work on one layout only: ``(N, D, H, W)`` with ``D = 1`` for 2D
images; :func:`as_volume_batch` and :func:`restore_shape` convert to and from it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

BORDERS = ("open", "background")
BACKENDS = ("auto", "numba", "torch")

# A distance larger than any finite Chebyshev distance in an array that fits in memory, and small
# enough that adding 1 (or a few hundred) never overflows int32.
NO_BACKGROUND: int = 2**30


def check_mask(mask: Any, spatial_dims: int, border: str, backend: str = "auto") -> None:
    """Validate the common arguments of the ops; raise TypeError/ValueError naming the culprit."""
    if not isinstance(mask, (torch.Tensor, np.ndarray)):
        raise TypeError(
            f"mask: expected a torch.Tensor or numpy.ndarray, got {type(mask).__name__}"
        )
    if isinstance(spatial_dims, bool) or spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims: expected 2 or 3, got {spatial_dims!r}")
    if border not in BORDERS:
        raise ValueError(f"border: expected one of {BORDERS}, got {border!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if mask.ndim < spatial_dims:
        raise ValueError(
            f"mask: expected at least {spatial_dims} dimensions (..., "
            f"{'D, ' if spatial_dims == 3 else ''}H, W), got shape {tuple(mask.shape)}"
        )
    spatial = tuple(mask.shape[mask.ndim - spatial_dims:])
    if min(spatial) < 1:
        raise ValueError(f"mask: spatial extent must be at least 1 pixel, got shape {tuple(mask.shape)}")
    if isinstance(mask, torch.Tensor):
        if mask.is_complex():
            raise TypeError(f"mask: expected a real or bool tensor, got dtype {mask.dtype}")
    elif mask.dtype.kind not in "biuf":
        raise TypeError(f"mask: expected a bool, integer or float array, got dtype {mask.dtype}")


def use_torch_backend(mask: Any, backend: str) -> bool:
    """Whether the pure-torch path runs: CUDA (or any non-CPU) tensors, or backend='torch'."""
    if backend == "torch":
        if not isinstance(mask, torch.Tensor):
            raise TypeError("backend='torch' needs a torch.Tensor mask, got a numpy array")
        return True
    if isinstance(mask, torch.Tensor) and mask.device.type != "cpu":
        if backend == "numba":
            raise ValueError(f"backend='numba' runs on CPU only, got a tensor on {mask.device}")
        return True
    return False


def as_volume_batch(mask: Any, spatial_dims: int) -> np.ndarray:
    """A CPU mask as a C-contiguous uint8 array (N, D, H, W) holding 1 where ``mask > 0``.

    Bool and uint8 inputs that are already contiguous are viewed, not copied.
    """
    if isinstance(mask, torch.Tensor):
        m = mask.detach()
        if m.dtype not in (torch.bool, torch.uint8):
            m = m > 0
        arr = m.contiguous().numpy()
    else:
        arr = mask
    if arr.dtype == np.bool_:
        arr = np.ascontiguousarray(arr).view(np.uint8)
    elif arr.dtype != np.uint8:
        arr = (arr > 0).view(np.uint8)
    else:
        arr = np.ascontiguousarray(arr)
    spatial = arr.shape[arr.ndim - spatial_dims:]
    if spatial_dims == 2:
        spatial = (1,) + tuple(spatial)
    return arr.reshape((-1,) + tuple(spatial))


def volume_shape(shape: tuple[int, ...], spatial_dims: int) -> tuple[int, int, int]:
    """(D, H, W) of a mask shape, with D = 1 for 2D images."""
    spatial = tuple(shape[len(shape) - spatial_dims:])
    return (1,) + spatial if spatial_dims == 2 else spatial  # type: ignore[return-value]


def wrap_like(result: np.ndarray, like: Any, shape: tuple[int, ...]) -> Any:
    """Reshape a kernel result to ``shape`` and return it as the same kind as ``like``."""
    result = result.reshape(shape)
    if isinstance(like, torch.Tensor):
        return torch.from_numpy(result)
    return result
