"""How well validation E picks a fine-tuned network: its validation IoU against the start's, and the test gain.

Usage:
    python scripts/selection_check.py OUT [--stages "size (defaults),mixed (defaults)"]

OUT is an output folder of ``sizeseg experiment pretraining``. For each (m, seed) cell and fine-tuning
stage it reads the per-epoch validation scores (``metrics.csv``) and prints:
- the start: the pre-trained network's validation IoU and E (its best epoch by validation IoU);
- the epoch that validation E picks (the start when no epoch beats it), with its validation IoU;
- whether the library would now warn (validation IoU more than 0.01 below the start's;
  ``sizeseg.training.selection.overlap_warning``);
- the best validation IoU of any epoch or the start, and the cell's test-IoU gain (``result.json``);
then the mean test gain of the runs it would warn of and of the rest, and how many runs no epoch
beat the start's validation IoU (picked by validation IoU, they would have kept the start). It trains
nothing. Used in results/hippocampus/ (the mixed collapse at m = 10, seed 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sizeseg.experiments.hippocampus.profiles import FINETUNE_STAGES
from sizeseg.experiments.hippocampus.runs import read_epochs
from sizeseg.training.selection import IOU_DROP_TOLERANCE


def start_scores(pretrain_dir: Path) -> tuple[float, float]:
    """Validation (IoU, E) of pre-training's best epoch by validation IoU (the first of equals)."""
    epochs = [e for e in read_epochs(pretrain_dir / "metrics.csv") if "val_IoU" in e]
    best = max(epochs, key=lambda e: (e["val_IoU"], -e["epoch"]))
    return best["val_IoU"], best["val_E"]


def picked_by_e(stage_dir: Path, start_e: float) -> tuple[int, float, float]:
    """(epoch, validation IoU, best validation IoU of any epoch) of the network validation E keeps: the first
    epoch of least E when it beats the start's, else the start (epoch 0)."""
    epochs = [e for e in read_epochs(stage_dir / "metrics.csv") if "val_E" in e]
    best = min(epochs, key=lambda e: (e["val_E"], e["epoch"]))
    top = max(e["val_IoU"] for e in epochs)
    return (best["epoch"], best["val_IoU"], top) if best["val_E"] < start_e else (0, float("nan"), top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="an output folder of sizeseg experiment pretraining")
    parser.add_argument("--stages", default="", help="comma-separated stage names (default: every stage found)")
    args = parser.parse_args(argv)
    cells = sorted(Path(args.out, "runs", "pretraining").glob("m*-s*/result.json"))
    if not cells:
        print(f"selection_check: error: {args.out}: no runs/pretraining/*/result.json", file=sys.stderr)
        return 2
    wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in FINETUNE_STAGES]
    if unknown:
        print(f"selection_check: error: --stages: unknown stage(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    print("| cell | stage | start val IoU | start val E | E picks epoch | its val IoU | warns | best val IoU | "
          "test gain |")
    print("|---|---|---|---|---|---|---|---|---|")
    gains, start_best = {True: [], False: []}, 0
    for result in cells:
        cell = result.parent
        rows = {r["stage"]: r for r in json.loads(result.read_text())}
        start_iou, start_e = start_scores(cell / "pretrain")
        for stage, (folder, _, _) in FINETUNE_STAGES.items():
            if stage not in rows or (wanted and stage not in wanted) or not (cell / folder / "metrics.csv").is_file():
                continue
            epoch, iou, top = picked_by_e(cell / folder, start_e)
            picked = start_iou if epoch == 0 else iou
            warn = picked < start_iou - IOU_DROP_TOLERANCE
            gain = rows[stage]["IoU"] - rows["pretrained"]["IoU"]
            gains[warn].append(gain)
            start_best += top <= start_iou
            print(f"| {cell.name} | {stage} | {start_iou:.3f} | {start_e:.2f} | {epoch or 'start'} | {picked:.3f} | "
                  f"{'yes' if warn else ''} | {max(top, start_iou):.3f} | {gain:+.3f} |")
    for warn in (True, False):
        if gains[warn]:
            mean = sum(gains[warn]) / len(gains[warn])
            print(f"{'warned' if warn else 'not warned'}: {len(gains[warn])} runs, mean test gain {mean:+.4f}, "
                  f"worst {min(gains[warn]):+.4f}")
    print(f"no epoch beat the start's validation IoU in {start_best} of {sum(map(len, gains.values()))} runs: "
          "picked by validation IoU, they keep the start (test gain 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
