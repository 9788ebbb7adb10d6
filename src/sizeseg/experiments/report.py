"""Report helpers shared by the experiments: markdown tables, mean ± sd, atomic PNG plots.

CSV and JSON writing live in :mod:`sizeseg.io_utils` (re-exported here for the experiments).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from sizeseg.io_utils import atomic_path, fmt, read_csv, write_csv, write_json

__all__ = ["fmt", "markdown_table", "mean_sd", "new_figure", "read_csv", "save_figure", "write_csv",
           "write_json"]


def mean_sd(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (0 for one value) and count of the finite values.

    >>> mean_sd([1.0, 3.0, float("nan")])
    (2.0, 1.4142135623730951, 2)
    """
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not xs:
        return float("nan"), float("nan"), 0
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return mean, sd, len(xs)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """A GitHub markdown table of ``rows`` (floats with 4 significant digits).

    >>> print(markdown_table([{"a": 1, "b": 0.123456}], ["a", "b"]))
    | a | b |
    |---|---|
    | 1 | 0.1235 |
    """
    headers = list(headers or columns)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def new_figure(ncols: int = 1, width: float = 4.5, height: float = 3.4):
    """A figure with ``ncols`` axes on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])
