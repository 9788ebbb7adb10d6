"""Paper 1's pre-training protocol on ACDC LV: do the sizes of the other slices beat more training on the masks?

Data: ACDC's left-ventricle cavity (label 3), the central ``--field`` x ``--field`` native pixels of every
slice (128: objects of 2-58 px, median 20), at ``--resolution`` (default: the native pixels), only slices
that show the LV. Patients are split 75/25 (:func:`sizeseg.data.acdc.build_acdc`, seeded 0): the 25 % are
the test set. For each m and seed:

1. m *slices* drawn at random from the training patients carry masks; every other training slice
   carries only its object size (``sizeseg.object_size``, measured on its mask).
2. Pre-train on the m masks to convergence: BCE, Adam at ``--lr`` with cosine decay to 1 % over
   ``--pretrain-steps`` batches drawn with replacement, the 8 flips/transpositions of the square as
   augmentation. ``--curve`` scores the test set along the way (a check that the schedule converged).
3. From that network, each method for ``--finetune-steps`` batches at the constant ``--finetune-lr``
   (same batches of masked/sized slices for every method, same augmentation):

   - ``control``: BCE on the same m masks (more of the same training, no sizes);
   - ``size``: SizeLoss on the sizes of the other slices only, squared criterion (the paper's; or
     ``--criterion absolute``) with noise scale ``--noise-scale``; ``size-relative``: the relative criterion ``(t - s)^2 / t^2``;
   - ``matched``: BCE to the prediction moved onto each annotated size (``size_matched_bce``);
   - ``mixed``: half of each batch from the m masks (BCE), half from the sizes (SizeLoss, squared,
     times ``--size-weight``); ``mixed-matched``: the same with the size-matched BCE (weight 1).
   - ``area``: paper 2's penalty on the soft size with the bounds the sizes imply,
     ``[lo s^2, hi s^2]`` (:func:`sizeseg.data.bounds.size_area_bounds`; lo, hi: the range of
     area / size^2 over the m masks, widened by ``--area-margin``), times ``--area-weight``, on
     the soft size of ``sigmoid(logits / tau)`` (``--area-noise-scale``, default SizeLoss's tau);
     ``size-area``: SizeLoss plus that penalty; ``mixed-area``: ``mixed`` plus the penalty on the
     sized half. ``--units image`` measures the squared size error in image sides and the area
     penalty in images (``finetune --size-units image``): the weights then hold at any
     ``--resolution`` (4 and 40 there equal 1e-3 and 0.01 in pixels at 64 px).
   - ``mixed-area-val``: ``mixed-area`` at each of ``--area-weights``, each paired with the size weight
     at the same place in ``--size-weights`` (default: ``--size-weight`` for all); the network with the
     best IoU on ``--val`` validation slices is scored. Those slices are drawn from the training patients'
     slices after the m masks, and are neither trained on nor used as sizes.

4. On the test slices: IoU, Dice and E (squared size error of the thresholded prediction) per slice,
   per band of true size, and what the prediction did against the pre-trained one: its mean signed
   size error, false-positive and missed pixels, and share of empty predictions (did it shrink, grow
   or move?). The true-size oracle of the pre-trained network
   (:func:`sizeseg.training.oracle.size_oracle`: each prediction moved onto its true size) bounds what
   sizes can add through the size.

A fixed schedule, no checkpoint selection: every method gets the same steps from the same start.
Rows are appended to ``OUT/runs.csv`` as each (m, seed) finishes, and finished ones are skipped when the
command is run again; ``OUT/report.md`` is rebuilt from all rows.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python scripts/sizes_acdc.py --data ../shared/data/ACDC --out results/sizes-acdc

``--synthetic N`` replaces ACDC by N synthetic images (for the test; seconds).
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sizes_noise import loss_fn, predict  # noqa: E402

from sizeseg.data.bounds import area_ratio_range  # noqa: E402

METHODS = ("control", "size", "size-relative", "matched", "mixed", "mixed-matched", "area", "size-area",
           "mixed-area", "mixed-area-val")
#: methods whose size term carries --size-weight (recorded in the size_weight column)
SIZE_WEIGHTED = ("mixed", "mixed-area", "mixed-area-val")
#: bands of true object size (px, at the working resolution) for the per-band columns
BANDS = ((0, 10), (10, 20), (20, 30), (30, 10_000))
SCORES = ["IoU", "Dice", "E", "signed", "fp", "fn", "empty"] + [f"{k}_{lo}" for lo, _ in BANDS for k in ("E", "IoU")]
COLUMNS = ["m", "seed", "method", "n_test", *SCORES, "dIoU", "dE", "grad_ratio", "restarts", "seconds",
           "val_IoU", "area_weight", "size_weight"]
#: columns that older runs.csv files lack (read as NaN)
LATER_COLUMNS = ("val_IoU", "area_weight", "size_weight")


def load_data(args):
    """(images, masks, sizes, is_train) of the slices that show an object, as tensors / a bool array."""
    if args.synthetic:
        from sizeseg.data.synthetic import synthetic_data

        data = synthetic_data(args.synthetic, shape=(args.resolution, args.resolution), seed=0)
        is_train = data.splits != "test"
    else:
        from sizeseg.data.acdc import prepare_acdc

        cache = args.cache or f"runs/acdc-field{args.field}-res{args.resolution}"
        data, reused = prepare_acdc(args.data, cache, size=args.field, resolution=args.resolution, seed=0)
        print(f"ACDC {'reused from' if reused else 'prepared in'} {cache}: {len(data)} slices", flush=True)
        is_train = data.splits == "train"
    keep = np.asarray(data.sizes) > 0
    images = torch.from_numpy(np.asarray(data.images[keep], np.float32))
    masks = torch.from_numpy(np.asarray(data.masks[keep], np.float32))[:, None]
    sizes = torch.from_numpy(np.asarray(data.sizes[keep], np.float32))
    return images, masks, sizes, np.asarray(is_train)[keep]


def augment(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator):
    """One of the 8 flips/transpositions of the square, the same for the whole batch (sizes unchanged)."""
    if rng.random() < 0.5:
        x, y = x.transpose(2, 3), y.transpose(2, 3)
    for axis in (2, 3):
        if rng.random() < 0.5:
            x, y = x.flip(axis), y.flip(axis)
    return x, y


def draw(pools, images, masks, sizes, rng):
    """One batch: ``n`` items drawn with replacement from each (index array, n) pool, augmented."""
    parts = []
    for pool, n in pools:
        idx = pool[rng.integers(0, len(pool), n)]
        x, y = augment(images[idx], masks[idx], rng)
        parts.append((x, y, sizes[idx]))
    return parts


def train(model, images, masks, sizes, pools, steps: int, lr: float, fn, rng, cosine: bool = False,
          every: int = 0, score=None) -> list[tuple[int, float]]:
    """``steps`` Adam steps on ``fn(model, parts)``; cosine decay to lr / 100 when ``cosine``. With
    ``every``, ``score(model)`` is recorded every that many steps (returned as (step, value))."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr / 100) if cosine else None
    curve = []
    model.train()
    for step in range(1, steps + 1):
        loss = fn(model, draw(pools, images, masks, sizes, rng))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        if every and (step % every == 0 or step == steps):
            curve.append((step, score(model)))
            model.train()
    return curve


def grad_norm(model, loss) -> float:
    model.zero_grad()
    loss.backward()
    norm = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters() if p.grad is not None))
    model.zero_grad()
    return norm


def evaluate(model, images, masks, sizes) -> dict:
    """Scores of the network on the test slices (see :func:`score_logits`)."""
    return score_logits(predict(model, images), masks, sizes)


def score_logits(logits, masks, sizes) -> dict:
    """IoU, Dice, E, signed size error, FP / missed pixels, empty share, and E / IoU per band of true size."""
    from sizeseg.metrics import dice_score, iou_score, predicted_size

    pred, truth = logits[:, 0] > 0, masks[:, 0] > 0.5
    iou = iou_score(pred, truth)
    err = predicted_size(logits) - sizes
    out = {"IoU": float(iou.mean()), "Dice": float(dice_score(pred, truth).mean()), "E": float((err ** 2).mean()),
           "signed": float(err.mean()), "fp": float((pred & ~truth).sum((1, 2)).float().mean()),
           "fn": float((~pred & truth).sum((1, 2)).float().mean()), "empty": float((pred.sum((1, 2)) == 0).float().mean()),
           "logits": logits}
    for lo, hi in BANDS:
        keep = (sizes >= lo) & (sizes < hi)
        out[f"E_{lo}"] = float((err[keep] ** 2).mean()) if bool(keep.any()) else float("nan")
        out[f"IoU_{lo}"] = float(iou[keep].mean()) if bool(keep.any()) else float("nan")
    return out


def oracle_scores(logits, masks, sizes) -> dict:
    from sizeseg.ops import size_matched_mask

    moved = size_matched_mask(logits[:, 0], sizes.numpy())
    return score_logits(moved[:, None].float() * 2 - 1, masks, sizes)


def area_term(ratio_range, weight: float, noise_scale: float, units: str = "pixels"):
    """(logits, masks, sizes) -> ``weight`` x the library's area-bound term (``finetune --area-weight``).

    :class:`sizeseg.training.AreaBoundTerm` takes the soft size of ``sigmoid(logits / noise_scale)``:
    with SizeLoss's noise scale it is the expected area of the mask that SizeLoss samples. With the
    plain sigmoid (scale 1) it counts the diffuse mass of thousands of background pixels at p ~ 0.05,
    and the upper bound shrinks the object before it removes that mass.
    """
    from sizeseg.training.loss_terms import AreaBoundTerm

    term = AreaBoundTerm(ratio_range, noise_scale=noise_scale, units=units)
    return lambda logits, y, s: weight * term(logits, {"size": s})


def run_cell(m: int, seed: int, images, masks, sizes, train_idx, test_idx, args) -> list[dict]:
    """Pre-train on m masks, fine-tune each method; one row per method, the pre-trained one and the oracle."""
    import torch.nn.functional as F

    from sizeseg.models import build_model

    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, m])
    order = rng.permutation(train_idx)
    # --val slices with masks, for choosing a weight (mixed-area-val); none of them trains
    masked, val_idx, sized = order[:m], order[m:m + args.val], order[m + args.val:]
    torch.manual_seed(seed)
    model = build_model(args.model, in_channels=images.shape[1])
    tau = f" tau={args.noise_scale:g}"
    from sizeseg.training.loss_terms import unit_scale

    from sizeseg.losses.size_criteria import get_criterion
    from sizeseg.losses.size_loss import SizeLoss

    size_loss = SizeLoss(criterion=args.criterion, noise_scale=args.noise_scale, seed=seed)
    degree = get_criterion(args.criterion).degree
    terms = {"bce": lambda logits, y, s: F.binary_cross_entropy_with_logits(logits, y),
             "size": lambda logits, y, s: size_loss(logits, s) * unit_scale(logits, args.units, degree),
             "size-relative": loss_fn("relative" + tau, 1, seed), "matched": loss_fn("matched", 1, seed)}
    ratio_range = area_ratio_range(masks[masked].sum((1, 2, 3)).numpy(), sizes[masked].numpy(), args.area_margin)
    area_tau = args.noise_scale if args.area_noise_scale is None else args.area_noise_scale
    terms["area"] = area_term(ratio_range, args.area_weight, area_tau, args.units)
    terms["size-area"] = lambda logits, y, s: terms["size"](logits, y, s) + terms["area"](logits, y, s)

    def single(term):
        def fn(net, parts):
            x, y, s = parts[0]
            return terms[term](net(x), y, s)
        return fn

    def mixed(term, weight):
        def fn(net, parts):
            (xm, ym, sm), (xs, ys, ss) = parts
            logits = net(torch.cat([xm, xs]))  # one forward pass: batch norm sees the whole batch
            return terms["bce"](logits[:len(xm)], ym, sm) + weight * terms[term](logits[len(xm):], ys, ss)
        return fn

    def mixed_area(weight, area=None):
        area = area or terms["area"]

        def fn(net, parts):
            (xm, ym, sm), (xs, ys, ss) = parts
            logits = net(torch.cat([xm, xs]))
            sized_logits = logits[len(xm):]
            return (terms["bce"](logits[:len(xm)], ym, sm) + weight * terms["size"](sized_logits, ys, ss)
                    + area(sized_logits, ys, ss))
        return fn

    test = (images[test_idx], masks[test_idx], sizes[test_idx])
    restarts = 0
    while True:
        curve = train(model, images, masks, sizes, [(masked, args.batch)], args.pretrain_steps, args.lr,
                      single("bce"), rng, cosine=True, every=args.curve, score=lambda net: evaluate(net, *test)["IoU"])
        # An initialisation can stay at the all-background solution (seen at 64 px for seed 2 at every m).
        # That is visible on the m training masks themselves, so the start is drawn again, as a user would.
        fit = evaluate(model, images[masked], masks[masked], sizes[masked])["IoU"]
        if fit >= 0.05 or restarts >= 3:
            break
        restarts += 1
        print(f"m {m} seed {seed}: pre-training stayed at background (training-mask IoU {fit:.3f}); "
              f"new initialisation {restarts}", flush=True)
        torch.manual_seed(seed + 1000 * restarts)
        model = build_model(args.model, in_channels=images.shape[1])
    if curve:
        print(f"m {m} seed {seed} pre-training test IoU: " + ", ".join(f"{s}: {v:.3f}" for s, v in curve), flush=True)
    start_state = copy.deepcopy(model.state_dict())
    start = evaluate(model, *test)
    base = {"m": m, "seed": seed, "n_test": len(test_idx), "grad_ratio": float("nan"), "restarts": restarts,
            "val_IoU": float("nan"), "area_weight": float("nan"), "size_weight": float("nan")}
    rows = [{**base, "method": "pre-trained", **{k: start[k] for k in SCORES}, "dIoU": 0.0, "dE": 0.0,
             "seconds": time.perf_counter() - t0}]
    oracle = oracle_scores(start["logits"], test[1], test[2])
    rows.append({**base, "method": "true-size oracle", **{k: oracle[k] for k in SCORES},
                 "dIoU": oracle["IoU"] - start["IoU"], "dE": oracle["E"] - start["E"], "seconds": 0.0})
    half = max(1, args.batch // 2)
    plans = {"control": ([(masked, args.batch)], single("bce")),
             "size": ([(sized, args.batch)], single("size")),
             "size-relative": ([(sized, args.batch)], single("size-relative")),
             "matched": ([(sized, args.batch)], single("matched")),
             "mixed": ([(masked, half), (sized, args.batch - half)], mixed("size", args.size_weight)),
             "mixed-matched": ([(masked, half), (sized, args.batch - half)], mixed("matched", 1.0)),
             "area": ([(sized, args.batch)], single("area")),
             "size-area": ([(sized, args.batch)], single("size-area")),
             "mixed-area": ([(masked, half), (sized, args.batch - half)], mixed_area(args.size_weight))}
    val = (images[val_idx], masks[val_idx], sizes[val_idx])
    # how the size terms' gradients compare with the BCE's on the pre-trained network (one batch each)
    probe = draw([(masked, half), (sized, args.batch - half)], images, masks, sizes, np.random.default_rng(seed))
    model.train()
    bce_norm = grad_norm(model, terms["bce"](model(probe[0][0]), probe[0][1], probe[0][2]))
    def val_iou(net) -> float:
        return evaluate(net, *val)["IoU"] if len(val_idx) else float("nan")

    rows[0]["val_IoU"] = val_iou(model)
    for method in args.methods:
        t1 = time.perf_counter()
        # mixed-area-val: mixed-area at each of --area-weights, the one with the best validation IoU kept
        weights = (list(zip(args.area_weights, args.size_weights)) if method == "mixed-area-val"
                   else [(args.area_weight, args.size_weight)])
        best = None
        for area_weight, size_weight in weights:
            model.load_state_dict(start_state)
            torch.manual_seed(seed)
            if method == "mixed-area-val":
                area = area_term(ratio_range, area_weight, area_tau, args.units)
                pools, fn = plans["mixed-area"][0], mixed_area(size_weight, area)
            else:
                area = terms["area"]
                pools, fn = plans[method]
            term = {"size": terms["size"], "size-relative": terms["size-relative"], "matched": terms["matched"],
                    "mixed": terms["size"], "mixed-matched": terms["matched"]}.get(method)
            if method in ("area", "size-area", "mixed-area", "mixed-area-val"):
                term = area
            ratio = float("nan")
            if term is not None:
                weight = args.size_weight if method == "mixed" else 1.0  # the area term carries its weight
                ratio = weight * grad_norm(model, term(model(probe[1][0]), probe[1][1], probe[1][2])) / bce_norm
                model.load_state_dict(start_state)
            train(model, images, masks, sizes, pools, args.finetune_steps, args.finetune_lr, fn,
                  np.random.default_rng([seed, m, 1]))
            score = val_iou(model)
            if best is None or score > best[0]:
                best = (score, area_weight, size_weight, ratio, evaluate(model, *test))
        score, area_weight, size_weight, ratio, now = best
        uses_area = method in ("area", "size-area", "mixed-area", "mixed-area-val")
        rows.append({**base, "method": method, **{k: now[k] for k in SCORES}, "grad_ratio": ratio,
                     "dIoU": now["IoU"] - start["IoU"], "dE": now["E"] - start["E"],
                     "seconds": time.perf_counter() - t1, "val_IoU": score,
                     "area_weight": area_weight if uses_area else float("nan"),
                     "size_weight": size_weight if method in SIZE_WEIGHTED else float("nan")})
    return rows


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not set(COLUMNS) - set(LATER_COLUMNS) <= set(rows[0]) <= set(COLUMNS):
        raise SystemExit(f"{path}: written by another version of this script (columns {list(rows[0])}); "
                         "use another --out")
    return [{**r, "m": int(r["m"]), "seed": int(r["seed"]), "n_test": int(r["n_test"]),
             **{k: float(r.get(k, "nan")) for k in COLUMNS[4:]}} for r in rows]


def report(rows: list[dict], args) -> str:
    """Mean ± sd over seeds of test IoU per method, the paired change to the control, E, and diagnostics."""
    present = {r["method"] for r in rows}
    methods = ["pre-trained", "true-size oracle"] + [m for m in METHODS if m in present]
    tuned = [m for m in METHODS if m in present and m != "control"]
    ms = sorted({r["m"] for r in rows})

    def vals(m, method, key):
        return np.array([r[key] for r in rows if r["m"] == m and r["method"] == method])

    def fmt(v, digits, sign=False):
        if not len(v):
            return "—"
        sd = f" ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else ""
        return f"{v.mean():{'+' if sign else ''}.{digits}f}{sd}"

    def seeds(m):
        return len({r["seed"] for r in rows if r["m"] == m})

    def paired(m, method, key="IoU"):
        return np.array([r[key] - c[key] for r in rows for c in rows if r["m"] == c["m"] == m and
                         r["seed"] == c["seed"] and r["method"] == method and c["method"] == "control"])

    lines = ["Test IoU per slice (mean ± sd over seeds):", "",
             "| m | seeds | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    lines += [f"| {m} | {seeds(m)} | " + " | ".join(fmt(vals(m, x, "IoU"), 3) for x in methods) + " |" for m in ms]
    lines += ["", "Paired test-IoU change: the oracle and the control against the pre-trained network; every "
              "other method against the control (method minus control, same seed):", "",
              "| m | oracle − pre-trained | control − pre-trained | " + " | ".join(f"{x} − control" for x in tuned) + " |",
              "|---|---|---|" + "---|" * len(tuned)]
    for m in ms:
        lines.append(f"| {m} | {fmt(vals(m, 'true-size oracle', 'dIoU'), 3, True)} | {fmt(vals(m, 'control', 'dIoU'), 3, True)} | "
                     + " | ".join(fmt(paired(m, x), 3, True) for x in tuned) + " |")
    lines += ["", "Test E (mean squared size error of the thresholded prediction, px², mean ± sd over seeds):", "",
              "| m | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    lines += [f"| {m} | " + " | ".join(fmt(vals(m, x, "E"), 1) for x in methods) + " |" for m in ms]
    names = [f"{lo}-{hi}" if hi < 10_000 else f"{lo}+" for lo, hi in BANDS]
    lines += ["", "What the predictions did (mean over m and seeds): signed size error (px, predicted − true), "
              "false-positive and missed pixels per slice, share of empty predictions, E and IoU per band of true "
              "size (px), and the size term's gradient norm over the BCE's on the pre-trained network:", "",
              "| method | signed | FP px | missed px | empty | " + " | ".join(f"E {b}" for b in names) + " | "
              + " | ".join(f"IoU {b}" for b in names) + " | grad size/BCE |",
              "|---|" + "---|" * (5 + 2 * len(names))]
    for x in methods:
        def mean(key):
            v = np.array([r[key] for r in rows if r["method"] == x], float)
            v = v[np.isfinite(v)]
            return v.mean() if len(v) else float("nan")
        cells = [f"{mean('signed'):+.1f}", f"{mean('fp'):.0f}", f"{mean('fn'):.0f}", f"{mean('empty'):.3f}"]
        cells += [f"{mean(f'E_{lo}'):.1f}" for lo, _ in BANDS] + [f"{mean(f'IoU_{lo}'):.3f}" for lo, _ in BANDS]
        ratio = mean("grad_ratio")
        cells.append("—" if math.isnan(ratio) else f"{ratio:.3g}")
        lines.append(f"| {x} | " + " | ".join(cells) + " |")
    chosen = [r for r in rows if r["method"] == "mixed-area-val"]
    if chosen:
        pairs = len(set(args.size_weights)) > 1  # else only the area weight varied
        what = "area weight / size weight" if pairs else "area weight"

        def weights(r):
            return f"{r['area_weight']:g} / {r['size_weight']:g}" if pairs else f"{r['area_weight']:g}"
        lines += ["", f"mixed-area-val: the {what} chosen on the validation slices, per m (one per seed): "
                  + "; ".join(f"m = {m}: " + ", ".join(weights(r) for r in chosen if r["m"] == m) for m in ms)]
    settings = {k: v for k, v in vars(args).items() if k not in ("data",)}
    lines += ["", f"Settings: {settings}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", default="../shared/data/ACDC", help="the ACDC folder")
    parser.add_argument("--cache", default=None, help="prepared ACDC slices, made once (default runs/acdc-fieldF-resR)")
    parser.add_argument("--out", required=True, help="output folder (runs.csv, report.md)")
    parser.add_argument("--synthetic", type=int, default=0, help="N synthetic images instead of ACDC (tests)")
    parser.add_argument("--field", type=int, default=128, help="central native field (pixels)")
    parser.add_argument("--resolution", type=int, default=128, help="working size (block average of the field)")
    parser.add_argument("--m", default="5,10,20,40", help="masked training slices, comma-separated")
    parser.add_argument("--seeds", default="0,1,2", help="seeds, comma-separated")
    parser.add_argument("--methods", default=",".join(METHODS[:-1]),
                        help=f"fine-tuning methods, comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--model", default="unet-plain", help="network")
    parser.add_argument("--batch", type=int, default=8, help="images per batch")
    parser.add_argument("--lr", type=float, default=1e-3, help="pre-training learning rate (cosine decay to 1 %%)")
    parser.add_argument("--pretrain-steps", type=int, default=800, help="pre-training batches")
    parser.add_argument("--curve", type=int, default=0, help="score the test set every this many pre-training steps")
    parser.add_argument("--finetune-steps", type=int, default=200, help="fine-tuning batches per method")
    parser.add_argument("--finetune-lr", type=float, default=1e-4, help="fine-tuning learning rate (constant)")
    parser.add_argument("--noise-scale", type=float, default=0.25, help="SizeLoss noise scale tau")
    parser.add_argument("--criterion", choices=("squared", "absolute"), default="squared",
                        help="SizeLoss criterion of size, mixed, size-area and mixed-area: the squared error "
                             "(the paper's) or |t - s|, whose weight grows with the object size as t, not t^2")
    parser.add_argument("--size-weight", type=float, default=1e-3, help="weight of SizeLoss (--criterion) in mixed")
    parser.add_argument("--area-margin", type=float, default=0.1,
                        help="widening of the masks' area / size^2 range for the area methods")
    parser.add_argument("--area-weight", type=float, default=1.0, help="weight of the area penalty")
    parser.add_argument("--area-weights", default="0.003,0.01,0.03",
                        help="mixed-area-val: the area weights tried, comma-separated; the best validation IoU wins")
    parser.add_argument("--size-weights", default=None,
                        help="mixed-area-val: the size weight paired with each of --area-weights, comma-separated "
                             "(default: --size-weight with every area weight)")
    parser.add_argument("--val", type=int, default=0,
                        help="training slices with masks kept for validation (mixed-area-val chooses by them); "
                             "they neither pre-train nor carry sizes")
    parser.add_argument("--area-noise-scale", type=float, default=None,
                        help="the area penalty's soft size is of sigmoid(logits / this) (default: --noise-scale)")
    parser.add_argument("--units", choices=("pixels", "image"), default="pixels",
                        help="unit of the squared size error and the area penalty (finetune --size-units): in image "
                             "units the weights hold at any --resolution; 4 and 40 equal 1e-3 and 0.01 at 64 px")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    args.methods = [m for m in args.methods.split(",") if m]
    try:
        args.area_weights = [float(w) for w in args.area_weights.split(",") if w]
    except ValueError:
        parser.error(f"--area-weights: expected comma-separated numbers, got {args.area_weights!r}")
    if not args.area_weights or min(args.area_weights) < 0:
        parser.error(f"--area-weights: expected weights >= 0, got {args.area_weights!r}")
    try:
        args.size_weights = ([args.size_weight] * len(args.area_weights) if args.size_weights is None
                             else [float(w) for w in args.size_weights.split(",") if w])
    except ValueError:
        parser.error(f"--size-weights: expected comma-separated numbers, got {args.size_weights!r}")
    if len(args.size_weights) != len(args.area_weights) or min(args.size_weights) < 0:
        parser.error(f"--size-weights: expected {len(args.area_weights)} weights >= 0, one per --area-weights, "
                     f"got {args.size_weights}")
    if args.val < 0:
        parser.error(f"--val: expected a count >= 0, got {args.val}")
    if "mixed-area-val" in args.methods and args.val < 1:
        parser.error("--methods: mixed-area-val chooses its area weight on validation slices; give --val N (N >= 1)")
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
            if m + args.val >= len(train_idx):
                parser.error(f"--m, --val: {m} masks and {args.val} validation slices leave no sized training slice "
                             f"({len(train_idx)} in all)")
            new = run_cell(m, seed, images, masks, sizes, train_idx, test_idx, args)
            rows += new
            text = "\n".join(",".join(str(r[c]) for c in COLUMNS) for r in rows)
            atomic_write_text(path, ",".join(COLUMNS) + "\n" + text + "\n")
            print(f"m {m} seed {seed}: " + ", ".join(f"{r['method']} IoU {r['IoU']:.3f} E {r['E']:.1f}" for r in new)
                  + f" ({sum(r['seconds'] for r in new):.0f} s)", flush=True)
            atomic_write_text(out / "report.md", report(rows, args))
    atomic_write_text(out / "report.md", report(rows, args))
    print(report(rows, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
