"""A built-in synthetic set with several objects per image (1 to 5 by default).

Each item draws ``k`` uniform in ``objects`` and places ``k`` blobs of the single-object set
(:mod:`sizeseg.data.synthetic`: irregular rotated ellipses, here with smaller semi-axes) one by
one; a blob that would overlap or touch an earlier one (8-connected) is redrawn, so the objects
are exactly the connected components of the mask and ``object_sizes`` of the mask returns one
size per drawn object. The image is rendered as in the single-object set. Item ``i`` depends only
on ``(seed, i)``.

Sizes are each object's own size, ``2 x max Chebyshev distance to the background``
(:func:`sizeseg.ops.components.object_sizes`, border="background"), stored descending and
NaN-padded in ``extra["object_sizes"]`` (N, max objects); ``sizes`` keeps the largest (the
single-object size of the whole mask).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from sizeseg.data.prepared import PreparedData
from sizeseg.data.sizes import areas
from sizeseg.data.splits import PAPER1_FRACTIONS, split_items
from sizeseg.data.synthetic import _blob, render_image

DEFAULT_SHAPE = (64, 64)
OBJECTS = (1, 5)
RADIUS_RANGE = (0.06, 0.16)


def _check(shape: Sequence[int], objects: Sequence[int]) -> tuple[tuple[int, ...], int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or min(shape) < 16:
        raise ValueError(f"shape: expected 2D or 3D with every side >= 16, got {shape}")
    lo, hi = (int(v) for v in objects)
    if not 1 <= lo <= hi <= 12:
        raise ValueError(f"objects: expected (low, high) with 1 <= low <= high <= 12, got {tuple(objects)}")
    return shape, lo, hi


def synthetic_objects_item(seed: int, index: int, shape: Sequence[int] = DEFAULT_SHAPE,
                           objects: Sequence[int] = OBJECTS,
                           radius_range: Sequence[float] = RADIUS_RANGE
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One ``(image float32, mask uint8, object sizes float32 (k,) descending)`` item.

    >>> img, msk, sizes = synthetic_objects_item(0, 0, objects=(3, 3)); img.shape, len(sizes)
    ((64, 64), 3)
    """
    from scipy import ndimage

    from sizeseg.ops.components import object_sizes

    shape, lo, hi = _check(shape, objects)
    rng = np.random.default_rng([int(seed), int(index)])
    k = int(rng.integers(lo, hi + 1))
    mask = np.zeros(shape, bool)
    near = np.zeros(shape, bool)  # the mask grown by one pixel: a new blob must avoid it
    placed = 0
    for _ in range(200 * k):
        if placed == k:
            break
        blob = _blob(rng, shape, radius_range)
        if blob.sum() < 4 or (blob & near).any():
            continue
        mask |= blob
        near = ndimage.binary_dilation(mask, structure=np.ones((3,) * len(shape), bool))
        placed += 1
    else:
        if placed < k:
            raise ValueError(f"objects: could not place {k} separate objects in a {shape} image")
    sizes = object_sizes(mask, len(shape))[1]
    image, mask_u8 = render_image(rng, mask)
    return image, mask_u8, np.sort(sizes)[::-1].astype(np.float32)


def synthetic_objects_data(n: int, shape: Sequence[int] = DEFAULT_SHAPE, seed: int = 0,
                           objects: Sequence[int] = OBJECTS,
                           fractions: Sequence[float] = PAPER1_FRACTIONS,
                           radius_range: Sequence[float] = RADIUS_RANGE) -> PreparedData:
    """``n`` multi-object items as :class:`PreparedData`, split by item (ids
    ``synthetic-objects-<seed>:<i>``); per-object sizes in ``extra["object_sizes"]``.

    >>> d = synthetic_objects_data(6, seed=1, objects=(2, 4)); d.extra["object_sizes"].shape
    (6, 4)
    """
    if n < 1:
        raise ValueError(f"n: expected an int >= 1, got {n}")
    shape, lo, hi = _check(shape, objects)
    items = [synthetic_objects_item(seed, i, shape, (lo, hi), radius_range) for i in range(n)]
    lists = np.full((n, hi), np.nan, np.float32)
    for i, (_, _, sizes) in enumerate(items):
        lists[i, : len(sizes)] = sizes
    masks = np.stack([it[1] for it in items])
    source = f"synthetic-objects-{seed}"
    ids = np.array([f"{source}:{i}" for i in range(n)])
    return PreparedData(
        images=np.stack([it[0] for it in items])[:, None], masks=masks, has_mask=np.ones(n, bool),
        sizes=lists[:, 0].copy(), ids=ids, sources=np.full(n, source), slices=np.arange(n),
        volumes=ids, splits=split_items(ids, "slice", fractions, ("train", "val", "test"), seed),
        extra={"areas": areas(masks), "object_sizes": lists},
    )
