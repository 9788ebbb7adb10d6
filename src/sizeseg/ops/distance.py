"""Exact Chebyshev (chessboard) distance transform and the object size built on it."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from . import _numba_kernels as nk
from . import _torch_kernels as tk
from ._inputs import (NO_BACKGROUND, as_volume_batch, check_mask, use_torch_backend,
                      volume_shape, wrap_like)


def border_values(border: str, spatial_dims: int) -> tuple[np.int32, np.int32]:
    """(edge, edge_z) for the numba kernels: the distance value just outside the array."""
    edge = nk.INF if border == "open" else np.int32(0)
    return edge, (edge if spatial_dims == 3 else nk.INF)


def _torch_batch(mask: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """A tensor mask as a bool (N, D, H, W) batch on its own device."""
    fg = mask.detach() > 0 if mask.dtype != torch.bool else mask.detach()
    return fg.reshape((-1,) + volume_shape(tuple(mask.shape), spatial_dims))


def distance_transform(mask: Any, spatial_dims: int = 2, border: str = "background",
                       backend: str = "auto") -> Any:
    r"""Exact Chebyshev (L-infinity, chessboard) distance of every pixel to the background.

    .. math::
        d_i = \min_{j:\, y_j \le 0} \max_a |i_a - j_a|,

    i.e. 0 on background and, on foreground, the number of one-pixel steps (diagonals included)
    to the nearest background pixel.

    Args:
        mask: tensor or array of shape ``(..., H, W)`` (or ``(..., D, H, W)`` with
            ``spatial_dims=3``), any number of leading batch dims. Foreground is ``mask > 0``, so
            bool, {0, 1} and {-1, +1} masks all work.
        spatial_dims: 2 or 3.
        border: ``"background"`` (the default, and the convention of every loss, metric and
            data preparation in sizeseg): the array is surrounded by background, as if padded by
            one background pixel on every side, so a 4x4 square in a corner has size 4.
            ``"open"``: pixels outside the array are not background (exactly
            ``scipy.ndimage.distance_transform_cdt(mask, metric="chessboard")``; the same square
            has size 8); an image without any background pixel gets :data:`NO_BACKGROUND`
            (``2**30``) everywhere.
        backend: ``"auto"`` (numba on CPU, pure torch elsewhere), ``"numba"`` or ``"torch"``
            (the pure-torch path, usable on CPU tensors too).

    Returns:
        int32 distances of the same shape and kind: torch in, torch out on the same device;
        numpy in, numpy out.

    Example:
        >>> import numpy as np
        >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
        >>> distance_transform(m)[2]
        array([0, 1, 2, 1, 0], dtype=int32)
        >>> corner = np.zeros((6, 6), bool); corner[:4, :4] = True
        >>> distance_transform(corner)[0, :5], distance_transform(corner, border="open")[0, :5]
        (array([1, 1, 1, 1, 0], dtype=int32), array([4, 3, 2, 1, 0], dtype=int32))
    """
    check_mask(mask, spatial_dims, border, backend)
    shape = tuple(mask.shape)
    if use_torch_backend(mask, backend):
        dist = tk.dt_torch(_torch_batch(mask, spatial_dims), border == "open", spatial_dims == 3)
        return dist.reshape(shape)
    vol = as_volume_batch(mask, spatial_dims)
    out = np.empty(vol.shape, np.int32)
    if vol.shape[0]:
        nk.dt_batch(vol, out, *border_values(border, spatial_dims))
    return wrap_like(out, mask, shape)


def object_size(mask: Any, spatial_dims: int = 2, border: str = "background",
                backend: str = "auto") -> Any:
    r"""Object size: twice the largest Chebyshev distance to the background (paper eq. 4-5).

    .. math::
        g(y) = 2 \max_i \min_{j:\, y_j \le 0} \delta_\infty(i, j).

    In 3D (``spatial_dims=3``) the distance, and so the size, is the 3D Chebyshev one: a
    volume's size is twice its largest cube-shaped erosion depth, not a per-slice size.

    Args:
        mask, spatial_dims, border, backend: as in :func:`distance_transform` (by default the
            array's edge is background, the convention of the losses, metrics and data).

    Returns:
        float32 tensor/array of shape ``mask.shape[:-spatial_dims]``: 0 for an empty mask,
        ``+inf`` for a mask with no background pixel under ``border="open"``.

    Example:
        >>> import torch
        >>> m = torch.zeros(2, 6, 6); m[0, 1:5, 1:4] = 1
        >>> object_size(m)
        tensor([4., 0.])
        >>> corner = torch.zeros(6, 6); corner[:4, :4] = 1
        >>> object_size(corner), object_size(corner, border="open")
        (tensor(4.), tensor(8.))
    """
    check_mask(mask, spatial_dims, border, backend)
    batch_shape = tuple(mask.shape[: mask.ndim - spatial_dims])
    if use_torch_backend(mask, backend):
        dist = tk.dt_torch(_torch_batch(mask, spatial_dims), border == "open", spatial_dims == 3)
        return tk.sizes_from_dt(dist).reshape(batch_shape)
    vol = as_volume_batch(mask, spatial_dims)
    sizes = np.empty(vol.shape[0], np.float32)
    if vol.shape[0]:
        nk.size_batch(vol, sizes, *border_values(border, spatial_dims))
    return wrap_like(sizes, mask, batch_shape)


class DistanceTransform(nn.Module):
    """Module form of :func:`distance_transform` (no parameters, no gradient).

    Example:
        >>> import torch
        >>> DistanceTransform()(torch.ones(1, 3, 3)).tolist()
        [[[1, 1, 1], [1, 2, 1], [1, 1, 1]]]
    """

    def __init__(self, spatial_dims: int = 2, border: str = "background", backend: str = "auto"):
        super().__init__()
        self.spatial_dims, self.border, self.backend = spatial_dims, border, backend

    def forward(self, mask: Any) -> Any:
        return distance_transform(mask, self.spatial_dims, self.border, self.backend)


class ObjectSize(nn.Module):
    """Module form of :func:`object_size`.

    Example:
        >>> import torch
        >>> ObjectSize()(torch.ones(1, 3, 3))
        tensor([4.])
    """

    def __init__(self, spatial_dims: int = 2, border: str = "background", backend: str = "auto"):
        super().__init__()
        self.spatial_dims, self.border, self.backend = spatial_dims, border, backend

    def forward(self, mask: Any) -> Any:
        return object_size(mask, self.spatial_dims, self.border, self.backend)


__all__ = ["NO_BACKGROUND", "distance_transform", "object_size", "DistanceTransform", "ObjectSize"]
