"""Brute-force references for the per-object ops: scipy labelling and transforms, nothing clever.

The flip reference (shared with ``sizeseg bench objects``) labels and transforms every flipped
copy; copies are stacked and handled by single scipy calls whose structuring elements do not
reach across the stack, so each copy is still labelled and transformed on its own.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from sizeseg.benchmarks.objects import brute_flip_multisets, brute_object_sizes
from sizeseg.benchmarks.objects import op_flip_multisets as predicted_multisets

__all__ = ["brute_flip_multisets", "predicted_multisets", "reference_sizes", "structure",
           "random_object_masks"]


def structure(spatial_dims: int, connectivity: int | None) -> np.ndarray:
    """scipy's structuring element for 4/8 (2D) or 6/26 (3D) connectivity (None = full)."""
    full = connectivity in (None, 8, 26)
    return ndimage.generate_binary_structure(spatial_dims, spatial_dims if full else 1)


def reference_sizes(mask: np.ndarray, spatial_dims: int, border: str,
                    connectivity: int | None) -> tuple[np.ndarray, list[float]]:
    """scipy's labels of one mask and the size of each label (label order)."""
    labels, _ = ndimage.label(np.asarray(mask, bool), structure=structure(spatial_dims, connectivity))
    return labels, brute_object_sizes(np.asarray(mask, bool)[None], spatial_dims, border, connectivity)[0]


def random_object_masks(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """n masks of one shape, mixing densities and thin structures (merges, splits, rings)."""
    masks = np.zeros((n,) + shape, bool)
    for i in range(n):
        kind = i % 6
        if kind in (0, 1):  # noise of any density: many components, merges and splits
            masks[i] = rng.random(shape) < rng.uniform(0.15, 0.95)
        elif kind == 2:  # thin random walks (chains of cut pixels)
            pos = [int(rng.integers(0, s)) for s in shape]
            for _ in range(int(rng.integers(1, 4 * max(shape)))):
                masks[i][tuple(pos)] = True
                ax = int(rng.integers(0, len(shape)))
                pos[ax] = int(np.clip(pos[ax] + rng.choice([-1, 1]), 0, shape[ax] - 1))
        elif kind == 3:  # a hollow box (a ring): its pixels are not cut pixels
            lo = [int(rng.integers(0, s)) for s in shape]
            hi = [int(rng.integers(a, s)) for a, s in zip(lo, shape)]
            box = tuple(slice(a, b + 1) for a, b in zip(lo, hi))
            masks[i][box] = True
            inner = tuple(slice(a + 1, b) for a, b in zip(lo, hi))
            masks[i][inner] = rng.random() < 0.2
        elif kind == 4:  # a few boxes, touching or not
            for _ in range(int(rng.integers(1, 4))):
                lo = [int(rng.integers(0, s)) for s in shape]
                hi = [int(rng.integers(a, min(s, a + 4))) for a, s in zip(lo, shape)]
                masks[i][tuple(slice(a, b + 1) for a, b in zip(lo, hi))] = True
        else:  # dense with a few holes: large distances, lone background pixels
            masks[i] = rng.random(shape) < 0.93
    return masks
