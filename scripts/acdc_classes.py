"""Per-class sizes on ACDC (issue 17): LV, RV and myocardium sizes against a mask-only control.

Data: ``sizeseg prepare acdc --classes LV,RV,MYO`` in memory (:func:`sizeseg.data.acdc.build_acdc`):
the central ``--field`` native pixels of every slice, block-averaged to ``--resolution``, label maps
LV / RV / MYO, one size per class and slice (``sizeseg.object_size`` of that class's mask; 0 when
the class is absent; the myocardium's size is its thickest wall). Only slices showing at least one
class. Patients split 75/25 by ``build_acdc`` (seed 0): the 25 % are the test set; of the training
patients, ``--val-patients`` (fixed, seed 0) hold the validation slices that decide when
pre-training has converged; the rest are the training pool.

Network: ``--model`` with three output channels, **one sigmoid per class** (not a softmax): the
sampled size gradient (Lemma 1) is exact for independent Bernoulli pixels per class, which a
softmax breaks (a pixel leaving one class joins another, so one flip changes two classes' sizes);
see the README. Masks are learnt with BCE on each channel.

For each m and seed, m masked *slices* drawn from the training pool, or with ``--unit patients``
every slice of m patients (both frames); the other pool slices carry only their sizes:

1. Pre-train on the m masks to convergence: Adam at ``--lr``, batches of ``--batch`` drawn with
   replacement, random flips; the mean validation IoU (over slices and the three classes) every
   ``--eval-every`` steps; from ``--min-pretrain-steps`` on, after ``--patience`` evaluations
   without a gain of 0.002 the best weights come back and the learning rate falls by 0.3, at most
   ``--drops`` times, then training stops (or at ``--max-pretrain-steps``). The best validation state is the start.
2. From that start, each for ``--finetune-steps`` batches at ``--finetune-lr`` (a fixed schedule,
   no checkpoint selection, one data order per seed):

   - ``control``: BCE on the same m masks (more of the same training; no sizes);
   - ``sizes``: SizeLoss on the (B, 3) per-class sizes of the other training-pool slices
     (``--criterion``, default relative, noise scale ``--noise-scale``);
   - ``mixed``: half of each batch from the m masks (BCE), half from the sizes (SizeLoss).

3. Test IoU, Dice (per slice; two empty masks score 1) and E (squared size error of the
   thresholded prediction, px^2) per class and averaged over the classes, plus the per-class
   true-size oracle of the start (each class's prediction moved onto its true size along its own
   pixel ranking, :func:`sizeseg.ops.size_matched_mask`): the most a correct size can add.

Rows go to ``OUT/runs.csv`` as each (m, seed) finishes (finished ones are skipped when the command
runs again) and ``OUT/report.md`` is rebuilt from all rows; pre-trained starts are kept in
``--work`` so a killed run does not pre-train again.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python scripts/acdc_classes.py --out results/acdc-classes

``--data`` may name a small generated ACDC folder (the test does).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

CLASSES = ("LV", "RV", "MYO")
ARMS = ("control", "sizes", "mixed")
KEYS = ("IoU", "Dice", "E")
COLUMNS = ["m", "seed", "arm", "steps"] + [f"{k}_{c}" for k in KEYS for c in CLASSES + ("mean",)] + ["seconds"]


def load(args):
    """images (N, 1, H, W), one-hot masks (N, 3, H, W), sizes (N, 3), the train / val / test indices and
    each slice's patient."""
    from sizeseg.data.acdc import build_acdc, prepare_acdc

    if args.cache:
        data, _ = prepare_acdc(args.data, args.cache, size=args.field, resolution=args.resolution, seed=0,
                               classes=CLASSES)
    else:
        data = build_acdc(args.data, size=args.field, resolution=args.resolution, seed=0, classes=CLASSES)
    sizes = np.asarray(data.extra["object_sizes"][:, :, 0], np.float32)
    keep = sizes.max(1) > 0
    subjects = np.asarray(data.extra["subjects"])[keep]
    train_side = np.asarray(data.splits)[keep] == "train"
    pool = sorted(set(subjects[train_side].tolist()))
    val_subjects = set(np.random.default_rng(0).choice(pool, size=min(args.val_patients, len(pool) - 1),
                                                       replace=False).tolist())
    is_val = np.isin(subjects, sorted(val_subjects)) & train_side
    images = torch.from_numpy(np.asarray(data.images[keep], np.float32))
    labels = torch.from_numpy(np.asarray(data.masks[keep], np.int64))
    masks = torch.stack([labels == c + 1 for c in range(len(CLASSES))], 1).float()
    return (images, masks, torch.from_numpy(sizes[keep]), np.flatnonzero(train_side & ~is_val),
            np.flatnonzero(is_val), np.flatnonzero(~train_side), subjects)


def flip(x, y, rng):
    for axis in (2, 3):
        if rng.random() < 0.5:
            x, y = x.flip(axis), y.flip(axis)
    return x, y


@torch.no_grad()
def predict(model, images):
    model.eval()
    out = torch.cat([model(images[i:i + 64]) for i in range(0, len(images), 64)])
    model.train()
    return out


def scores(logits, masks, sizes) -> dict:
    """Per-class IoU, Dice and E of thresholded logits, and their means over the classes."""
    from sizeseg.metrics import dice_score, iou_score
    from sizeseg.ops import object_size

    pred = logits > 0
    n, c = pred.shape[:2]
    predicted = torch.as_tensor(object_size(pred.reshape((n * c,) + pred.shape[2:]))).reshape(n, c).float()
    out = {}
    for k, name in enumerate(CLASSES):
        out[f"IoU_{name}"] = float(iou_score(pred[:, k], masks[:, k] > 0.5).mean())
        out[f"Dice_{name}"] = float(dice_score(pred[:, k], masks[:, k] > 0.5).mean())
        out[f"E_{name}"] = float(((predicted[:, k] - sizes[:, k]) ** 2).mean())
    for key in KEYS:
        out[f"{key}_mean"] = float(np.mean([out[f"{key}_{name}"] for name in CLASSES]))
    return out


def oracle(logits, masks, sizes) -> dict:
    """Scores of the logits with each class moved onto its true size (a mask, scored as logits +-1)."""
    from sizeseg.ops import size_matched_mask

    moved = torch.stack([size_matched_mask(logits[:, k], sizes[:, k]) for k in range(len(CLASSES))], 1)
    return scores(moved.float() * 2 - 1, masks, sizes)


def step(model, opt, loss):
    opt.zero_grad()
    loss.backward()
    opt.step()


def pretrain(model, images, masks, masked, val, args, rng) -> tuple[dict, list]:
    """BCE on the masked slices until the validation IoU stops rising (module doc); the best state and the curve."""
    lr, drops, best, best_state, waited, curve = args.lr, 0, -1.0, copy.deepcopy(model.state_dict()), 0, []
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for n in range(1, args.max_pretrain_steps + 1):
        idx = masked[rng.integers(0, len(masked), args.batch)]
        x, y = flip(images[idx], masks[idx], rng)
        step(model, opt, F.binary_cross_entropy_with_logits(model(x), y))
        if n % args.eval_every:
            continue
        now = scores(predict(model, images[val]), masks[val], torch.zeros(len(val), len(CLASSES)))["IoU_mean"]
        curve.append((n, lr, round(now, 4)))
        print(f"  step {n} lr {lr:.2g} validation IoU {now:.4f}", flush=True)
        if now > best + 0.002:
            best, best_state, waited = now, copy.deepcopy(model.state_dict()), 0
            continue
        if n < args.min_pretrain_steps:  # the validation IoU is noisy before it climbs: no verdict yet
            continue
        waited += 1
        if waited < args.patience:
            continue
        if drops == args.drops:
            break
        drops, waited, lr = drops + 1, 0, lr * 0.3
        model.load_state_dict(best_state)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    return best_state, curve


def finetune(model, images, masks, sizes, masked, sized, arm, args, seed, m) -> None:
    from sizeseg.losses import SizeLoss

    size_loss = SizeLoss(criterion=args.criterion, noise_scale=args.noise_scale, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=args.finetune_lr)
    rng = np.random.default_rng([seed, m, 1])
    half = args.batch // 2
    model.train()
    for _ in range(args.finetune_steps):
        if arm == "control":
            idx = masked[rng.integers(0, len(masked), args.batch)]
            x, y = flip(images[idx], masks[idx], rng)
            step(model, opt, F.binary_cross_entropy_with_logits(model(x), y))
        elif arm == "sizes":
            idx = sized[rng.integers(0, len(sized), args.batch)]
            x, _ = flip(images[idx], masks[idx], rng)  # sizes do not change under flips
            step(model, opt, size_loss(model(x), sizes[idx]))
        else:  # mixed: one forward pass, so batch norm sees the whole batch
            im, isz = masked[rng.integers(0, len(masked), half)], sized[rng.integers(0, len(sized), args.batch - half)]
            x, y = flip(images[np.concatenate([im, isz])], masks[np.concatenate([im, isz])], rng)
            logits = model(x)
            step(model, opt, F.binary_cross_entropy_with_logits(logits[:half], y[:half])
                 + args.size_weight * size_loss(logits[half:], sizes[isz]))


def masked_split(m, seed, train_idx, subjects, unit: str) -> tuple[np.ndarray, np.ndarray]:
    """(masked, sized) slice indices of the training pool: m random slices, or every slice of m random patients."""
    rng = np.random.default_rng([seed, m])
    if unit == "slices":
        order = rng.permutation(train_idx)
        return order[:m], order[m:]
    chosen = rng.permutation(sorted(set(subjects[train_idx].tolist())))[:m]
    inside = np.isin(subjects[train_idx], chosen)
    return train_idx[inside], train_idx[~inside]


def run_cell(m, seed, images, masks, sizes, train_idx, val_idx, test_idx, subjects, args, work: Path) -> list[dict]:
    from sizeseg.models import build_model

    t0 = time.perf_counter()
    masked, sized = masked_split(m, seed, train_idx, subjects, args.unit)
    print(f"m {m} {args.unit} seed {seed}: {len(masked)} masked and {len(sized)} sized slices", flush=True)
    torch.manual_seed(seed)
    model = build_model(args.model, in_channels=images.shape[1], out_channels=len(CLASSES))
    start_file = work / f"start-{args.unit}-m{m}-seed{seed}.pt"
    if start_file.is_file():
        saved = torch.load(start_file, weights_only=True)
        start, curve, pre_seconds = saved["state"], saved["curve"], saved["seconds"]
    else:
        start, curve = pretrain(model, images, masks, masked, val_idx, args, np.random.default_rng([seed, m]))
        pre_seconds = time.perf_counter() - t0
        work.mkdir(parents=True, exist_ok=True)
        torch.save({"state": start, "curve": curve, "seconds": pre_seconds}, start_file)
    model.load_state_dict(start)
    test = (images[test_idx], masks[test_idx], sizes[test_idx])
    logits = predict(model, test[0])
    base = {"m": m, "seed": seed}
    rows = [{**base, "arm": "pre-trained", "steps": curve[-1][0] if curve else 0, **scores(logits, *test[1:]),
             "seconds": pre_seconds},
            {**base, "arm": "true-size oracle", "steps": 0, **oracle(logits, *test[1:]), "seconds": 0.0}]
    for arm in args.arms:
        t1 = time.perf_counter()
        model.load_state_dict(start)
        torch.manual_seed(seed)
        finetune(model, images, masks, sizes, masked, sized, arm, args, seed, m)
        rows.append({**base, "arm": arm, "steps": args.finetune_steps, **scores(predict(model, test[0]), *test[1:]),
                     "seconds": time.perf_counter() - t1})
    best = max(curve, key=lambda c: c[2]) if curve else (0, 0, float("nan"))
    print(f"m {m} seed {seed}: pre-training {curve[-1][0] if curve else 0} steps, best validation IoU {best[2]} at "
          f"step {best[0]}; curve (step, lr, val IoU) {curve}", flush=True)
    return rows


def per_class(row: dict, key: str = "IoU") -> str:
    return "/".join(f"{row[key + '_' + c]:.3f}" for c in CLASSES)


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [{k: (v if k == "arm" else float(v)) for k, v in r.items()} for r in csv.DictReader(f)]


def report(rows: list[dict], settings: dict) -> str:
    """Per m: test IoU / Dice / E per class and averaged (mean ± sd over seeds), and each arm minus the control."""
    arms = ["pre-trained", "true-size oracle"] + [a for a in ARMS if any(r["arm"] == a for r in rows)]
    lines = []
    for m in sorted({int(r["m"]) for r in rows}):
        mine = [r for r in rows if int(r["m"]) == m]
        seeds = sorted({int(r["seed"]) for r in mine})
        for key, digits in (("IoU", 3), ("Dice", 3), ("E", 1)):
            lines += [f"**m = {m} masked {settings.get('unit', 'slices')}, test {key}** (mean ± sd over seeds {seeds})", "",
                      "| arm | " + " | ".join(CLASSES) + " | mean over classes |", "|---|" + "---|" * 4]
            for arm in arms:
                vals = {c: np.array([r[f"{key}_{c}"] for r in mine if r["arm"] == arm]) for c in CLASSES + ("mean",)}
                if not len(vals["mean"]):
                    continue
                lines.append(f"| {arm} | " + " | ".join(
                    f"{v.mean():.{digits}f}" + (f" ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else "")
                    for v in vals.values()) + " |")
            lines.append("")
        lines += [f"**m = {m}: paired difference to the control** (same seed; mean ± sd)", "",
                  "| arm | " + " | ".join(f"IoU {c}" for c in CLASSES + ("mean",)) + " | E mean |",
                  "|---|" + "---|" * 5]
        for arm in [a for a in arms if a not in ("control",)]:
            cells = []
            for key in [f"IoU_{c}" for c in CLASSES + ("mean",)] + ["E_mean"]:
                d = np.array([r[key] - c[key] for r in mine for c in mine if r["arm"] == arm and c["arm"] == "control"
                              and r["seed"] == c["seed"]])
                cells.append("—" if not len(d) else f"{d.mean():+.3f}" + (f" ± {d.std(ddof=1):.3f}" if len(d) > 1 else ""))
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(f"Settings: {json.dumps(settings)}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder (runs.csv, report.md)")
    parser.add_argument("--work", help="pre-trained starts (default OUT/work)")
    parser.add_argument("--data", default="../shared/data/ACDC", help="the ACDC folder")
    for flag, default, say in (("--field", 128, "central native field (pixels)"),
                               ("--resolution", 64, "working size (block average of the field)")):
        parser.add_argument(flag, type=int, default=default, help=say)
    parser.add_argument("--cache", default="", help="prepared folder to reuse (empty: prepare in memory)")
    parser.add_argument("--m", default="10,20", help="masked training slices or patients (--unit), comma-separated")
    parser.add_argument("--unit", choices=("slices", "patients"), default="slices",
                        help="what m counts: random slices, or patients (every slice of both their frames)")
    parser.add_argument("--seeds", default="0,1,2", help="seeds, comma-separated")
    parser.add_argument("--arms", default=",".join(ARMS), help="fine-tuning arms, comma-separated")
    parser.add_argument("--val-patients", type=int, default=10, help="training patients held out for validation")
    parser.add_argument("--model", default="unet-plain")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3, help="pre-training learning rate (first)")
    parser.add_argument("--eval-every", type=int, default=100, help="pre-training steps between validations")
    parser.add_argument("--patience", type=int, default=4, help="validations without gain before a drop / the stop")
    parser.add_argument("--drops", type=int, default=2, help="learning-rate drops (x0.3) before stopping")
    parser.add_argument("--min-pretrain-steps", type=int, default=1500,
                        help="no learning-rate drop or stop before this many pre-training steps")
    parser.add_argument("--max-pretrain-steps", type=int, default=4000)
    parser.add_argument("--finetune-steps", type=int, default=300)
    parser.add_argument("--finetune-lr", type=float, default=1e-4)
    parser.add_argument("--criterion", default="relative", help="SizeLoss criterion")
    parser.add_argument("--noise-scale", type=float, default=0.25, help="SizeLoss noise scale tau")
    parser.add_argument("--size-weight", type=float, default=1.0, help="size-term weight in mixed")
    args = parser.parse_args(argv)
    args.arms = [a for a in args.arms.split(",") if a]
    if not args.arms or set(args.arms) - set(ARMS):
        parser.error(f"--arms: expected some of {','.join(ARMS)}, got {','.join(args.arms)}")
    torch.set_num_threads(1)

    from sizeseg.io_utils import atomic_write_text

    images, masks, sizes, train_idx, val_idx, test_idx, subjects = load(args)
    print(f"{len(train_idx)} training-pool, {len(val_idx)} validation and {len(test_idx)} test slices of shape "
          f"{tuple(images.shape[2:])}; per-class size medians "
          f"{dict(zip(CLASSES, np.median(sizes[train_idx].numpy(), 0).tolist()))}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path, work = out / "runs.csv", Path(args.work) if args.work else out / "work"
    rows = read_rows(path)
    done = {(int(r["m"]), int(r["seed"])) for r in rows}
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "work", "cache")}
    for m in (int(v) for v in args.m.split(",")):
        for seed in (int(v) for v in args.seeds.split(",")):
            if (m, seed) in done:
                continue
            pool = len(train_idx) if args.unit == "slices" else len(set(subjects[train_idx].tolist()))
            if not 0 < m < pool:
                parser.error(f"--m: expected 0 < m < {pool} ({args.unit} of the training pool), got {m}")
            new = run_cell(m, seed, images, masks, sizes, train_idx, val_idx, test_idx, subjects, args, work)
            rows += new
            text = "\n".join(",".join(f"{r[c]:.5g}" if isinstance(r[c], float) else str(r[c]) for c in COLUMNS)
                             for r in rows)
            atomic_write_text(path, ",".join(COLUMNS) + "\n" + text + "\n")
            print(f"m {m} seed {seed}: " + "; ".join(f"{r['arm']} IoU {r['IoU_mean']:.3f} ({per_class(r)}) "
                                                     f"E {r['E_mean']:.1f}" for r in new), flush=True)
    atomic_write_text(out / "report.md", report(rows, settings))
    print(report(rows, settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
