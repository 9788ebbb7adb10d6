"""Weak (partial) pixel labels from full masks, and from the ACDC scribbles.

Weak labels follow the batch contract: int64, ``1`` foreground, ``0`` background, ``-1``
unlabelled (:data:`IGNORE_INDEX`).

Background in the paper's setting: the constrained-CNN paper (Kervadec et al.) annotates only
foreground pixels ("only labels of green pixels are known", Fig. 2); its partial cross-entropy
``H(Y, S) = -sum_p Y_p log S_p`` runs over the labelled foreground pixels, and nothing tells the
network where the background is except the size penalty. So the paper's strategies here leave
every background pixel unlabelled (-1); only :func:`scribble_labels` (whose scribbles do mark
background) and the optional ``background_points`` of :func:`random_point_labels` produce 0s.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from sizeseg.checks import IGNORE_INDEX

PAPER_KERNELS = (10, 7, 5, 3, 2, 1)


def _as_masks(masks: np.ndarray, name: str = "masks") -> np.ndarray:
    masks = np.asarray(masks)
    if masks.ndim < 2:
        raise ValueError(f"{name} must be (H, W) or (N, H, W), got shape {masks.shape}")
    return masks > 0


def erosion_labels(masks: np.ndarray, kernels: Sequence[int] = PAPER_KERNELS, repeat: bool = False) -> np.ndarray:
    """The paper's erosion strategy: erode each object with a ``k``×``k`` square, ``k`` from ``kernels``.

    For each 2D mask, ``W = erode(Y, ones(k, k))`` with the first ``k`` of ``kernels``
    (10, 7, 5, 3, 2, 1) for which ``W`` is not empty; ``k = 1`` leaves the object itself, so a
    non-empty object always keeps a non-empty weak region inside it. Labels: 1 on ``W``, -1
    elsewhere (background is not annotated, as in the paper). An empty mask gives all -1.

    ``repeat=True`` reads the paper's "repeated the operation ... until we get a small contour"
    as iterated erosion: erode again and again, each time with the largest kernel of ``kernels``
    (> 1) that does not empty the region, until none can; this leaves a small core of a few
    pixels. The default (``False``) erodes once, with the first kernel that leaves something.

    Args:
        masks: (H, W) or (N, H, W) binary masks (non-zero = foreground).
        kernels: decreasing square kernel sizes to try.

    Returns:
        int64 array of the same shape.

    >>> m = np.zeros((30, 30), bool); m[5:25, 5:25] = True
    >>> int((erosion_labels(m) == 1).sum())  # 20x20 square eroded by a 10x10 kernel
    121
    """
    if not kernels or any(int(k) < 1 for k in kernels):
        raise ValueError(f"kernels must be positive sizes, got {kernels}")
    fg = _as_masks(masks)
    flat = fg.reshape((-1,) + fg.shape[-2:])
    out = np.full(flat.shape, IGNORE_INDEX, dtype=np.int64)
    for i, m in enumerate(flat):
        if not m.any():
            continue
        region = _erode_once(m, kernels)
        while repeat and region is not None:
            smaller = _erode_once(region, [k for k in kernels if k > 1])
            if smaller is None:
                break
            region = smaller
        out[i][m if region is None else region] = 1
    return out.reshape(fg.shape)


def _erode_once(m: np.ndarray, kernels: Sequence[int]) -> np.ndarray | None:
    """Erosion of ``m`` by the first kernel of ``kernels`` that leaves a non-empty region, or None."""
    from scipy import ndimage

    for k in kernels:
        eroded = m if k == 1 else ndimage.binary_erosion(m, structure=np.ones((k, k), bool))
        if eroded.any():
            return eroded
    return None


def random_point_labels(
    masks: np.ndarray, n_points: int = 1, background_points: int = 0, seed: int = 0
) -> np.ndarray:
    """``n_points`` foreground pixels (and ``background_points`` background pixels) per mask, at random.

    Points are drawn without replacement, uniformly within the object (resp. the background),
    from ``numpy.random.default_rng(seed)``; all other pixels are -1.

    >>> m = np.zeros((8, 8), bool); m[2:5, 2:5] = True
    >>> w = random_point_labels(m, n_points=3, seed=1); int((w == 1).sum()), bool(m[w == 1].all())
    (3, True)
    """
    if n_points < 0 or background_points < 0:
        raise ValueError(f"n_points and background_points must be >= 0, got {n_points}, {background_points}")
    fg = _as_masks(masks)
    flat = fg.reshape((-1,) + fg.shape[-2:])
    out = np.full(flat.shape, IGNORE_INDEX, dtype=np.int64)
    rng = np.random.default_rng(seed)
    for i, m in enumerate(flat):
        for value, region, count in ((1, m, n_points), (0, ~m, background_points)):
            where = np.flatnonzero(region.ravel())
            if count and len(where):
                chosen = rng.choice(where, size=min(count, len(where)), replace=False)
                out[i].ravel()[chosen] = value
    return out.reshape(fg.shape)


def centroid_labels(masks: np.ndarray) -> np.ndarray:
    """One foreground pixel per mask: the object pixel nearest to the object's centre of mass.

    (For a non-convex object the centre of mass may lie outside it; the nearest object pixel
    is always inside.) Ties break to the first pixel in row-major order.

    >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
    >>> np.argwhere(centroid_labels(m) == 1).tolist()
    [[2, 2]]
    """
    fg = _as_masks(masks)
    flat = fg.reshape((-1,) + fg.shape[-2:])
    out = np.full(flat.shape, IGNORE_INDEX, dtype=np.int64)
    for i, m in enumerate(flat):
        pts = np.argwhere(m)
        if len(pts):
            centre = pts.mean(axis=0)
            r, c = pts[np.argmin(((pts - centre) ** 2).sum(axis=1))]
            out[i, r, c] = 1
    return out.reshape(fg.shape)


def scribble_labels(scribbles: np.ndarray, target: int = 3, unlabelled: int = 4) -> np.ndarray:
    """Map ACDC scribbles to the binary task: target class → 1, other classes → 0, ``unlabelled`` → -1.

    ACDC scribbles use 0 background, 1 RV, 2 myocardium, 3 LV, 4 unlabelled; for the LV task the
    RV and myocardium scribbles are background.

    >>> scribble_labels(np.array([0, 1, 2, 3, 4])).tolist()
    [0, 0, 0, 1, -1]
    """
    s = np.asarray(scribbles)
    out = np.where(s == target, 1, 0).astype(np.int64)
    out[s == unlabelled] = IGNORE_INDEX
    return out


def labelled_fraction(weak: np.ndarray, masks: np.ndarray | None = None) -> dict[str, float]:
    """Fraction of labelled pixels: of all pixels, and (given ``masks``) of the foreground pixels.

    Returns ``{"of_pixels", "foreground_of_pixels", "background_of_pixels", "of_foreground",
    "foreground_recall"}``: the labelled share of all pixels, split into weak 1s and weak 0s; the
    labelled pixels (1s and 0s) over the foreground pixels (above 1 when the background is labelled
    generously, e.g. scribbles); and the share of foreground pixels that carry a weak 1.
    """
    weak = np.asarray(weak)
    result = {"of_pixels": float((weak != IGNORE_INDEX).mean()), "foreground_of_pixels": float((weak == 1).mean()),
              "background_of_pixels": float((weak == 0).mean())}
    if masks is not None:
        fg = _as_masks(masks)
        n_fg = max(int(fg.sum()), 1)
        result["of_foreground"] = float((weak != IGNORE_INDEX).sum() / n_fg)
        result["foreground_recall"] = float(((weak == 1) & fg).sum() / n_fg)
    return result


WEAK_STRATEGIES = {
    "erosion": erosion_labels,
    "centroid": centroid_labels,
    "points": random_point_labels,
}


def weak_labels(masks: np.ndarray, strategy: str = "erosion", **kwargs) -> np.ndarray:
    """Weak labels by name: ``erosion`` (the paper's), ``centroid`` or ``points``."""
    if strategy not in WEAK_STRATEGIES:
        raise ValueError(f"strategy must be one of {sorted(WEAK_STRATEGIES)}, got {strategy!r}")
    return WEAK_STRATEGIES[strategy](masks, **kwargs)
