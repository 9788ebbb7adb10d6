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


def fitted_affine(affine: np.ndarray, source_shape: Sequence[int], shape: Sequence[int], fit: str) -> np.ndarray:
    """The voxel-to-world affine of an array fitted to ``shape`` by :func:`center_crop_or_pad`
    (``fit="pad"``) or :func:`resize` (``fit="resize"``) from a source with ``affine``.

    A voxel of the fitted array then lies where the same content lay in the source: cropping and
    padding shift the origin by the voxels cut or added at the start of each axis; resizing
    scales the voxel axes by ``source / target`` and moves the origin by half the change of
    voxel size (``scipy.ndimage.zoom`` with ``grid_mode=True`` keeps the array's outer edges).

    >>> a = np.diag([2.0, 3.0, 4.0, 1.0]); a[:3, 3] = [10, 20, 30]
    >>> fitted_affine(a, (10, 10, 10), (8, 12, 10), "pad")[:3, 3].tolist()     # crop 1, pad 1
    [12.0, 17.0, 30.0]
    >>> fitted_affine(a, (10, 10, 10), (5, 10, 20), "resize").diagonal().tolist()
    [4.0, 3.0, 2.0, 1.0]
    """
    affine = np.asarray(affine, dtype=np.float64)
    source_shape, shape = tuple(int(n) for n in source_shape), tuple(int(s) for s in shape)
    if affine.shape != (4, 4) or len(source_shape) != 3 or len(shape) != 3:
        raise ValueError(f"fitted_affine: expected a 4x4 affine and two 3D shapes, got {affine.shape}, "
                         f"{source_shape} and {shape}")
    if fit == "pad":
        scale = np.ones(3)
        start = np.array([(n - s) // 2 if n >= s else -((s - n) // 2) for n, s in zip(source_shape, shape)], float)
    elif fit == "resize":
        scale = np.array([n / s for n, s in zip(source_shape, shape)])
        start = 0.5 * scale - 0.5
    else:
        raise ValueError(f"fit: expected 'pad' or 'resize', got {fit!r}")
    index = np.eye(4)  # fitted voxel index -> source voxel index
    index[:3, :3] = np.diag(scale)
    index[:3, 3] = start
    return affine @ index


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
