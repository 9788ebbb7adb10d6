"""Exact Chebyshev distance transform, object size and all-pixel flip sizes (2D and 3D).

Each op accepts torch tensors (any device) or numpy arrays and runs through a compiled numba
kernel, parallel over the batch, on CPU, or through pure torch ops on other devices (or with
``backend="torch"``), without host round trips.

One size convention holds everywhere in sizeseg: ``border="background"``, pixels outside the
array count as background (a 4x4 square in a corner has size 4). Every op, loss, metric and data
preparation defaults to it; ``border="open"`` (scipy's ``distance_transform_cdt``) is available.

``NO_BACKGROUND`` (``2**30``) is the distance given to every pixel of an image without any
background pixel under ``border="open"``; it is larger than D + H + W of any array that fits in
memory and leaves room to add small numbers without overflowing int32.
"""

from ._inputs import NO_BACKGROUND
from .distance import DistanceTransform, ObjectSize, distance_transform, object_size
from .flip import FlipSizes, flip_sizes, flip_sizes_and_size
from .size_match import size_matched_mask, size_matched_rank

__all__ = [
    "NO_BACKGROUND",
    "distance_transform",
    "object_size",
    "flip_sizes",
    "flip_sizes_and_size",
    "size_matched_mask",
    "size_matched_rank",
    "DistanceTransform",
    "ObjectSize",
    "FlipSizes",
]
