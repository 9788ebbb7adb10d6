"""Pre-train to the validation-IoU plateau, then fine-tune on sizes (and/or mixed) from that network.

Usage:
    python scripts/convergence_check.py PREPARED OUT --m 20 --seed 0 --modes finetune,mixed
    python scripts/convergence_check.py PREPARED OUT --m 20 --init OUT/pretrain/checkpoints/best.ckpt \
        --modes mixed --bce-weight 30

PREPARED is a folder written by ``sizeseg prepare`` (e.g. hippocampus). Prints and writes
OUT/summary.json: val/test IoU, E, mean size bias (predicted - annotated) and predicted/true area
ratio of the pre-trained network and of each fine-tuned one (best val E and last epoch).
Defaults are the settings of results/hippocampus/convergence-check/.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from sizeseg.data.prepared import load_prepared
from sizeseg.metrics import iou_score, predicted_size
from sizeseg.training import TrainConfig, load_model, predict_logits, train


def stats(checkpoint: Path, split) -> dict:
    """IoU, E, size bias and area ratio of a checkpoint's thresholded predictions on ``split``."""
    logits = predict_logits(load_model(checkpoint), split.images)
    pred_sizes, sizes = predicted_size(logits).numpy(), np.asarray(split.sizes)
    pred, target = logits[:, 0] > 0, torch.from_numpy(np.asarray(split.masks) > 0)
    return {"IoU": float(iou_score(pred, target).mean()), "E": float(np.nanmean((pred_sizes - sizes) ** 2)),
            "size_bias": float(np.nanmean(pred_sizes - sizes)),
            "area_ratio": float(pred.sum() / max(int(target.sum()), 1))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prepared", help="a prepared data folder (sizeseg prepare ...)")
    parser.add_argument("out", help="output folder")
    parser.add_argument("--m", type=int, default=20, help="masked training images for pre-training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", default="finetune", help="comma-separated: finetune, mixed")
    parser.add_argument("--init", help="a pre-trained checkpoint; skips pre-training")
    parser.add_argument("--bce-weight", type=float, default=1.0, help="BCE weight of mixed training")
    parser.add_argument("--model", default="unet-small")
    parser.add_argument("--pretrain-epochs", type=int, default=1500)
    parser.add_argument("--finetune-epochs", type=int, default=16)
    parser.add_argument("--batches", type=int, default=29, help="fine-tuning batches per epoch")
    args = parser.parse_args(argv)
    out = Path(args.out)
    data = load_prepared(args.prepared)
    val, test = data.split("val"), data.split("test")
    result = {}
    init = Path(args.init) if args.init else None
    if init is None:
        start = time.time()
        steps_per_epoch = max(1, (args.m + 31) // 32)
        cfg = TrainConfig(model=args.model, lr=1e-3, batch_size=32, max_epochs=args.pretrain_epochs, patience=8,
                          m=args.m, seed=args.seed, flips=True,
                          val_every=max(1, min(args.pretrain_epochs, 50 // steps_per_epoch)))
        init = train("pretrain", data, out / "pretrain", cfg, progress_bar=False).best
        result["pretrain"] = {"val": stats(init, val), "test": stats(init, test), "seconds": time.time() - start}
        print("pretrain", result["pretrain"], flush=True)
    for mode in args.modes.split(","):
        start = time.time()
        cfg = TrainConfig(model=args.model, lr=1e-4, batch_size=32, max_epochs=args.finetune_epochs, patience=0,
                          m=args.m, seed=args.seed, limit_train_batches=args.batches, flips=False,
                          bce_weight=args.bce_weight, monitor="val/E")  # best by validation E, as recorded
        run = train(mode, data, out / f"{mode}_w{args.bce_weight:g}", cfg, init=init, progress_bar=False)
        result[mode] = {"best_val": stats(run.best, val), "best_test": stats(run.best, test),
                        "last_test": stats(run.last, test), "seconds": time.time() - start}
        print(mode, result[mode], flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
