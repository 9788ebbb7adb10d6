"""One CSV row per training run of an experiment folder, to keep in place of the runs' own logs.

Usage:
    python scripts/summarize_runs.py FOLDER [FOLDER ...]

For every run folder below FOLDER (one holding ``metrics.csv``, as ``sizeseg experiment ...``
writes), a row of FOLDER/runs.csv: the run's path, its settings and time from ``done.json``,
the number of validations, the best and last validation E and IoU, and the validation curves
(``val/E`` and ``val/IoU`` per validation, space-separated). A ``start.json`` (the scores of
the network a stage started from) becomes a row of its own.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from sizeseg.io_utils import read_csv, write_csv

SETTINGS = ("m", "seed", "lr", "max_epochs", "limit_train_batches", "n_samples", "bce_weight", "size_weight",
            "size_matched_weight", "model")
COLUMNS = ["run", "seconds", *SETTINGS, "init", "validations", "best_val_E", "best_val_IoU", "last_val_E",
           "last_val_IoU", "val_E_curve", "val_IoU_curve"]


def _values(rows: list[dict], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) not in (None, "")]


def run_row(run: Path, folder: Path) -> dict:
    """The summary row of one run folder."""
    row: dict = {"run": str(run.relative_to(folder))}
    done = run / "done.json"
    if done.is_file():
        info = json.loads(done.read_text())
        if isinstance(info, dict):
            row["seconds"] = round(float(info.get("seconds", math.nan)), 1)
            row |= {k: info.get("config", {}).get(k, "") for k in SETTINGS}
            init = info.get("init") or ""
            row["init"] = "/".join(Path(init).parts[-4:]) if init else ""
    rows = read_csv(run / "metrics.csv")
    e, iou = _values(rows, "val/E"), _values(rows, "val/IoU")
    row["validations"] = len(e)
    if e:
        row |= {"best_val_E": min(e), "last_val_E": e[-1], "val_E_curve": " ".join(f"{v:.4g}" for v in e)}
    if iou:
        row |= {"best_val_IoU": max(iou), "last_val_IoU": iou[-1],
                "val_IoU_curve": " ".join(f"{v:.4g}" for v in iou)}
    return row


def summarize(folder: Path) -> Path:
    """Write FOLDER/runs.csv (see the module docstring) and return its path."""
    rows = []
    for path in sorted(folder.rglob("*")):
        if path.name == "metrics.csv" and "logs" not in path.relative_to(folder).parts:
            rows.append(run_row(path.parent, folder))
        elif path.name == "start.json":
            scores = json.loads(path.read_text())
            rows.append({"run": str(path.relative_to(folder)), "best_val_E": scores.get("E"),
                         "best_val_IoU": scores.get("IoU"), "validations": 1})
    if not rows:
        raise SystemExit(f"{folder}: no run folder (with metrics.csv) below it")
    return write_csv(folder / "runs.csv", rows, COLUMNS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="experiment output folders")
    for folder in parser.parse_args(argv).folders:
        print(summarize(folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
