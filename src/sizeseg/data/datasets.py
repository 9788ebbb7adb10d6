"""torch Datasets over prepared data, yielding the batch dictionary of docs/ARCHITECTURE.md.

An item is a dict::

    image     float32 (C, *spatial)      normalised input
    mask      float32 (C, *spatial)      {0, 1}, one channel per class (C = 1 unless the data has
                                         several classes); zeros where has_mask is False
    has_mask  bool ()                    the item carries a pixel mask
    size      float32 ()                 object size; NaN where not given
    bounds    float32 (2,) or (K, 2)     [a, b] on the soft size (per class); NaN where not given
    size_bounds float32 (2,)             [a, b] on the discrete object size (paper 1's); NaN where not given
    weak      int64 (*spatial)           1 fg / 0 bg / -1 unlabelled
    id        str                        stable identifier (source:slice)
    object_sizes float32 (C, K)          only for data with size lists (:mod:`sizeseg.data.size_lists`):
                                         the sizes of each class's objects, NaN-padded to the data
                                         set's longest list K (so batches stack; NaN marks padding)

The default ``torch.utils.data.DataLoader`` collate stacks these into the batch dictionary
(``id`` becomes a list of str); :func:`collate_batch` does the same explicitly and checks keys.

Readers (file formats) stay in the reader modules; this module only sees :class:`PreparedData`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from sizeseg.data.prepared import PreparedData
from sizeseg.data.size_lists import n_classes, size_lists
from sizeseg.data.weak import IGNORE_INDEX

BATCH_KEYS = ("image", "mask", "has_mask", "size", "bounds", "size_bounds", "weak", "id")
AUGMENTATIONS = ("none", "flip", "dihedral", "affine")


def choose_masked(has_mask: np.ndarray, m: int | None, seed: int = 0) -> np.ndarray:
    """A seeded subset of ``m`` items that keep their masks (among those that have one).

    Returns a bool (N,) array. ``m=None`` keeps every mask. The choice for a given ``seed`` is
    nested: the ``m`` items chosen are the first ``m`` of one fixed permutation, so the masked set
    for ``m = 10`` is contained in that for ``m = 20``.

    >>> choose_masked(np.array([True, True, False, True]), 2, seed=0).sum()
    np.int64(2)
    """
    has_mask = np.asarray(has_mask, dtype=bool)
    if m is None:
        return has_mask.copy()
    candidates = np.flatnonzero(has_mask)
    if not 0 <= m <= len(candidates):
        raise ValueError(f"m must be in [0, {len(candidates)}] (items with masks), got {m}")
    chosen = candidates[np.random.default_rng(seed).permutation(len(candidates))[:m]]
    out = np.zeros(len(has_mask), dtype=bool)
    out[chosen] = True
    return out


class SegmentationDataset(Dataset):
    """Items of a :class:`PreparedData` as batch-dictionary entries, with masks / sizes chosen.

    Args:
        data: the prepared items (e.g. ``load_prepared(folder).split("train")``).
        masked: ``None`` (every item with a mask keeps it), an int ``m`` (a seeded subset of ``m``
            masked items, see :func:`choose_masked`; the other items carry only their size) or a
            bool (N,) array.
        sizes: ``"all"`` (every known size), ``"unmasked"`` (sizes only where the mask is hidden)
            or ``"none"`` (all NaN).
        bounds: float (N, 2) bounds, or (N, K, 2) one pair per class, or ``None`` to use
            ``data.extra["bounds"]`` if present (else NaN).
        weak: int (N, *spatial) weak labels, or ``None`` to use ``data.extra["weak"]`` if present
            (else all -1).
        augment: ``"none"``; ``"flip"`` (random horizontal and vertical flips, each with p = 0.5;
            sizes and bounds are flip-invariant); ``"dihedral"`` (2D only: flips plus a transpose with
            p = 0.5 on square items, the 8 symmetries of the square, exact on the pixel grid);
            ``"affine"`` (2D only: flips plus a rotation in
            ``±max_angle`` degrees and a scaling in ``scale_range``, as in the constrained-CNN
            paper; image bilinear, mask and weak nearest; size and bounds are left unchanged).
        seed: seed of the masked subset.

    Augmentation draws from torch's global RNG (seeded per DataLoader worker by torch).

    >>> from sizeseg.data.synthetic import synthetic_data
    >>> ds = SegmentationDataset(synthetic_data(8, seed=0), masked=2, augment="flip")
    >>> item = ds[0]; tuple(item["image"].shape), int(sum(bool(ds[i]["has_mask"]) for i in range(8)))
    ((1, 48, 32), 2)
    """

    def __init__(
        self, data: PreparedData, masked: int | np.ndarray | None = None, sizes: str = "all",
        bounds: np.ndarray | None = None, weak: np.ndarray | None = None, augment: str = "none",
        seed: int = 0, max_angle: float = 20.0, scale_range: Sequence[float] = (0.9, 1.1),
        size_bounds: np.ndarray | None = None,
    ) -> None:
        if not isinstance(data, PreparedData):
            raise TypeError(f"data must be a PreparedData, got {type(data).__name__}")
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
        if augment in ("affine", "dihedral") and len(data.spatial_shape) != 2:
            raise ValueError(f"augment={augment!r} needs 2D items, got spatial shape {data.spatial_shape}")
        if sizes not in ("all", "unmasked", "none"):
            raise ValueError(f"sizes must be 'all', 'unmasked' or 'none', got {sizes!r}")
        n = len(data)
        if isinstance(masked, np.ndarray):
            if masked.shape != (n,) or masked.dtype != bool:
                raise ValueError(f"masked as an array must be bool of shape {(n,)}, got {masked.dtype} {masked.shape}")
            if np.any(masked & ~data.has_mask):
                raise ValueError("masked selects items that have no mask")
            keep = masked.copy()
        else:
            keep = choose_masked(data.has_mask, masked, seed)
        size = data.sizes.astype(np.float32).copy()
        if sizes == "unmasked":
            size[keep] = np.nan
        elif sizes == "none":
            size[:] = np.nan
        bounds = _bounds_array(data.extra.get("bounds") if bounds is None else bounds, n, "bounds")
        size_bounds = _bounds_array(size_bounds, n, "size_bounds")
        weak = data.extra.get("weak") if weak is None else weak
        if weak is not None:
            weak = np.asarray(weak)
            if weak.shape != (n,) + data.spatial_shape:
                raise ValueError(f"weak must have shape {(n,) + data.spatial_shape}, got {weak.shape}")
            if not np.isin(weak, (IGNORE_INDEX, 0, 1)).all():
                raise ValueError("weak labels must be in {-1, 0, 1}")
        self.data = data
        self.augment, self.max_angle, self.scale_range = augment, float(max_angle), tuple(scale_range)
        self.has_mask = torch.from_numpy(keep)
        self.images = torch.from_numpy(np.ascontiguousarray(data.images, dtype=np.float32))
        self.masks = torch.from_numpy(np.ascontiguousarray(data.masks))
        self.sizes = torch.from_numpy(size)
        self.bounds = torch.from_numpy(bounds)
        self.size_bounds = torch.from_numpy(size_bounds)
        self.weak = None if weak is None else torch.from_numpy(np.ascontiguousarray(weak, dtype=np.int8))
        self.ids = [str(i) for i in data.ids]
        self.classes = n_classes(data)
        lists = size_lists(data)
        if lists is not None:
            lists = lists.copy()
            if sizes == "unmasked":
                lists[keep] = np.nan
            elif sizes == "none":
                lists[:] = np.nan
        self.object_sizes = None if lists is None else torch.from_numpy(lists)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        has_mask = bool(self.has_mask[i])
        if not has_mask:
            mask = torch.zeros((self.classes,) + self.masks.shape[1:])
        elif self.classes == 1:
            mask = (self.masks[i] > 0).float().unsqueeze(0)
        else:  # a label map: channel c is label c + 1
            mask = torch.stack([self.masks[i] == c + 1 for c in range(self.classes)]).float()
        weak = (self.weak[i].long() if self.weak is not None
                else torch.full(self.masks.shape[1:], IGNORE_INDEX, dtype=torch.long))
        image = self.images[i]
        if self.augment != "none":
            image, mask, weak = self._augment(image, mask, weak)
        item = {
            "image": image.contiguous(), "mask": mask.contiguous(), "has_mask": torch.tensor(has_mask),
            "size": self.sizes[i], "bounds": self.bounds[i], "size_bounds": self.size_bounds[i],
            "weak": weak.contiguous(), "id": self.ids[i],
        }
        if self.object_sizes is not None:
            item["object_sizes"] = self.object_sizes[i]
        return item

    def _augment(self, image, mask, weak):
        dims = image.dim() - 1
        for axis in range(dims):  # 2D: vertical then horizontal flip
            if torch.rand(()) < 0.5:
                image, mask = image.flip(axis + 1), mask.flip(axis + 1)
                weak = weak.flip(axis)
        if self.augment == "dihedral" and image.shape[-1] == image.shape[-2] and torch.rand(()) < 0.5:
            image, mask, weak = image.transpose(-1, -2), mask.transpose(-1, -2), weak.transpose(-1, -2)
        if self.augment == "affine":
            angle = math.radians(float(torch.empty(()).uniform_(-self.max_angle, self.max_angle)))
            scale = float(torch.empty(()).uniform_(*self.scale_range))
            image, mask, weak = affine_2d(image, mask, weak, angle, scale)
        return image, mask, weak


def _bounds_array(bounds: np.ndarray | None, n: int, name: str) -> np.ndarray:
    """``bounds`` as float32 (n, 2), or (n, K, 2) per class, all NaN (no bounds) for None; a
    ValueError naming ``name`` otherwise."""
    if bounds is None:
        return np.full((n, 2), np.nan, np.float32)
    bounds = np.asarray(bounds, dtype=np.float32)
    if not (bounds.ndim in (2, 3) and bounds.shape[0] == n and bounds.shape[-1] == 2):
        raise ValueError(f"{name} must have shape {(n, 2)} or (N, K, 2) = ({n}, K, 2) per class, got {bounds.shape}")
    return bounds


def affine_2d(image: torch.Tensor, mask: torch.Tensor, weak: torch.Tensor, angle: float, scale: float):
    """Rotate by ``angle`` (radians) and scale by ``scale`` about the centre.

    ``image`` (C, H, W) bilinear with zero padding; ``mask`` (1, H, W) nearest; ``weak`` (H, W)
    nearest with -1 (unlabelled) outside the source image.
    """
    import torch.nn.functional as F

    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=torch.float32).unsqueeze(0)
    grid = F.affine_grid(theta, (1, 1) + tuple(image.shape[-2:]), align_corners=False)
    image = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    stacked = torch.cat([mask, (weak + 1).float()[None]])[None]  # weak + 1: outside → 0 → -1
    stacked = F.grid_sample(stacked, grid, mode="nearest", padding_mode="zeros", align_corners=False)[0]
    return image, stacked[:-1], stacked[-1].long() - 1


def collate_batch(items: Sequence[dict]) -> dict[str, Any]:
    """Stack items into the batch dictionary (``id`` as a list of str).

    Equivalent to the default DataLoader collate for these items, with a check that every key of
    the contract is present.
    """
    if not items:
        raise ValueError("collate_batch: empty list of items")
    missing = [k for k in BATCH_KEYS if k not in items[0]]
    if missing:
        raise ValueError(f"collate_batch: items lack keys {missing}")
    batch = {k: torch.stack([it[k] for it in items]) for k in BATCH_KEYS if k != "id"}
    if "object_sizes" in items[0]:
        # lists of items from different data sets may differ in length: NaN-pad to the longest
        width = max(it["object_sizes"].shape[-1] for it in items)
        batch["object_sizes"] = torch.stack([torch.nn.functional.pad(it["object_sizes"], (0, width - it["object_sizes"].shape[-1]),
                                                                     value=float("nan")) for it in items])
    batch["id"] = [it["id"] for it in items]
    return batch
