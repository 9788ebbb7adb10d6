"""One Table 1 over the experiment's output folders (one per protocol), with each weak row's ratio to full supervision.

Usage:
    python scripts/constrained_tables.py --out results/constrained/current/table1.csv \
        results/constrained/current/ours results/constrained/current/authors

Reads ``table1.csv`` of each folder (as ``sizeseg experiment constrained`` writes it) and writes one CSV with
the columns ``method,protocol,dsc_3d,dsc_3d_sd,dsc_pooled,dsc_pooled_sd,dsc_pooled_soft,dsc_pooled_soft_sd,seeds``,
``ratio_to_full_3d`` and ``ratio_to_full_pooled_soft`` (a row's mean over the full-supervision row's mean of the same
protocol), ``paper_dsc`` and the label.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

COLUMNS = ("method", "protocol", "dsc_3d", "dsc_3d_sd", "dsc_pooled", "dsc_pooled_sd", "dsc_pooled_soft",
           "dsc_pooled_soft_sd", "seeds", "ratio_to_full_3d", "ratio_to_full_pooled_soft", "paper_dsc", "label")


def combined_rows(folders: list[Path]) -> list[dict]:
    """The rows of every folder's ``table1.csv`` with the ratios to that folder's full supervision."""
    rows = []
    for folder in folders:
        table = folder / "table1.csv"
        if not table.is_file():
            raise FileNotFoundError(f"{folder}: no table1.csv (expected an output folder of sizeseg experiment constrained)")
        with open(table, newline="") as fh:
            part = list(csv.DictReader(fh))
        full = next((r for r in part if r["method"] == "full"), None)
        for r in part:
            out = {k: r.get(k, "") for k in COLUMNS}
            for score, key in (("dsc_3d", "ratio_to_full_3d"), ("dsc_pooled_soft", "ratio_to_full_pooled_soft")):
                out[key] = f"{float(r[score]) / float(full[score]):.3f}" if full and float(full[score]) > 0 else ""
            rows.append(out)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="output folders of sizeseg experiment constrained")
    parser.add_argument("--out", required=True, type=Path, help="the combined CSV to write")
    args = parser.parse_args(argv)
    try:
        rows = combined_rows(args.folders)
    except FileNotFoundError as err:
        parser.exit(2, f"error: {err}\n")
    from sizeseg.io_utils import write_csv

    write_csv(args.out, rows, list(COLUMNS))
    print(f"{len(rows)} rows from {len(args.folders)} folders -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
