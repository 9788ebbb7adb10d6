"""A built-in synthetic data set, generated from a seed (nothing is downloaded).

Each image holds one object: a smooth irregular blob made from a randomly rotated ellipse
(ellipsoid in 3D) whose boundary is perturbed by smoothed Gaussian noise,

    object = largest connected part of { x : ||D^-1 R^T (x - c)|| + α n(x) < 1 },

with centre ``c`` uniform in the middle 60% of each axis, semi-axes ``D`` uniform in
``radius_range`` × the shortest side, a random rotation ``R``, ``n`` Gaussian noise smoothed with
σ = 0.1 × the shortest side and scaled to unit s.d., and ``α`` uniform in [0.2, 0.45]; holes
are filled. Objects whose foreground fraction falls outside ``fraction_range`` are redrawn, so
every object covers between 2% and 40% of the image by default.

The image: a textured background (smoothed noise, σ ≈ 2 px, plus a random linear shading),
the object brighter or darker by a random contrast of 1.2 to 2.4 (background texture s.d. 0.7) with its own
texture, a Gaussian blur (σ 0.5 to 1.2 px at a shortest side of 32, scaled with the side as the
objects are; or a range in pixels given as ``blur``), additive noise (s.d. 0.2 to 0.5), then per-image
z-score normalisation. Low contrast against texture and noise keeps the task learnable but not
trivial: a threshold does not segment it, a small U-Net trained on some tens of masks does.

Item ``i`` depends only on ``(seed, i)`` (``numpy.random.default_rng([seed, i])``), so the set
is deterministic per seed and a prefix of a larger set.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from sizeseg.data.prepared import PreparedData
from sizeseg.data.sizes import areas, object_sizes
from sizeseg.data.splits import PAPER1_FRACTIONS, split_items

DEFAULT_SHAPE = (48, 32)
RADIUS_RANGE = (0.12, 0.4)
FRACTION_RANGE = (0.02, 0.4)


def _rotation(rng: np.random.Generator, dims: int) -> np.ndarray:
    if dims == 2:
        a = rng.uniform(0, np.pi)
        return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    q, r = np.linalg.qr(rng.normal(size=(dims, dims)))
    return q * np.sign(np.diag(r))


def _blob(rng: np.random.Generator, shape: tuple[int, ...], radius_range: Sequence[float]) -> np.ndarray:
    from scipy import ndimage

    dims, side = len(shape), min(shape)
    centre = np.array([rng.uniform(0.2, 0.8) * (n - 1) for n in shape])
    radii = rng.uniform(*radius_range, size=dims) * side
    rot = _rotation(rng, dims)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1) - centre
    local = grid @ rot / radii
    field = np.sqrt((local ** 2).sum(axis=-1))
    noise = ndimage.gaussian_filter(rng.normal(size=shape), sigma=0.1 * side, mode="wrap")
    noise /= noise.std() + 1e-12
    inside = field + rng.uniform(0.2, 0.45) * noise < 1.0
    labels, count = ndimage.label(inside)
    if count > 1:
        inside = labels == 1 + np.argmax(np.bincount(labels.ravel())[1:])
    return ndimage.binary_fill_holes(inside)


def synthetic_item(
    seed: int, index: int, shape: Sequence[int] = DEFAULT_SHAPE,
    radius_range: Sequence[float] = RADIUS_RANGE, fraction_range: Sequence[float] = FRACTION_RANGE,
    blur: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One ``(image float32 (*shape), mask uint8 (*shape))`` pair, determined by ``(seed, index)``.

    ``blur``: the range of the blur's σ in pixels (None: 0.5 to 1.2 px × the shortest side / 32,
    which at a large side blurs the smallest objects away).

    >>> img, msk = synthetic_item(0, 0); img.shape, int(msk.max())
    ((48, 32), 1)
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or min(shape) < 8:
        raise ValueError(f"shape must be 2D or 3D with every side >= 8, got {shape}")
    lo, hi = fraction_range
    if not 0 < lo < hi <= 1:
        raise ValueError(f"fraction_range must satisfy 0 < low < high <= 1, got {fraction_range}")
    rng = np.random.default_rng([int(seed), int(index)])
    for _ in range(100):
        mask = _blob(rng, shape, radius_range)
        if lo <= mask.mean() <= hi:
            break
    else:
        raise ValueError(f"no object within fraction_range {fraction_range} for radius_range {radius_range}")
    return render_image(rng, mask, blur)


def render_image(rng: np.random.Generator, mask: np.ndarray,
                 blur: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The image of a mask as described in the module doc (texture, contrast, blur, noise), and
    the mask as uint8; draws from ``rng``. ``blur``: as in :func:`synthetic_item`."""
    from scipy import ndimage

    shape = mask.shape
    side = min(shape)
    if blur is None:
        blur = (0.5 * side / 32, 1.2 * side / 32)
    if not 0 <= blur[0] <= blur[1] < float("inf"):
        raise ValueError(f"blur: expected 0 <= low <= high, got {tuple(blur)}")
    background = ndimage.gaussian_filter(rng.normal(size=shape), sigma=rng.uniform(1.5, 2.5))
    background *= 0.7 / (background.std() + 1e-12)
    coords = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    background += sum(rng.uniform(-0.5, 0.5) * c for c in coords)
    texture = ndimage.gaussian_filter(rng.normal(size=shape), sigma=rng.uniform(0.7, 1.5))
    texture /= texture.std() + 1e-12
    contrast = rng.choice([-1.0, 1.0]) * rng.uniform(1.2, 2.4)
    image = background + mask * (contrast + 0.4 * texture)
    image = ndimage.gaussian_filter(image, sigma=rng.uniform(*blur))
    image += rng.normal(scale=rng.uniform(0.2, 0.5), size=shape)
    image = (image - image.mean()) / (image.std() + 1e-12)
    return image.astype(np.float32), mask.astype(np.uint8)


def synthetic_data(
    n: int, shape: Sequence[int] = DEFAULT_SHAPE, seed: int = 0,
    fractions: Sequence[float] = PAPER1_FRACTIONS, radius_range: Sequence[float] = RADIUS_RANGE,
    fraction_range: Sequence[float] = FRACTION_RANGE,
) -> PreparedData:
    """``n`` synthetic items as :class:`PreparedData` (all with masks and sizes), split by item.

    Sizes use :func:`sizeseg.object_size` (border="background"); ``extra["areas"]`` holds the
    pixel counts. Ids are ``synthetic-<seed>:<i>``.

    >>> d = synthetic_data(10, seed=1); d.images.shape, sorted(set(d.splits.tolist()))
    ((10, 1, 48, 32), ['test', 'train', 'val'])
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    pairs = [synthetic_item(seed, i, shape, radius_range, fraction_range) for i in range(n)]
    images = np.stack([p[0] for p in pairs])[:, None]
    masks = np.stack([p[1] for p in pairs])
    source = f"synthetic-{seed}"
    ids = np.array([f"{source}:{i}" for i in range(n)])
    return PreparedData(
        images=images, masks=masks, has_mask=np.ones(n, bool), sizes=object_sizes(masks), ids=ids,
        sources=np.full(n, source), slices=np.arange(n), volumes=ids,
        splits=split_items(ids, "slice", fractions, ("train", "val", "test"), seed),
        extra={"areas": areas(masks)},
    )
