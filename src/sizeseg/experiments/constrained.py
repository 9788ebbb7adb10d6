"""The Constrained-CNN losses experiment on ACDC (Kervadec et al., MIDL 2018): Tables 1 and 2, Fig. 3.

``sizeseg experiment constrained --data ACDC --out DIR [--quick | --profile cpu|full]``

Every method trains the same ENet (one sigmoid channel, i.e. two-class softmax; ``--model``
picks another network of :data:`sizeseg.models.MODELS`, e.g. ``unet-small``) on the same
2D slices of the left-ventricle cavity, with Adam, batch size 1, rotation/flip/scaling
augmentation, and the learning rate halved after 100 epochs (full profile). Weak labels come
from the paper's erosion strategy (about 0.1 % of the pixels, foreground only); bounds from one
training subject (``1.1 min`` and ``0.9 max`` of its LV areas; by default patient004, whose
areas give the paper's 98 and 1723 px, see :func:`sizeseg.data.bounds.choose_bounds_subject`)
with image tags (``b = 0`` where the LV is absent), as in §3.2 and §4.1.

The proposals rows train with the cross-entropy against Pathak's latent distribution alone (the
labelled pixels fixed in it, so each weighs 1/N like any pixel). Here they collapse to empty
predictions within ~100 steps: the KL projection of a diffuse output under an upper bound keeps
few pixels above 1/2, the tag slices (b = 0) push every pixel down, and nothing but the ~2
labelled pixels per slice pushes up (results/constrained/README.md, "proposals diagnosis").
With the loose bound they leave that state after ~50 epochs of the cpu profile (two seeds); with
the tight one, after ~40 epochs in one seed of two. The row ``proposals_loose_pce`` (ours, not in the paper) adds the
partial CE of the other weak rows.

The cpu profile trains two methods at once (``--workers``), each in a single-threaded process;
``--init METHOD`` starts the chosen methods from METHOD's best network; ``--seeds 0,1`` trains
every method once per seed, and Table 1 then holds the mean ± sd over seeds. The row
``size_two_bounds_discrete`` (ours) adds paper 1's discrete size, on its own bounds, to the
two-bound soft penalty.

The cpu profile departs from the paper's frame: it keeps the 128x128 native pixels around the
image centre (99.96 % of the LV pixels of ACDC; ``--field``, 256 is the paper's frame), so that
its 64x64 slices show the LV at half the native resolution instead of a quarter; the loose
bounds keep their native size and the penalty weight its balance (:func:`penalty_weight`).
``--weak scribbles|centroid|points`` replaces the paper's eroded masks by another weak source
(:data:`WEAK_SOURCES`); the ACDC scribbles also label background.

Learning rate: the paper's text says 5e-3 (with 200 epochs); the authors' public code
(``SizeLoss_WSS/main_MIDL.py``) uses 5e-4 with 1000 epochs and Adam betas (0.5, 0.999). We use
5e-3 with Adam's default betas: in a pilot on 12 patients at 64x64 (6 epochs of 182 slices) the
two-bound size loss reached a validation DSC of 0.47 at 5e-3 and 0.01 at 5e-4, and our profiles
have at most the paper's 200 epochs. ``--lr`` overrides it.

Outputs under ``--out``: ``prepared_r<res>/`` or ``prepared_f<field>_r<res>/`` (the sliced data), ``runs/<method>[-seed<k>]/`` (checkpoints,
``logs/metrics.csv``, ``result.json``), ``table1.csv`` (and ``table1_seeds.csv``), ``table2.csv``, ``report.md`` (our
numbers with the paper's beside them, labelled) and ``dsc_curves.png`` (Fig. 3).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from sizeseg.experiments.report import write_csv
from sizeseg.io_utils import atomic_path, atomic_write_text

PROFILES = ("quick", "cpu", "full")


@dataclass(frozen=True)
class Profile:
    """Settings of one run of the experiment (see :data:`PROFILE_SETTINGS`)."""

    name: str
    resolution: int  # slices are cropped/padded to field x field, then block-averaged to this size
    epochs: int
    widths: tuple[int, int, int]  # ENet widths (16, 64, 128 in the paper)
    stage_repeats: int
    lr: float
    lr_step: int  # halve the learning rate every lr_step epochs (0: never)
    proposal_iterations: int
    train_batches: int | None  # training images per epoch (None: all)
    limit_patients: int | None  # first patients only (None: all 100)
    timing_steps: int  # timed training steps per method (Table 2)
    model: str = "enet"  # a name of sizeseg.models.MODELS (the paper's ENet, or a U-Net); --model
    bounds_subject: str | None = None  # the tight bounds' subject (None: the paper's patient004, see data.bounds)
    term_weights: tuple[tuple[str, float], ...] = ()  # (term name, weight) overrides; --term-weight
    workers: int = 1  # methods trained at once, one process each (one torch thread each); --workers
    init: str | None = None  # a method whose best network starts every other method's training; --init
    field: int = 256  # native pixels kept around the image centre (256: the paper's frame); --field
    weak: str = "erosion"  # the weak labels: a key of WEAK_SOURCES; --weak


PROFILE_SETTINGS: dict[str, Profile] = {
    "full": Profile("full", 256, 200, (16, 64, 128), 2, 5e-3, 100, 500, None, None, 200),
    # ~1 h on 2 cores: the central 128x128 native pixels halved to 64x64, a narrower ENet, 400 random
    # slices per epoch, 60 epochs (lr halved after 30, the paper's halving at half-time), two methods at once.
    "cpu": Profile("cpu", 64, 60, (8, 32, 64), 2, 5e-3, 30, 100, 400, None, 100, workers=2, field=128),
    "quick": Profile("quick", 64, 3, (8, 32, 64), 1, 5e-3, 0, 50, 60, 12, 20),
}


@dataclass(frozen=True)
class Method:
    """One row of Table 1: its loss terms and the bounds its images carry."""

    key: str
    label: str
    bounds: str  # none | proposals-loose | subject-upper | upper-loose | subject | approx-size
    terms: Callable[[Profile], list]
    paper_dsc: float | None = None
    paper_ms: float | None = None
    full_masks: bool = False
    size_bounds: str | None = None  # kind of the bounds on the discrete size (batch["size_bounds"]), if any


def _terms_partial_ce(p: Profile) -> list:
    from sizeseg.training.constrained_terms import PartialCETerm

    return [PartialCETerm()]


def _terms_proposals(p: Profile) -> list:
    """CE against Pathak's latent distribution (labelled pixels fixed in it), the only term."""
    from sizeseg.training.constrained_terms import ProposalTerm

    return [ProposalTerm(iterations=p.proposal_iterations)]


def _terms_proposals_pce(p: Profile) -> list:
    """The proposals plus the partial CE of the other weak rows (labelled pixels weigh as there); ours."""
    from sizeseg.training.constrained_terms import PartialCETerm, ProposalTerm

    return [PartialCETerm(), ProposalTerm(iterations=p.proposal_iterations)]


def native_pixel_area(field: int, resolution: int) -> float:
    """Native pixels per pixel of slices of ``field`` native pixels block-averaged to ``resolution``.

    >>> native_pixel_area(128, 64), native_pixel_area(256, 64)
    (4.0, 16.0)
    """
    return (field / resolution) ** 2


def penalty_weight(p: Profile) -> float:
    """The paper's size-penalty weight 1e-2 on 256x256 slices, scaled to keep its strength on the profile's slices.

    On a centre crop of c x c native pixels block-averaged by f to r = c / f, sizes shrink by f^2
    and N = r^2, so the penalty (V - b)^2 / N becomes (V - b)^2 / (f c)^2 against (V - b)^2 / 256^2,
    while the partial CE does not change; the weight ``1e-2 (f c / 256)^2`` undoes that.

    >>> penalty_weight(PROFILE_SETTINGS["full"]), penalty_weight(replace(PROFILE_SETTINGS["cpu"], field=256))
    (0.01, 0.16)
    >>> penalty_weight(PROFILE_SETTINGS["cpu"])  # the 128x128 centre halved: the paper's balance again
    0.01
    """
    return 1e-2 * (p.field ** 2 / (256 * p.resolution)) ** 2


def _terms_penalty(p: Profile) -> list:
    from sizeseg.training.constrained_terms import PartialCETerm, SizePenaltyTerm

    return [PartialCETerm(), SizePenaltyTerm(weight=penalty_weight(p))]


def _terms_log_barrier(p: Profile) -> list:
    from sizeseg.training.constrained_terms import LogBarrierTerm, PartialCETerm

    return [PartialCETerm(), LogBarrierTerm(weight=1e-3, t=5.0, t_factor=1.1)]


def _terms_kl(p: Profile) -> list:
    from sizeseg.training.constrained_terms import KLSizeTerm, PartialCETerm

    return [PartialCETerm(), KLSizeTerm(weight=1.0)]


def _terms_discrete(p: Profile) -> list:
    from sizeseg.training.constrained_terms import DiscreteSizeBoundTerm, PartialCETerm

    return [PartialCETerm(), DiscreteSizeBoundTerm(weight=1e-3)]


def _terms_penalty_discrete(p: Profile) -> list:
    """The two-bound soft penalty on the pixel count plus the discrete size on its own bounds (ours)."""
    from sizeseg.training.constrained_terms import DiscreteSizeBoundTerm

    return _terms_penalty(p) + [DiscreteSizeBoundTerm(weight=1e-3, bounds_key="size_bounds")]


def _terms_full(p: Profile) -> list:
    from sizeseg.training.loss_terms import BCETerm

    return [BCETerm()]


METHODS: tuple[Method, ...] = (
    Method("partial_ce", "Partial cross-entropy", "none", _terms_partial_ce, 0.0721, 10.0),
    Method("proposals_loose", "Proposals, one bound (loose: N/6)", "proposals-loose", _terms_proposals, 0.6124, 15.0),
    Method("proposals_tight", "Proposals, one bound (tight)", "subject-upper", _terms_proposals, 0.0659, 15.0),
    Method("proposals_loose_pce", "Proposals, one bound (loose: N/6) + partial CE (ours, not the paper's)",
           "proposals-loose", _terms_proposals_pce, None, None),
    Method("size_upper_loose", "CE + size loss, one bound (loose: 10000)", "upper-loose", _terms_penalty, 0.8107, 10.0),
    Method("size_upper_tight", "CE + size loss, one bound (tight)", "subject-upper", _terms_penalty, 0.8189, 10.0),
    Method("size_two_bounds", "CE + size loss, two bounds (tight)", "subject", _terms_penalty, 0.8415, 10.0),
    Method("log_barrier", "CE + log-barrier, two bounds (tight)", "subject", _terms_log_barrier),
    Method("kl_size", "CE + KL to approximate sizes (+-10 %)", "approx-size", _terms_kl),
    Method("discrete_size", "CE + discrete size (SizeLoss, paper 1), two bounds (tight)", "size-subject", _terms_discrete),
    Method("size_two_bounds_discrete", "CE + size loss, two bounds (tight) + discrete size (SizeLoss, paper 1; ours)",
           "subject", _terms_penalty_discrete, size_bounds="size-subject"),
    Method("full", "Full supervision (CE on masks)", "none", _terms_full, 0.9284, 10.0, full_masks=True),
)
METHOD_KEYS = tuple(m.key for m in METHODS)
#: Names of the loss terms the methods use (what --term-weight may name).
TERM_NAMES = ("partial_ce", "proposals", "size_penalty", "log_barrier", "kl_size", "discrete_size", "bce")


def method_terms(method: Method, profile: Profile) -> list:
    """The method's loss terms with the profile's weight overrides applied (by term name)."""
    terms = method.terms(profile)
    for name, weight in profile.term_weights:
        for term in terms:
            if term.name == name:
                term.weight = float(weight)
    return terms


def parse_term_weights(items: Sequence[str] | None) -> tuple[tuple[str, float], ...]:
    """``["discrete_size=1", ...]`` -> ``(("discrete_size", 1.0), ...)``; errors name ``--term-weight``.

    Example:
        >>> parse_term_weights(["kl_size=0.5"])
        (('kl_size', 0.5),)
    """
    out = []
    for item in items or ():
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in TERM_NAMES:
            raise ValueError(f"--term-weight: expected NAME=WEIGHT with NAME one of {', '.join(TERM_NAMES)}, got {item!r}")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"--term-weight: expected a number after '=', got {item!r}") from None
        if not weight >= 0 or weight == float("inf"):
            raise ValueError(f"--term-weight: expected a finite weight >= 0, got {item!r}")
        out.append((name, weight))
    return tuple(out)


def register_method(method: Method) -> None:
    """Add a row (e.g. the discrete-size SizeLoss row once the core SizeLoss exists)."""
    global METHODS, METHOD_KEYS
    if method.key in METHOD_KEYS:
        raise ValueError(f"method {method.key!r} is already registered")
    METHODS = METHODS[:-1] + (method,) + METHODS[-1:]
    METHOD_KEYS = tuple(m.key for m in METHODS)


# --------------------------------------------------------------------------- data
def erosion_kernels(resolution: int, field: int = 256) -> tuple[int, ...]:
    """The paper's erosion kernels (10, 7, 5, 3, 2, 1 native pixels) on slices of ``field`` native pixels
    block-averaged to ``resolution``.

    >>> erosion_kernels(256), erosion_kernels(64), erosion_kernels(64, field=128)
    ((10, 7, 5, 3, 2, 1), (2, 1), (5, 4, 2, 1))
    """
    from sizeseg.data.weak import PAPER_KERNELS

    scaled = [max(1, round(k * resolution / field)) for k in PAPER_KERNELS]
    return tuple(sorted(set(scaled), reverse=True))


#: ``--weak``: where the labelled pixels of the weak rows come from.
WEAK_SOURCES = {
    "erosion": "the paper's: repeated erosion of the mask, a few foreground pixels per slice, no background",
    "scribbles": "the ACDC scribbles: LV strokes as foreground, strokes of the other classes and of the "
                 "background as background",
    "centroid": "one foreground pixel per slice, the object pixel nearest the centre of mass",
    "points": "one foreground pixel per slice, drawn at random (seed 0)",
}


def experiment_weak_labels(train, profile: Profile) -> np.ndarray:
    """The weak labels (1 foreground, 0 background, -1 unlabelled) of ``profile.weak`` for the training slices."""
    from sizeseg.data.weak import centroid_labels, erosion_labels, random_point_labels

    if profile.weak == "erosion":
        kernels = erosion_kernels(train.spatial_shape[-1], profile.field)
        return erosion_labels(train.masks, kernels=kernels, repeat=True)
    if profile.weak == "scribbles":
        if "scribbles" not in train.extra:
            raise ValueError("weak='scribbles': the data has no scribbles (extra['scribbles']); "
                             "prepare the ACDC folder with its *_scribble.nii.gz files")
        return np.asarray(train.extra["scribbles"], np.int64)
    if profile.weak == "centroid":
        return centroid_labels(train.masks)
    if profile.weak == "points":
        return random_point_labels(train.masks, n_points=1, seed=0)
    raise ValueError(f"weak: expected one of {', '.join(WEAK_SOURCES)}, got {profile.weak!r}")


def reference_bounds(train, values: np.ndarray | None = None, subject: str | None = None) -> tuple[str, float, float]:
    """Bounds from one training subject: :func:`sizeseg.data.bounds.choose_bounds_subject`.

    Uses ``extra["subjects"]`` (ACDC) or ``volumes``; ``a = 1.1 min``, ``b = 0.9 max`` of the
    subject's LV areas (or of ``values``, e.g. the discrete sizes) over its slices containing the
    LV (paper §3.2). The subject is ``subject`` if given, else the paper's (patient004) when it is
    in the training split, else the first by name.
    """
    from sizeseg.data.bounds import choose_bounds_subject

    subjects = np.asarray(train.extra.get("subjects", train.volumes)).astype(str)
    areas = np.asarray(train.extra["areas"] if values is None else values, np.float64)
    return choose_bounds_subject(subjects, areas, subject)


def method_bounds(kind: str, areas: np.ndarray, ref: tuple[float, float], pixel_area: float, seed: int = 0,
                  size_ref: tuple[float, float] | None = None) -> np.ndarray:
    """Bounds (N, 2) of a method's training images, with tags (``[0, 0]`` where the LV is absent).

    ``ref`` holds the subject's bounds on the area; ``size_ref`` those on the discrete size of
    paper 1 (kind ``size-subject``). ``pixel_area``: native pixels per pixel of the slices
    (:func:`native_pixel_area`); the paper's loose bounds, stated in pixels of its 256x256 frame,
    keep their physical size, also on a smaller field of view.
    """
    from sizeseg.data.bounds import PAPER_LOOSE_UPPER, make_bounds, with_tags

    n = len(areas)
    if kind == "none":
        return np.full((n, 2), np.nan, np.float32)
    if kind == "proposals-loose":  # §4.2: one sixth of the 256x256 image
        return make_bounds("upper", areas, upper=256**2 / 6.0 / pixel_area)
    if kind == "upper-loose":  # §4.2: 10000 pixels at 256x256
        return make_bounds("upper", areas, upper=PAPER_LOOSE_UPPER / pixel_area)
    if kind in ("subject", "subject-upper"):
        return make_bounds(kind, areas, subject=ref)
    if kind == "size-subject":
        if size_ref is None:
            raise ValueError("kind='size-subject' needs size_ref, the subject's bounds on the discrete size")
        return make_bounds("subject", areas, subject=size_ref)
    if kind == "approx-size":  # the true area times a factor drawn in [0.9, 1.1]
        factor = np.random.default_rng(seed).uniform(0.9, 1.1, size=n)
        approx = np.asarray(areas, np.float64) * factor
        return with_tags(np.stack([approx, approx], 1).astype(np.float32), areas)
    raise ValueError(f"bounds kind {kind!r} unknown")


def load_acdc(data_dir: str | Path, out: Path, profile: Profile):
    """Prepare (or reuse) the ACDC slices of the profile under ``out/prepared_r<res>`` (``prepared_f<field>_r<res>``
    for a field of view other than 256)."""
    from sizeseg.data.acdc import prepare_acdc

    name = f"prepared_r{profile.resolution}" if profile.field == 256 else f"prepared_f{profile.field}_r{profile.resolution}"
    data, _ = prepare_acdc(data_dir, out / name, size=profile.field, resolution=profile.resolution,
                           limit=profile.limit_patients)
    return data


# ------------------------------------------------------------------------ metrics
def volume_dice(pred: np.ndarray, target: np.ndarray, volumes: np.ndarray) -> np.ndarray:
    """3D Dice per volume: slices grouped by ``volumes`` (1 when both are empty).

    >>> p = np.array([[[1, 0]], [[1, 1]]]); t = np.array([[[1, 0]], [[0, 1]]])
    >>> volume_dice(p, t, np.array(["a", "a"])).round(4).tolist()
    [0.8]
    """
    out = []
    for key in sorted(set(np.asarray(volumes).tolist())):
        sel = np.asarray(volumes) == key
        p, t = pred[sel].astype(bool), target[sel].astype(bool)
        total = p.sum() + t.sum()
        out.append(1.0 if total == 0 else 2.0 * (p & t).sum() / total)
    return np.array(out)


def evaluate(model, val) -> dict:
    """Validation DSC per slice (mean over slices) and per 3D volume (mean over volumes)."""
    from sizeseg.metrics import dice_score
    from sizeseg.training.pipeline import predict_logits

    logits = predict_logits(model, val.images, batch_size=32)
    pred = (logits[:, 0] > 0).numpy()
    target = np.asarray(val.masks) > 0
    per_slice = dice_score(torch.from_numpy(pred), torch.from_numpy(target)).numpy()
    has_lv = target.reshape(len(target), -1).any(1)
    per_volume = volume_dice(pred, target, val.volumes)
    return {"dsc_slice": float(per_slice.mean()), "dsc_slice_lv": float(per_slice[has_lv].mean()) if has_lv.any() else math.nan,
            "dsc_volume": float(per_volume.mean()), "n_val_slices": int(len(val)), "n_val_volumes": int(len(per_volume))}


def _val_dice_callback(val, batch_size: int = 64):
    """A callback logging ``val/Dice`` (mean per-slice DSC on ``val``) at the end of each training epoch.

    It replaces Lightning's validation loop here: batches of one image through the module's
    validation (which also computes paper 1's size error E with a distance transform) took
    0.9-5 s per 64x64 slice on the shared 2-core machine, against ~40 ms for the forward pass.
    It must run before the checkpoint callback (it is inserted first).
    """
    import lightning.pytorch as pl

    from sizeseg.metrics import dice_score

    images = torch.from_numpy(np.ascontiguousarray(val.images, np.float32))
    target = torch.from_numpy(np.asarray(val.masks) > 0)

    class ValDice(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            was_training = pl_module.training
            pl_module.eval()
            with torch.no_grad():
                logits = torch.cat([pl_module(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
            pl_module.train(was_training)
            dice = dice_score(logits[:, 0] > 0, target).mean()
            pl_module.log("val/Dice", dice, on_epoch=True, prog_bar=True)

    return ValDice()


def read_curve(metrics_csv: Path) -> list[float]:
    """Validation Dice per epoch from a Lightning CSV log."""
    if not metrics_csv.is_file():
        return []
    by_epoch: dict[int, float] = {}
    with open(metrics_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("val/Dice") not in (None, ""):
                by_epoch[int(row["epoch"])] = float(row["val/Dice"])
    return [by_epoch[e] for e in sorted(by_epoch)]


# ------------------------------------------------------------------------ training
def _datasets(train, val, method: Method, profile: Profile, weak: np.ndarray, ref: tuple[float, float], seed: int,
              ref_subject: str | None = None):
    from sizeseg.data.datasets import SegmentationDataset

    pixel_area = native_pixel_area(profile.field, train.spatial_shape[-1])
    size_ref = (reference_bounds(train, train.sizes, ref_subject)[1:]
                if "size-subject" in (method.bounds, method.size_bounds) else None)
    bounds = method_bounds(method.bounds, train.extra["areas"], ref, pixel_area, seed, size_ref=size_ref)
    size_bounds = (None if method.size_bounds is None
                   else method_bounds(method.size_bounds, train.extra["areas"], ref, pixel_area, seed, size_ref=size_ref))
    masked = None if method.full_masks else np.zeros(len(train), bool)
    train_set = SegmentationDataset(train, masked=masked, sizes="none", bounds=bounds, weak=weak, augment="affine",
                                    size_bounds=size_bounds)
    val_set = SegmentationDataset(val, masked=None, sizes="all")
    return train_set, val_set


def _model_spec(profile: Profile) -> dict:
    """The network of ``profile.model``: ENet with the profile's widths, or a registry U-Net as registered."""
    from sizeseg.models.registry import check_model_name

    spec = {"name": check_model_name(profile.model, "model"), "in_channels": 1, "out_channels": 1, "spatial_dims": 2}
    if profile.model == "enet":
        spec.update(widths=tuple(profile.widths), stage_repeats=profile.stage_repeats)
    return spec


#: Settings a cached ``result.json`` may predate, at the values its run was trained with.
RESULT_DEFAULTS = {"model": "enet", "term_weights": [], "init": None, "seed": 0, "field": 256, "weak": "erosion"}


def train_method(method: Method, train, val, profile: Profile, run_dir: Path, weak: np.ndarray,
                 ref: tuple[float, float], seed: int = 0, ref_subject: str | None = None,
                 init_dir: Path | None = None) -> dict:
    """Train one method; return its result row (also written to ``run_dir/result.json``).

    With ``init_dir`` (the run folder of ``profile.init``) training starts from that run's best
    network instead of a fresh one.
    """
    import lightning.pytorch as pl

    from sizeseg.models import build_model
    from sizeseg.training import SegmentationDataModule, SegmentationModule, best_checkpoint, fit, load_model, make_trainer
    from sizeseg.experiments.cache import check_reusable
    from sizeseg.training.constrained_terms import LogBarrierSchedule

    init = profile.init if init_dir is not None else None
    settings = {"model": profile.model, "term_weights": [list(w) for w in profile.term_weights], "init": init,
                "seed": seed, "field": profile.field, "weak": profile.weak}
    result_file = run_dir / "result.json"
    if result_file.is_file():
        row = json.loads(result_file.read_text())
        check_reusable(result_file, row, settings, RESULT_DEFAULTS)
        return {**RESULT_DEFAULTS, **row}  # rows written before a setting was recorded lack it
    train_set, val_set = _datasets(train, val, method, profile, weak, ref, seed, ref_subject)
    pl.seed_everything(seed, workers=True, verbose=False)
    spec = _model_spec(profile)
    model = build_model(**spec) if init_dir is None else load_model(best_checkpoint(init_dir)).train()
    module = SegmentationModule(model, method_terms(method, profile), lr=profile.lr,
                                lr_step=profile.lr_step, lr_gamma=0.5, model_spec=spec)
    datamodule = SegmentationDataModule(train_set, val_set, batch_size=1, seed=seed)
    trainer = make_trainer(run_dir, max_epochs=profile.epochs, monitor="val/Dice", mode="max", patience=None,
                           progress_bar=False, limit_train_batches=profile.train_batches, limit_val_batches=0,
                           num_sanity_val_steps=0)
    trainer.callbacks.insert(0, _val_dice_callback(val))
    trainer.callbacks.append(LogBarrierSchedule())
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    start = time.perf_counter()
    fit(trainer, module, datamodule, resume=True)
    seconds = time.perf_counter() - start
    curve = read_curve(run_dir / "metrics.csv")  # merged over resumed runs by fit()
    best = evaluate(load_model(best_checkpoint(run_dir)), val)
    row = {"method": method.key, "label": method.label + (f", started from the {init} network" if init else ""),
           "paper_dsc": None if init else method.paper_dsc, **settings, **best, "best_epoch": int(np.argmax(curve)) + 1 if curve else 0,
           "last_epoch_dsc_slice": curve[-1] if curve else math.nan, "epochs": len(curve),
           "train_seconds": round(seconds, 1), "curve": curve}
    atomic_write_text(result_file, json.dumps(row, indent=1))
    return row


def time_methods(train, methods: Sequence[Method], profile: Profile, weak: np.ndarray, ref: tuple[float, float],
                 seed: int = 0, ref_subject: str | None = None) -> list[dict]:
    """Table 2: training time per image (forward, losses, backward, Adam step), same images for all methods.

    Each method trains its own fresh ENet on batches of one image; the methods take turns step
    by step (so a change in the machine's load hits all of them alike), 3 warm-up steps then
    ``timing_steps`` timed ones; the median step time is reported, and its ratio to the partial
    cross-entropy (CE only) time.
    """
    from sizeseg.data.datasets import collate_batch
    from sizeseg.models import build_model

    setups = []
    for method in methods:
        train_set, _ = _datasets(train, train, method, profile, weak, ref, seed, ref_subject)
        train_set.augment = "none"
        torch.manual_seed(seed)
        model = build_model(**_model_spec(profile)).train()
        setups.append((method, train_set, model, method_terms(method, profile), torch.optim.Adam(model.parameters(), lr=profile.lr)))
    order = np.random.default_rng(seed).permutation(len(train))
    times: dict[str, list[float]] = {m.key: [] for m in methods}
    for i in range(profile.timing_steps + 3):
        for method, train_set, model, terms, opt in setups:
            batch = collate_batch([train_set[int(order[i % len(order)])]])
            start = time.perf_counter()
            opt.zero_grad()
            logits = model(batch["image"])
            loss = sum(t.weight * t(logits, batch) for t in terms)
            loss.backward()
            opt.step()
            if i >= 3:
                times[method.key].append(time.perf_counter() - start)
    rows = [{"method": m.key, "label": m.label, "ms_per_image": 1000 * float(np.median(times[m.key])),
             "paper_ms": m.paper_ms} for m in methods]
    base = next((r["ms_per_image"] for r in rows if r["method"] == "partial_ce"), rows[0]["ms_per_image"])
    for r in rows:
        r["ratio_to_ce"] = r["ms_per_image"] / base
    return rows


# ------------------------------------------------------------------------ reports
def _fmt(v, digits: int = 4) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def ordering_holds(rows: list[dict], key: str = "dsc_slice") -> dict[str, bool]:
    """The paper's ordering: partial CE < proposals (loose) < one bound < two bounds < full supervision.

    Rows started from another method's network (``--init``) are not the paper's rows and are left out.
    """
    v = {r["method"]: r[key] for r in rows if not r.get("init")}
    chain = ["partial_ce", "proposals_loose", "size_upper_tight", "size_two_bounds", "full"]
    present = [k for k in chain if k in v]
    checks = {f"{a} < {b}": bool(v[a] < v[b]) for a, b in zip(present, present[1:])}
    if "proposals_loose" in v and "size_upper_loose" in v:
        checks["proposals_loose < size_upper_loose"] = bool(v["proposals_loose"] < v["size_upper_loose"])
    for a, b in (("partial_ce", "proposals_loose_pce"), ("proposals_loose_pce", "size_upper_tight")):
        if a in v and b in v:
            checks[f"{a} < {b}"] = bool(v[a] < v[b])
    return checks


def write_report(out: Path, profile: Profile, table1: list[dict], table2: list[dict], command: str, info: dict,
                 per_seed: Sequence[dict] = ()) -> None:
    """``table1.csv``, ``table2.csv``, ``report.md`` and ``dsc_curves.png`` under ``out``.

    With rows of several seeds in ``per_seed``, Table 1 shows mean ± sd and ``table1_seeds.csv``
    lists every seed's row.
    """
    if profile.weak != "erosion":  # the paper's rows used its eroded masks; other weak labels are not comparable
        table1 = [{**r, "paper_dsc": None} for r in table1]
        per_seed = [{**r, "paper_dsc": None} for r in per_seed]
    seeds = sorted({r["seed"] for r in per_seed})
    several = len(seeds) > 1
    columns = ["method", "label", "dsc_slice", "dsc_slice_lv", "dsc_volume", "last_epoch_dsc_slice", "best_epoch",
               "epochs", "train_seconds", "paper_dsc"]
    if several:
        write_csv(out / "table1_seeds.csv", per_seed, ["method", "seed"] + columns[1:], float_format=".4f")
        columns[6:6] = [f"{k}_sd" for k in SCORES]
        table1 = [{**r, "seeds": len(r["seeds"])} for r in table1]
        columns.insert(2, "seeds")
    write_csv(out / "table1.csv", table1, columns, float_format=".4f")
    if table2:
        write_csv(out / "table2.csv", table2, ["method", "label", "ms_per_image", "ratio_to_ce", "paper_ms"], float_format=".4f")

    def cell(r: dict, key: str) -> str:
        return f"{_fmt(r[key])} ± {_fmt(r[f'{key}_sd'], 3)}" if f"{key}_sd" in r else _fmt(r[key])

    what = f"mean ± sd over seeds {', '.join(map(str, seeds))}; " if several else ""
    lines = [f"# Constrained-CNN losses on ACDC (LV cavity) — profile `{profile.name}`", "",
             f"Command: `{command}`", "",
             "Profile: " + ", ".join(f"{k}={v}" for k, v in asdict(profile).items()), "",
             "Data: " + ", ".join(f"{k}={v}" for k, v in info.items()), "",
             f"## Table 1 — validation DSC ({what}best epoch by per-slice validation DSC)", "",
             "| Method | ours: DSC per slice | ours: DSC per slice with LV | ours: 3D DSC per volume | ours: last-epoch DSC | paper (256², 200 ep.) |",
             "|---|---|---|---|---|---|"]
    for r in table1:
        lines.append(f"| {r['label']} | {cell(r, 'dsc_slice')} | {cell(r, 'dsc_slice_lv')} | {cell(r, 'dsc_volume')} | "
                     f"{cell(r, 'last_epoch_dsc_slice')} | {_fmt(r['paper_dsc'])} |")
    lines.append("")
    orderings = [(key, what, ordering_holds(table1, key)) for key, what in (("dsc_volume", "3D DSC per volume"),
                                                                            ("dsc_slice_lv", "DSC per slice with LV"))]
    for key, what, checks in orderings:
        if not checks:
            continue
        if several:
            by_seed = [ordering_holds([r for r in per_seed if r["seed"] == s], key) for s in seeds]
            counts = {k: sum(c.get(k, False) for c in by_seed) for k in checks}
            lines.append(f"Ordering of the paper ({what}, means): " + "; ".join(
                f"{k}: {'yes' if ok else 'NO'} (in {counts[k]} of {len(seeds)} seeds)" for k, ok in checks.items()))
        else:
            lines.append(f"Ordering of the paper ({what}): " + "; ".join(f"{k}: {'yes' if ok else 'NO'}" for k, ok in checks.items()))
    lines += ["", "(The per-slice DSC counts a slice without LV and an empty prediction as 1, so a network that predicts "
              "nothing scores the share of such slices" + ("; the two orderings above avoid that.)" if orderings[0][2] else ".)"), ""]
    if table2:
        lines += ["## Table 2 — training time per image", "",
                  "| Method | ours: ms/image (CPU) | ours: ratio to CE only | paper: ms/image (GTX 1080 Ti) | paper: ratio |",
                  "|---|---|---|---|---|"]
        for r in table2:
            ratio = None if r["paper_ms"] is None else r["paper_ms"] / 10.0
            lines.append(f"| {r['label']} | {_fmt(r['ms_per_image'], 1)} | {_fmt(r['ratio_to_ce'], 2)} | "
                         f"{_fmt(r['paper_ms'], 0)} | {_fmt(ratio, 2)} |")
        lines.append("")
    lines += ["Paper numbers are the paper's (Kervadec et al., MIDL 2018, Tables 1–2), shown beside ours for reference.", ""]
    atomic_write_text(out / "report.md", "\n".join(lines))
    plot_curves(out / "dsc_curves.png", table1)


def plot_curves(path: Path, table1: list[dict]) -> None:
    """Fig. 3: validation DSC per epoch of every method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    for i, r in enumerate(table1):
        curve = r.get("curve") or []
        # ten colours, then dashed: eleven rows must stay distinguishable
        ax.plot(range(1, len(curve) + 1), curve, label=r["label"], marker="." if len(curve) < 30 else None,
                color=plt.cm.tab10(i % 10), linestyle=("-", "--", ":")[i // 10 % 3])
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation DSC (per slice)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- run
def run_experiment(data, out: str | Path, profile: Profile, methods: Sequence[str] | None = None,
                   command: str = "", seeds: Sequence[int] = (0,), timing: bool = True, threads: int | None = 1,
                   ) -> tuple[list[dict], list[dict]]:
    """Train every method of ``methods`` with every seed of ``seeds`` on prepared ``data`` and write the reports.

    Finished runs (``runs/<method>[-seed<k>]/result.json``) are reused, so an interrupted run continues.
    With several seeds, Table 1 holds each method's mean over seeds with the sample sd beside it
    (``table1_seeds.csv`` keeps every seed's row).
    ``threads``: torch CPU threads (1 by default: with batches of one small image, more threads
    on a shared machine were 10-50x slower in our measurements; None leaves torch's setting).
    """
    seeds = check_seeds(seeds, "seeds")
    if threads is not None:
        torch.set_num_threads(threads)
    from sizeseg.data.weak import labelled_fraction
    from sizeseg.experiments.parallel import run_jobs

    chosen = _check_methods(methods)
    out = Path(out)
    train, val = data.split("train"), data.split("val")
    if "areas" not in train.extra:
        raise ValueError("data has no 'areas' (pixel counts of the object) in extra; prepare it with sizeseg.data")
    subject, a, b = reference_bounds(train, subject=profile.bounds_subject)
    weak = experiment_weak_labels(train, profile)
    frac = labelled_fraction(weak, train.masks)
    info = {"train_slices": len(train), "val_slices": len(val), "resolution": "x".join(map(str, train.spatial_shape)),
            "field_of_view": f"{profile.field}x{profile.field} native px",
            "bounds_subject": subject, "a": round(a, 1), "b": round(b, 1),
            "weak_labelled_pixels_%": round(100 * frac["of_pixels"], 3),
            "weak_of_foreground_%": round(100 * frac["of_foreground"], 2),
            "weak_foreground_recall_%": round(100 * frac["foreground_recall"], 2), "seeds": ",".join(map(str, seeds))}
    init_dirs: dict[int, Path | None] = dict.fromkeys(seeds)
    if profile.init is not None:
        init_method = _check_methods([profile.init])[0]
        if init_method in chosen:
            raise ValueError(f"init: {profile.init!r} starts the other methods; it cannot be one of them")
        info["init"] = profile.init
        plain = replace(profile, init=None)
        for seed in seeds:  # each seed's methods start from the init method's network of the same seed
            init_dirs[seed] = _run_dir(out, profile.init, plain, seed)
            train_method(init_method, train, val, plain, init_dirs[seed], weak, (a, b), seed, subject)
    args = [(method, train, val, profile, _run_dir(out, method.key, profile, seed), weak, (a, b), seed, subject,
             init_dirs[seed]) for seed in seeds for method in chosen]
    finished: dict[tuple[int, str], dict] = {}

    def tables() -> tuple[list[dict], list[dict]]:
        per_seed = [finished[s, m.key] for s in seeds for m in chosen if (s, m.key) in finished]
        combined = [combine_seeds([finished[s, m.key] for s in seeds if (s, m.key) in finished])
                    for m in chosen if any((s, m.key) in finished for s in seeds)]
        return combined, per_seed

    for row in run_jobs(train_method, args, profile.workers, threads):
        finished[row["seed"], row["method"]] = row
        combined, per_seed = tables()
        write_report(out, profile, combined, [], command, info, per_seed=per_seed)
    table1, per_seed = tables()
    table2 = time_methods(train, chosen, profile, weak, (a, b), seeds[0], subject) if timing else []
    write_report(out, profile, table1, table2, command, info, per_seed=per_seed)
    return table1, table2


def check_seeds(seeds: Sequence[int], name: str) -> tuple[int, ...]:
    """``seeds`` as a tuple of distinct non-negative ints, or a ValueError naming ``name``."""
    seeds = tuple(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in seeds):
        raise ValueError(f"{name}: expected one or more non-negative ints, got {list(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{name}: a seed is repeated in {list(seeds)}")
    return tuple(int(s) for s in seeds)


#: Table 1's scores; with several seeds a row holds their mean and ``<score>_sd`` the sample sd.
SCORES = ("dsc_slice", "dsc_slice_lv", "dsc_volume", "last_epoch_dsc_slice")


def combine_seeds(rows: Sequence[dict]) -> dict:
    """One method's Table 1 row over its seeds' rows: mean and sd of each score, mean curve.

    One row is returned as it is (with ``seeds``). With several, ``best_epoch`` is the epoch of the
    mean curve's maximum, and the curve is cut to the shortest seed's.
    """
    from sizeseg.experiments.report import mean_sd

    rows = list(rows)
    if len(rows) == 1:
        return {**rows[0], "seeds": [rows[0]["seed"]]}
    combined = {k: v for k, v in rows[0].items() if k not in ("seed", "curve", "best_epoch", "epochs")}
    combined["seeds"] = [r["seed"] for r in rows]
    for key in SCORES:
        combined[key], combined[f"{key}_sd"], _ = mean_sd(r[key] for r in rows)
    combined["train_seconds"] = float(np.mean([r["train_seconds"] for r in rows]))
    length = min(len(r["curve"]) for r in rows)
    curve = [float(np.mean([r["curve"][i] for r in rows])) for i in range(length)]
    combined.update(curve=curve, epochs=length, best_epoch=int(np.argmax(curve)) + 1 if curve else 0)
    return combined


def _run_dir(out: Path, key: str, profile: Profile, seed: int = 0) -> Path:
    """``out/runs/<method>``, ``-from-<init>`` appended for a run started from ``profile.init``'s network,
    ``-seed<k>`` for a seed k other than 0."""
    name = key if profile.init is None else f"{key}-from-{profile.init}"
    return out / "runs" / (name if seed == 0 else f"{name}-seed{seed}")


def _check_methods(methods: Sequence[str] | None) -> list[Method]:
    if methods is None:
        return list(METHODS)
    unknown = [m for m in methods if m not in METHOD_KEYS]
    if unknown:
        raise ValueError(f"methods: unknown {unknown}; expected some of {list(METHOD_KEYS)}")
    by_key = {m.key: m for m in METHODS}
    return [by_key[k] for k in dict.fromkeys(methods)]  # in the order given


# --------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``sizeseg experiment constrained``."""
    parser.add_argument("--data", required=True, help="the ACDC folder (with training/patientXXX/)")
    parser.add_argument("--out", required=True, help="output folder (prepared data, runs, tables, report)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="the quick profile (minutes)")
    group.add_argument("--profile", choices=PROFILES, default=None, help="quick, cpu (~2 h on 2 cores) or full (the paper's)")
    parser.add_argument("--methods", default=None, help=f"comma-separated subset of {','.join(METHOD_KEYS)}")
    parser.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    parser.add_argument("--lr", type=float, default=None, help="override the learning rate (default 5e-3, the paper's text; 5e-4 is the authors' code)")
    parser.add_argument("--model", default=None, help="network: enet (the paper's, default), unet-small, unet, ... "
                        "(a name of sizeseg.models.MODELS)")
    parser.add_argument("--field", type=int, default=None, metavar="PIXELS",
                        help="native pixels kept around the image centre before block-averaging to the profile's "
                        "resolution: 256 is the paper's frame (the full and quick profiles' default); the cpu profile "
                        "keeps 128, 99.96 %% of the LV pixels of ACDC, 4x larger on its 64x64 slices; a multiple of "
                        "the resolution")
    parser.add_argument("--weak", choices=tuple(WEAK_SOURCES), default=None,
                        help="labelled pixels of the weak rows: " + "; ".join(f"{k}: {v}" for k, v in WEAK_SOURCES.items())
                        + " (default erosion)")
    parser.add_argument("--bounds-subject", default=None,
                        help="training subject of the tight bounds (default: patient004, the paper's, if in the split)")
    parser.add_argument("--term-weight", action="append", default=None, metavar="NAME=WEIGHT",
                        help=f"override a loss term's weight in every method that uses it (repeatable); NAME one of {', '.join(TERM_NAMES)}")
    parser.add_argument("--workers", type=int, default=None,
                        help="methods trained at once, one single-threaded process each (default: the profile's, 2 for cpu)")
    parser.add_argument("--init", default=None, metavar="METHOD",
                        help="start every method from METHOD's best network (trained first into OUT/runs/METHOD "
                        "if missing); runs go to OUT/runs/<method>-from-METHOD")
    parser.add_argument("--no-timing", action="store_true", help="skip Table 2")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", default=None, help="comma-separated seeds: every method trains once per seed and "
                       "Table 1 shows mean ± sd (default 0; runs of seed k > 0 go to OUT/runs/<method>-seed<k>)")
    seeds.add_argument("--seed", type=int, default=None, help="one seed (the same as --seeds SEED)")


def run_command(args: argparse.Namespace) -> int:
    name = "quick" if args.quick else (args.profile or "cpu")
    profile = PROFILE_SETTINGS[name]
    if args.epochs is not None:
        if args.epochs < 1:
            raise ValueError(f"--epochs: expected a positive int, got {args.epochs}")
        profile = replace(profile, epochs=args.epochs)
    if args.lr is not None:
        if not args.lr > 0:
            raise ValueError(f"--lr: expected a positive learning rate, got {args.lr}")
        profile = replace(profile, lr=args.lr)
    if args.workers is not None:
        if args.workers < 1:
            raise ValueError(f"--workers: expected a positive int, got {args.workers}")
        profile = replace(profile, workers=args.workers)
    if args.model is not None:
        from sizeseg.models.registry import check_model_name

        profile = replace(profile, model=check_model_name(args.model, "--model"))
    if args.bounds_subject is not None:
        profile = replace(profile, bounds_subject=args.bounds_subject)
    if args.field is not None:
        if args.field < profile.resolution or args.field % profile.resolution:
            raise ValueError(f"--field: expected a multiple of the profile's resolution {profile.resolution}, "
                             f"got {args.field}")
        profile = replace(profile, field=args.field)
    if args.weak is not None:
        profile = replace(profile, weak=args.weak)
    term_weights = parse_term_weights(args.term_weight)
    if term_weights:
        profile = replace(profile, term_weights=term_weights)
    methods = None if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
    _check_methods(methods)  # bad input fails before any work
    from sizeseg.experiments.options import int_list

    seeds = (check_seeds([args.seed], "--seed") if args.seed is not None
             else check_seeds(int_list(args.seeds or "0", "--seeds", minimum=0), "--seeds"))
    if args.init is not None:
        if args.init not in METHOD_KEYS:
            raise ValueError(f"--init: unknown method {args.init!r}; expected one of {list(METHOD_KEYS)}")
        if args.init in (methods or METHOD_KEYS):
            raise ValueError(f"--init: {args.init!r} starts the other methods, so it cannot be among --methods")
        profile = replace(profile, init=args.init)
    if not Path(args.data).is_dir():
        raise FileNotFoundError(f"--data: {args.data} is not a folder")
    out = Path(args.out)
    data = load_acdc(args.data, out, profile)
    command = f"sizeseg experiment constrained --data {args.data} --out {args.out} --profile {name}"
    command += "".join(f" {flag} {value}" for flag, value in (("--methods", args.methods), ("--epochs", args.epochs),
                                                                  ("--lr", args.lr), ("--model", args.model), ("--field", args.field), ("--weak", args.weak),
                                                                  ("--bounds-subject", args.bounds_subject),
                                                                  ("--workers", args.workers), ("--init", args.init),
                                                                  ("--seeds", ",".join(map(str, seeds)) if seeds != (0,) else None))
                       if value is not None) + "".join(f" --term-weight {n}={w:g}" for n, w in term_weights) \
        + (" --no-timing" if args.no_timing else "")
    run_experiment(data, out, profile, methods, command=command, seeds=seeds, timing=not args.no_timing)
    print((out / "report.md").read_text())
    return 0


def register(experiment_subparsers) -> argparse.ArgumentParser:
    """Add ``constrained`` to the ``sizeseg experiment`` sub-parsers."""
    parser = experiment_subparsers.add_parser(
        "constrained", help="Constrained-CNN losses on ACDC: Tables 1 and 2, Fig. 3",
        description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.set_defaults(func=run_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sizeseg.experiments.constrained")
    add_arguments(parser)
    return run_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
