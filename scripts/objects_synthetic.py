"""Per-object size fine-tuning against the single-object SizeLoss and a mask-only control (issue 17).

On the synthetic multi-object set (1 to 5 separate objects per image,
:mod:`sizeseg.data.synthetic_objects`), for each seed:

1. pre-train a network with BCE on ``--masks`` masked training images to convergence: epochs of
   10 batches, the best epoch by validation IoU, early stopping after ``--pretrain-patience``
   epochs without a better one and the learning rate halved every ``--pretrain-lr-step`` epochs
   (at most ``--pretrain-epochs``);
2. from that start, with one schedule (epochs, learning rate, batch, steps per epoch), for each
   size criterion of ``--criteria``:

   - ``objects``: ObjectSizeLoss on the list of every object's size of every training image;
   - ``object``: the single-object SizeLoss on each image's largest size (paper 1; sees one object);

   and once ``masks``: the mask-only control, BCE on the same ``--masks`` images (repeated to as
   many steps per epoch as the size arms take);

3. score the last epoch of each arm on the test split (fixed schedule, no checkpoint selection):
   IoU, Dice, E (the largest object's squared size error), E_obj and AE_obj (the per-object
   squared and absolute size errors, :mod:`sizeseg.metrics.object_size_error`), and the mean
   absolute error of the number of objects.

Writes ``OUT/runs.csv`` (one row per seed and arm), ``OUT/summary.csv`` (mean and sd over
seeds) and ``OUT/summary.md``. Each training run is cached in ``--work`` (default ``OUT/work/``; a
rerun reuses a finished run with equal settings, so arms of another criterion share the pre-training).

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python scripts/objects_synthetic.py --out results/objects --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

ARMS = ("pretrained", "objects", "object", "masks")
SIZE_ARMS = ("objects", "object")
METRICS = ("IoU", "Dice", "E", "E_obj", "AE_obj", "count_error")


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/objects")
    parser.add_argument("--work", help="folder of the training runs (default OUT/work); runs there are reused")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--images", type=int, default=200, help="synthetic images, split 70/10/20")
    parser.add_argument("--side", type=int, default=48, help="image side (square)")
    parser.add_argument("--objects", type=int, default=5, help="1 to this many objects per image")
    parser.add_argument("--masks", type=int, default=10, help="masked training images for pre-training")
    parser.add_argument("--pretrain-epochs", type=int, default=150, help="most pre-training epochs of 10 batches")
    parser.add_argument("--pretrain-patience", type=int, default=20,
                        help="stop pre-training after this many epochs without a better validation IoU (0: off)")
    parser.add_argument("--pretrain-lr-step", type=int, default=40, help="halve the pre-training lr every this many epochs")
    parser.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs of every arm")
    parser.add_argument("--lr", type=float, default=1e-4, help="fine-tuning learning rate of every arm")
    parser.add_argument("--model", default="unet-plain")
    parser.add_argument("--criteria", default="relative,symmetric", help="size criteria of both size arms, comma-separated")
    parser.add_argument("--size-weight", type=float, default=1.0, help="size-term weight of both size arms")
    parser.add_argument("--noise-scale", type=float, default=0.25, help="the size losses' noise scale tau")
    parser.add_argument("--arms", default="objects,object,masks")
    args = parser.parse_args(argv)
    arms = args.arms.split(",")
    if not arms or any(a not in ARMS[1:] for a in arms):
        parser.error(f"--arms: expected a comma-separated subset of {','.join(ARMS[1:])}, got {args.arms!r}")
    args.arms = arms
    from sizeseg.training.config import SIZE_CRITERIA

    args.criteria = [c for c in args.criteria.split(",") if c]
    if not args.criteria or set(args.criteria) - set(SIZE_CRITERIA):
        parser.error(f"--criteria: expected some of {','.join(SIZE_CRITERIA)}, got {','.join(args.criteria)}")
    return args


def count_error(model, data) -> float:
    """Mean |number of predicted objects - number of annotated objects| over the items."""
    from sizeseg.data.size_lists import object_counts, size_lists
    from sizeseg.ops.components import object_sizes
    from sizeseg.training import predict_logits

    pred = predict_logits(model, data.images)[:, 0] > 0
    sizes = np.asarray(object_sizes(pred.numpy())[1])
    predicted = (~np.isnan(sizes)).sum(-1) if sizes.ndim == 2 else np.zeros(len(pred))
    return float(np.abs(predicted - object_counts(size_lists(data)[:, 0])).mean())


def _epochs(run_dir: Path) -> dict:
    """Epochs run and the best validation IoU (and its epoch) of a pre-training run, from its metrics.csv."""
    import csv

    path = run_dir / "metrics.csv"
    if not path.is_file():
        return {}
    with path.open() as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("val/IoU") and r.get("epoch") not in (None, "")]
    if not rows:
        return {}
    best = max(rows, key=lambda r: float(r["val/IoU"]))
    return {"epochs": int(float(rows[-1]["epoch"])) + 1, "best_epoch": int(float(best["epoch"])),
            "best_val_IoU": round(float(best["val/IoU"]), 4)}


def train_cached(mode: str, data, run_dir: Path, cfg, init=None):
    """``train`` unless ``run_dir/done.json`` records a finished run with these settings."""
    from sizeseg.io_utils import write_json
    from sizeseg.training import best_checkpoint, last_checkpoint, train

    done = run_dir / "done.json"
    wanted = {"mode": mode, "config": cfg.to_dict(), "init": str(init) if init else None}
    if done.is_file() and json.loads(done.read_text()).get("settings") == wanted:
        return best_checkpoint(run_dir), last_checkpoint(run_dir), json.loads(done.read_text())["seconds"]
    result = train(mode, data, run_dir, cfg, init=init, resume=False, progress_bar=False)
    write_json(done, {"settings": wanted, "seconds": result.seconds})
    return result.best, result.last, result.seconds


def main(argv=None) -> int:
    args = parse(argv)
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    from sizeseg.data.synthetic_objects import synthetic_objects_data
    from sizeseg.experiments.report import markdown_table
    from sizeseg.io_utils import atomic_write_text, write_csv
    from sizeseg.training import TrainConfig, evaluate_model, load_model

    out = Path(args.out)
    rows = []
    began = time.perf_counter()
    for seed in args.seeds:
        data = synthetic_objects_data(args.images, shape=(args.side, args.side), seed=seed,
                                      objects=(1, args.objects))
        test = data.split("test")
        n_train = int((data.splits == "train").sum())
        work = Path(args.work or out / "work") / f"seed{seed}"
        pre_cfg = TrainConfig(model=args.model, batch_size=32, lr=1e-3, m=args.masks, seed=seed,
                              patience=args.pretrain_patience, max_epochs=args.pretrain_epochs, epoch_items=320,
                              lr_step=args.pretrain_lr_step, lr_gamma=0.5)
        start, _, seconds = train_cached("pretrain", data, work / "pretrain", pre_cfg)  # best by val IoU
        runs = {"pretrained": (start, seconds)}
        common = dict(model=args.model, batch_size=32, lr=args.lr, m=args.masks, seed=seed, patience=0,
                      max_epochs=args.epochs)
        for arm in args.arms:
            if arm == "masks":  # the same steps per epoch as the size arms, on the masked images only
                cfg = TrainConfig(**common, epoch_items=n_train)
                runs[arm] = train_cached("pretrain", data, work / arm, cfg, init=start)[1:]  # the last epoch
                continue
            for criterion in args.criteria:
                cfg = TrainConfig(**common, size_loss=arm, size_criterion=criterion, size_weight=args.size_weight,
                                  noise_scale=args.noise_scale)
                name = f"{arm}-{criterion}-w{args.size_weight:g}-tau{args.noise_scale:g}"
                label = f"{arm} ({criterion})"
                runs[label] = train_cached("finetune", data, work / name, cfg, init=start)[1:]
        print(json.dumps({"seed": seed, "pretrain_epochs": _epochs(work / "pretrain")}), flush=True)
        for arm, (ckpt, seconds) in runs.items():
            model = load_model(ckpt)
            scores = evaluate_model(model, test)
            row = {"seed": seed, "arm": arm, "seconds": round(seconds, 1), "count_error": count_error(model, test),
                   **{k: scores[k] for k in METRICS if k in scores}}
            rows.append(row)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    write_csv(out / "runs.csv", rows, ["seed", "arm", *METRICS, "seconds"])
    summary = []
    for arm in list(dict.fromkeys(r["arm"] for r in rows)):
        mine = [r for r in rows if r["arm"] == arm]
        if not mine:
            continue
        item = {"arm": arm, "seeds": len(mine)}
        for k in METRICS:
            values = np.array([r[k] for r in mine], float)
            item[k] = float(values.mean())
            item[f"{k}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
        summary.append(item)
    write_csv(out / "summary.csv", summary, ["arm", "seeds"] + [c for k in METRICS for c in (k, f"{k}_sd")])
    shown = [{"arm": s["arm"], **{k: f"{s[k]:.4g} ± {s[f'{k}_sd']:.2g}" for k in METRICS}} for s in summary]
    table = markdown_table(shown, ["arm", *METRICS], ["arm", "test IoU", "test Dice", "test E (largest)",
                                                     "test E_obj", "test AE_obj (px)", "|count error|"])
    command = "OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python scripts/objects_synthetic.py " + " ".join(sys.argv[1:] if argv is None else argv)
    atomic_write_text(out / "summary.md", f"Command: `{command}` ({time.perf_counter() - began:.0f} s)\n\n"
                      f"Mean ± sd over seeds {args.seeds}, last epoch of each arm, test split.\n\n{table}\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
