r"""Per-object sizes: the object size of every connected component, and of every flip, exactly.

**Objects.** The objects of a mask are its connected components: 8-connected in 2D and
26-connected in 3D by default (``connectivity=None``), 4- or 6-connected on request. Labels are
numbered 1..K in raster order of each component's first pixel, as ``scipy.ndimage.label`` does.

**Size of an object.** The single-object size (paper eq. 4-5) applied to the component alone:
twice the largest Chebyshev distance from a pixel of ``C`` to a pixel not in ``C``,

.. math::
    g(C) = 2 \max_{p \in C} \min_{q \notin C} \delta_\infty(p, q)
         = 2 \max_{p \in C} d_p ,

where ``d`` is the distance transform of the whole mask (:func:`sizeseg.distance_transform`), with
the same ``border`` conventions. The two agree for every connectivity offered here: if
``d_p = r``, the cube of radius ``r - 1`` around ``p`` is all foreground and connected (also
4-/6-connected), so it lies in ``C``; the cube of radius ``r`` holds a background pixel, which is
not in ``C``. So no pixel outside ``C`` is nearer than ``r`` and one is at ``r``. A lone pixel has
size 2; under ``border="open"`` a component that covers the whole image has size ``+inf``.

**Flips.** :func:`object_flip_sizes` gives, for every pixel ``i``, how the multiset of sizes
changes when ``i`` alone is flipped: the sizes it *removes* and the sizes it *adds*. What a flip
can do:

* background ``i`` -> foreground: ``i`` and every component touching it merge into one (a lone
  pixel when none touches it): those sizes are removed, the merged size is added. Only distances
  inside the merged component grow, each to its second nearest background pixel when ``i`` was
  its unique nearest one.
* foreground ``i`` -> background: ``i``'s component is removed; the pieces it falls into are
  added (none for a lone pixel, one when ``i`` is not a cut pixel, several when it is: a thin
  pixel whose removal splits the object). Distances elsewhere cannot change: the cube of radius
  ``d_p - 1`` around a pixel ``p`` of another component lies in that component, so ``i`` is
  farther than ``d_p``.

A cut pixel ``i`` has ``d_i = 1`` unless the image is a line: with ``d_i >= 2`` all neighbours
of ``i`` inside the array are foreground, and a box of at least 2 x 2 pixels minus one pixel is
connected. Then ``delta(p, i) >= d_p - 1`` for all ``p`` (``i`` touches a background pixel), so
each piece's maximum drops by at most one. These facts make the whole computation O(V log V)
per image (see :mod:`sizeseg.ops._component_kernels`).

All ops accept numpy arrays or torch tensors (on any device; they run on the CPU through numba
and return results on the input's device), masks of shape ``(..., H, W)`` or ``(..., D, H, W)``
with ``spatial_dims=3``, foreground ``mask > 0``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from . import _component_kernels as ck
from ._inputs import as_volume_batch, check_mask
from .distance import border_values

CONNECTIVITIES = {2: (4, 8), 3: (6, 26)}


class ObjectFlips(NamedTuple):
    """What :func:`object_flip_sizes` returns (arrays or tensors like the mask).

    Attributes:
        labels: int32 ``mask.shape``: 0 on background, 1..K per image in raster order.
        sizes: float32 ``(..., K_max)``: ``sizes[..., k - 1]`` is the size of label ``k``;
            NaN beyond each image's K.
        removed: float32 ``mask.shape + (W,)``: the sizes that flipping the pixel removes from
            the image's multiset, in descending order, NaN-padded.
        added: float32 ``mask.shape + (W,)``: the sizes it adds, same layout.

    ``W`` is the most a single flip can remove or add: 4 in 2D, 6 (6-connected) or 8
    (26-connected) in 3D.
    """

    labels: Any
    sizes: Any
    removed: Any
    added: Any


def check_connectivity(connectivity: int | None, spatial_dims: int) -> bool:
    """Validate ``connectivity``; return whether it is the full one (8 in 2D, 26 in 3D)."""
    allowed = CONNECTIVITIES.get(spatial_dims, (4, 8))
    if connectivity is None:
        return True
    if isinstance(connectivity, bool) or connectivity not in allowed:
        raise ValueError(f"connectivity: expected one of {allowed} (or None for {allowed[1]}) with "
                         f"spatial_dims={spatial_dims}, got {connectivity!r}")
    return connectivity == allowed[1]


def _prepare(mask: Any, spatial_dims: int, border: str, connectivity: int | None):
    check_mask(mask, spatial_dims, border)
    full = check_connectivity(connectivity, spatial_dims)
    host = mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask
    vol = as_volume_batch(host, spatial_dims)
    edge, edge_z = border_values(border, spatial_dims)
    return vol, full, edge, edge_z


def _like(array: np.ndarray, mask: Any, shape: tuple[int, ...]) -> Any:
    array = array.reshape(shape)
    if isinstance(mask, torch.Tensor):
        return torch.from_numpy(array).to(mask.device)
    return array


def _trim_sizes(sizes: np.ndarray, counts: np.ndarray, batch_shape: tuple[int, ...]) -> np.ndarray:
    k = int(counts.max()) if counts.size else 0
    return np.ascontiguousarray(sizes[:, :k]).reshape(batch_shape + (k,))


def object_sizes(mask: Any, spatial_dims: int = 2, border: str = "background",
                 connectivity: int | None = None) -> tuple[Any, Any]:
    r"""Connected components of the mask and the object size of each (see the module doc).

    .. math::
        s_k = 2 \max_{p \in C_k} d_p, \qquad k = 1..K.

    Args:
        mask: tensor or array ``(..., H, W)`` (or ``(..., D, H, W)`` with ``spatial_dims=3``);
            foreground is ``mask > 0``.
        spatial_dims: 2 or 3.
        border: ``"background"`` (default: the image is surrounded by background) or ``"open"``,
            as in :func:`sizeseg.distance_transform`.
        connectivity: None (8 in 2D, 26 in 3D), or 4 / 8 (2D), 6 / 26 (3D).

    Returns:
        ``(labels, sizes)``: int32 labels of ``mask``'s shape (0 = background) and float32 sizes
        ``(..., K_max)`` with ``sizes[..., k - 1]`` the size of label ``k``, NaN-padded.

    Example:
        >>> import numpy as np
        >>> m = np.zeros((6, 8), bool); m[1:5, 1:5] = True; m[2, 6] = True
        >>> labels, sizes = object_sizes(m)
        >>> sizes
        array([4., 2.], dtype=float32)
        >>> int(labels[2, 6])
        2
    """
    vol, full, edge, edge_z = _prepare(mask, spatial_dims, border, connectivity)
    shape = tuple(mask.shape)
    batch_shape = shape[: len(shape) - spatial_dims]
    n, v = vol.shape[0], int(np.prod(vol.shape[1:]))
    labels = np.zeros((n, v), np.int32)
    sizes = np.full((n, v), np.nan, np.float32)
    counts = np.zeros(n, np.int64)
    if n:
        ck.object_sizes_batch(vol, labels, sizes, counts, edge, edge_z, spatial_dims == 3, full)
    trimmed = _trim_sizes(sizes, counts, batch_shape)
    return _like(labels, mask, shape), _like(trimmed, mask, trimmed.shape)


def object_flip_sizes(mask: Any, spatial_dims: int = 2, border: str = "background",
                      connectivity: int | None = None) -> ObjectFlips:
    r"""For every pixel, the sizes its flip removes from and adds to the multiset of object sizes.

    With :math:`S(y)` the multiset of component sizes (:func:`object_sizes`) and
    :math:`y^{\downarrow i}` the mask with pixel ``i`` flipped,

    .. math::
        S(y^{\downarrow i}) = S(y) - R_i + A_i ,

    exactly, for all ``i`` at once in O(V log V) per image (instead of one labelling and one
    transform per flipped copy). Background pixels: ``R_i`` = the sizes of the components touching
    ``i`` (merged), ``A_i`` = the merged size. Foreground pixels: ``R_i`` = the size of ``i``'s
    component, ``A_i`` = the sizes of the pieces left when ``i`` is removed.

    Args:
        mask, spatial_dims, border, connectivity: as in :func:`object_sizes`.

    Returns:
        :class:`ObjectFlips` ``(labels, sizes, removed, added)``.

    Example:
        >>> import numpy as np
        >>> m = np.array([[1, 1, 0, 1, 1]], bool)
        >>> f = object_flip_sizes(m, border="open")
        >>> f.sizes
        array([4., 4.], dtype=float32)
        >>> f.removed[0, 2, :2], f.added[0, 2, :2]  # the gap: two runs merge into one of 5
        (array([4., 4.], dtype=float32), array([inf, nan], dtype=float32))
        >>> f.removed[0, 0, :1], f.added[0, 0, :1]  # the end pixel: the run shrinks to 1 pixel
        (array([4.], dtype=float32), array([2.], dtype=float32))
    """
    vol, full, edge, edge_z = _prepare(mask, spatial_dims, border, connectivity)
    shape = tuple(mask.shape)
    batch_shape = shape[: len(shape) - spatial_dims]
    n, v = vol.shape[0], int(np.prod(vol.shape[1:]))
    width = ck.max_changes(spatial_dims, full)
    labels = np.zeros((n, v), np.int32)
    sizes = np.full((n, v), np.nan, np.float32)
    counts = np.zeros(n, np.int64)
    removed = np.full((n, v, width), np.nan, np.float32)
    added = np.full((n, v, width), np.nan, np.float32)
    if n:
        ck.object_flip_batch(vol, labels, sizes, counts, removed, added, edge, edge_z,
                             spatial_dims == 3, full)
    trimmed = _trim_sizes(sizes, counts, batch_shape)
    return ObjectFlips(_like(labels, mask, shape), _like(trimmed, mask, trimmed.shape),
                       _like(removed, mask, shape + (width,)), _like(added, mask, shape + (width,)))


class ObjectSizes(nn.Module):
    """Module form of :func:`object_sizes`.

    Example:
        >>> import torch
        >>> m = torch.zeros(1, 5, 5); m[0, 0, 0] = m[0, 3, 3] = 1
        >>> ObjectSizes()(m)[1]
        tensor([[2., 2.]])
    """

    def __init__(self, spatial_dims: int = 2, border: str = "background",
                 connectivity: int | None = None):
        super().__init__()
        check_connectivity(connectivity, spatial_dims)
        self.spatial_dims, self.border, self.connectivity = spatial_dims, border, connectivity

    def forward(self, mask: Any) -> tuple[Any, Any]:
        return object_sizes(mask, self.spatial_dims, self.border, self.connectivity)


class ObjectFlipSizes(nn.Module):
    """Module form of :func:`object_flip_sizes`.

    Example:
        >>> import torch
        >>> ObjectFlipSizes()(torch.zeros(1, 3, 3)).added[0, 1, 1, 0]  # a lone pixel appears
        tensor(2.)
    """

    def __init__(self, spatial_dims: int = 2, border: str = "background",
                 connectivity: int | None = None):
        super().__init__()
        check_connectivity(connectivity, spatial_dims)
        self.spatial_dims, self.border, self.connectivity = spatial_dims, border, connectivity

    def forward(self, mask: Any) -> ObjectFlips:
        return object_flip_sizes(mask, self.spatial_dims, self.border, self.connectivity)


__all__ = ["object_sizes", "object_flip_sizes", "ObjectFlips", "ObjectSizes", "ObjectFlipSizes",
           "check_connectivity", "CONNECTIVITIES"]
