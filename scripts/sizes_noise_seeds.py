"""Pool several seeds of ``scripts/sizes_noise.py`` part B and check issue 16's target per seed.

The target, for each method and seed: the thresholded size error E is lower than the start's in
every size band, and no band's IoU falls by more than noise. Noise here is two standard errors of
the band's paired IoU change over its test images (the ``dIoU_se`` column): a fall beyond it counts
as a loss.

    python scripts/sizes_noise_seeds.py runs/sn/seed0 runs/sn/seed1 runs/sn/seed2

Folders with the same name (``runs/a/seed0``, ``runs/b/seed0``) are one seed's runs of different
methods from the same start: their rows are merged, after checking that their starts (and any
method they share) agree.

It prints, in Markdown, the mean over the seeds of E and of the IoU change per band (± the standard
error over the seeds), then one line per method: in how many seeds E fell in every band, and in how
many seeds no band lost IoU beyond noise. ``--out FILE`` also writes the text there.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

START = "start (pre-trained)"


def read_seed(folder: Path) -> dict:
    """{(method, band): row} of part B in ``folder/results.csv``."""
    path = folder / "results.csv"
    if not path.is_file():
        raise ValueError(f"{folder}: expected a sizes_noise output folder with results.csv")
    rows = {(r["method"], r["band"]): r for r in csv.DictReader(open(path, newline="")) if r["part"] == "B"}
    if not any(method == START for method, _ in rows):
        raise ValueError(f"{path}: no part B rows (was it run with --no-network?)")
    return rows


def merge_seed(folders: list[Path]) -> dict:
    """The part B rows of several runs of one seed, merged; ValueError when two runs disagree on a
    row they share (another start, or one method name for two settings)."""
    merged: dict = {}
    owner: dict = {}
    for folder in folders:
        for key, row in read_seed(folder).items():
            if key in merged and any(merged[key][k] != row[k] for k in ("E", "IoU", "dIoU") if k in row):
                what = "start from different networks" if key[0] == START else f"differ on {key[0]!r}"
                raise ValueError(f"{owner[key]} and {folder} {what} (band {key[1]}); pool them separately")
            merged.setdefault(key, row)
            owner.setdefault(key, folder)
    return merged


def bands_of(rows: dict) -> list[str]:
    return [band for method, band in rows if method == START and band != "all"]


def seed_verdict(rows: dict, method: str, bands: list[str], noise_se: float = 2.0) -> tuple[bool, bool]:
    """(E fell in every band, no band's IoU fell by more than ``noise_se`` standard errors)."""
    lower = all(float(rows[(method, b)]["E"]) < float(rows[(START, b)]["E"]) for b in bands)
    kept = all(float(rows[(method, b)]["dIoU"]) >= -noise_se * float(rows[(method, b)]["dIoU_se"]) for b in bands)
    return lower, kept


def mean_se(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))


def pooled_report(seeds: list[dict], names: list[str]) -> str:
    bands = bands_of(seeds[0])
    for name, rows in zip(names, seeds):
        if bands_of(rows) != bands:
            raise ValueError(f"{name}: its size bands {bands_of(rows)} differ from {names[0]}'s {bands}")
    methods = [m for m in dict.fromkeys(method for method, _ in seeds[0])]
    shared = [m for m in methods if all((m, "all") in rows for rows in seeds)]
    columns = bands + ["all"]
    lines = [f"Mean over {len(seeds)} seeds ({', '.join(names)}); ± the standard error over the seeds.", "",
             "| method | " + " | ".join(f"E {b}" for b in columns) + " | " + " | ".join(f"ΔIoU {b}" for b in columns)
             + " |", "|" + "---|" * (1 + 2 * len(columns))]
    for m in shared:
        cells = [f"{mean_se([float(r[(m, b)]['E']) for r in seeds])[0]:.1f}" for b in columns]
        for b in columns:
            mean, se = mean_se([float(r[(m, b)]["dIoU"]) for r in seeds])
            cells.append(f"{mean:+.3f} ± {se:.3f}" if m != START else "")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "Per seed: E below the start's in every band / no band's IoU fell by more than 2 standard errors "
              "(over the band's images) / both:", ""]
    for m in shared:
        if m == START:
            continue
        verdicts = [seed_verdict(rows, m, bands) for rows in seeds]
        lower = sum(v[0] for v in verdicts)
        kept = sum(v[1] for v in verdicts)
        both = sum(v[0] and v[1] for v in verdicts)
        lines.append(f"- {m}: {lower} / {kept} / {both} of {len(seeds)}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="sizes_noise_seeds", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="sizes_noise output folders, one per seed")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    try:
        names = list(dict.fromkeys(folder.name for folder in args.folders))
        seeds = [merge_seed([f for f in args.folders if f.name == name]) for name in names]
        text = pooled_report(seeds, names)
    except ValueError as err:
        sys.stderr.write(f"{parser.prog}: error: {err}\n")
        return 2
    if args.out:
        from sizeseg.io_utils import atomic_write_text

        atomic_write_text(args.out, text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
