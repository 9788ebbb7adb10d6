"""Atomic writes (every output goes to a temporary file beside its target, then is renamed), and the
CSV / JSON files the commands and experiments write."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = ".part") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces ``target``.

    Nothing half-written is left behind: on an exception the temporary file is removed.
    ``suffix`` ends the temporary name, for writers that pick the format from it
    (e.g. ``".part.nii.gz"`` for nibabel).

    >>> with atomic_path("/tmp/sizeseg_doctest.txt") as tmp:
    ...     _ = tmp.write_text("done")
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if tmp.exists():
            # mkstemp creates 0600 files; give the output the permissions a plain open() would.
            os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(target: str | os.PathLike, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
              float_format: str | None = None) -> Path:
    """Write ``rows`` as CSV (columns: ``columns`` or the union of the rows' keys in order), atomically.

    Floats are written by :func:`fmt`, or with ``format(value, float_format)`` (e.g. ``".4f"``).
    """
    as_text = fmt if float_format is None else (lambda value: format(value, float_format))
    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: as_text(row[k]) if isinstance(row.get(k), float) else row.get(k, "") for k in columns})
    return atomic_write_text(path, buf.getvalue())


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header, as dicts of strings."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write_json(path: str | Path, value: Any) -> Path:
    """Write ``value`` as indented JSON with sorted keys (numpy scalars as floats), atomically.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = write_json(f"{folder}/a.json", {"b": 1}); _ = write_csv(f"{folder}/a.csv", [{"x": 0.5, "y": "z"}])
    >>> read_csv(f"{folder}/a.csv")
    [{'x': '0.5', 'y': 'z'}]
    """
    return atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True, default=float) + "\n")


def fmt(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits; '' for None, 'nan' for NaN."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}g}"
    return str(value)
