"""Fine-tuning picked by validation E against the same fine-tuning picked by validation IoU, cell by cell.

Usage:
    python scripts/selection_compare.py E_OUT IOU_OUT [--pairs "size (defaults)=size (IoU selection),..."]

E_OUT and IOU_OUT are output folders of ``sizeseg experiment pretraining`` over the same prepared data,
profile and (m, seed) cells; E_OUT holds the stages whose ``best.ckpt`` validation E picked, IOU_OUT
their twins picked by validation IoU (``FINETUNE_STAGES``: the same config but ``monitor``). A cell is
compared only when both folders hold the same pre-trained network: its test IoU, Dice and E must be
equal (CPU training is deterministic at a fixed thread count), otherwise the pairing would be a guess
and the script stops with the cell's name.

It prints, per cell, each pair's test-IoU gain over the pre-trained network under either selection;
then, per m and overall, the mean gains, how many runs lost IoU, and the mixed stage minus the
control under either selection. It trains nothing. Used in results/hippocampus/iou-selection/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sizeseg.experiments.hippocampus.profiles import CONTROL_STAGE, FINETUNE_STAGES

DEFAULT_PAIRS = (("size (defaults)", "size (IoU selection)"), ("mixed (defaults)", "mixed (IoU selection)"),
                 (CONTROL_STAGE, "control (IoU selection)"))
MIXED, CONTROL = DEFAULT_PAIRS[1], DEFAULT_PAIRS[2]


def cell_rows(out: Path) -> dict[str, dict[str, dict]]:
    """cell folder name (``m10-s0``) -> stage -> its row of ``result.json``."""
    cells = {}
    for path in sorted(Path(out, "runs", "pretraining").glob("m*-s*/result.json")):
        cells[path.parent.name] = {row["stage"]: row for row in json.loads(path.read_text())}
    return cells


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """``"a=b,c=d"`` -> [(a, b), (c, d)]; a ValueError naming --pairs for a malformed or unknown stage."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        by_e, sep, by_iou = (s.strip() for s in item.partition("="))
        if not sep or not by_e or not by_iou:
            raise ValueError(f"--pairs: expected 'E stage=IoU stage' items, got {item!r}")
        unknown = [s for s in (by_e, by_iou) if s not in FINETUNE_STAGES]
        if unknown:
            raise ValueError(f"--pairs: unknown stage(s) {', '.join(unknown)}")
        pairs.append((by_e, by_iou))
    return pairs


def _mean(values: list[float]) -> str:
    return f"{sum(values) / len(values):+.3f}" if values else "—"


def compare(e_cells: dict, iou_cells: dict, pairs: list[tuple[str, str]]) -> list[str]:
    """The report's lines; a ValueError naming the first cell whose pre-trained networks differ."""
    common = [c for c in e_cells if c in iou_cells and "pretrained" in e_cells[c] and "pretrained" in iou_cells[c]]
    for cell in common:
        a, b = e_cells[cell]["pretrained"], iou_cells[cell]["pretrained"]
        if any(a[k] != b[k] for k in ("IoU", "Dice", "E")):
            raise ValueError(f"{cell}: the two folders pre-trained different networks (test IoU {a['IoU']:.4f} "
                             f"and {b['IoU']:.4f}); they cannot be paired")
    gains: dict[tuple[str, str], dict[str, float]] = {}  # (cell, stage) -> gain
    for cell in common:
        base = e_cells[cell]["pretrained"]["IoU"]
        for by_e, by_iou in pairs:
            if by_e in e_cells[cell] and by_iou in iou_cells[cell]:
                gains[cell, by_e] = e_cells[cell][by_e]["IoU"] - base
                gains[cell, by_iou] = iou_cells[cell][by_iou]["IoU"] - base
    head = " | ".join(f"{e} / {i}" for e, i in pairs)
    lines = [f"test-IoU gain over the pre-trained network, picked by validation E / by validation IoU", "",
             f"| cell | pre-trained IoU | {head} |", "|---|---|" + "---|" * len(pairs)]
    for cell in common:
        row = [f"{gains[cell, e]:+.3f} / {gains[cell, i]:+.3f}" if (cell, i) in gains else "—" for e, i in pairs]
        lines.append(f"| {cell} | {e_cells[cell]['pretrained']['IoU']:.3f} | " + " | ".join(row) + " |")
    groups = {}
    for cell in common:
        groups.setdefault(cell.split("-")[0], []).append(cell)
    groups["all"] = common
    with_control = MIXED in pairs and CONTROL in pairs
    lines += ["", f"| m | cells | {' | '.join(f'{e} / {i} (lost)' for e, i in pairs)} |"
              + (" mixed − control: E / IoU |" if with_control else ""),
              "|---|---|" + "---|" * (len(pairs) + with_control)]
    for group, cells in groups.items():
        row = []
        for by_e, by_iou in pairs:
            ge = [gains[c, by_e] for c in cells if (c, by_iou) in gains]
            gi = [gains[c, by_iou] for c in cells if (c, by_iou) in gains]
            row.append(f"{_mean(ge)} ({sum(g < 0 for g in ge)}) / {_mean(gi)} ({sum(g < 0 for g in gi)})")
        if with_control:
            paired = [c for c in cells if (c, MIXED[1]) in gains and (c, CONTROL[1]) in gains]
            row.append(f"{_mean([gains[c, MIXED[0]] - gains[c, CONTROL[0]] for c in paired])} / "
                       f"{_mean([gains[c, MIXED[1]] - gains[c, CONTROL[1]] for c in paired])}")
        lines.append(f"| {group} | {len(cells)} | " + " | ".join(row) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("e_out", help="experiment folder whose stages validation E picked")
    parser.add_argument("iou_out", help="experiment folder of the same cells whose stages validation IoU picked")
    parser.add_argument("--pairs", default=",".join(f"{e}={i}" for e, i in DEFAULT_PAIRS),
                        help="comma-separated 'E stage=IoU stage' pairs (default: size, mixed and the control)")
    args = parser.parse_args(argv)
    try:
        pairs = parse_pairs(args.pairs)
        cells = []
        for name in ("e_out", "iou_out"):
            cells.append(cell_rows(Path(getattr(args, name))))
            if not cells[-1]:
                raise ValueError(f"{getattr(args, name)}: no runs/pretraining/*/result.json")
        lines = compare(*cells, pairs)
    except ValueError as error:
        print(f"selection_compare: error: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
