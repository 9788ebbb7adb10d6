"""ACDC reader and the constrained-CNN paper's preparation (2D slices, left-ventricle cavity).

Layout (the challenge's): ``training/patientXXX/patientXXX_frameYY.nii.gz`` (image, H×W×slices),
``patientXXX_frameYY_gt.nii.gz`` (labels 0 bg, 1 RV, 2 myocardium, 3 LV cavity) and, optionally,
``patientXXX_frameYY_scribble.nii.gz`` (0 bg, 1 RV, 2 myo, 3 LV, 4 unlabelled).

Preparation (:func:`prepare_acdc`):

1. Read and check every volume first (missing ``_gt``, unreadable files, image/label/scribble
   shape mismatch, non-integer labels fail before any work).
2. Normalise each volume to [0, 1] by min-max (the shared copy is 8-bit 0..255 already normalised
   per volume, so this is ``x / 255`` up to the volume's range).
3. Every slice of every volume (also slices without the LV: they carry the tag "absent"),
   centre crop/pad to ``size``×``size`` (default 256, the paper's), optionally downsampled by
   block averaging to ``resolution`` (e.g. 128 for the CPU profile; masks are re-thresholded at
   0.5; a scribble block is LV if it holds an LV scribble, else background if it holds a
   background scribble, else unlabelled).
4. Binary target: the LV cavity (label 3). Per item: ``areas`` (pixel count, the soft size's
   target), ``sizes`` (``sizeseg.object_size``, border="background"), ``scribbles`` (weak labels
   1 LV / 0 other scribbled classes / -1 unlabelled), ``volumes`` = ``patientXXX_frameYY`` (for
   per-volume Dice and per-volume bounds) and ``subjects`` = ``patientXXX``.
5. Split 75/25 (seeded) into ``train`` / ``val``: by patient (``split="patients"``, default: the two
   frames of a patient stay on one side), or by frame (``split="frames"``, as the constrained-CNN
   authors' code draws its validation frames: the two frames of a patient can fall on both sides).

**Several classes** (``classes=("LV", "RV", "MYO")``, any order or subset of :data:`ACDC_CLASSES`):
the masks become label maps (0 background, ``c + 1`` the c-th named class), each class's size
(``sizeseg.object_size`` of its own binary mask) goes to ``extra["object_sizes"]`` (N, C, 1) as
one size per class (0: class absent from the slice), its pixel count to ``extra["class_areas"]``
(N, C), the names to ``params["classes"]``, and ``sizes`` is each slice's largest class size. The
myocardium is a ring around the LV cavity, and the cavity is background for it, so its size
(2 x the largest Chebyshev distance to the background) is the thickness of its thickest wall,
not its extent. Scribbles are not kept in this mode (they serve the binary LV task).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from sizeseg.data.errors import DataError
from sizeseg.data.geometry import block_mean_downsample, center_crop_or_pad
from sizeseg.data.nifti import nifti_shape, read_label_nifti, read_nifti
from sizeseg.data.prepared import PreparedData, cached
from sizeseg.data.sizes import areas as mask_areas
from sizeseg.data.sizes import object_sizes
from sizeseg.data.splits import PAPER2_FRACTIONS, split_groups
from sizeseg.data.weak import IGNORE_INDEX, scribble_labels

LV_LABEL = 3
#: ACDC's ground-truth label of each structure (``classes`` of :func:`build_acdc`)
ACDC_CLASSES = {"LV": 3, "RV": 1, "MYO": 2}
#: ``split``: the unit drawn into train / val.
ACDC_SPLITS = ("patients", "frames")
_FRAME = re.compile(r"^(patient\d+)_frame(\d+)\.nii(\.gz)?$")


@dataclass(frozen=True)
class AcdcVolume:
    """One ACDC frame: subject, frame number, image / ground-truth / scribble paths, shape."""

    subject: str
    frame: int
    image: Path
    gt: Path
    scribble: Path | None
    shape: tuple[int, ...]

    @property
    def key(self) -> str:
        return f"{self.subject}_frame{self.frame:02d}"


def _gt_path(image: Path, suffix: str) -> Path:
    name = image.name
    ext = ".nii.gz" if name.endswith(".nii.gz") else ".nii"
    return image.with_name(name[: -len(ext)] + suffix + ext)


def read_acdc(root: str | Path) -> list[AcdcVolume]:
    """List and check the ACDC frames under ``root`` (the ``ACDC`` folder or its ``training/``)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: ACDC folder not found")
    base = root / "training" if (root / "training").is_dir() else root
    patients = sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith("patient"))
    if not patients:
        raise DataError(f"{base}: no patientXXX folders (expected ACDC's training/patientXXX/ layout)")
    volumes = []
    for folder in patients:
        frames = sorted(p for p in folder.iterdir() if _FRAME.match(p.name))
        if not frames:
            raise DataError(f"{folder}: no patientXXX_frameYY.nii.gz image")
        for image in frames:
            subject, frame = _FRAME.match(image.name).group(1, 2)
            gt = _gt_path(image, "_gt")
            if not gt.is_file():
                raise DataError(f"{image}: no ground truth {gt.name} beside it")
            scribble = _gt_path(image, "_scribble")
            shape = nifti_shape(image)
            if len(shape) != 3:
                raise DataError(f"{image}: expected a 3D volume (H, W, slices), got shape {shape}")
            for other in (gt, scribble if scribble.is_file() else None):
                if other is not None and nifti_shape(other) != shape:
                    raise DataError(f"{other}: shape {nifti_shape(other)} does not match image shape {shape} of {image.name}")
            volumes.append(AcdcVolume(subject, int(frame), image, gt, scribble if scribble.is_file() else None, shape))
    return volumes


def load_volume(volume: AcdcVolume) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(image float32, gt int16, scribble int16 or None)``, each (H, W, slices)."""
    image = read_nifti(volume.image)
    gt = read_label_nifti(volume.gt)
    scribble = read_label_nifti(volume.scribble) if volume.scribble is not None else None
    return image, gt, scribble


def _minmax(volume: np.ndarray) -> np.ndarray:
    lo, hi = float(volume.min()), float(volume.max())
    return ((volume - lo) / (hi - lo if hi > lo else 1.0)).astype(np.float32)


def _downsample_scribbles(weak: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return weak
    fg = block_mean_downsample((weak == 1).astype(np.float32), factor) > 0
    bg = block_mean_downsample((weak == 0).astype(np.float32), factor) > 0
    out = np.full(fg.shape, IGNORE_INDEX, dtype=np.int8)
    out[bg] = 0
    out[fg] = 1
    return out


def build_acdc(
    data: str | Path, size: int = 256, resolution: int | None = None, seed: int = 0,
    fractions: Sequence[float] = PAPER2_FRACTIONS, target: int = LV_LABEL, limit: int | None = None,
    split: str = "patients", classes: Sequence[str] | None = None,
) -> PreparedData:
    """Prepare the ACDC slices in memory (see the module docstring). ``limit``: first patients only;
    ``classes``: names from :data:`ACDC_CLASSES` for label-map masks with one size per class."""
    labels = check_acdc_classes(classes)
    if split not in ACDC_SPLITS:
        raise ValueError(f"split: expected one of {ACDC_SPLITS}, got {split!r}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    resolution = size if resolution is None else int(resolution)
    if resolution < 1 or size % resolution:
        raise ValueError(f"resolution must divide size={size}, got {resolution}")
    factor = size // resolution
    volumes = read_acdc(data)
    if limit is not None:
        keep = sorted({v.subject for v in volumes})[:limit]
        volumes = [v for v in volumes if v.subject in keep]
    loaded = [load_volume(v) for v in volumes]  # read and check everything before work
    images, masks, scribbles, meta = [], [], [], []
    for vol, (image, gt, scribble) in zip(volumes, loaded):
        img = center_crop_or_pad(np.moveaxis(_minmax(image), -1, 0), (size, size), fill=0.0)
        if labels:
            images.append(block_mean_downsample(img, factor)[:, None].astype(np.float32))
            masks.append(_label_map(np.moveaxis(gt, -1, 0), labels, size, factor))
            meta += [(vol.image.name, k, vol.key, vol.subject) for k in range(img.shape[0])]
            continue
        msk = center_crop_or_pad(np.moveaxis(gt == target, -1, 0).astype(np.float32), (size, size))
        if scribble is not None:
            weak = center_crop_or_pad(np.moveaxis(scribble_labels(scribble, target), -1, 0), (size, size),
                                      fill=IGNORE_INDEX).astype(np.int8)
        else:
            weak = np.full(msk.shape, IGNORE_INDEX, dtype=np.int8)
        images.append(block_mean_downsample(img, factor)[:, None].astype(np.float32))
        masks.append((block_mean_downsample(msk, factor) >= 0.5).astype(np.uint8))
        scribbles.append(_downsample_scribbles(weak, factor))
        meta += [(vol.image.name, k, vol.key, vol.subject) for k in range(img.shape[0])]
    masks_arr = np.concatenate(masks)
    sources, slices, keys, subjects = (np.array(col) for col in zip(*meta))
    if labels:
        return _class_data(np.concatenate(images), masks_arr, list(classes), sources, slices, keys, subjects,
                           split_groups(subjects if split == "patients" else keys, fractions, ("train", "val"), seed))
    return PreparedData(
        images=np.concatenate(images), masks=masks_arr, has_mask=np.ones(len(masks_arr), bool),
        sizes=object_sizes(masks_arr), ids=np.char.add(np.char.add(keys.astype(str), ":"), slices.astype(str)),
        sources=sources.astype(str), slices=slices.astype(np.int64), volumes=keys.astype(str),
        splits=split_groups(subjects if split == "patients" else keys, fractions, ("train", "val"), seed),
        extra={"areas": mask_areas(masks_arr), "scribbles": np.concatenate(scribbles),
               "subjects": subjects.astype(str)},
    )


def check_acdc_classes(classes: Sequence[str] | None) -> list[int]:
    """ACDC labels of ``classes`` (names of :data:`ACDC_CLASSES`), [] for None; ValueError naming the bad one."""
    if classes is None:
        return []
    names = list(classes)
    bad = [c for c in names if c not in ACDC_CLASSES]
    if not names or bad or len(set(names)) != len(names):
        raise ValueError(f"classes: expected distinct names from {', '.join(ACDC_CLASSES)}, got "
                         f"{','.join(names) or 'none'}" + (f" ({bad[0]!r} is not an ACDC class)" if bad else ""))
    return [ACDC_CLASSES[c] for c in names]


def _label_map(gt: np.ndarray, labels: list[int], size: int, factor: int) -> np.ndarray:
    """(slices, H, W) ACDC labels → uint8 label map (0 background, c + 1 for labels[c]) at the working
    size: each class cropped and block-averaged on its own, a pixel going to the class covering the
    largest share of its block if that share is >= 0.5 (the binary preparation's rule, per class)."""
    shares = np.stack([block_mean_downsample(center_crop_or_pad((gt == lab).astype(np.float32), (size, size)),
                                             factor) for lab in labels])
    best = shares.argmax(0)
    return np.where(shares.max(0) >= 0.5, best + 1, 0).astype(np.uint8)


def _class_data(images, masks, classes, sources, slices, keys, subjects, splits) -> PreparedData:
    per_class = np.stack([(masks == c + 1) for c in range(len(classes))], 1).astype(np.uint8)  # (N, C, H, W)
    n, c = per_class.shape[:2]
    flat = per_class.reshape((n * c,) + per_class.shape[2:])
    sizes = object_sizes(flat).reshape(n, c)
    return PreparedData(
        images=images, masks=masks, has_mask=np.ones(n, bool), sizes=sizes.max(1).astype(np.float32),
        ids=np.char.add(np.char.add(keys.astype(str), ":"), slices.astype(str)), sources=sources.astype(str),
        slices=slices.astype(np.int64), volumes=keys.astype(str), splits=splits,
        extra={"object_sizes": sizes[:, :, None].astype(np.float32),
               "class_areas": mask_areas(flat).reshape(n, c), "subjects": subjects.astype(str)},
        params={"classes": list(classes)},
    )


def prepare_acdc(
    data: str | Path, out: str | Path, size: int = 256, resolution: int | None = None, seed: int = 0,
    fractions: Sequence[float] = PAPER2_FRACTIONS, target: int = LV_LABEL, limit: int | None = None,
    split: str = "patients", classes: Sequence[str] | None = None,
) -> tuple[PreparedData, bool]:
    """Prepare (or reuse) the ACDC slices in ``out``; returns ``(data, reused)``.

    >>> data, reused = prepare_acdc("../shared/data/ACDC", "prepared/acdc128", resolution=128)  # doctest: +SKIP
    >>> data, reused = prepare_acdc("../shared/data/ACDC", "prepared/acdc3", classes=("LV", "RV", "MYO"))  # doctest: +SKIP
    """
    check_acdc_classes(classes)
    params = {
        "dataset": "acdc", "data": str(Path(data).resolve()), "size": size,
        "resolution": size if resolution is None else resolution, "seed": seed, "fractions": list(fractions),
        "target_label": target, "limit": limit, "split": "by patient" if split == "patients" else "by frame",
        "normalisation": "per-volume min-max to [0, 1]", "size_definition": "sizeseg.object_size, border=background",
    }
    if classes is not None:  # only then: a binary preparation keeps its cache key
        params["classes"] = list(classes)
        del params["target_label"]
    return cached(out, params, lambda: build_acdc(data, size, resolution, seed, fractions, target, limit, split,
                                                  classes))


def subject_areas(data: PreparedData, subject: str) -> np.ndarray:
    """The LV areas of all slices (both frames) of one subject, e.g. for :func:`subject_bounds`."""
    subjects = data.extra.get("subjects")
    if subjects is None:
        raise ValueError("data has no 'subjects' array (not an ACDC preparation)")
    if subject not in set(subjects.tolist()):
        raise ValueError(f"subject {subject!r} not in data; e.g. {sorted(set(subjects.tolist()))[:3]}")
    return data.extra["areas"][subjects == subject]
