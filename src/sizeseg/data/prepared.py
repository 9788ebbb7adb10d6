"""Prepared data sets: arrays in memory, cached on disk as ``data.npz`` + ``manifest.csv`` + ``params.json``.

Every preparation (hippocampus, ACDC, image folders, the synthetic set) produces a
:class:`PreparedData`. On disk a prepared folder holds

- ``data.npz``: ``images`` float32 (N, C, *spatial), ``masks`` uint8 (N, *spatial) in {0, 1}
  (zeros where ``has_mask`` is false), ``has_mask`` bool (N,), ``sizes`` float32 (N,) (NaN where
  unknown) and optional extra per-item arrays (e.g. ``areas``, ``scribbles``);
- ``manifest.csv``: one row per item: ``index, id, source, slice, volume, split, size, has_mask``
  (plus ``area`` where known);
- ``params.json``: the preparation parameters. It is written last, so its presence marks a
  complete preparation; re-running with equal parameters reuses the folder, different parameters
  rebuild it. Every file is written atomically (temporary file + rename).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from sizeseg.data.errors import DataError
from sizeseg.io_utils import atomic_path, atomic_write_text

FORMAT_VERSION = 1
DATA_FILE = "data.npz"
MANIFEST_FILE = "manifest.csv"
PARAMS_FILE = "params.json"
#: the source files a cached preparation was built from (see :func:`cached`)
INPUTS_FILE = "inputs.json"
_CORE = ("images", "masks", "has_mask", "sizes")


@dataclass
class PreparedData:
    """Items of one prepared data set (all arrays share the first axis N).

    Attributes:
        images: float32 (N, C, *spatial), normalised network input.
        masks: uint8 (N, *spatial) in {0, 1}; zeros where ``has_mask`` is false.
        has_mask: bool (N,).
        sizes: float32 (N,), object size (``sizeseg.object_size``); NaN where unknown.
        ids: str (N,), stable identifier: ``source:slice`` for slices of volumes, the file name for
            whole images and volumes (``prepare folder``).
        sources: str (N,), source file name.
        slices: int (N,), slice index in the source volume (-1 for 2D sources).
        volumes: str (N,), volume / subject key used for splitting and per-volume metrics.
        splits: str (N,), ``train`` / ``val`` / ``test`` (or ``""`` before splitting).
        extra: further per-item arrays (e.g. ``areas`` float32 (N,), ``scribbles`` int8).
        params: the preparation parameters (as in ``params.json``).
    """

    images: np.ndarray
    masks: np.ndarray
    has_mask: np.ndarray
    sizes: np.ndarray
    ids: np.ndarray
    sources: np.ndarray
    slices: np.ndarray
    volumes: np.ndarray
    splits: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim < 3:
            raise ValueError(f"images must be (N, C, *spatial), got shape {self.images.shape}")
        if self.masks.shape != (n,) + self.images.shape[2:]:
            raise ValueError(
                f"masks must have shape {(n,) + self.images.shape[2:]}, got {self.masks.shape}"
            )
        for name in ("has_mask", "sizes", "ids", "sources", "slices", "volumes", "splits"):
            value = getattr(self, name)
            if len(value) != n:
                raise ValueError(f"{name} must have {n} entries, got {len(value)}")
        for name, value in self.extra.items():
            if len(value) != n:
                raise ValueError(f"extra array {name!r} must have {n} entries, got {len(value)}")

    def __len__(self) -> int:
        return len(self.images)

    def check_values(self, where: str | Path | None = None) -> None:
        """Raise a DataError naming the first item (and its source file) whose values cannot be learned from.

        Images must be finite (one NaN voxel turns a z-scored image, and then a network, into
        NaN). Sizes must be NaN (unknown) or finite, >= 0 and at most the largest object size the
        item's image can hold, ``min(spatial shape) + 1`` (an object filling the image; a size
        beyond it is a unit mistake or an image cropped below its object). ``where`` (e.g. the
        prepared folder) prefixes the message.

        Example:
            >>> from sizeseg.data.synthetic import synthetic_data
            >>> data = synthetic_data(10)
            >>> data.sizes[3] = 1e30
            >>> data.check_values()  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            sizeseg.data.errors.DataError: synthetic...: size 1e+30 of item ...; an image of shape (48, 32) holds objects of size <= 33
        """
        prefix = f"{where}: " if where else ""
        for start in range(0, len(self), 256):  # in chunks: a whole-array mask would double the memory
            chunk = self.images[start:start + 256].reshape(min(256, len(self) - start), -1)
            finite = np.isfinite(chunk).all(axis=1)
            if not finite.all():
                i = start + int(np.flatnonzero(~finite)[0])
                count = int((~np.isfinite(self.images[i])).sum())
                raise DataError(f"{prefix}{self.sources[i]}: image of item {str(self.ids[i])!r} holds {count} NaN or "
                                "infinite value(s); replace them in the file (e.g. by the background value) or leave it out")
        limit = min(self.spatial_shape) + 1
        sizes = np.asarray(self.sizes, np.float64)
        bad = ~np.isnan(sizes) & ~((sizes >= 0) & (sizes <= limit))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{prefix}{self.sources[i]}: size {sizes[i]:g} of item {str(self.ids[i])!r}; an image of shape "
                            f"{self.spatial_shape} holds objects of size <= {limit}")

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[2:])

    def take(self, index: np.ndarray) -> "PreparedData":
        """The items at ``index`` (integer or boolean array), as a new :class:`PreparedData`."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return PreparedData(
            images=self.images[index], masks=self.masks[index], has_mask=self.has_mask[index],
            sizes=self.sizes[index], ids=self.ids[index], sources=self.sources[index],
            slices=self.slices[index], volumes=self.volumes[index], splits=self.splits[index],
            extra={k: v[index] for k, v in self.extra.items()}, params=dict(self.params),
        )

    def split(self, name: str) -> "PreparedData":
        """The items of split ``name`` (``train``, ``val`` or ``test``)."""
        known = sorted(set(self.splits.tolist()))
        if name not in known:
            raise ValueError(f"split {name!r} not in this data set; it has {known}")
        return self.take(self.splits == name)

    def manifest_rows(self) -> list[dict]:
        areas = self.extra.get("areas")
        rows = []
        for i in range(len(self)):
            row = {
                "index": i, "id": self.ids[i], "source": self.sources[i], "slice": int(self.slices[i]),
                "volume": self.volumes[i], "split": self.splits[i],
                "size": "" if np.isnan(self.sizes[i]) else f"{float(self.sizes[i]):g}",
                "has_mask": int(bool(self.has_mask[i])),
            }
            if areas is not None:
                row["area"] = f"{float(areas[i]):g}"
            rows.append(row)
        return rows


def _manifest_text(data: PreparedData) -> str:
    rows = data.manifest_rows()
    fields = list(rows[0]) if rows else ["index", "id", "source", "slice", "volume", "split", "size", "has_mask"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def save_prepared(data: PreparedData, out: str | Path) -> Path:
    """Write ``data`` to folder ``out`` (atomically, ``params.json`` last)."""
    data.check_values()  # before anything is written
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / PARAMS_FILE).unlink(missing_ok=True)  # an interrupted rebuild must not look complete
    arrays = {
        "images": data.images.astype(np.float32, copy=False),
        "masks": data.masks.astype(np.uint8, copy=False),
        "has_mask": data.has_mask.astype(bool, copy=False),
        "sizes": data.sizes.astype(np.float32, copy=False),
        "ids": data.ids.astype(str), "sources": data.sources.astype(str),
        "slices": data.slices.astype(np.int64), "volumes": data.volumes.astype(str),
        "splits": data.splits.astype(str),
    }
    for key, value in data.extra.items():
        arrays[f"extra_{key}"] = value
    with atomic_path(out / DATA_FILE) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    atomic_write_text(out / MANIFEST_FILE, _manifest_text(data))
    atomic_write_text(out / PARAMS_FILE, json.dumps(_jsonable(data.params), indent=2, sort_keys=True) + "\n")
    return out


def load_prepared(folder: str | Path) -> PreparedData:
    """Load a folder written by :func:`save_prepared` (e.g. by ``sizeseg prepare ...``)."""
    folder = Path(folder)
    for name in (PARAMS_FILE, DATA_FILE):
        if not (folder / name).is_file():
            raise DataError(
                f"{folder}: not a prepared data folder ({name} missing); run `sizeseg prepare ...` first"
            )
    try:
        params = json.loads((folder / PARAMS_FILE).read_text())
        with np.load(folder / DATA_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise DataError(f"{folder}: cannot read the prepared data, {DATA_FILE} is corrupt or truncated "
                        f"({' '.join(str(err).split()) or type(err).__name__}); prepare it again") from None
    missing = [k for k in _CORE if k not in arrays]
    if missing:
        raise DataError(f"{folder / DATA_FILE}: arrays {missing} missing")
    extra = {k[len("extra_"):]: v for k, v in arrays.items() if k.startswith("extra_")}
    data = PreparedData(
        images=arrays["images"], masks=arrays["masks"], has_mask=arrays["has_mask"],
        sizes=arrays["sizes"], ids=arrays["ids"], sources=arrays["sources"],
        slices=arrays["slices"], volumes=arrays["volumes"], splits=arrays["splits"],
        extra=extra, params=params,
    )
    data.check_values(folder / DATA_FILE)
    return data


def _jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def stamp_files(folder: str | Path) -> list[list]:
    """``[relative path, bytes, mtime_ns]`` of every file under ``folder`` (sorted): what a cache depends on.

    >>> import tempfile, os
    >>> root = tempfile.mkdtemp(); _ = open(os.path.join(root, "a.nii.gz"), "w").write("x")
    >>> [entry[:2] for entry in stamp_files(root)]
    [['a.nii.gz', 1]]
    """
    folder = Path(folder)
    entries = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            stat = path.stat()
            entries.append([path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns])
    return entries


def cached(out: str | Path, params: Mapping, build: Callable[[], PreparedData]) -> tuple[PreparedData, bool]:
    """Reuse the prepared folder ``out`` when its ``params.json`` equals ``params``; else build it.

    Returns ``(data, reused)``. ``params`` must be JSON-serialisable (paths become strings); a
    ``format_version`` key is added so that a change of the on-disk format forces a rebuild.
    When ``params["data"]`` is a folder, its files are stamped (:func:`stamp_files`) into
    ``out/inputs.json``: cases added to or edited in the source folder rebuild the cache. A folder
    prepared before stamps existed is trusted once and stamped. Temporary files a killed
    preparation left in ``out`` are removed.
    """
    out = Path(out)
    wanted = _jsonable(dict(params, format_version=FORMAT_VERSION))
    params_file = out / PARAMS_FILE
    source = Path(str(params.get("data", "")))
    stamp = stamp_files(source) if params.get("data") and source.is_dir() else None
    if out.is_dir():
        for stale in out.glob(".*.part"):  # a killed atomic write's leftovers
            stale.unlink(missing_ok=True)
    if params_file.is_file() and (out / DATA_FILE).is_file():
        try:
            have = json.loads(params_file.read_text())
            recorded = json.loads((out / INPUTS_FILE).read_text()) if (out / INPUTS_FILE).is_file() else None
        except ValueError:
            have = recorded = None
        if have == wanted and (stamp is None or recorded in (None, stamp)):
            data = load_prepared(out)
            if stamp is not None and recorded is None:
                atomic_write_text(out / INPUTS_FILE, json.dumps(stamp) + "\n")
            return data, True
    data = build()
    data.params = wanted
    save_prepared(data, out)
    if stamp is not None:
        atomic_write_text(out / INPUTS_FILE, json.dumps(stamp) + "\n")
    return data, False
