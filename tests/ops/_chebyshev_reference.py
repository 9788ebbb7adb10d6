"""Reference implementations for the op tests: scipy and brute force, nothing clever."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import distance_transform_cdt

NO_BG_SENTINEL = -1  # what scipy returns for an image without background


def reference_dt(mask: np.ndarray, spatial_dims: int, border: str) -> np.ndarray | None:
    """scipy's chessboard transform of ONE image; None when there is no background (open)."""
    fg = np.asarray(mask) > 0
    if border == "background":
        padded = np.pad(fg, 1, constant_values=False)
        inner = tuple(slice(1, -1) for _ in range(spatial_dims))
        return distance_transform_cdt(padded, metric="chessboard")[inner].astype(np.int32)
    if fg.all():
        return None
    return distance_transform_cdt(fg, metric="chessboard").astype(np.int32)


def reference_size(mask: np.ndarray, spatial_dims: int, border: str) -> float:
    dist = reference_dt(mask, spatial_dims, border)
    if dist is None:
        return float("inf")
    return float(2 * dist.max()) if dist.size else 0.0


def brute_flip_sizes(mask: np.ndarray, spatial_dims: int, border: str) -> np.ndarray:
    """Flip each pixel in turn and recompute the size with scipy."""
    fg = np.asarray(mask) > 0
    out = np.empty(fg.shape, np.float32)
    for idx in np.ndindex(*fg.shape):
        flipped = fg.copy()
        flipped[idx] = not flipped[idx]
        out[idx] = reference_size(flipped, spatial_dims, border)
    return out


def random_masks(rng: np.random.Generator, n: int, spatial_dims: int, max_side: int):
    """Random masks of varied shape and density, with blobs, lines and edge cases mixed in."""
    for i in range(n):
        shape = tuple(int(s) for s in rng.integers(1, max_side + 1, size=spatial_dims))
        kind = i % 5
        if kind == 0:
            m = rng.random(shape) < rng.random()
        elif kind == 1:  # dense foreground with few holes: large distances
            m = rng.random(shape) < 0.97
        elif kind == 2:  # a box
            m = np.zeros(shape, bool)
            lo = [int(rng.integers(0, s)) for s in shape]
            hi = [int(rng.integers(a, s)) + 1 for a, s in zip(lo, shape)]
            m[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
        elif kind == 3:  # a thin line
            m = np.zeros(shape, bool)
            axis = int(rng.integers(0, spatial_dims))
            index = [int(rng.integers(0, s)) for s in shape]
            index[axis] = slice(None)
            m[tuple(index)] = True
        else:
            m = np.full(shape, bool(rng.integers(0, 2)))
        yield m
