"""Object sizes and areas of prepared masks.

The object size is the first paper's ``g(y) = 2 * max_p d_inf(p, background)`` computed by
:func:`sizeseg.object_size` with ``border="background"`` (pixels outside a 2D slice count as
background), so sizes of prepared data are exactly what the size loss and metric E compute.
"""

from __future__ import annotations

import numpy as np


def object_sizes(masks: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Object size of each mask in ``masks`` (N, *spatial), via ``sizeseg.object_size``.

    Returns float32 (N,). Uses ``border="background"``.
    """
    import torch

    from sizeseg import object_size

    masks = np.asarray(masks)
    out = np.zeros(len(masks), dtype=np.float32)
    for start in range(0, len(masks), batch):
        chunk = torch.from_numpy(np.ascontiguousarray(masks[start:start + batch] > 0))
        sizes = object_size(chunk, border="background")
        out[start:start + batch] = np.asarray(sizes, dtype=np.float32).reshape(len(chunk))
    return out


def areas(masks: np.ndarray) -> np.ndarray:
    """Foreground pixel count of each mask (N, *spatial) → float32 (N,): the soft size's target."""
    masks = np.asarray(masks)
    return (masks > 0).reshape(len(masks), -1).sum(axis=1).astype(np.float32)
