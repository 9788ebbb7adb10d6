"""Brute-force references for the per-object ops: scipy labelling and transforms, nothing clever.

The flip reference labels and transforms every flipped copy. Copies of one mask are stacked
along a new leading axis and handled by single scipy calls whose structuring elements do not
reach across that axis, so each copy is still labelled and transformed on its own.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from scipy import ndimage


def structure(spatial_dims: int, connectivity: int | None) -> np.ndarray:
    """scipy's structuring element for 4/8 (2D) or 6/26 (3D) connectivity (None = full)."""
    full = connectivity in (None, 8, 26)
    return ndimage.generate_binary_structure(spatial_dims, spatial_dims if full else 1)


def stacked_sizes(stack: np.ndarray, spatial_dims: int, border: str,
                  connectivity: int | None) -> list[list[float]]:
    """Component sizes (in label order) of each image of a stack (N, *spatial) of bool masks."""
    stack = np.asarray(stack, bool)
    n = stack.shape[0]
    struct = np.zeros((3,) * (spatial_dims + 1), bool)
    struct[1] = structure(spatial_dims, connectivity)  # no connection across the stack
    labels, count = ndimage.label(stack, structure=struct)
    chess = np.zeros((3,) * (spatial_dims + 1), bool)
    chess[1] = True  # chessboard metric inside each image only
    if border == "background":
        pad = [(0, 0)] + [(1, 1)] * spatial_dims
        inner = (slice(None),) + (slice(1, -1),) * spatial_dims
        dist = ndimage.distance_transform_cdt(np.pad(stack, pad), metric=chess)[inner]
    else:
        dist = ndimage.distance_transform_cdt(stack, metric=chess).astype(np.float64)
        # scipy leaves images without background at -1: their distances are infinite
        no_bg = stack.reshape(n, -1).all(axis=1)
        dist[no_bg] = np.inf
    out: list[list[float]] = [[] for _ in range(n)]
    if count == 0:
        return out
    index = np.arange(1, count + 1)
    maxima = ndimage.maximum(dist, labels, index)
    first = ndimage.minimum(np.arange(stack.size).reshape(stack.shape), labels, index)
    image_of = (np.asarray(first) // int(np.prod(stack.shape[1:]))).astype(int)
    for img, mx in zip(image_of, np.atleast_1d(maxima)):
        out[img].append(2.0 * float(mx))
    return out


def reference_sizes(mask: np.ndarray, spatial_dims: int, border: str,
                    connectivity: int | None) -> tuple[np.ndarray, list[float]]:
    """scipy's labels of one mask and the size of each label (label order)."""
    labels, _ = ndimage.label(np.asarray(mask, bool), structure=structure(spatial_dims, connectivity))
    return labels, stacked_sizes(np.asarray(mask, bool)[None], spatial_dims, border, connectivity)[0]


def brute_flip_multisets(mask: np.ndarray, spatial_dims: int, border: str,
                         connectivity: int | None) -> list[Counter]:
    """The multiset of sizes after flipping each pixel (raster order), one copy per pixel."""
    fg = np.asarray(mask, bool)
    v = fg.size
    eye = np.eye(v, dtype=bool).reshape((v,) + fg.shape)
    copies = np.logical_xor(fg[None], eye)
    return [Counter(s) for s in stacked_sizes(copies, spatial_dims, border, connectivity)]


def predicted_multisets(sizes: np.ndarray, removed: np.ndarray, added: np.ndarray) -> list[Counter]:
    """S - R_i + A_i per pixel from one image's op outputs; raises if R_i is not in S."""
    base = Counter(float(s) for s in sizes if not np.isnan(s))
    out = []
    for r, a in zip(removed.reshape(-1, removed.shape[-1]), added.reshape(-1, added.shape[-1])):
        rem = Counter(float(x) for x in r if not np.isnan(x))
        if rem - base:
            raise AssertionError(f"removed {dict(rem)} not all in the sizes {dict(base)}")
        out.append(base - rem + Counter(float(x) for x in a if not np.isnan(x)))
    return out


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
