"""From our protocol to the authors': the two-bound size penalty and full supervision, one detail added per step.

Usage:
    python scripts/constrained_ablation.py --data ../shared/data/ACDC --out runs/ablation [--steps base,temperature]
        [--seed 0] [--extra "--quick --epochs 1"]

Each step runs ``sizeseg experiment constrained`` on ``size_two_bounds,full`` into ``OUT/<step>`` with the
flags of every step before it plus its own (steps marked "branch" add theirs to the ``split`` step
only, so that the costly settings are measured one at a time). Finished steps are reused. Writes
``OUT/ablation.csv`` and ``OUT/ablation.md``: every DSC of both rows and the weak / full ratio per step.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

#: (step, flags added, what it is, based on): cumulative unless based on another step.
STEPS = (
    ("base", [], "our protocol: cpu profile, T = 1, AdamW betas (0.9, 0.999), dihedral flips, best epoch by 3D DSC", None),
    ("temperature", ["--temperature", "0.1"], "softmax at T = 0.1 in every loss (authors' code)", "base"),
    ("optimiser", ["--betas", "0.5,0.999", "--augment", "none"], "Adam betas (0.5, 0.999), no augmentation (authors' code)",
     "temperature"),
    ("metric", ["--monitor", "dsc_pooled_soft"], "best epoch by the pooled soft DSC (authors' code): the authors' protocol",
     "optimiser"),
    ("slices", ["--slices", "lv"], "only slices holding the LV, training and validation (the authors' MIDL data, inferred)",
     "metric"),
    ("split", ["--split", "frames"], "validation drawn by frame (the authors' later code)", "slices"),
    ("epochs", ["--epochs", "100"], "100 epochs instead of 30 (branch of split)", "split"),
    ("resolution", ["--field", "128", "--resolution", "128"], "the 128x128 native pixels, not halved (branch of split)",
     "split"),
    ("enet", ["--model", "enet"], "the paper's ENet (cpu widths 8/32/64) instead of the U-Net (branch of split)", "split"),
)
SCORES = ("dsc_3d", "dsc_slice_lv", "dsc_pooled", "dsc_pooled_soft")


def step_flags(name: str) -> list[str]:
    """Every flag of step ``name``: its own after those of the steps it is based on."""
    by_name = {s[0]: s for s in STEPS}
    _, flags, _, base = by_name[name]
    return (step_flags(base) if base else []) + list(flags)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the ACDC folder")
    parser.add_argument("--out", required=True, help="output folder: one sub-folder per step")
    parser.add_argument("--steps", default=",".join(s[0] for s in STEPS), help="comma-separated steps (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--extra", default="", help="flags added to every step (e.g. '--quick --epochs 1' for a check)")
    args = parser.parse_args(argv)
    known = [s[0] for s in STEPS]
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in known]
    if unknown:
        parser.error(f"--steps: unknown {unknown}; expected some of {known}")
    from sizeseg.experiments.constrained.cli import main as experiment

    out = Path(args.out)
    rows = []
    for name in steps:
        flags = ["--data", args.data, "--out", str(out / name), "--methods", "size_two_bounds,full", "--no-timing",
                 "--seeds", str(args.seed), "--workers", str(args.workers)] + step_flags(name) + args.extra.split()
        print(f"== {name}: {' '.join(step_flags(name)) or '(no flags)'}", flush=True)
        experiment(flags)
        with open(out / name / "table1.csv", newline="") as fh:
            table = {r["method"]: r for r in csv.DictReader(fh)}
        row = {"step": name, "what": next(s[2] for s in STEPS if s[0] == name), "flags": " ".join(step_flags(name))}
        for method, prefix in (("size_two_bounds", "two_bounds"), ("full", "full")):
            for score in SCORES:
                row[f"{prefix}_{score}"] = float(table[method][score])
        for score in ("dsc_3d", "dsc_pooled_soft"):
            row[f"ratio_{score}"] = row[f"two_bounds_{score}"] / row[f"full_{score}"] if row[f"full_{score}"] else float("nan")
        rows.append(row)
    write_tables(out, rows)
    return 0


def write_tables(out: Path, rows: list[dict]) -> None:
    from sizeseg.io_utils import atomic_write_text, write_csv

    columns = list(rows[0])
    write_csv(out / "ablation.csv", rows, columns, float_format=".4f")
    lines = ["| step | what it adds | two bounds: 3D DSC | pooled hard | pooled soft | full: 3D DSC | pooled soft | "
             "weak/full 3D | weak/full pooled soft |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['step']} | {r['what']} | {r['two_bounds_dsc_3d']:.3f} | {r['two_bounds_dsc_pooled']:.3f} | "
                     f"{r['two_bounds_dsc_pooled_soft']:.3f} | {r['full_dsc_3d']:.3f} | {r['full_dsc_pooled_soft']:.3f} | "
                     f"{r['ratio_dsc_3d']:.2f} | {r['ratio_dsc_pooled_soft']:.2f} |")
    atomic_write_text(out / "ablation.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
