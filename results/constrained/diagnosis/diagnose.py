"""Diagnosis of two failures of the cpu profile (results/constrained/cpu): proposals collapse, two bounds = one bound.

Run from the repository root, after the cpu profile (it reads runs/constrained_cpu: the prepared
64x64 slices and the trained checkpoints):

    OMP_NUM_THREADS=1 python results/constrained/diagnosis/diagnose.py proposal-step
    OMP_NUM_THREADS=1 python results/constrained/diagnosis/diagnose.py dynamics VARIANT [STEPS]
    OMP_NUM_THREADS=1 python results/constrained/diagnosis/diagnose.py lower-bound

``proposal-step``: one proposal (100 PGA iterations, as the cpu profile) for 64 training slices
with LV, from a fresh ENet and from trained checkpoints: soft/hard size of the output and of the
latent, and its DSC against the ground truth.

``dynamics``: a fresh ENet (cpu profile) trained on proposals for STEPS slices (batch 1, affine
augmentation, Adam); every 50 steps the mean soft and hard (>0.5) size of the output and the hard
size of the proposal, then the validation DSC. VARIANT is a dash-joined set of words: ``loose`` or
``tight`` (bound), ``soft`` or ``hard`` (target: latent or its arg-max), ``notags`` (the loose
bound also on slices without LV, instead of b = 0), ``temp`` (softmax temperature 0.1, as in the
authors' code main_MIDL.py), ``pce`` (+ partial CE on the labelled pixels).

``lower-bound``: soft sizes of trained networks on the training slices with LV, against the
lower bounds of patient001 (20.9 px) and patient004 (5.5 px).

``lower-bound-training [STEPS]``: the two-bound size loss of the experiment (partial CE + size
penalty 1e-2, bounds of patient004 with tags) trained from a fresh ENet for STEPS slices; counts
the steps whose slice has the LV and a soft size below the lower bound (the only steps where the
lower bound contributes a gradient), and checks on one batch that the term sees it.
"""
import sys
from pathlib import Path

import numpy as np
import torch

from sizeseg.data.datasets import SegmentationDataset, collate_batch
from sizeseg.data.weak import erosion_labels
from sizeseg.experiments.constrained import (
    PROFILE_SETTINGS, _model_spec, erosion_kernels, load_acdc, method_bounds, reference_bounds,
)
from sizeseg.losses.partial_ce import partial_cross_entropy
from sizeseg.losses.proposals import pathak_proposals, proposal_loss
from sizeseg.metrics import dice_score
from sizeseg.models import build_model
from sizeseg.training.constrained_terms import object_bounds, probabilities
from sizeseg.training.pipeline import load_model

torch.set_num_threads(1)
RUNS = Path("runs/constrained_cpu")
P = PROFILE_SETTINGS["cpu"]
DATA = load_acdc("/work/shared/data/ACDC", RUNS, P)
TRAIN, VAL = DATA.split("train"), DATA.split("val")
AREAS = np.asarray(TRAIN.extra["areas"], float)
WEAK = erosion_labels(TRAIN.masks, kernels=erosion_kernels(64), repeat=True)
_, A, B = reference_bounds(TRAIN)  # patient004: the paper's subject


def _dsc(pred, gt):
    inter = (pred & gt).sum(1).float()
    tot = pred.sum(1) + gt.sum(1)
    return torch.where(tot > 0, 2 * inter / tot.clamp_min(1), torch.ones_like(inter)).mean().item()


def proposal_step():
    idx = np.random.default_rng(0).choice(np.flatnonzero(AREAS > 0), 64, replace=False)
    imgs = torch.from_numpy(np.ascontiguousarray(TRAIN.images[idx], np.float32))
    masks = torch.from_numpy(np.asarray(TRAIN.masks)[idx] > 0).reshape(len(idx), -1)
    w = torch.from_numpy(WEAK[idx]).long()
    torch.manual_seed(0)
    nets = {"fresh ENet (train-mode BN)": build_model(**_model_spec(P)).train()}
    for k in ["partial_ce", "proposals_loose", "size_upper_tight"]:
        nets[f"{k} best.ckpt"] = load_model(RUNS / "runs" / k / "checkpoints" / "best.ckpt")
    print(f"64 training slices with LV; labelled px/slice {(w == 1).sum((1, 2)).float().mean():.1f}; "
          f"true LV area/slice {masks.sum(1).float().mean():.1f}")
    for kind in ["proposals-loose", "subject-upper"]:
        bounds = torch.from_numpy(method_bounds(kind, AREAS, (A, B), 4096)[idx])
        print(f"\n== bounds {kind}: b = {bounds[0, 1].item():.1f}")
        for name, net in nets.items():
            with torch.no_grad():
                probs = probabilities(net(imgs))
            full = torch.full((len(idx), 2, 2), float("nan"))
            full[:, 1] = bounds
            lat = pathak_proposals(probs, full, weak=w, iterations=P.proposal_iterations)
            fg, lfg = probs[:, 1].reshape(len(idx), -1), lat[:, 1].reshape(len(idx), -1)
            unl = w.reshape(len(idx), -1) == -1
            print(f"{name:28s} output: soft {fg.sum(1).mean():6.1f} hard {(fg > 0.5).sum(1).float().mean():6.1f} "
                  f"DSC {_dsc(fg > 0.5, masks):.3f} | latent: soft {lfg.sum(1).mean():6.1f} "
                  f"max(unlabelled) {(lfg * unl).max(1).values.mean():.3f} hard {(lfg > 0.5).sum(1).float().mean():6.1f} "
                  f"DSC {_dsc(lfg > 0.5, masks):.3f}")


def dynamics(variant: str, steps: int):
    kind = "subject-upper" if "tight" in variant else "proposals-loose"
    bounds = method_bounds(kind, AREAS, (A, B), 4096)
    if "notags" in variant:
        bounds[:, 1] = bounds[:, 1].max()
    ds = SegmentationDataset(TRAIN, masked=np.zeros(len(TRAIN), bool), sizes="none", bounds=bounds, weak=WEAK,
                             augment="affine")
    torch.manual_seed(0)
    net = build_model(**_model_spec(P)).train()
    opt = torch.optim.Adam(net.parameters(), lr=P.lr)
    hard = "hard" in variant
    order = np.random.default_rng(0).permutation(len(ds))
    log = []
    for i in range(steps):
        batch = collate_batch([ds[int(order[i % len(order)])]])
        out = net(batch["image"])
        probs = probabilities(out / 0.1 if "temp" in variant else out)
        full = object_bounds(batch, probs)
        loss = proposal_loss(probs, full, weak=batch["weak"], iterations=P.proposal_iterations, hard=hard)
        if "pce" in variant:
            loss = loss + partial_cross_entropy(probs, batch["weak"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            lat = pathak_proposals(probs.detach(), full, weak=batch["weak"], iterations=P.proposal_iterations)
            fg = probs[0, 1].detach()
            log.append((fg.sum().item(), (fg > 0.5).sum().item(), (lat[0, 1] > 0.5).sum().item(),
                        batch["bounds"][0, 1].item() == 0))
        if (i + 1) % 50 == 0:
            L = np.array(log[-50:], float)
            print(f"{variant} step {i + 1:4d}: output soft size {L[:, 0].mean():7.1f} hard {L[:, 1].mean():7.1f} | "
                  f"proposal hard {L[:, 2].mean():6.1f} | tag slices (b=0) {int(L[:, 3].sum())}", flush=True)
    net.eval()
    with torch.no_grad():
        imgs = torch.from_numpy(np.ascontiguousarray(VAL.images, np.float32))
        logits = torch.cat([net(imgs[i:i + 64]) for i in range(0, len(imgs), 64)])
    target = torch.from_numpy(np.asarray(VAL.masks) > 0)
    d = dice_score(logits[:, 0] > 0, target).numpy()
    has = target.flatten(1).any(1).numpy()
    print(f"{variant}: after {steps} steps: validation DSC per slice {d.mean():.3f}, per slice with LV "
          f"{d[has].mean():.3f}, mean predicted px {(logits[:, 0] > 0).flatten(1).sum(1).float().mean():.1f}")


def lower_bound():
    lv = np.flatnonzero(AREAS > 0)
    imgs = torch.from_numpy(np.ascontiguousarray(TRAIN.images[lv], np.float32))
    for subject in ["patient001", "patient004"]:
        print(subject, "bounds at 64x64:", [round(v, 1) for v in reference_bounds(TRAIN, subject=subject)[1:]])
    print(f"true LV areas of the {len(lv)} training slices with LV: below 5.5 px {(AREAS[lv] < 5.5).mean():.3f}, "
          f"below 20.9 px {(AREAS[lv] < 20.9).mean():.3f}")
    for run in ["size_upper_tight", "size_two_bounds", "log_barrier", "full"]:
        for ck in ["best.ckpt", "last.ckpt"]:
            net = load_model(RUNS / "runs" / run / "checkpoints" / ck)
            with torch.no_grad():
                logits = torch.cat([net(imgs[i:i + 128]) for i in range(0, len(imgs), 128)])[:, 0].flatten(1)
            soft = torch.sigmoid(logits).sum(1).numpy()
            hard = (logits > 0).sum(1).numpy()
            print(f"{run:17s} {ck:9s} soft size: min {soft.min():6.1f} median {np.median(soft):6.1f}; share of slices "
                  f"with soft size < 20.9: {(soft < 20.9).mean():.3f}, < 5.5: {(soft < 5.5).mean():.3f} | "
                  f"hard size < 20.9: {(hard < 20.9).mean():.3f}, < 5.5: {(hard < 5.5).mean():.3f}")


def lower_bound_training(steps: int):
    from sizeseg.experiments.constrained import METHODS, _datasets

    method = next(m for m in METHODS if m.key == "size_two_bounds")
    ds, _ = _datasets(TRAIN, VAL, method, P, WEAK, (A, B), 0)
    terms = method.terms(P)
    probe = collate_batch([ds[int(np.flatnonzero(AREAS > 0)[0])]])
    penalty = [t for t in terms if t.name == "size_penalty"][0]
    value = penalty(torch.full((1, 1, 64, 64), -20.0), probe).item()
    print(f"bounds of a slice with LV: {probe['bounds'][0].tolist()}; penalty of an empty output "
          f"(soft size ~0): {value:.5f} (expected (a - 0)^2 / 4096 = {A ** 2 / 4096:.5f})")
    torch.manual_seed(0)
    net = build_model(**_model_spec(P)).train()
    opt = torch.optim.Adam(net.parameters(), lr=P.lr)
    order = np.random.default_rng(0).permutation(len(ds))
    below = above = lv = 0
    sizes = []
    for i in range(steps):
        batch = collate_batch([ds[int(order[i % len(order)])]])
        logits = net(batch["image"])
        loss = sum(t.weight * t(logits, batch) for t in terms)
        opt.zero_grad()
        loss.backward()
        opt.step()
        size = torch.sigmoid(logits.detach()).sum().item()
        a, b = batch["bounds"][0].tolist()
        if b > 0:
            lv += 1
            below += size < a
            above += size > b
            sizes.append(size)
        if (i + 1) % 100 == 0:
            print(f"step {i + 1}: slices with LV so far {lv}, soft size below a = {A:.1f}: {below}, above b = {B:.1f}: "
                  f"{above}; soft size of the last 100 (LV slices): min {min(sizes[-100:]):.1f} "
                  f"median {np.median(sizes[-100:]):.1f}", flush=True)


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "proposal-step":
        proposal_step()
    elif what == "dynamics":
        dynamics(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 300)
    elif what == "lower-bound":
        lower_bound()
    elif what == "lower-bound-training":
        lower_bound_training(int(sys.argv[2]) if len(sys.argv) > 2 else 800)
    else:
        raise SystemExit(f"unknown: {what!r}; expected proposal-step, dynamics, lower-bound or lower-bound-training")
