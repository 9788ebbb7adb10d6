"""The first paper's hippocampus preparation: 48×32 slices of the MSD Task04 volumes.

Steps (all parameters are recorded in ``params.json`` and the manifest):

1. Read the Decathlon folder (:func:`sizeseg.data.decathlon.read_decathlon`) and load every case
   before any work, so bad input fails first.
2. Normalise intensities per volume: ``x' = (x - mean(x)) / std(x)`` over all voxels of the
   volume (z-score; a constant volume gets ``x' = 0``).
3. Slice along ``axis`` (default 0, the first voxel axis, sagittal in these volumes). The MSD
   hippocampus volumes are X×Y×Z from 31×40×24 to 43×59×47 (median 35×50×36), so slicing along
   axis 0 gives Y×Z slices of about 50×36, which a centre crop/pad turns into the paper's 48×32
   (axis 1 gives ≈35×36 and axis 2 ≈35×50, both far from 48×32).
4. Centre crop/pad each slice to ``shape`` (padding the image with the volume's minimum
   normalised value and the mask with background).
5. Merge labels 1 (head) and 2 (body) into one foreground; keep the slices whose foreground covers
   at least ``min_foreground`` (1%) of the cropped slice.
6. Size of each slice: :func:`sizeseg.object_size` with ``border="background"``.
7. Split 70/10/20 (train/val/test), seeded, by volume (default: no volume in two splits) or by
   slice (as the paper did).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from sizeseg.data.decathlon import load_case, read_decathlon
from sizeseg.data.errors import DataError
from sizeseg.data.geometry import center_crop_or_pad
from sizeseg.data.prepared import PreparedData, cached
from sizeseg.data.sizes import areas, object_sizes
from sizeseg.data.splits import PAPER1_FRACTIONS, split_items

PAPER_SHAPE = (48, 32)


def normalise_volume(volume: np.ndarray) -> np.ndarray:
    """Per-volume z-score ``(x - mean) / std`` (float32); a constant volume becomes zeros."""
    volume = volume.astype(np.float32)
    std = float(volume.std())
    return (volume - float(volume.mean())) / (std if std > 0 else 1.0)


def slice_volume(
    image: np.ndarray, label: np.ndarray, axis: int, shape: Sequence[int], min_foreground: float,
    foreground_labels: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2D slices of one normalised volume: ``(images (S, C, H, W), masks (S, H, W), slice_idx (S,))``.

    ``foreground_labels=None`` merges every label > 0 into the foreground. Only slices whose
    foreground fraction (after crop/pad) is ``>= min_foreground`` are kept.
    """
    if image.ndim == 3:
        image = image[..., None]
    fg = label > 0 if foreground_labels is None else np.isin(label, list(foreground_labels))
    img = np.moveaxis(image, axis, 0)  # (S, A, B, C)
    img = np.moveaxis(img, -1, 1)  # (S, C, A, B)
    msk = np.moveaxis(fg, axis, 0)
    img = center_crop_or_pad(img, shape, fill=float(image.min()))
    msk = center_crop_or_pad(msk.astype(np.uint8), shape, fill=0)
    fraction = msk.reshape(len(msk), -1).mean(axis=1)
    keep = np.flatnonzero(fraction >= min_foreground)
    return img[keep].astype(np.float32), msk[keep], keep


def build_hippocampus(
    data: str | Path, shape: Sequence[int] = PAPER_SHAPE, axis: int = 0, min_foreground: float = 0.01,
    split_by: str = "volume", seed: int = 0, fractions: Sequence[float] = PAPER1_FRACTIONS,
    limit: int | None = None,
) -> PreparedData:
    """Prepare the slices in memory (no cache); see the module docstring for the steps.

    ``limit`` keeps only the first ``limit`` cases (for smoke tests).
    """
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    if not 0 <= min_foreground <= 1:
        raise ValueError(f"min_foreground must be in [0, 1], got {min_foreground}")
    if split_by not in ("volume", "slice"):
        raise ValueError(f"split_by must be 'volume' or 'slice', got {split_by!r}")
    cases = read_decathlon(data)
    if limit is not None:
        cases = cases[:limit]
    loaded = [load_case(case) for case in cases]  # everything is read and checked before work
    images, masks, sources, slices = [], [], [], []
    for case, (image, label) in zip(cases, loaded):
        img, msk, idx = slice_volume(normalise_volume(image), label, axis, shape, min_foreground)
        images.append(img)
        masks.append(msk)
        sources += [case.image.name] * len(idx)
        slices.append(idx)
    if not sum(len(m) for m in masks):
        raise DataError(f"{data}: no slice has at least {min_foreground:.1%} foreground")
    masks_arr = np.concatenate(masks)
    sources_arr = np.array(sources, dtype=str)
    slices_arr = np.concatenate(slices).astype(np.int64)
    volumes = np.array([s.split(".nii")[0] for s in sources], dtype=str)
    return PreparedData(
        images=np.concatenate(images), masks=masks_arr, has_mask=np.ones(len(masks_arr), bool),
        sizes=object_sizes(masks_arr),
        ids=np.char.add(np.char.add(sources_arr, ":"), slices_arr.astype(str)),
        sources=sources_arr, slices=slices_arr, volumes=volumes,
        splits=split_items(volumes, split_by, fractions, ("train", "val", "test"), seed),
        extra={"areas": areas(masks_arr)},
    )


def prepare_hippocampus(
    data: str | Path, out: str | Path, shape: Sequence[int] = PAPER_SHAPE, axis: int = 0,
    min_foreground: float = 0.01, split_by: str = "volume", seed: int = 0,
    fractions: Sequence[float] = PAPER1_FRACTIONS, limit: int | None = None,
) -> tuple[PreparedData, bool]:
    """Prepare (or reuse) the hippocampus slices in folder ``out``; returns ``(data, reused)``.

    Example (not run as a test: it needs the real data set at ../shared/data):

    >>> data, reused = prepare_hippocampus("../shared/data/Task04_Hippocampus", "prepared/hippo")  # doctest: +SKIP
    """
    params = {
        "dataset": "msd-hippocampus", "data": str(Path(data).resolve()), "shape": list(shape),
        "slicing_axis": axis, "min_foreground": min_foreground, "split_by": split_by, "seed": seed,
        "fractions": list(fractions), "limit": limit, "merge_labels": [1, 2],
        "normalisation": "per-volume z-score over all voxels", "size": "sizeseg.object_size, border=background",
    }
    return cached(out, params, lambda: build_hippocampus(
        data, shape, axis, min_foreground, split_by, seed, fractions, limit))
