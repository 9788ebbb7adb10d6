"""Object sizes and areas of prepared masks.

The object size is the first paper's ``g(y) = 2 * max_p d_inf(p, background)`` computed by
:func:`sizeseg.object_size` with ``border="background"`` (pixels outside a 2D slice count as
background), so sizes of prepared data are exactly what the size loss and metric E compute.
"""

from __future__ import annotations

import numpy as np


def object_sizes(masks: np.ndarray) -> np.ndarray:
    """Object size of each mask in ``masks`` (N, *spatial), 2D or 3D, via ``sizeseg.object_size``.

    Returns float32 (N,); 0 for an empty mask. Uses ``border="background"``.

    >>> m = np.zeros((1, 6, 6), np.uint8); m[0, 1:5, 1:4] = 1
    >>> object_sizes(m).tolist()
    [4.0]
    """
    from sizeseg.ops import object_size

    masks = np.asarray(masks)
    if masks.ndim not in (3, 4):
        raise ValueError(f"masks must be (N, H, W) or (N, D, H, W), got shape {masks.shape}")
    if not len(masks):
        return np.zeros(0, np.float32)
    sizes = object_size(np.ascontiguousarray(masks > 0).astype(np.uint8), spatial_dims=masks.ndim - 1,
                        border="background")
    return np.asarray(sizes, dtype=np.float32).reshape(len(masks))


def areas(masks: np.ndarray) -> np.ndarray:
    """Foreground pixel count of each mask (N, *spatial) → float32 (N,): the soft size's target."""
    masks = np.asarray(masks)
    return (masks > 0).reshape(len(masks), -1).sum(axis=1).astype(np.float32)
