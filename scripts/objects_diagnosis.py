"""Why per-object size fine-tuning loses IoU: pixels, objects and the loss's parts, per run (issue 17).

Reads the training runs that ``scripts/objects_synthetic.py`` cached in ``--work`` (``seed<k>/<run>``;
``pretrain`` is scored at its best epoch, every other run at its last) and prints one JSON line per
seed and run:

- on the test split, thresholded at logit 0: predicted and true foreground pixels, false positives
  and false negatives, the pooled IoU, predicted components, *spurious* components (touching no
  true object), *merged* ones (touching two or more) and *missed* true objects (touched by none);
- on the training split (``--sampled``), the symmetric per-object loss of the sorted matching,
  split into its *unmatched* part (a spurious or a missed object, 1 each) and its *matched* part
  (pairs of sizes), for the thresholded prediction and for masks sampled as the size losses sample
  them (logistic noise of scale ``--noise-scale``), and the mean signed size error of matched pairs.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python scripts/objects_diagnosis.py --work /tmp/objwork --seeds 0 1 2 \\
        --runs pretrain,objects-symmetric-w1-tau0.25,object-symmetric-w1-tau0.25,masks
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, help="the --work folder of scripts/objects_synthetic.py")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", default="pretrain", help="run folders, comma-separated")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--side", type=int, default=48)
    parser.add_argument("--objects", type=int, default=5)
    parser.add_argument("--sampled", action="store_true", help="also the loss's parts on the training split")
    parser.add_argument("--noise-scale", type=float, default=0.25)
    return parser.parse_args(argv)


def object_breakdown(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Pixel and object counts of thresholded predictions ``pred`` against true masks (N, H, W)."""
    from sizeseg.ops.components import object_sizes

    pred_labels = np.asarray(object_sizes(pred)[0])
    true_labels = np.asarray(object_sizes(truth)[0])
    spurious = merged = missed = components = objects = 0
    for p, t in zip(pred_labels, true_labels):
        for k in range(1, int(p.max()) + 1):
            hit = np.unique(t[(p == k) & (t > 0)])
            spurious += len(hit) == 0
            merged += len(hit) > 1
        components += int(p.max())
        objects += int(t.max())
        missed += sum(not ((t == k) & (p > 0)).any() for k in range(1, int(t.max()) + 1))
    tp, fp, fn = int((pred & truth).sum()), int((pred & ~truth).sum()), int((~pred & truth).sum())
    return {"IoU_pooled": round(tp / max(tp + fp + fn, 1), 4), "pred_px": int(pred.sum()), "true_px": int(truth.sum()),
            "FP": fp, "FN": fn, "components": components, "true_objects": objects, "spurious": spurious,
            "merged": merged, "missed": missed}


def loss_parts(pred: np.ndarray, lists: np.ndarray) -> dict:
    """The symmetric sorted-matching loss per image, split into unmatched and matched pairs."""
    from sizeseg.ops.components import object_sizes

    sizes = np.asarray(object_sizes(pred)[1], float).reshape(len(pred), -1)
    width = max(sizes.shape[1], lists.shape[1])
    ranked = lambda x: np.pad(-np.sort(-np.nan_to_num(x, nan=0.0), 1), ((0, 0), (0, width - x.shape[1])))
    g, t = ranked(sizes), ranked(lists)
    loss = (t - g) ** 2 / np.maximum(np.maximum(t, g), 1.0) ** 2
    unmatched = (t == 0) ^ (g == 0)
    pairs = (t > 0) & (g > 0)
    return {"loss": round(float(loss.sum(1).mean()), 3), "unmatched": round(float((loss * unmatched).sum(1).mean()), 3),
            "matched": round(float((loss * pairs).sum(1).mean()), 3),
            "matched_error_px": round(float((g - t)[pairs].mean()), 2),
            "count": round(float((sizes > 0).sum(1).mean()), 2), "true_count": round(float((lists > 0).sum(1).mean()), 2),
            "area": round(float(pred.reshape(len(pred), -1).sum(1).mean()), 1)}


def main(argv=None) -> int:
    args = parse(argv)
    torch.set_num_threads(1)
    from sizeseg.data.synthetic_objects import synthetic_objects_data
    from sizeseg.training import best_checkpoint, last_checkpoint, load_model, predict_logits

    for seed in args.seeds:
        data = synthetic_objects_data(args.images, shape=(args.side, args.side), seed=seed, objects=(1, args.objects))
        for name in args.runs.split(","):
            run = Path(args.work) / f"seed{seed}" / name
            model = load_model(best_checkpoint(run) if name == "pretrain" else last_checkpoint(run))
            test = data.split("test")
            logits = predict_logits(model, test.images)[:, 0].numpy()
            row = {"seed": seed, "run": name, **object_breakdown(logits > 0, test.masks.reshape(logits.shape) > 0)}
            if args.sampled:
                train = data.split("train")
                logits = predict_logits(model, train.images)[:, 0].numpy()
                lists = np.asarray(train.extra["object_sizes"], float)
                u = np.random.default_rng(seed).uniform(1e-6, 1 - 1e-6, logits.shape)
                sampled = logits / args.noise_scale + np.log(u / (1 - u)) > 0  # P(foreground) = sigmoid(a / tau)
                row["train_thresholded"] = loss_parts(logits > 0, lists)
                row["train_sampled"] = loss_parts(sampled, lists)
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
