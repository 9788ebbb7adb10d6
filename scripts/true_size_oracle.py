"""What knowing the true test sizes buys a pre-trained network at test time, and how far a
per-image threshold could go.

Usage:
    python scripts/true_size_oracle.py PREPARED CHECKPOINT [CHECKPOINT ...] [--split test]

Prints one JSON line with the split's size histogram, then one per checkpoint: mean IoU at
threshold 0, after moving each prediction onto its true size (``size_matched_mask``), and with
the best threshold per image chosen with the true mask (an upper bound for any threshold rule);
the correlation of size and area errors; the share of wrong sizes and the IoU on those images.
Made results/hippocampus/true-size-oracle/analysis.jsonl.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from sizeseg.data.prepared import load_prepared
from sizeseg.metrics import iou_score, predicted_size
from sizeseg.ops import size_matched_mask
from sizeseg.training import load_model, predict_logits


def oracle_scores(logits: torch.Tensor, masks: torch.Tensor, sizes: torch.Tensor) -> dict:
    """The scores listed in the module docstring for logits (N, *spatial) against masks and sizes."""
    base = iou_score(logits > 0, masks)
    matched = iou_score(size_matched_mask(logits, sizes), masks)
    best = torch.stack([iou_score(logits > t, masks) for t in torch.linspace(-6, 6, 49)]).max(0).values
    pred_sizes = predicted_size(logits)
    area_err = ((logits > 0).flatten(1).sum(1) - masks.flatten(1).sum(1)).float().numpy()
    size_err = (pred_sizes - sizes).numpy()
    ok = np.isfinite(size_err)
    wrong = pred_sizes != sizes
    return {"IoU_thr0": float(base.mean()), "IoU_size_matched": float(matched.mean()),
            "IoU_best_threshold_per_image": float(best.mean()),
            "corr(size_err, area_err)": float(np.corrcoef(size_err[ok], area_err[ok])[0, 1]),
            "frac_size_wrong": float(wrong.float().mean()),
            "IoU_thr0_on_wrong": float(base[wrong].mean()), "IoU_matched_on_wrong": float(matched[wrong].mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prepared", help="a prepared data folder (sizeseg prepare ...)")
    parser.add_argument("checkpoints", nargs="+", help=".ckpt files written by sizeseg pretrain / finetune")
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    split = load_prepared(args.prepared).split(args.split)
    masks = torch.from_numpy(np.asarray(split.masks) > 0)
    sizes = torch.from_numpy(np.asarray(split.sizes, np.float32))
    values, counts = np.unique(sizes.numpy(), return_counts=True)
    print(json.dumps({f"{args.split} size histogram": {float(v): int(c) for v, c in zip(values, counts)}}))
    for checkpoint in args.checkpoints:
        logits = predict_logits(load_model(checkpoint), split.images)[:, 0]
        print(json.dumps({"ckpt": checkpoint} | oracle_scores(logits, masks, sizes)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
