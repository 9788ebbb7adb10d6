"""Paper 1's pre-training protocol on ACDC LV: do the sizes of the other slices beat more training on the masks?

Data: ACDC's left-ventricle cavity (label 3), the central 128x128 native pixels of every slice averaged
down to 64x64 (objects of about 4-30 px there), only slices that show the LV. Patients are split 75/25
(:func:`sizeseg.data.acdc.build_acdc`, seeded 0): the 25 % are the test set. For each m and seed:

1. m *slices* drawn at random from the training patients carry masks; every other training slice
   carries only its object size (``sizeseg.object_size``, measured on its mask).
2. Pre-train on the m masks: BCE, Adam at ``--lr``, ``--pretrain-steps`` batches drawn with replacement,
   random flips.
3. From that network, each for ``--finetune-steps`` batches at ``--finetune-lr``:

   - ``control``: BCE on the same m masks (more of the same training, no sizes);
   - ``size``: SizeLoss on the sizes of the other slices only (relative criterion, noise scale
     ``--noise-scale``, the library's defaults);
   - ``mixed``: half of each batch from the m masks (BCE), half from the sizes (SizeLoss), weights 1;
   - ``size-squared``: as ``size`` with the paper's squared criterion ``(t - s)^2`` (same noise scale).

4. Test IoU, Dice and E (squared size error of the thresholded prediction) per slice, and the true-size
   oracle of the pre-trained network (:func:`sizeseg.training.oracle.size_oracle`: each test prediction
   moved onto its true size, the most that sizes can add through the size).

A fixed schedule, no checkpoint selection: every method gets the same number of steps from the same start.
Rows are appended to ``OUT/runs.csv`` as each (m, seed) finishes, and finished ones are skipped when the
command is run again; ``OUT/report.md`` is rebuilt from all rows.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python scripts/sizes_acdc.py --data ../shared/data/ACDC --out results/sizes-acdc

``--synthetic N`` replaces ACDC by N synthetic images (for the test; seconds).
"""

from __future__ import annotations

import argparse
import copy
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sizes_noise import flip, loss_fn, predict  # noqa: E402

METHODS = ("control", "size", "mixed", "size-squared")
COLUMNS = ["m", "seed", "method", "n_test", "IoU", "Dice", "E", "dIoU", "dE", "seconds"]


def load_data(args):
    """(images, masks, sizes, is_train) of the slices that show an object, as tensors / a bool array."""
    if args.synthetic:
        from sizeseg.data.synthetic import synthetic_data

        data = synthetic_data(args.synthetic, shape=(args.resolution, args.resolution), seed=0)
        is_train = data.splits != "test"
    else:
        from sizeseg.data.acdc import prepare_acdc

        data, reused = prepare_acdc(args.data, args.cache, size=args.field, resolution=args.resolution, seed=0)
        print(f"ACDC {'reused from' if reused else 'prepared in'} {args.cache}: {len(data)} slices", flush=True)
        is_train = data.splits == "train"
    keep = np.asarray(data.sizes) > 0
    images = torch.from_numpy(np.asarray(data.images[keep], np.float32))
    masks = torch.from_numpy(np.asarray(data.masks[keep], np.float32))[:, None]
    sizes = torch.from_numpy(np.asarray(data.sizes[keep], np.float32))
    return images, masks, sizes, np.asarray(is_train)[keep]


def train(model, images, masks, sizes, pools, steps: int, batch: int, lr: float, fn, rng) -> None:
    """``steps`` Adam steps; each batch draws ``batch`` items with replacement from each pool in
    ``pools`` (index arrays) and calls ``fn(model, [(x, y, s) per pool])``."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        parts = []
        for pool, n in pools:
            idx = pool[rng.integers(0, len(pool), n)]
            x, y = flip(images[idx], masks[idx], rng)
            parts.append((x, y, sizes[idx]))
        loss = fn(model, parts)
        opt.zero_grad()
        loss.backward()
        opt.step()


def evaluate(model, images, masks, sizes) -> dict:
    from sizeseg.metrics import dice_score, iou_score, predicted_size

    logits = predict(model, images)
    pred, truth = logits[:, 0] > 0, masks[:, 0] > 0.5
    return {"IoU": float(iou_score(pred, truth).mean()), "Dice": float(dice_score(pred, truth).mean()),
            "E": float(((predicted_size(logits) - sizes) ** 2).mean()), "logits": logits}


def oracle_row(logits, masks, sizes) -> dict:
    from sizeseg.data.prepared import PreparedData
    from sizeseg.training.oracle import size_oracle

    n = len(masks)
    names = np.arange(n).astype(str)
    data = PreparedData(images=np.zeros((n, 1) + tuple(masks.shape[2:]), np.float32),
                        masks=masks[:, 0].numpy().astype(np.uint8), has_mask=np.ones(n, bool), sizes=sizes.numpy(),
                        ids=names, sources=names, slices=np.full(n, -1), volumes=names, splits=np.full(n, "test"))
    result = size_oracle(logits, data)
    return {"IoU": result["oracle_IoU"], "Dice": result["oracle_Dice"], "E": result["oracle_E"],
            "exact": result["exact"]}


def run_cell(m: int, seed: int, images, masks, sizes, train_idx, test_idx, args) -> list[dict]:
    """Pre-train on m masks, fine-tune each method; one row per method, the pre-trained one and the oracle."""
    from sizeseg.models import build_model

    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, m])
    order = rng.permutation(train_idx)
    masked, sized = order[:m], order[m:]
    torch.manual_seed(seed)
    model = build_model(args.model, in_channels=images.shape[1])
    bce = loss_fn("control", 1, seed)
    size_term = loss_fn(f"{args.criterion} tau={args.noise_scale:g}", 1, seed)
    squared_term = loss_fn(f"size tau={args.noise_scale:g}", 1, seed)

    def masks_only(net, parts):
        x, y, s = parts[0]
        return bce(net(x), y, s)

    def sizes_only(net, parts):
        x, y, s = parts[0]
        return size_term(net(x), y, s)

    def sizes_squared(net, parts):
        x, y, s = parts[0]
        return squared_term(net(x), y, s)

    def mixed(net, parts):
        (xm, ym, sm), (xs, ys, ss) = parts
        logits = net(torch.cat([xm, xs]))  # one forward pass: batch norm sees the whole batch
        return bce(logits[:len(xm)], ym, sm) + args.size_weight * size_term(logits[len(xm):], ys, ss)

    train(model, images, masks, sizes, [(masked, args.batch)], args.pretrain_steps, args.batch, args.lr,
          masks_only, rng)
    start_state = copy.deepcopy(model.state_dict())
    test = (images[test_idx], masks[test_idx], sizes[test_idx])
    start = evaluate(model, *test)
    base = {"m": m, "seed": seed, "n_test": len(test_idx)}
    rows = [{**base, "method": "pre-trained", **{k: start[k] for k in ("IoU", "Dice", "E")}, "dIoU": 0.0, "dE": 0.0,
             "seconds": time.perf_counter() - t0}]
    oracle = oracle_row(start["logits"], test[1], test[2])
    rows.append({**base, "method": "true-size oracle", **{k: oracle[k] for k in ("IoU", "Dice", "E")},
                 "dIoU": oracle["IoU"] - start["IoU"], "dE": oracle["E"] - start["E"], "seconds": 0.0})
    half = max(1, args.batch // 2)
    plans = {"control": ([(masked, args.batch)], masks_only), "size": ([(sized, args.batch)], sizes_only),
             "mixed": ([(masked, half), (sized, args.batch - half)], mixed),
             "size-squared": ([(sized, args.batch)], sizes_squared)}
    for method in args.methods:
        t1 = time.perf_counter()
        model.load_state_dict(start_state)
        torch.manual_seed(seed)
        pools, fn = plans[method]
        train(model, images, masks, sizes, pools, args.finetune_steps, args.batch, args.finetune_lr, fn,
              np.random.default_rng([seed, m, 1]))
        now = evaluate(model, *test)
        rows.append({**base, "method": method, **{k: now[k] for k in ("IoU", "Dice", "E")},
                     "dIoU": now["IoU"] - start["IoU"], "dE": now["E"] - start["E"],
                     "seconds": time.perf_counter() - t1})
    return rows


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [{**r, "m": int(r["m"]), "seed": int(r["seed"]), "n_test": int(r["n_test"]),
                 **{k: float(r[k]) for k in ("IoU", "Dice", "E", "dIoU", "dE", "seconds")}} for r in csv.DictReader(f)]


def report(rows: list[dict], args) -> str:
    """Mean ± sd over seeds of test IoU per method, the paired change to the pre-trained network, and E."""
    methods = ["pre-trained", "true-size oracle"] + [m for m in METHODS if any(r["method"] == m for r in rows)]
    ms = sorted({r["m"] for r in rows})

    def cell(m, method, key):
        vals = np.array([r[key] for r in rows if r["m"] == m and r["method"] == method])
        if not len(vals):
            return "—"
        digits = 1 if key in ("E", "dE") else 3
        sd = f" ± {vals.std(ddof=1):.{digits}f}" if len(vals) > 1 else ""
        return f"{vals.mean():{'+' if key.startswith('d') else ''}.{digits}f}{sd}"

    def seeds(m):
        return len({r["seed"] for r in rows if r["m"] == m})

    lines = ["Test IoU per slice (mean ± sd over seeds):", "",
             "| m | seeds | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    lines += [f"| {m} | {seeds(m)} | " + " | ".join(cell(m, x, "IoU") for x in methods) + " |" for m in ms]
    lines += ["", "Paired IoU change to the same seed's pre-trained network; `vs control` = method minus control:", "",
              "| m | " + " | ".join(methods[1:]) + " | size vs control | mixed vs control | size-squared vs control |",
              "|---|" + "---|" * (len(methods) + 2)]
    for m in ms:
        diffs = []
        for method in ("size", "mixed", "size-squared"):
            paired = [r["IoU"] - c["IoU"] for r in rows for c in rows if r["m"] == c["m"] == m and
                      r["seed"] == c["seed"] and r["method"] == method and c["method"] == "control"]
            diffs.append(f"{np.mean(paired):+.3f}" + (f" ± {np.std(paired, ddof=1):.3f}" if len(paired) > 1 else "")
                         if paired else "—")
        lines.append(f"| {m} | " + " | ".join(cell(m, x, "dIoU") for x in methods[1:]) + " | " + " | ".join(diffs) + " |")
    lines += ["", "Test E (mean squared size error of the thresholded prediction, px², mean ± sd over seeds):", "",
              "| m | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    lines += [f"| {m} | " + " | ".join(cell(m, x, "E") for x in methods) + " |" for m in ms]
    lines += ["", f"Settings: {vars(args)}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", default="../shared/data/ACDC", help="the ACDC folder")
    parser.add_argument("--cache", default="runs/acdc-field128-res64", help="prepared ACDC slices (made once)")
    parser.add_argument("--out", required=True, help="output folder (runs.csv, report.md)")
    parser.add_argument("--synthetic", type=int, default=0, help="N synthetic images instead of ACDC (tests)")
    parser.add_argument("--field", type=int, default=128, help="central native field (pixels)")
    parser.add_argument("--resolution", type=int, default=64, help="working size (block average of the field)")
    parser.add_argument("--m", default="5,10,20,40", help="masked training slices, comma-separated")
    parser.add_argument("--seeds", default="0,1,2", help="seeds, comma-separated")
    parser.add_argument("--methods", default=",".join(METHODS), help="fine-tuning methods, comma-separated")
    parser.add_argument("--model", default="unet-plain", help="network")
    parser.add_argument("--batch", type=int, default=16, help="images per batch")
    parser.add_argument("--lr", type=float, default=1e-3, help="pre-training learning rate")
    parser.add_argument("--pretrain-steps", type=int, default=500, help="pre-training batches")
    parser.add_argument("--finetune-steps", type=int, default=300, help="fine-tuning batches per method")
    parser.add_argument("--finetune-lr", type=float, default=1e-4, help="fine-tuning learning rate")
    parser.add_argument("--noise-scale", type=float, default=0.25, help="SizeLoss noise scale tau")
    parser.add_argument("--criterion", default="relative", choices=("relative", "size"),
                        help="SizeLoss criterion: relative ((t-s)^2/t^2) or size (squared, the paper's)")
    parser.add_argument("--size-weight", type=float, default=1.0, help="weight of the size term in mixed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"--methods: unknown {unknown}; expected some of {list(METHODS)}")
    torch.set_num_threads(args.threads)

    from sizeseg.io_utils import atomic_write_text

    images, masks, sizes, is_train = load_data(args)
    train_idx, test_idx = np.flatnonzero(is_train), np.flatnonzero(~is_train)
    print(f"{len(train_idx)} training and {len(test_idx)} test slices with an object; sizes "
          f"{int(sizes.min())}-{int(sizes.max())} px (median {float(sizes.median()):.0f})", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "runs.csv"
    rows = read_rows(path)
    done = {(r["m"], r["seed"]) for r in rows}
    for m in (int(v) for v in args.m.split(",")):
        for seed in (int(v) for v in args.seeds.split(",")):
            if (m, seed) in done:
                continue
            if m >= len(train_idx):
                parser.error(f"--m: {m} masks leave no sized training slice ({len(train_idx)} in all)")
            new = run_cell(m, seed, images, masks, sizes, train_idx, test_idx, args)
            rows += new
            text = "\n".join(",".join(str(r[c]) for c in COLUMNS) for r in rows)
            atomic_write_text(path, ",".join(COLUMNS) + "\n" + text + "\n")
            print(f"m {m} seed {seed}: " + ", ".join(f"{r['method']} IoU {r['IoU']:.3f} E {r['E']:.1f}" for r in new)
                  + f" ({sum(r['seconds'] for r in new):.0f} s)", flush=True)
    atomic_write_text(out / "report.md", report(rows, args))
    print(report(rows, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
