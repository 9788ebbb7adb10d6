"""Several classes and several objects per image: the size lists of prepared data and their CSV.

**In memory.** A :class:`~sizeseg.data.prepared.PreparedData` carries per-class and per-object
sizes in ``extra["object_sizes"]``: float32 (N, C, K) (or (N, K) for one class), entry
``[i, c, :]`` the sizes of the objects of class ``c`` in item ``i``, NaN-padded to the longest
list K of the data set. An all-NaN list is "not annotated"; ``[0, NaN, ...]`` is "annotated, no
object". One size per class is K = 1. With C > 1 the class names are ``params["classes"]`` and the
masks are label maps (0 background, ``c + 1`` class ``c``). Batches stack these fixed-length
lists, so the NaN padding is the batch's mask of valid entries (``~isnan``); no ragged collation.

**On disk** (:func:`read_size_table`), a CSV with a header, one of

- ``image,size``: one size per image (one class, one object);
- ``image,LV,RV,MYO``: one column per class; a cell is one size, a ``;``-separated list of object
  sizes of that class, or empty (not annotated);
- ``image,sizes``: one class, a ``;``-separated list of object sizes per image (``""`` or ``-``:
  annotated, no object);
- ``image,object_size``: one class, one row per object (an image may repeat).

``image`` names an item by its id, its source file name or the source's stem. Every error names
the file, the row (1 = the header) and the column, before any training starts.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "sizes.csv")
    >>> _ = open(path, "w").write("image,sizes\\na.png,6;4\\nb.png,2\\n")
    >>> table = read_size_table(path)
    >>> table.classes, table.names, table.sizes[:, 0].tolist()
    (['object'], ['a.png', 'b.png'], [[6.0, 4.0], [2.0, nan]])
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from sizeseg.data.errors import DataError

#: header columns naming the item
IMAGE_COLUMNS = ("image", "name", "file", "filename", "id")
#: the one-class formats, by their second header column
ONE_CLASS = {"size": "one", "sizes": "list", "object_size": "rows"}
NO_OBJECT = ("", "-")


@dataclass
class SizeTable:
    """A read size CSV: ``sizes`` float32 (n, C, K) NaN-padded, one row per distinct image name."""

    path: Path
    names: list[str]
    classes: list[str]
    sizes: np.ndarray
    rows: list[int]  # the CSV row of each name (its first, for one row per object)


def parse_size(raw: str, where: str, name: str) -> float:
    """One size cell of a CSV as a float >= 0; otherwise a DataError ``"<where>: size <raw> of <name>
    is not a number"`` (or ``is not a finite number``, ``is negative``), ``where`` naming the file,
    row and column. Every size CSV reader of sizeseg parses its cells here.

    >>> parse_size(" 6.5", "sizes.csv, row 2, column 'size'", "a.png")
    6.5
    """
    raw = raw.strip()
    try:
        value = float(raw)
    except ValueError:
        raise DataError(f"{where}: size {raw!r} of {name!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: size {raw!r} of {name!r} is not a finite number")
    if value < 0:
        raise DataError(f"{where}: size {value:g} of {name!r} is negative")
    return value


def _cell(path: Path, line: int, column: str, raw: str, lists: bool, name: str) -> list[float] | None:
    """The sizes of one cell: None (empty: not annotated), [] (``-``: no object) or a list."""
    raw = raw.strip()
    if raw == "":
        return [] if lists and column in ("sizes",) else None
    if raw == "-":
        return []
    parts = [p.strip() for p in raw.split(";")]
    if not lists and len(parts) > 1:
        raise DataError(f"{path}, row {line}, column {column!r}: {len(parts)} sizes {raw!r}, expected one")
    return [parse_size(p, f"{path}, row {line}, column {column!r}", name) for p in parts if p != ""]


def read_size_table(path: str | Path, classes: Sequence[str] | None = None) -> SizeTable:
    """Read a size CSV in one of the formats of the module doc; DataError naming file, row and column.

    Args:
        path: the CSV (a UTF-8 BOM, as Excel writes, is accepted).
        classes: the class columns to read, in this order (``image,LV,RV,MYO`` format); a class
            missing from the header is an error. None: every column after ``image``.

    Returns:
        A :class:`SizeTable`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: sizes CSV not found")
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: unreadable CSV ({err})") from None
    numbered = [(n, r) for n, r in enumerate(rows, start=1) if r and any(c.strip() for c in r)]
    if not numbered:
        raise DataError(f"{path}: empty sizes CSV; expected a header such as 'image,size' or 'image,LV,RV,MYO'")
    head_line, header = numbered[0]
    header = [h.strip() for h in header]
    if len(header) < 2 or header[0].lower() not in IMAGE_COLUMNS:
        raise DataError(f"{path}, row {head_line}: expected a header 'image,size', 'image,sizes', "
                        f"'image,object_size' or 'image,<class>,<class>,...', got {','.join(header)!r}")
    kind = ONE_CLASS.get(header[1].lower()) if len(header) == 2 and classes is None else None
    columns = header[1:]
    if classes is not None:
        missing = [c for c in classes if c not in columns]
        if missing:
            raise DataError(f"{path}, row {head_line}: class column {missing[0]!r} missing; the header has "
                            f"{', '.join(repr(c) for c in columns)}")
        wanted = [columns.index(c) + 1 for c in classes]
    else:
        dup = sorted({c for c in columns if columns.count(c) > 1})
        if dup:
            raise DataError(f"{path}, row {head_line}: column {dup[0]!r} named twice")
        wanted = list(range(1, len(header)))
    class_names = ["object"] if kind else [header[k] for k in wanted]
    lists: dict[str, list[list[float] | None]] = {}
    first_row: dict[str, int] = {}
    for line, row in numbered[1:]:
        if len(row) != len(header):
            raise DataError(f"{path}, row {line}: expected {len(header)} columns ({','.join(header)}), "
                            f"got {len(row)}")
        name = row[0].strip()
        if not name:
            raise DataError(f"{path}, row {line}, column {header[0]!r}: empty image name")
        if kind == "rows":
            value = _cell(path, line, header[1], row[1], lists=False, name=name)
            entry = lists.setdefault(name, [[]])
            first_row.setdefault(name, line)
            if value:
                entry[0].append(value[0])
            continue
        if name in lists:
            raise DataError(f"{path}, row {line}, column {header[0]!r}: image {name!r} is named twice "
                            f"(first in row {first_row[name]})")
        first_row[name] = line
        lists[name] = [_cell(path, line, header[k], row[k], lists=kind != "one", name=name) for k in wanted]
    if not lists:
        raise DataError(f"{path}: no size rows after the header")
    width = max([len(x) for entry in lists.values() for x in entry if x] + [1])
    sizes = np.full((len(lists), len(class_names), width), np.nan, np.float32)
    for i, entry in enumerate(lists.values()):
        for c, values in enumerate(entry):
            if values is None:
                continue
            values = sorted(values, reverse=True) or [0.0]
            sizes[i, c, : len(values)] = values
    return SizeTable(path, list(lists), class_names, sizes, [first_row[n] for n in lists])


def object_counts(sizes: np.ndarray) -> np.ndarray:
    """Annotated objects per list (..., K) → int (...): the sizes > 0 (NaN pads, 0 says none).

    >>> object_counts(np.array([[6.0, 4.0, np.nan], [0.0, np.nan, np.nan]])).tolist()
    [2, 0]
    """
    return (np.nan_to_num(np.asarray(sizes, np.float64), nan=0.0) > 0).sum(-1)


def check_size_table(table: SizeTable, spatial_shape: Sequence[int], length: int | None = None,
                     connectivity: int | None = None) -> None:
    """Refuse sizes an image of ``spatial_shape`` cannot hold, and lists of the wrong length.

    Args:
        table: from :func:`read_size_table`.
        spatial_shape: the prepared items' shape.
        length: every annotated list must hold exactly this many sizes (e.g. 1: one size per class
            for the single-object SizeLoss); None: any length.
        connectivity: what makes one object (None: 8 in 2D, 26 in 3D); sets how many fit.

    Raises a DataError naming the file, row and column of the first offence.
    """
    from sizeseg.losses.object_size_loss import max_objects
    from sizeseg.ops.components import check_connectivity

    spatial = tuple(int(s) for s in spatial_shape)
    fit = max_objects(spatial, check_connectivity(connectivity, len(spatial)))
    largest = min(spatial) + 1
    for i, name in enumerate(table.names):
        for c, column in enumerate(table.classes):
            values = table.sizes[i, c]
            if np.isnan(values).all():
                continue
            column = column if column != "object" else "sizes"
            where = f"{table.path}, row {table.rows[i]}, column {column!r}"
            count = int(object_counts(values))
            if count > fit:
                raise DataError(f"{where}: {count} objects for {name!r}, more than the {fit} separate objects "
                                f"that fit a {spatial} image")
            big = np.nanmax(values)
            if big > largest:
                raise DataError(f"{where}: size {big:g} of {name!r}; an image of shape {spatial} holds objects "
                                f"of size <= {largest}")
            listed = int((~np.isnan(values)).sum())  # "no object" ([0]) is one entry
            if length is not None and listed != length:
                raise DataError(f"{where}: {listed} size(s) for {name!r}, expected {length} (every list must "
                                f"hold {length}{'; use --size-loss objects for lists of object sizes' if length == 1 else ''})")


def n_classes(data) -> int:
    """C of prepared data: the class axis of ``extra["object_sizes"]`` (N, C, K), else its
    ``params["classes"]``, else 1."""
    lists = data.extra.get("object_sizes")
    if lists is not None and np.asarray(lists).ndim == 3:
        return int(np.asarray(lists).shape[1])
    return max(1, len(data.params.get("classes") or []))


def size_lists(data) -> np.ndarray | None:
    """``extra["object_sizes"]`` as float32 (N, C, K), or None when the data has no lists."""
    lists = data.extra.get("object_sizes")
    if lists is None:
        return None
    lists = np.asarray(lists, np.float32)
    return lists[:, None] if lists.ndim == 2 else lists


def attach_size_table(data, table: SizeTable, length: int | None = None, connectivity: int | None = None):
    """A copy of ``data`` whose ``extra["object_sizes"]`` comes from ``table`` (items it does not name
    are unannotated) and whose ``sizes`` is each item's largest listed size (NaN if none).

    ``table.names`` match an item's id, source file name or source stem; a name matching no item is
    a DataError naming its row. The table is checked first (:func:`check_size_table`). With C > 1
    the class names go to ``params["classes"]``.
    """
    import dataclasses

    check_size_table(table, data.spatial_shape, length, connectivity)
    index: dict[str, list[int]] = {}
    for i, (item, source) in enumerate(zip(data.ids, data.sources)):
        source = str(source)
        for key in {str(item), source, Path(source).name, Path(source).name.split(".")[0]}:
            index.setdefault(key, []).append(i)
    n, (_, c, k) = len(data), table.sizes.shape
    lists = np.full((n, c, k), np.nan, np.float32)
    for row, name in enumerate(table.names):
        items = index.get(name)
        if not items:
            raise DataError(f"{table.path}, row {table.rows[row]}, column 'image': {name!r} names no item of the "
                            "prepared data (by id, source file or stem)")
        lists[items] = table.sizes[row]
    flat = lists.reshape(n, -1)
    largest = np.where(np.isnan(flat).all(axis=1), np.nan,
                       np.where(np.isnan(flat), -np.inf, flat).max(axis=1, initial=-np.inf)).astype(np.float32)
    params = dict(data.params)
    if c > 1:
        params["classes"] = list(table.classes)
    extra = {**data.extra, "object_sizes": lists}
    return dataclasses.replace(data, sizes=largest, extra=extra, params=params)


__all__ = ["SizeTable", "read_size_table", "parse_size", "check_size_table", "attach_size_table", "size_lists", "n_classes",
           "object_counts"]
