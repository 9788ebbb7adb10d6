"""A user's own data: a folder of 2D images (or 3D NIfTI volumes), masks for some, sizes for others.

Layout::

    images/   case1.png  case2.tif  case3.bmp ...     (or case1.nii.gz ... for 3D volumes)
    masks/    case1.png                                (optional; same stem as its image)
    sizes.csv image,size                               (optional; for images without masks)
              case2.tif,14
              case3,9                                  (the stem alone is accepted too)

Everything is checked before any work (:func:`scan_folder`): an empty or missing folder, an
unreadable file, a mask without an image, a mask whose shape differs from its image's, a mask
with non-integer values, a CSV row that is malformed, negative, not a number or names an unknown
image, an image named twice. Each error names the file (or CSV row) and the problem.

Preparation (:func:`build_folder`): 2D images become float32 (C, H, W) with C = 1 (grey) or
3 (RGB; grey images are repeated when the folder mixes both; alpha is dropped), normalised per
image by z-score; then fitted to ``shape`` by resizing (``fit="resize"``, the default: bilinear
image, nearest mask; CSV sizes are then scaled by the geometric mean of the axis zoom factors,
an approximation for anisotropic zooms, kept per item in ``extra["size_scale"]``; each source's
shape is kept in ``extra["source_shape"]``, for masks written back at it) or by centre
crop/pad (``fit="pad"``, pixel sizes and so object sizes unchanged unless an object is cropped).
Without ``shape`` the working shape is the largest extent per axis, scaled down (resize only)
so that its longest side is at most ``max_side`` (:data:`DEFAULT_MAX_SIDE`). Masks: every value
> 0 is foreground. Sizes of masked items: :func:`sizeseg.object_size` (border="background") of
the fitted mask; a CSV size given for a masked image is ignored in favour of its mask. 3D NIfTI
volumes follow the same rules in three dimensions: a volume's size, from its mask or the CSV, is
its 3D Chebyshev size (twice the largest 3D chessboard distance to the background), not a size
of its slices. Each volume's affine is kept, as read (``extra["source_affine"]``) and moved onto
the fitted grid (``extra["affine"]``, see :func:`sizeseg.data.geometry.fitted_affine`), so
predicted masks are written with the source's spacing and orientation.

Splits (:func:`sizeseg.data.splits.split_by_masks`): masked and size-only items are split
separately, each by ``fractions`` (70/10/20 by default, seeded), so validation and test hold their
share of the masks; names listed in a validation list (``val_list``, one image name or stem a
line) go to validation whatever the fractions say.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from sizeseg.data.errors import DataError
from sizeseg.data.size_lists import parse_size
from sizeseg.data.geometry import center_crop_or_pad, fitted_affine, resize
from sizeseg.data.nifti import NIFTI_SUFFIXES, as_label_array, nifti_affine, nifti_stem, read_nifti
from sizeseg.data.prepared import PreparedData, cached
from sizeseg.data.sizes import areas, object_sizes
from sizeseg.data.splits import PAPER1_FRACTIONS, split_by_masks

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".bmp")
FITS = ("resize", "pad")
SPLIT_NAMES = ("train", "val", "test")
#: longest side of the working shape chosen when no shape is given (fit="resize")
DEFAULT_MAX_SIDE = 256


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(IMAGE_SUFFIXES):
        return "image"
    return None


def _stem(path: Path) -> str:
    return nifti_stem(path) if _kind(path) == "nifti" else path.stem


def _list(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: {what} folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and _kind(p))
    if not files:
        raise DataError(
            f"{folder}: {what} folder holds no image (PNG, TIFF, BMP) or NIfTI (.nii, .nii.gz) file"
        )
    return files


def read_image_file(path: Path) -> np.ndarray:
    """Pixel array of a PNG/TIFF/BMP/NIfTI file (2D images: (H, W) or (H, W, 3)); DataError if unreadable."""
    try:
        if _kind(path) == "nifti":
            return read_nifti(path, dtype=np.float64)
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            arr = np.asarray(tifffile.imread(str(path)))
        else:
            from PIL import Image

            with Image.open(path) as img:
                if img.mode in ("P", "PA"):  # palette: keep indices (label masks) — see _as_image
                    arr = np.asarray(img.convert("P") if img.mode == "PA" else img)
                elif img.mode in ("LA", "RGBA", "CMYK", "YCbCr", "HSV"):
                    arr = np.asarray(img.convert("RGB" if img.mode != "LA" else "L"))
                else:
                    arr = np.asarray(img)
    except DataError:
        raise
    except Exception as err:  # PIL / tifffile raise many types for corrupt files
        raise DataError(f"{path}: unreadable image ({type(err).__name__}: {err})") from err
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    return arr


@dataclass
class FolderScan:
    """What :func:`scan_folder` found and checked: arrays in memory, sizes from the CSV."""

    kind: str  # "image" or "nifti"
    names: list[str]  # image file names
    images: list[np.ndarray]
    masks: dict[int, np.ndarray]  # image index -> binary mask
    csv_sizes: dict[int, float]  # image index -> size from the CSV
    val: list[int]  # image indices from the validation list
    affines: list[np.ndarray] | None = None  # NIfTI volumes: each source's voxel-to-world affine


def _read_sizes_csv(path: Path, by_name: dict[str, int], by_stem: dict[str, int]) -> dict[int, float]:
    if not path.is_file():
        raise DataError(f"{path}: sizes CSV not found")
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))  # Excel writes a BOM
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: unreadable CSV ({err})") from err
    sizes: dict[int, float] = {}
    for line, row in enumerate(rows, start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise DataError(f"{path}, row {line}: expected 2 columns 'image,size', got {len(row)}: {row}")
        name, raw = row[0].strip(), row[1].strip()
        if line == 1 and name.lower() in ("image", "name", "file", "filename") and raw.lower() == "size":
            continue  # header
        value = parse_size(raw, f"{path}, row {line}, column 'size'", name)
        index = by_name.get(name, by_stem.get(name))
        if index is None:
            raise DataError(f"{path}, row {line}: image {name!r} is not in the images folder")
        if index in sizes:
            raise DataError(f"{path}, row {line}: image {name!r} is named twice")
        sizes[index] = value
    return sizes


def read_name_list(path: str | Path, by_name: dict[str, int], by_stem: dict[str, int], what: str) -> list[int]:
    """Item indices of a text file of image names or stems, one a line (blank lines and ``#`` comments
    skipped); a DataError names the file and line of a name that is not in the folder or is repeated."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: unreadable {what} ({err})") from err
    chosen: list[int] = []
    for number, line in enumerate(lines, start=1):
        name = line.split("#", 1)[0].strip()
        if not name:
            continue
        index = by_name.get(name, by_stem.get(name))
        if index is None:
            raise DataError(f"{path}, line {number}: image {name!r} is not in the images folder")
        if index in chosen:
            raise DataError(f"{path}, line {number}: image {name!r} is named twice")
        chosen.append(index)
    return chosen


def scan_folder(images: str | Path, masks: str | Path | None = None, sizes: str | Path | None = None,
                val_list: str | Path | None = None) -> FolderScan:
    """Read and check everything (see the module docstring) before any preparation work."""
    image_files = _list(Path(images), "images")
    kinds = {_kind(p) for p in image_files}
    if len(kinds) > 1:
        raise DataError(f"{images}: mixes 2D images and NIfTI volumes; use one kind per folder")
    kind = kinds.pop()
    stems = [_stem(p) for p in image_files]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise DataError(f"{images}: several images share the stem(s) {dup[:5]}; stems must be unique")
    by_name = {p.name: i for i, p in enumerate(image_files)}
    by_stem = {s: i for i, s in enumerate(stems)}
    mask_files: dict[int, Path] = {}
    if masks is not None:
        for path in _list(Path(masks), "masks"):
            index = by_stem.get(_stem(path))
            if index is None:
                raise DataError(f"{path}: mask without an image of the same stem in {images}")
            mask_files[index] = path
    csv_sizes = _read_sizes_csv(Path(sizes), by_name, by_stem) if sizes is not None else {}
    val = read_name_list(val_list, by_name, by_stem, "validation list") if val_list is not None else []
    arrays = [read_image_file(p) for p in image_files]
    if kind == "nifti":
        for path, arr in zip(image_files, arrays):
            if arr.ndim != 3:
                raise DataError(f"{path}: expected a 3D volume, got shape {arr.shape}")
    else:
        for path, arr in zip(image_files, arrays):
            if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3):
                raise DataError(f"{path}: expected a grey (H, W) or RGB (H, W, 3) image, got shape {arr.shape}")
    mask_arrays: dict[int, np.ndarray] = {}
    for index, path in sorted(mask_files.items()):
        raw = read_image_file(path)
        spatial = arrays[index].shape[:3] if kind == "nifti" else arrays[index].shape[:2]
        if raw.ndim == 3 and kind == "image" and raw.shape[-1] == 3:
            raw = raw.max(axis=-1)  # an RGB mask: any non-zero channel is foreground
        if raw.shape != spatial:
            raise DataError(
                f"{path}: mask shape {raw.shape} does not match image shape {spatial} of {image_files[index].name}"
            )
        mask_arrays[index] = as_label_array(np.asarray(raw, dtype=np.float64), path) > 0
    affines = [nifti_affine(p) for p in image_files] if kind == "nifti" else None
    return FolderScan(kind, [p.name for p in image_files], arrays, mask_arrays, csv_sizes, val, affines)


def _as_channels(arr: np.ndarray, kind: str, channels: int) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float32)
    if kind == "nifti" or arr.ndim == 2:
        arr = arr[None]
        if channels == 3:
            arr = np.repeat(arr, 3, axis=0)
        return arr
    return np.moveaxis(arr, -1, 0)


def _zscore(x: np.ndarray) -> np.ndarray:
    std = float(x.std())
    return ((x - float(x.mean())) / (std if std > 0 else 1.0)).astype(np.float32)


def working_shape(spatial: Sequence[tuple[int, ...]], fit: str, max_side: int | None) -> tuple[int, ...]:
    """The largest extent per axis, scaled down (``fit="resize"``) so its longest side is <= ``max_side``.

    >>> working_shape([(572, 765), (500, 700)], "resize", 256)
    (191, 256)
    >>> working_shape([(572, 765)], "pad", 256)
    (572, 765)
    """
    dims = len(spatial[0])
    shape = tuple(int(max(s[d] for s in spatial)) for d in range(dims))
    if fit == "resize" and max_side is not None and max(shape) > max_side:
        factor = max_side / max(shape)
        shape = tuple(max(1, round(n * factor)) for n in shape)
    return shape


def _check_splits(fractions: Sequence[float], splits: Sequence[str]) -> tuple[list[float], tuple[str, ...]]:
    splits = tuple(splits)
    if not splits or splits[0] != "train" or "val" not in splits or set(splits) - set(SPLIT_NAMES):
        raise ValueError(f"splits: expected ('train', 'val') or ('train', 'val', 'test'), got {splits}")
    try:
        fractions = [float(f) for f in fractions]
    except (TypeError, ValueError):
        raise ValueError(f"fractions: expected numbers, got {fractions!r}") from None
    if len(fractions) != len(splits):
        raise ValueError(f"fractions: expected {len(splits)} numbers ({', '.join(splits)}), got {len(fractions)}")
    if any(not math.isfinite(f) or f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions: expected numbers >= 0 summing to 1, got {fractions}")
    if fractions[0] <= 0:
        raise ValueError(f"fractions: the training fraction must be > 0, got {fractions}")
    return fractions, splits


def build_folder(
    images: str | Path, masks: str | Path | None = None, sizes: str | Path | None = None,
    shape: Sequence[int] | None = None, fit: str = "resize", seed: int = 0,
    fractions: Sequence[float] = PAPER1_FRACTIONS, splits: Sequence[str] = SPLIT_NAMES,
    val_list: str | Path | None = None, max_side: int | None = DEFAULT_MAX_SIDE,
) -> PreparedData:
    """Prepare a folder in memory (see the module docstring).

    Args:
        images, masks, sizes: the images folder, the masks folder and the sizes CSV.
        shape: working shape (H, W) or (D, H, W); None: :func:`working_shape`.
        fit: ``"resize"`` (default) or ``"pad"`` (centre crop/pad).
        seed: split seed.
        fractions: one fraction per split name, summing to 1.
        splits: ``("train", "val", "test")`` or ``("train", "val")`` (no test split).
        val_list: text file of image names that go to validation.
        max_side: cap on the longest side of the default working shape (resize only; None: no cap).
    """
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    fractions, splits = _check_splits(fractions, splits)
    if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1):
        raise ValueError(f"max_side: expected a positive int or None, got {max_side!r}")
    scan = scan_folder(images, masks, sizes, val_list)
    dims = 3 if scan.kind == "nifti" else 2
    spatial = [a.shape[:dims] for a in scan.images]
    if shape is None:
        shape = working_shape(spatial, fit, max_side)
    shape = tuple(int(s) for s in shape)
    if len(shape) != dims or min(shape) < 1:
        raise ValueError(f"shape must be {dims} positive ints for {scan.kind} data, got {shape}")
    channels = 3 if any(a.ndim == 3 for a in scan.images) and dims == 2 else 1
    n = len(scan.images)
    out_images = np.zeros((n, channels) + shape, np.float32)
    out_masks = np.zeros((n,) + shape, np.uint8)
    csv_size = np.full(n, np.nan, np.float32)
    scales = np.ones(n, np.float32)
    for i, arr in enumerate(scan.images):
        img = _zscore(_as_channels(arr, scan.kind, channels))
        mask = scan.masks.get(i)
        if fit == "pad":
            img = center_crop_or_pad(img, shape, fill=float(img.min()))
            mask = None if mask is None else center_crop_or_pad(mask.astype(np.uint8), shape)
        else:
            img = resize(img, shape, order=1)
            mask = None if mask is None else resize(mask.astype(np.uint8), shape, order=0)
            scales[i] = float(np.prod([t / s for t, s in zip(shape, spatial[i])]) ** (1 / dims))
        out_images[i] = img
        if mask is not None:
            out_masks[i] = mask
        if i in scan.csv_sizes:
            csv_size[i] = scan.csv_sizes[i] * scales[i]
    has_mask = np.zeros(n, bool)
    has_mask[list(scan.masks)] = True
    size = csv_size.copy()
    if has_mask.any():
        size[has_mask] = object_sizes(out_masks[has_mask])
    area = np.where(has_mask, areas(out_masks), np.nan).astype(np.float32)
    names = np.array(scan.names)
    fixed = np.full(n, "", dtype=object)
    fixed[scan.val] = "val"
    extra = {"areas": area, "size_scale": scales, "source_shape": np.array(spatial, np.int64)}
    if scan.affines is not None:
        extra["source_affine"] = np.stack(scan.affines)
        extra["affine"] = np.stack([fitted_affine(a, s, shape, fit) for a, s in zip(scan.affines, spatial)])
    return PreparedData(
        images=out_images, masks=out_masks, has_mask=has_mask, sizes=size,
        ids=names, sources=names, slices=np.full(n, -1, np.int64), volumes=names,  # the file name: what a user looks for
        splits=split_by_masks(has_mask, fractions, splits, seed, fixed=fixed.astype(str)),
        extra=extra,
    )


def prepare_folder(
    images: str | Path, out: str | Path, masks: str | Path | None = None, sizes: str | Path | None = None,
    shape: Sequence[int] | None = None, fit: str = "resize", seed: int = 0,
    fractions: Sequence[float] = PAPER1_FRACTIONS, splits: Sequence[str] = SPLIT_NAMES,
    val_list: str | Path | None = None, max_side: int | None = DEFAULT_MAX_SIDE,
) -> tuple[PreparedData, bool]:
    """Prepare (or reuse) a folder of images / volumes in ``out``; returns ``(data, reused)``.

    Arguments as in :func:`build_folder`.

    The cache key includes the files' names, sizes and modification times, so edited inputs
    rebuild.

    Example (not run as a test: it needs your folders of images, masks and sizes):

    >>> data, reused = prepare_folder("my/images", "prepared/mine", masks="my/masks", sizes="my/sizes.csv")  # doctest: +SKIP
    """
    def stamp(folder):
        if folder is None:
            return None
        folder = Path(folder)
        files = sorted(folder.iterdir()) if folder.is_dir() else [folder]
        return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files if p.is_file()]

    params = {
        "dataset": "folder", "images": str(Path(images).resolve()),
        "masks": None if masks is None else str(Path(masks).resolve()),
        "sizes": None if sizes is None else str(Path(sizes).resolve()),
        "shape": None if shape is None else list(shape), "fit": fit, "seed": seed, "fractions": list(fractions),
        "splits": list(splits), "max_side": max_side, "split_rule": "masks stratified",
        "val_list": None if val_list is None else str(Path(val_list).resolve()),
        "normalisation": "per-image z-score", "nifti_affine": "kept",
        "inputs": [stamp(images), stamp(masks), stamp(sizes), stamp(val_list)],
    }
    return cached(out, params, lambda: build_folder(images, masks, sizes, shape, fit, seed, fractions, splits,
                                                    val_list, max_side))
