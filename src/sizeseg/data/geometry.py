"""Crop, pad and resize of 2D/3D arrays to a configured shape (numpy only)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _check_shape(array: np.ndarray, shape: Sequence[int], name: str) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if any(s < 1 for s in shape):
        raise ValueError(f"{name}: target shape must be positive, got {shape}")
    if array.ndim < len(shape):
        raise ValueError(
            f"{name}: array of shape {tuple(array.shape)} has fewer dimensions than target {shape}"
        )
    return shape


def center_crop_or_pad(array: np.ndarray, shape: Sequence[int], fill: float = 0) -> np.ndarray:
    """Crop or pad the last ``len(shape)`` axes of ``array`` symmetrically to ``shape``.

    Cropping removes ``(n - s) // 2`` elements at the start of an axis (the rest at its end);
    padding adds ``(s - n) // 2`` elements of ``fill`` at the start (the rest at the end).
    Pixel sizes are unchanged, so object sizes stay valid unless the object is cropped.

    >>> center_crop_or_pad(np.ones((3, 5)), (4, 2)).shape
    (4, 2)
    """
    shape = _check_shape(array, shape, "center_crop_or_pad")
    lead = array.ndim - len(shape)
    slices: list[slice] = [slice(None)] * lead
    pads: list[tuple[int, int]] = [(0, 0)] * lead
    for n, s in zip(array.shape[lead:], shape):
        if n >= s:
            start = (n - s) // 2
            slices.append(slice(start, start + s))
            pads.append((0, 0))
        else:
            slices.append(slice(None))
            before = (s - n) // 2
            pads.append((before, s - n - before))
    out = array[tuple(slices)]
    if any(p != (0, 0) for p in pads):
        out = np.pad(out, pads, mode="constant", constant_values=fill)
    return np.ascontiguousarray(out)


def resize(array: np.ndarray, shape: Sequence[int], order: int = 1) -> np.ndarray:
    """Resize the last ``len(shape)`` axes with spline ``order`` (1 linear, 0 nearest).

    >>> resize(np.ones((4, 6)), (2, 3)).shape
    (2, 3)
    """
    from scipy import ndimage

    shape = _check_shape(array, shape, "resize")
    lead = array.ndim - len(shape)
    if tuple(array.shape[lead:]) == shape:
        return np.ascontiguousarray(array)
    zoom = [1.0] * lead + [s / n for n, s in zip(array.shape[lead:], shape)]
    out = ndimage.zoom(array.astype(np.float32) if order else array, zoom, order=order,
                       mode="nearest", grid_mode=True)
    return np.ascontiguousarray(out[(Ellipsis,) + tuple(slice(0, s) for s in shape)])


def block_mean_downsample(array: np.ndarray, factor: int) -> np.ndarray:
    """Average non-overlapping ``factor``×``factor`` blocks of the last two axes.

    The last two axes must be divisible by ``factor``.

    >>> block_mean_downsample(np.arange(16.0).reshape(4, 4), 2)
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    h, w = array.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(f"spatial shape {(h, w)} is not divisible by the downsampling factor {factor}")
    if factor == 1:
        return array
    lead = array.shape[:-2]
    out = array.reshape(*lead, h // factor, factor, w // factor, factor)
    return out.mean(axis=(-3, -1))
