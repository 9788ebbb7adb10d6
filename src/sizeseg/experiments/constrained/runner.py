"""Training the methods (Table 1), timing them (Table 2), and the whole experiment over seeds."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from sizeseg.experiments.constrained.evaluation import evaluate, read_curve, val_dice_callback
from sizeseg.experiments.constrained.labels import experiment_weak_labels, method_bounds, reference_bounds
from sizeseg.experiments.constrained.methods import Method, check_methods, method_terms
from sizeseg.experiments.constrained.profiles import Profile, native_pixel_area
from sizeseg.experiments.constrained.report import SCORES, write_report
from sizeseg.io_utils import atomic_write_text


def method_datasets(train, val, method: Method, profile: Profile, weak: np.ndarray, ref: tuple[float, float], seed: int,
                    ref_subject: str | None = None):
    """The method's training set (weak labels, or masks for full supervision; its bounds; augmentation) and the
    validation set (masks)."""
    from sizeseg.data.datasets import SegmentationDataset

    pixel_area = native_pixel_area(profile.field, train.spatial_shape[-1])
    size_ref = (reference_bounds(train, train.sizes, ref_subject)[1:]
                if "size-subject" in (method.bounds, method.size_bounds) else None)
    bounds = method_bounds(method.bounds, train.extra["areas"], ref, pixel_area, seed, size_ref=size_ref)
    size_bounds = (None if method.size_bounds is None
                   else method_bounds(method.size_bounds, train.extra["areas"], ref, pixel_area, seed, size_ref=size_ref))
    masked = None if method.full_masks else np.zeros(len(train), bool)
    train_set = SegmentationDataset(train, masked=masked, sizes="none", bounds=bounds, weak=weak, augment=profile.augment,
                                    size_bounds=size_bounds)
    val_set = SegmentationDataset(val, masked=None, sizes="all")
    return train_set, val_set


def model_spec(profile: Profile) -> dict:
    """The network of ``profile.model``: ENet with the profile's widths, or a registry U-Net as registered."""
    from sizeseg.models.registry import check_model_name

    spec = {"name": check_model_name(profile.model, "model"), "in_channels": 1, "out_channels": 1, "spatial_dims": 2}
    if profile.model == "enet":
        spec.update(widths=tuple(profile.widths), stage_repeats=profile.stage_repeats)
    return spec


#: Settings a cached ``result.json`` may predate, at the values its run was trained with.
RESULT_DEFAULTS = {"model": "enet", "term_weights": [], "init": None, "seed": 0, "field": 256, "weak": "erosion",
                   "batch_size": 1, "temperature": 1.0, "split": "patients", "betas": [0.9, 0.999], "augment": "affine",
                   "lr_schedule": "step", "weight_decay": 0.0, "monitor": "dsc_slice", "protocol": "ours",
                   "slices": "all", "full_dice": False, "tta": False,
                   # unknown for rows written before they were recorded: such rows are not reused
                   "epochs": None, "lr": None, "resolution": None, "proposal_iterations": None, "train_batches": None}


#: Settings of the final evaluation only: a cached run that differs in nothing else is scored again from its
#: best network instead of being retrained.
EVALUATION_SETTINGS = ("tta",)


def run_settings(profile: Profile, seed: int, init: str | None) -> dict:
    """The settings a run's ``result.json`` records, and that a cached run must match to be reused: ``init``,
    ``seed`` and the profile's fields named in :data:`RESULT_DEFAULTS`, tuples as JSON lists."""

    def as_json(value):
        return [as_json(v) for v in value] if isinstance(value, (tuple, list)) else value

    fields = {key: as_json(getattr(profile, key)) for key in RESULT_DEFAULTS if key not in ("init", "seed")}
    return {**fields, "init": init, "seed": seed}


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
    settings = run_settings(profile, seed, init)
    result_file = run_dir / "result.json"
    if result_file.is_file():
        row = {**RESULT_DEFAULTS, **json.loads(result_file.read_text())}  # older rows lack newer settings
        trained = {k: v for k, v in settings.items() if k not in EVALUATION_SETTINGS}
        check_reusable(result_file, row, trained, RESULT_DEFAULTS)
        if all(row[k] == settings[k] for k in EVALUATION_SETTINGS) or best_checkpoint(run_dir) is None:
            check_reusable(result_file, row, settings, RESULT_DEFAULTS)
            return row
        row.update(settings, **evaluate(load_model(best_checkpoint(run_dir)), val, tta=profile.tta))
        atomic_write_text(result_file, json.dumps(row, indent=1))
        return row
    train_set, val_set = method_datasets(train, val, method, profile, weak, ref, seed, ref_subject)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # before the trainer: no banners, no tips
    pl.seed_everything(seed, workers=True, verbose=False)
    spec = model_spec(profile)
    model = build_model(**spec) if init_dir is None else load_model(best_checkpoint(init_dir)).train()
    module = SegmentationModule(model, method_terms(method, profile), lr=profile.lr,
                                lr_step=profile.lr_step, lr_gamma=0.5, model_spec=spec, lr_schedule=profile.lr_schedule,
                                betas=profile.betas, weight_decay=profile.weight_decay, temperature=profile.temperature)
    datamodule = SegmentationDataModule(train_set, val_set, batch_size=profile.batch_size, seed=seed)
    trainer = make_trainer(run_dir, max_epochs=profile.epochs, monitor=f"val/{profile.monitor}", mode="max", patience=None,
                           progress_bar=False, limit_train_batches=profile.train_batches, limit_val_batches=0,
                           num_sanity_val_steps=0)
    trainer.callbacks.insert(0, val_dice_callback(val))
    trainer.callbacks.append(LogBarrierSchedule())
    start = time.perf_counter()
    fit(trainer, module, datamodule, resume=True)
    seconds = time.perf_counter() - start
    curve = read_curve(run_dir / "metrics.csv", profile.monitor)  # merged over resumed runs by fit()
    best = evaluate(load_model(best_checkpoint(run_dir)), val, tta=profile.tta)
    row = {"method": method.key, "label": method.label + (f", started from the {init} network" if init else ""),
           "paper_dsc": None if init else method.paper_dsc, **settings, **best, "best_epoch": int(np.argmax(curve)) + 1 if curve else 0,
           "last_epoch_score": curve[-1] if curve else math.nan, "epochs": len(curve),
           "train_seconds": round(seconds, 1), "curve": curve}
    atomic_write_text(result_file, json.dumps(row, indent=1))
    return row


def time_methods(train, methods: Sequence[Method], profile: Profile, weak: np.ndarray, ref: tuple[float, float],
                 seed: int = 0, ref_subject: str | None = None) -> list[dict]:
    """Table 2: training time per image (forward, losses, backward, Adam step), same images for all methods.

    Each method trains its own fresh network on batches of ``profile.batch_size`` images; the methods
    take turns step by step (so a change in the machine's load hits all of them alike), 3 warm-up
    steps then ``timing_steps`` timed ones; the median step time divided by the batch size is
    reported, and its ratio to the partial cross-entropy (CE only) time.
    """
    from sizeseg.data.datasets import collate_batch
    from sizeseg.models import build_model

    setups = []
    for method in methods:
        train_set, _ = method_datasets(train, train, method, profile, weak, ref, seed, ref_subject)
        train_set.augment = "none"
        torch.manual_seed(seed)
        model = build_model(**model_spec(profile)).train()
        setups.append((method, train_set, model, method_terms(method, profile), torch.optim.Adam(model.parameters(), lr=profile.lr)))
    order = np.random.default_rng(seed).permutation(len(train))
    size = profile.batch_size
    times: dict[str, list[float]] = {m.key: [] for m in methods}
    for i in range(profile.timing_steps + 3):
        for method, train_set, model, terms, opt in setups:
            batch = collate_batch([train_set[int(order[(i * size + j) % len(order)])] for j in range(size)])
            start = time.perf_counter()
            opt.zero_grad()
            logits = model(batch["image"]) / profile.temperature
            loss = sum(t.weight * t(logits, batch) for t in terms)
            loss.backward()
            opt.step()
            if i >= 3:
                times[method.key].append((time.perf_counter() - start) / size)
    rows = [{"method": m.key, "label": m.label, "ms_per_image": 1000 * float(np.median(times[m.key])),
             "paper_ms": m.paper_ms} for m in methods]
    base = next((r["ms_per_image"] for r in rows if r["method"] == "partial_ce"), rows[0]["ms_per_image"])
    for r in rows:
        r["ratio_to_ce"] = r["ms_per_image"] / base
    return rows


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

    chosen = check_methods(methods)
    out = Path(out)
    train, val = data.split("train"), data.split("val")
    if "areas" not in train.extra:
        raise ValueError("data has no 'areas' (pixel counts of the object) in extra; prepare it with sizeseg.data")
    if profile.slices == "lv":  # the authors' MIDL sets appear to hold only slices with the LV
        train, val = (part.take(np.flatnonzero(part.extra["areas"] > 0)) for part in (train, val))
    subject, a, b = reference_bounds(train, subject=profile.bounds_subject)
    weak = experiment_weak_labels(train, profile)
    frac = labelled_fraction(weak, train.masks)
    info = {"train_slices": len(train), "val_slices": len(val), "resolution": "x".join(map(str, train.spatial_shape)),
            "field_of_view": f"{profile.field}x{profile.field} native px",
            "bounds_subject": subject, "a": round(a, 1), "b": round(b, 1),
            "weak_labelled_pixels_%": round(100 * frac["of_pixels"], 3),
            "weak_foreground_labels_%": round(100 * frac["foreground_of_pixels"], 3),
            "weak_background_labels_%": round(100 * frac["background_of_pixels"], 3),
            "weak_foreground_recall_%": round(100 * frac["foreground_recall"], 2), "seeds": ",".join(map(str, seeds)),
            "slices": "only slices with the LV" if profile.slices == "lv" else "all"}
    init_dirs: dict[int, Path | None] = dict.fromkeys(seeds)
    if profile.init is not None:
        init_method = check_methods([profile.init])[0]
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
