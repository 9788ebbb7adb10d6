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

   each in every mode of ``--modes``: ``finetune`` (sizes only, every training image) and/or
   ``mixed`` (every training image with its sizes, the ``--masks`` masked ones also with BCE, half of
   each batch on average), and with each ``--area-weights`` > 0 plus paper 2's penalty on the soft area
   with the bounds the annotation implies (:class:`sizeseg.training.loss_terms.AreaBoundTerm`:
   ``[lo sum_k s_k^2, hi sum_k s_k^2]`` for the lists, ``[lo s^2, hi s^2]`` for the largest size,
   ``lo, hi`` the range of that ratio on the masked images); ``--samples`` masks are sampled per image
   and step;

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
import itertools
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
    parser.add_argument("--size-weight", type=float, default=1.0, help="size-term weight of both size arms, per pixel")
    parser.add_argument("--noise-scale", type=float, default=0.25, help="the size losses' noise scale tau")
    parser.add_argument("--samples", type=int, default=1, help="sampled masks per image and step of the size losses")
    parser.add_argument("--arms", default="objects,object,masks")
    parser.add_argument("--modes", default="finetune",
                        help="size arms' modes, comma-separated: finetune (sizes only) and/or mixed (sizes + BCE on the masks)")
    parser.add_argument("--area-weights", default="0",
                        help="weights of the area bounds the sizes imply in both size arms, comma-separated (0: off)")
    parser.add_argument("--area-margin", type=float, default=0.1, help="widening of the area / size^2 range")
    args = parser.parse_args(argv)
    arms = args.arms.split(",")
    if not arms or any(a not in ARMS[1:] for a in arms):
        parser.error(f"--arms: expected a comma-separated subset of {','.join(ARMS[1:])}, got {args.arms!r}")
    args.arms = arms
    args.modes = [m for m in args.modes.split(",") if m]
    if not args.modes or set(args.modes) - {"finetune", "mixed"}:
        parser.error(f"--modes: expected some of finetune,mixed, got {','.join(args.modes)}")
    try:
        args.area_weights = [float(w) for w in args.area_weights.split(",") if w]
    except ValueError:
        parser.error(f"--area-weights: expected comma-separated numbers, got {args.area_weights!r}")
    if args.samples < 1:
        parser.error(f"--samples: expected an int >= 1, got {args.samples}")
    if not args.area_weights or not all(w >= 0 for w in args.area_weights) or not args.area_margin >= 0:
        parser.error("--area-weights and --area-margin: expected numbers >= 0")
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
    if done.is_file():
        settings = json.loads(done.read_text()).get("settings") or {}
        # a run recorded before a key existed was trained with that key's predating value
        settings["config"] = {**type(cfg).record_defaults(), **settings.get("config", {})}
        if settings == wanted:
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
        # size arms: one pass over the n_train training images per epoch (mixed: n_train draws), the
        # masks arm's epochs the same n_train draws from its masked images
        for arm in args.arms:
            if arm == "masks":  # the same steps per epoch as the size arms, on the masked images only
                cfg = TrainConfig(**common, epoch_items=n_train)
                runs[arm] = train_cached("pretrain", data, work / arm, cfg, init=start)[1:]  # the last epoch
                continue
            for mode, area, criterion in itertools.product(args.modes, args.area_weights, args.criteria):
                cfg = TrainConfig(**common, epoch_items=None, size_loss=arm, size_criterion=criterion,
                                  size_weight=args.size_weight, noise_scale=args.noise_scale, n_samples=args.samples,
                                  area_weight=area, area_margin=args.area_margin,
                                  size_units="pixels")  # --size-weight and --area-weights are per pixel
                name = f"{arm}-{criterion}-w{args.size_weight:g}-tau{args.noise_scale:g}"
                if args.samples > 1:
                    name += f"-n{args.samples}"
                label = f"{arm} ({criterion}"
                if args.samples > 1:
                    label += f", {args.samples} samples"
                if area > 0:
                    name += f"-area{area:g}-margin{args.area_margin:g}"
                    label += f", area {area:g}"
                if mode == "mixed":
                    name, label = name + "-mixed", label + ", mixed"
                runs[label + ")"] = train_cached(mode, data, work / name, cfg, init=start)[1:]
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
