"""Which noise scale and size criterion let size fine-tuning work on objects of 4 to 80 px?

Synthetic images (96x96, :func:`sizeseg.data.synthetic.synthetic_item`) hold one object each, drawn
in four bands of object size (about 4-10, 10-20, 20-40 and 40-80 px). Two parts, each method
against the same start:

A. The loss alone (seconds): per-pixel logits, free parameters, start as a calibrated prediction
   of the wrong size (the true mask dilated or eroded by ~15 % of its size) and move under each
   loss with Adam. What the loss drives the thresholded size and the mask to, without a network.
B. Size fine-tuning of a network (minutes on an idle CPU): a U-Net pre-trained on a few masks is
   fine-tuned on the sizes of every training image.

Methods:

- ``control`` (B only): BCE on the same masks, the same schedule (training longer without sizes);
- ``full`` (B only): BCE on the masks of every training image, the size methods' batches: what
  complete labels would give with this network and schedule, a ceiling for the sizes;
- ``size tau=T``: SizeLoss, squared error, logistic noise of scale T (1 is the paper's);
- ``relative tau=T``: SizeLoss with the relative criterion ``(t - s)^2 / t^2``;
- ``matched``: BCE to the prediction moved onto the annotated size (``size_matched_bce``);
- ``size+area tau=T`` (B only): README step 4's size terms without the masks: SizeLoss (squared, scale
  T) plus the area bounds each size implies (``AreaBoundTerm``, the ratio range measured on the
  masked pre-training images), in image units with step 4's weights 4 and 40.
- ``mixed+area tau=T`` (B only): README step 4 itself (``finetune --mixed``): the ``size+area`` terms on
  every sized image plus BCE on the masked ones, batches drawn so that masked images make half of each
  epoch (``mask_fraction`` 0.5, as mixed training draws them).
- ``mixed tau=T`` (B only): the same without the area bounds.
- ``mixed+relarea tau=T`` (B only): ``mixed`` with the area bounds measured relative to each image's
  bound (:class:`RelativeAreaBound`, weight ``--relative-area-weight``) instead of in image units,
  where a blob nine times a 4 px object's area costs about 10^-3 and the same excess on a large
  object a thousand times more.

The last three take a size criterion other than the squared error as a suffix, e.g.
``mixed+area tau=0.25 criterion=absolute`` (``|t - s|``, whose weight per unit of relative error grows
with the size as ``t``, between ``squared``'s ``t^2`` and ``relative``'s 1).

Per size band of the test images: the thresholded size error E, the IoU, the paired IoU change
against the start with its standard error over the band's images, and the predicted area over the
true area (which says whether a band's IoU fell by over- or under-segmenting). Writes ``OUT/results.csv`` and
``OUT/report.md``.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python scripts/sizes_noise.py --out results/sizes-noise

(NUMBA_NUM_THREADS=1: with numba's default of one thread per core, a SizeLoss step of 16 64x64
images took 2.4 s of CPU instead of 0.08 s on a 2-core machine busy with other work.)
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

#: (low, high) object size of each band, and the semi-axis range (fraction of the side) drawn for it
BANDS = {"4-10": (4, 10, (0.03, 0.06)), "10-20": (10, 20, (0.07, 0.13)),
         "20-40": (20, 40, (0.15, 0.26)), "40-80": (40, 80, (0.35, 0.7))}


def make_data(n: int, side: int, seed: int, blur: tuple[float, float] | None = None):
    """n items, band i % 4, keeping only objects whose size falls inside their band (``blur``: the
    renderer's blur range in px, None for its default, which grows with ``side``)."""
    from sizeseg.data.sizes import object_sizes
    from sizeseg.data.synthetic import synthetic_item

    images, masks, bands = [], [], []
    index = 0
    names = list(BANDS)
    while len(images) < n:
        band = names[len(images) % len(names)]
        low, high, radius = BANDS[band]
        img, msk = synthetic_item(seed, index, (side, side), radius_range=radius, fraction_range=(1e-4, 0.95),
                                  blur=blur)
        index += 1
        size = float(object_sizes(msk[None])[0])
        if low <= size <= high:
            # The renderer draws the object brighter or darker than the background at random; an
            # object covering most of the image then looks like background around a hole, which no
            # network can tell apart. The object is made the brighter side (the image is standardised,
            # so its negation is an image of the same kind).
            if img[msk > 0].mean() < img[msk == 0].mean():
                img = -img
            images.append(img)
            masks.append(msk)
            bands.append(band)
    images = torch.from_numpy(np.stack(images))[:, None]
    masks = torch.from_numpy(np.stack(masks)).float()[:, None]
    sizes = torch.from_numpy(object_sizes(masks[:, 0].numpy().astype(np.uint8)))
    return images, masks, sizes, np.array(bands)


def start_logits(masks: torch.Tensor, sizes: torch.Tensor, seed: int, error: float = 0.15) -> torch.Tensor:
    """Logits of a calibrated but wrongly sized prediction: the true mask dilated or eroded by about
    ``error`` x its size / 2 (at least 1 px), its boundary roughened by smooth noise, as the signed
    distance to that boundary (1 per px, clipped at +-6)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    out = []
    for mask, size in zip(masks[:, 0].numpy() > 0.5, sizes.tolist()):
        step = max(1, round(error * size / 2)) * rng.choice([-1, 1])
        square = np.ones((2 * abs(step) + 1,) * 2, bool)  # a Chebyshev ball: the size moves by 2 * step
        moved = ndimage.binary_dilation(mask, square) if step > 0 else ndimage.binary_erosion(mask, square)
        signed = ndimage.distance_transform_edt(moved) - ndimage.distance_transform_edt(~moved)
        rough = ndimage.gaussian_filter(rng.normal(size=mask.shape), 2.0)
        out.append(np.clip(signed - 0.5 + rough / (rough.std() + 1e-12) * 0.7, -6, 6))
    return torch.from_numpy(np.stack(out)).float()[:, None]


def free_logit_rows(images, masks, sizes, bands, methods, steps: int, lr: float, seed: int) -> list[dict]:
    """Part A: the loss alone. Each method moves free per-pixel logits (Adam, ``steps`` steps) from
    :func:`start_logits`; thresholded E and IoU against the true masks, per band."""
    from sizeseg.metrics import iou_score, predicted_size

    def score(logits):
        return {"E": ((predicted_size(logits) - sizes) ** 2).numpy(),
                "IoU": iou_score(logits[:, 0] > 0, masks[:, 0] > 0.5).numpy(), "area": area_ratio(logits, masks)}

    init = start_logits(masks, sizes, seed)
    start = score(init)
    rows = band_rows("start (sized wrong)", start, start, bands)
    for method in methods:
        if method != "matched" and (method in ("control", "full") or parse_method(method)[0] not in FREE_LOGIT_KINDS):
            continue  # part A has no masked images to train on or to measure area bounds on
        torch.manual_seed(seed)
        logits = init.clone().requires_grad_(True)
        opt = torch.optim.Adam([logits], lr=lr)
        fn = loss_fn(method, 1, seed)
        for _ in range(steps):
            loss = fn(logits, masks, sizes)
            opt.zero_grad()
            loss.backward()
            opt.step()
        rows += band_rows(method, score(logits.detach()), start, bands)
    return rows


def batches(n: int, batch: int, rng: np.random.Generator):
    order = rng.permutation(n)
    # no batch of one image: batch normalisation needs two
    return [order[i:i + batch] for i in range(0, n, batch) if len(order[i:i + batch]) > 1]


def flip(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator):
    for axis in (2, 3):
        if rng.random() < 0.5:
            x, y = x.flip(axis), y.flip(axis)
    return x, y


@torch.no_grad()
def predict(model, images: torch.Tensor) -> torch.Tensor:
    model.eval()
    out = torch.cat([model(images[i:i + 32]) for i in range(0, len(images), 32)])
    model.train()
    return out


def scores(model, images, masks, sizes) -> dict:
    from sizeseg.metrics import iou_score, predicted_size

    logits = predict(model, images)
    pred_size = predicted_size(logits)
    return {"E": ((pred_size - sizes) ** 2).numpy(), "IoU": iou_score(logits[:, 0] > 0, masks[:, 0] > 0.5).numpy(),
            "size": pred_size.numpy(), "area": area_ratio(logits, masks), "from_object": size_from_object(logits, masks)}


def size_from_object(logits: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """Per image: does the thresholded prediction's size come from a connected part (8-connected)
    that touches the true object? False where it comes only from a false-positive blob elsewhere,
    or where nothing is predicted. (The size is 2 x the largest chessboard distance to the
    background, outside the image counting as background, as :func:`sizeseg.object_size`.)"""
    from scipy import ndimage

    out = []
    for pred, true in zip((logits[:, 0] > 0).numpy(), (masks[:, 0] > 0.5).numpy()):
        dist = ndimage.distance_transform_cdt(np.pad(pred, 1), metric="chessboard")[1:-1, 1:-1]
        if dist.max() == 0:
            out.append(False)
            continue
        labels, _ = ndimage.label(pred, structure=np.ones((3, 3), bool))
        sources = np.unique(labels[dist == dist.max()])
        out.append(bool(np.isin(labels[true], sources).any()))
    return np.array(out)


def area_ratio(logits: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """Thresholded predicted area over the true area, per image."""
    return ((logits > 0).sum(dim=(1, 2, 3)).float() / (masks > 0.5).sum(dim=(1, 2, 3)).float()).numpy()


#: method names of the form "<kind> tau=T"
TAU_KINDS = ("size", "relative", "size+area", "mixed", "mixed+area", "mixed+relarea")


#: kinds part A runs (the others need masked images)
FREE_LOGIT_KINDS = ("size", "relative")


#: kinds that take a size criterion suffix (" criterion=C"), squared by default
CRITERION_KINDS = ("size+area", "mixed", "mixed+area", "mixed+relarea")


def parse_method(method: str) -> tuple[str, float, str]:
    """(kind, tau, criterion) of a ``"<kind> tau=T[ criterion=C]"`` method; ValueError naming it otherwise."""
    from sizeseg.losses.size_criteria import CRITERIA

    kind, _, rest = method.partition(" tau=")
    tau, _, criterion = rest.partition(" criterion=")
    try:
        ok = kind in TAU_KINDS and float(tau) > 0
    except ValueError:
        ok = False
    if criterion and not (kind in CRITERION_KINDS and criterion in set(CRITERIA) - {"bounds"}):
        ok = False
    if not ok:
        raise ValueError(f"expected control, full, matched or '<kind> tau=T' with kind in {', '.join(TAU_KINDS)} "
                         f"and T > 0 (and ' criterion=C' after {', '.join(CRITERION_KINDS)}), got {method!r}")
    return kind, float(tau), criterion or "squared"


def check_method(method: str) -> str:
    """``method`` if it names a method (module docstring), else a ValueError naming it."""
    if method not in ("control", "matched", "full"):
        parse_method(method)
    return method


def loss_fn(method: str, n_samples: int, seed: int, ratio_range: tuple[float, float] | None = None,
            weights: tuple[float, float] | None = None):
    """A function (logits, masks, sizes) -> loss for a fine-tuning method (``ratio_range``: the area /
    size^2 range of the masked images, and ``weights``: the size and area terms' weights in image units,
    README step 4's by default, for ``size+area``)."""
    from sizeseg.losses.size_loss import SizeLoss
    from sizeseg.losses.size_matched_bce import size_matched_bce
    from sizeseg.training.config import RECOMMENDED_AREA_WEIGHT, RECOMMENDED_SIZE_WEIGHT
    from sizeseg.training.loss_terms import AreaBoundTerm, SizeTerm

    if method.startswith("size+area tau="):
        _, tau, criterion = parse_method(method)
        size_weight, area_weight = weights or (RECOMMENDED_SIZE_WEIGHT, RECOMMENDED_AREA_WEIGHT)
        size = SizeTerm(n_samples, size_weight, units="image", criterion=criterion, noise_scale=tau, seed=seed)
        area = AreaBoundTerm(ratio_range, area_weight, noise_scale=tau, per_object=False, units="image")
        return lambda logits, masks, sizes: (size(logits, {"size": sizes}) * size.weight
                                             + area(logits, {"size": sizes}) * area.weight)
    if method == "control":
        return lambda logits, masks, sizes: F.binary_cross_entropy_with_logits(logits, masks)
    if method == "matched":
        return lambda logits, masks, sizes: size_matched_bce(logits, sizes)
    kind, tau = method.split(" tau=")
    criterion = {"size": "squared", "relative": "relative"}[kind]
    loss = SizeLoss(n_samples=n_samples, criterion=criterion, noise_scale=float(tau), seed=seed)
    return lambda logits, masks, sizes: loss(logits, sizes)


def train_steps(model, images, masks, sizes, fn, epochs: int, batch: int, lr: float, seed: int,
                augment: bool = False) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(epochs):
        for idx in batches(len(images), batch, rng):
            x, y = images[idx], masks[idx]
            if augment:
                x, y = flip(x, y, rng)
            loss = fn(model(x), y, sizes[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


class RelativeAreaBound:
    r"""The area bounds each size implies, the excess relative to the bound: for an image of size
    :math:`s` and soft area :math:`A = \sum_p \sigma(a_p / \tau)`, with :math:`l = lo\,s^2` and
    :math:`h = hi\,s^2`, :math:`\max(0, l - A)^2 / l^2 + \max(0, A - h)^2 / h^2` (bounds floored at
    1 px), averaged over the sized images: an area twice its upper bound costs 1 at any object size."""

    name = "relative_area"

    def __init__(self, ratio_range: tuple[float, float], weight: float, noise_scale: float) -> None:
        self.ratio_range, self.weight, self.noise_scale = tuple(ratio_range), float(weight), float(noise_scale)

    def __call__(self, logits: torch.Tensor, batch) -> torch.Tensor:
        sizes = batch["size"].float()
        keep = ~torch.isnan(sizes)
        if not bool(keep.any()):
            return logits.sum() * 0
        area = torch.sigmoid(logits[keep] / self.noise_scale).flatten(1).sum(1)
        low, high = (r * sizes[keep].square() for r in self.ratio_range)
        below = torch.relu(low - area) / low.clamp(min=1.0)
        above = torch.relu(area - high) / high.clamp(min=1.0)
        return (below.square() + above.square()).mean()


def mixed_terms(method: str, ratio_range: tuple[float, float], weights: tuple[float, float],
                relative_area_weight: float = 0.1) -> list:
    """``mixed tau=T`` / ``mixed+area tau=T``: the library's mixed-mode loss terms (BCE on the masked
    images, SizeLoss in image units, and the area bounds for ``+area``); ``mixed+relarea`` adds
    :class:`RelativeAreaBound` instead."""
    from sizeseg.training.config import TrainConfig
    from sizeseg.training.pipeline import loss_terms_for

    kind, tau, criterion = parse_method(method)
    size_weight, area_weight = weights
    cfg = TrainConfig(size_units="image", size_criterion=criterion, noise_scale=tau, size_weight=size_weight,
                      area_weight=area_weight if kind == "mixed+area" else 0.0)
    terms = loss_terms_for("mixed", cfg, ratio_range)
    if kind == "mixed+relarea":
        terms.append(RelativeAreaBound(ratio_range, relative_area_weight, tau))
    return terms


def mixed_steps(model, images, masks, sizes, has_mask: np.ndarray, terms: list, steps: int, batch: int,
                lr: float, seed: int, mask_fraction: float = 0.5) -> None:
    """``steps`` batches drawn with replacement so that masked images make ``mask_fraction`` of them
    (as mixed training's sampler); each batch's loss is the weighted sum of ``terms``, which see a
    mask only on the images with ``has_mask``."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    from sizeseg.training.data import mask_fraction_weights

    weights = mask_fraction_weights(has_mask, mask_fraction)
    model.train()
    for _ in range(steps):
        idx = rng.choice(len(images), size=batch, replace=True, p=weights / weights.sum())
        logits = model(images[idx])
        data = {"mask": masks[idx], "has_mask": torch.from_numpy(has_mask[idx]), "size": sizes[idx]}
        loss = sum(term.weight * term(logits, data) for term in terms)
        opt.zero_grad()
        loss.backward()
        opt.step()


def band_rows(method: str, now: dict, start: dict, bands: np.ndarray) -> list[dict]:
    rows = []
    for band in list(BANDS) + ["all"]:
        keep = np.ones(len(bands), bool) if band == "all" else bands == band
        diff = now["IoU"][keep] - start["IoU"][keep]
        rows.append({"method": method, "band": band, "n": int(keep.sum()),
                     "E": float(now["E"][keep].mean()), "rel_E": float(np.sqrt(now["E"][keep].mean())),
                     "IoU": float(now["IoU"][keep].mean()), "dIoU": float(diff.mean()),
                     "area_ratio": float(now["area"][keep].mean()),
                     "from_object": float(now["from_object"][keep].mean()) if "from_object" in now else float("nan"),
                     "E_from_object": masked_mean(now["E"][keep], now["from_object"][keep]) if "from_object" in now
                     else float("nan"),
                     "dIoU_se": float(diff.std(ddof=1) / math.sqrt(keep.sum()))})
    return rows


def table(rows: list[dict]) -> list[str]:
    """Markdown rows: E per band, then the paired IoU change per band (± its standard error)."""
    names = list(BANDS) + ["all"]
    lines = ["| method | " + " | ".join(f"E {b}" for b in names) + " | " + " | ".join(f"ΔIoU {b}" for b in names) + " |",
             "|" + "---|" * (1 + 2 * len(names))]
    by = {(r["method"], r["band"]): r for r in rows}
    for m in dict.fromkeys(r["method"] for r in rows):
        cells = [f"{by[(m, b)]['E']:.1f}" for b in names]
        cells += [f"{by[(m, b)]['dIoU']:+.3f} ± {by[(m, b)]['dIoU_se']:.3f}" for b in names]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    first = rows[0]["method"]
    lines += ["", "Images per band: " + ", ".join(f"{b}: {by[(first, b)]['n']}" for b in BANDS) + "."]
    return lines


def masked_mean(values: np.ndarray, keep: np.ndarray) -> float:
    return float(values[keep].mean()) if keep.any() else float("nan")


def area_table(rows: list[dict]) -> list[str]:
    """Markdown rows per band: the mean predicted area over the true area, the share of images whose
    predicted size comes from a part touching the object, and E over those images only."""
    names = list(BANDS) + ["all"]
    lines = ["| method | " + " | ".join(f"area / true {b}" for b in names) + " | "
             + " | ".join(f"size from object {b}" for b in names) + " | "
             + " | ".join(f"E there {b}" for b in names) + " |", "|" + "---|" * (1 + 3 * len(names))]
    by = {(r["method"], r["band"]): r for r in rows}
    for m in dict.fromkeys(r["method"] for r in rows):
        cells = [f"{by[(m, b)]['area_ratio']:.2f}" for b in names]
        cells += [f"{by[(m, b)]['from_object']:.2f}" for b in names]
        cells += [f"{by[(m, b)]['E_from_object']:.1f}" for b in names]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def report(free: list[dict], net: list[dict], args, seconds: float) -> str:
    blur = "0.5-1.2 px x side / 32" if args.blur is None else f"{args.blur[0]:g}-{args.blur[1]:g} px"
    lines = [f"Synthetic objects in {args.side}x{args.side} images, four bands of object size, blur σ {blur}; "
             f"seed {args.seed}; {seconds:.0f} s.", "",
             "E: mean squared size error of the thresholded prediction (logits > 0) in each band. "
             "ΔIoU: mean paired IoU change against the start ± its standard error over the band's images.", "",
             f"## A. The loss alone: free per-pixel logits, {args.images - args.train} images, "
             f"{args.free_steps} Adam steps at lr {args.free_lr:g}", "",
             "Start: each true mask dilated or eroded by ~15 % of its size, boundary roughened, logits = signed "
             "distance (1 per px).", ""] + table(free)
    if net:
        lines += ["", f"## B. Size fine-tuning of a network ({args.model}): {args.train} training images, pre-trained "
                  f"on {args.masks} masks for {args.pretrain_epochs} epochs, fine-tuned for {args.epochs} epochs at lr "
                  f"{args.lr:g} (control: BCE on the same masks, same number of steps; size+area: weights "
                  f"{args.size_weight:g} and {args.area_weight:g} in image units; relative area bounds: weight "
                  f"{args.relative_area_weight:g}); test "
                  f"{args.images - args.train} images", ""] + table(net)
        lines += ["", "Predicted area over true area (thresholded, mean over the band's images); the share of images "
                  "whose predicted size comes from a connected part touching the object (not from a false-positive "
                  "blob); E over those images:", ""] + area_table(net)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder (results.csv, report.md)")
    parser.add_argument("--images", type=int, default=240, help="synthetic images")
    parser.add_argument("--train", type=int, default=160, help="training images (the rest is the test set)")
    parser.add_argument("--masks", type=int, default=24, help="masked training images for pre-training")
    parser.add_argument("--side", type=int, default=96, help="image side in pixels")
    parser.add_argument("--free-steps", type=int, default=60, help="part A: Adam steps on the free logits")
    parser.add_argument("--free-lr", type=float, default=0.05, help="part A: Adam learning rate on the logits")
    parser.add_argument("--no-network", action="store_true", help="part A only (seconds instead of minutes)")
    parser.add_argument("--pretrain-epochs", type=int, default=40, help="part B: pre-training epochs over the masks")
    parser.add_argument("--epochs", type=int, default=3, help="part B: fine-tuning epochs over the training sizes")
    parser.add_argument("--lr", type=float, default=1e-4, help="part B: fine-tuning learning rate")
    parser.add_argument("--batch", type=int, default=12, help="part B: images per batch")
    parser.add_argument("--n-samples", type=int, default=1, help="SizeLoss samples n")
    parser.add_argument("--methods", default="control,size tau=1,size tau=0.5,size tau=0.25,size tau=0.1,"
                        "relative tau=1,relative tau=0.25,matched", help="comma-separated fine-tuning methods")
    parser.add_argument("--model", default="unet-small", help="part B: network")
    parser.add_argument("--size-weight", type=float, default=4.0,
                        help="size+area: the size term's weight, image units (README step 4's)")
    parser.add_argument("--area-weight", type=float, default=40.0,
                        help="size+area: the area bounds' weight, image units (README step 4's)")
    parser.add_argument("--relative-area-weight", type=float, default=0.1,
                        help="mixed+relarea: the relative area bounds' weight")
    parser.add_argument("--blur", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="the renderer's blur (σ range in px; default 0.5-1.2 px x side / 32, i.e. 1.5-3.6 px at "
                             "96, which blurs the 4-10 px objects into the background)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the masks and the training")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on a loaded machine more threads wait on each other)")
    args = parser.parse_args(argv)
    for flag, value in (("--size-weight", args.size_weight), ("--area-weight", args.area_weight),
                        ("--relative-area-weight", args.relative_area_weight)):
        if not value >= 0:  # before any work: the terms would refuse it only after pre-training
            parser.error(f"{flag}: expected a number >= 0, got {value:g}")
    if args.blur is not None and not 0 <= args.blur[0] <= args.blur[1] < float("inf"):
        parser.error(f"--blur: expected 0 <= LOW <= HIGH, got {args.blur[0]:g} {args.blur[1]:g}")
    for method in args.methods.split(","):
        try:
            check_method(method)
        except ValueError as err:
            parser.error(f"--methods: {err}")
    torch.set_num_threads(args.threads)

    from sizeseg.experiments.report import write_csv
    from sizeseg.io_utils import atomic_write_text
    from sizeseg.models import build_model

    t0 = time.perf_counter()
    methods = args.methods.split(",")
    images, masks, sizes, bands = make_data(args.images, args.side, args.seed, args.blur)
    tr, te = slice(0, args.train), slice(args.train, None)
    print(f"{len(images)} images made in {time.perf_counter() - t0:.0f} s", flush=True)
    free = free_logit_rows(images[te], masks[te], sizes[te], bands[te], methods, args.free_steps, args.free_lr, args.seed)
    for row in free:
        if row["band"] == "all":
            print(f"A {row['method']}: E {row['E']:.1f}, IoU change {row['dIoU']:+.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    net: list[dict] = []
    if not args.no_network:
        masked = np.random.default_rng(args.seed).permutation(args.train)[:args.masks]
        torch.manual_seed(args.seed)  # torch's global generator starts from a random seed in each process
        model = build_model(args.model, in_channels=1)
        bce = loss_fn("control", 1, args.seed)
        train_steps(model, images[masked], masks[masked], sizes[masked], bce, args.pretrain_epochs, args.batch,
                    1e-3, args.seed, augment=True)
        start_state = copy.deepcopy(model.state_dict())
        from sizeseg.data.bounds import area_ratio_range

        ratio_range = area_ratio_range((masks[masked] > 0.5).sum(dim=(1, 2, 3)).numpy(), sizes[masked].numpy())
        start = scores(model, images[te], masks[te], sizes[te])
        net = band_rows("start (pre-trained)", start, start, bands[te])
        print(f"B pre-trained: IoU {start['IoU'].mean():.3f}, E {start['E'].mean():.1f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        has_mask = np.zeros(args.train, bool)
        has_mask[masked] = True
        mixed_batches = args.epochs * len(batches(args.train, args.batch, np.random.default_rng(0)))  # as size-only
        for method in methods:
            model.load_state_dict(start_state)
            torch.manual_seed(args.seed)
            if method.startswith("mixed"):
                mixed_steps(model, images[tr], masks[tr], sizes[tr], has_mask,
                            mixed_terms(method, ratio_range, (args.size_weight, args.area_weight),
                                        args.relative_area_weight), mixed_batches,
                            args.batch, args.lr, args.seed)
            elif method == "full":
                train_steps(model, images[tr], masks[tr], sizes[tr], bce, args.epochs, args.batch, args.lr, args.seed,
                            augment=True)
            elif method == "control":
                train_steps(model, images[masked], masks[masked], sizes[masked], bce,
                            args.epochs * max(1, args.train // args.masks), args.batch, args.lr, args.seed, augment=True)
            else:
                fn = loss_fn(method, args.n_samples, args.seed, ratio_range, (args.size_weight, args.area_weight))
                train_steps(model, images[tr], masks[tr], sizes[tr], fn, args.epochs, args.batch, args.lr, args.seed)
            now = scores(model, images[te], masks[te], sizes[te])
            net += band_rows(method, now, start, bands[te])
            print(f"B {method}: IoU {now['IoU'].mean():.3f}, E {now['E'].mean():.1f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    out = Path(args.out)
    write_csv(out / "results.csv", [{"part": "A", **r} for r in free] + [{"part": "B", **r} for r in net])
    text = report(free, net, args, time.perf_counter() - t0)
    atomic_write_text(out / "report.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
