"""Object size after flipping each pixel, for all pixels at once (exact, O(V) memory)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from . import _numba_kernels as nk
from . import _torch_kernels as tk
from ._inputs import as_volume_batch, check_mask, use_torch_backend, volume_shape, wrap_like
from .distance import border_values


def flip_sizes_and_size(mask: Any, spatial_dims: int = 2, border: str = "background",
                        backend: str = "auto") -> tuple[Any, Any]:
    """``(flip_sizes(mask), object_size(mask))`` from one pass (what the size loss needs)."""
    check_mask(mask, spatial_dims, border, backend)
    shape = tuple(mask.shape)
    batch_shape = shape[: len(shape) - spatial_dims]
    if use_torch_backend(mask, backend):
        fg = mask.detach() > 0 if mask.dtype != torch.bool else mask.detach()
        fg = fg.reshape((-1,) + volume_shape(shape, spatial_dims))
        flips, sizes = tk.flip_torch(fg, border == "open", spatial_dims == 3)
        return flips.reshape(shape), sizes.reshape(batch_shape)
    vol = as_volume_batch(mask, spatial_dims)
    flips = np.empty(vol.shape, np.float32)
    sizes = np.empty(vol.shape[0], np.float32)
    if vol.shape[0]:
        nk.flip_batch(vol, flips, sizes, *border_values(border, spatial_dims), spatial_dims == 3)
    return wrap_like(flips, mask, shape), wrap_like(sizes, mask, batch_shape)


def flip_sizes(mask: Any, spatial_dims: int = 2, border: str = "background", backend: str = "auto") -> Any:
    r"""Object size of the mask with pixel ``i`` flipped, for every pixel ``i`` at once.

    Entry ``i`` equals ``object_size(mask with pixel i flipped)`` exactly, computed without
    re-running the transform per pixel. With ``d`` the distance transform and ``M = max d``:

    * foreground -> background can only shrink the size: the new maximum is
      :math:`\max_j \min(d_j, \delta_\infty(i, j))`, i.e. the largest ``k`` for which the level
      set :math:`S_k = \{j : d_j \ge k\}` does not fit in the cube of radius ``k - 1`` around ``i``.
      A set fits in a cube iff its bounding box does, so the boxes of the nested level sets answer
      every pixel (binary search over ``k``).
    * background -> foreground can only grow it: the new maximum is ``>= k > M`` exactly when some
      window (cube) of radius ``k - 1`` holds a single background pixel and that pixel is ``i``.
      Box sums over integral images of the background indicator and of its linear pixel index
      (which, where the count is one, *is* that pixel's index) find these windows for
      ``k = M + 1, M + 2, ...`` until no window holds exactly one background pixel.

    Work is a few passes over the image per ``k`` beyond ``M``; memory is O(V).

    Args:
        mask, spatial_dims, border, backend: as in :func:`sizeseg.distance_transform` (by default
            the array's edge is background).

    Returns:
        float32 tensor/array of ``mask``'s shape (``+inf`` where the flip leaves no background
        under ``border="open"``).

    Example:
        >>> import numpy as np
        >>> m = np.zeros((1, 5), bool); m[0, 1:4] = True
        >>> flip_sizes(m)
        array([[2., 2., 2., 2., 2.]], dtype=float32)
    """
    return flip_sizes_and_size(mask, spatial_dims, border, backend)[0]


class FlipSizes(nn.Module):
    """Module form of :func:`flip_sizes`.

    Example:
        >>> import torch
        >>> FlipSizes()(torch.ones(4, 4))
        tensor([[4., 4., 4., 4.],
                [4., 2., 2., 4.],
                [4., 2., 2., 4.],
                [4., 4., 4., 4.]])
    """

    def __init__(self, spatial_dims: int = 2, border: str = "background", backend: str = "auto"):
        super().__init__()
        self.spatial_dims, self.border, self.backend = spatial_dims, border, backend

    def forward(self, mask: Any) -> Any:
        return flip_sizes(mask, self.spatial_dims, self.border, self.backend)


__all__ = ["flip_sizes", "flip_sizes_and_size", "FlipSizes"]
