"""The size paper's experiments on the MSD hippocampus slices (48x32): gradient samples n and pre-training size m.

1. ``samples``: from one network pre-trained on 85 masked images, fine-tune with SizeLoss for each
   n in the profile's ``n_values``; report the epoch duration relative to a supervised epoch over
   the same number of batches (paper Fig. 5) and the validation E and IoU over epochs (Fig. 6).
2. ``pretraining``: for each m and seed, pre-train on m masked images, then fine-tune on the sizes of
   the whole training split in each of the ``--stages`` (size-only; mixed: masks of the same m
   images plus all sizes; size-matched: SizeLoss plus BCE to the size-matched masks) and test the
   true-size oracle (no training: the pre-trained predictions moved onto the true test sizes);
   report test IoU after each stage, mean ± sd over seeds (Fig. 7).

Profiles: ``quick`` (minutes on a CPU), ``cpu`` (pre-training to convergence; about 10–15 minutes per m and seed on one core), ``full`` (the paper's
protocol: training until the validation metric stops improving). Every run folder keeps a
``result.json``; a re-run skips finished runs, so pieces may run in parallel processes (``--seeds``,
``--m``) into the same output folder and the report is rebuilt from all finished runs.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

from sizeseg.experiments.report import (
    mean_sd, markdown_table, new_figure, read_csv, save_figure, write_csv, write_json,
)

ALL = None  # m = all training images


@dataclass(frozen=True)
class Profile:
    """Settings of one experiment profile (see the module docstring)."""

    name: str
    model: str
    batch_size: int
    lr: float
    pretrain_steps: int  # optimisation steps of pre-training (early stopping may end it sooner)
    pretrain_val_steps: int  # validate about every this many steps
    pretrain_patience: int  # validations without a better pretrain_monitor before stopping
    finetune_epochs: int
    finetune_batches: int | None  # batches per fine-tuning epoch (None: the whole training split)
    finetune_patience: int  # epochs without a better val E before stopping
    n_values: tuple[int, ...]
    m_values: tuple[int | None, ...]
    seeds: tuple[int, ...]
    samples_m: int = 85
    samples_epochs: int = 6
    mask_fraction: float = 0.5
    finetune_lr: float = 1e-4  # 1e-3 (the pre-training rate) wrecked the IoU within one epoch on hippocampus
    # names of FINETUNE_STAGES (and the cheap ORACLE_STAGE), run after pre-training; --stages
    stages: tuple[str, ...] = ("size fine-tuned", "mixed", "true-size oracle")
    keep_checkpoints: bool = False
    # the validation metric that picks the pre-trained network: val/IoU uses the validation masks;
    # val/E only the validation sizes, what a user with m masks and sizes for the rest can do
    pretrain_monitor: str = "val/IoU"


PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", "unet-small", 32, 1e-3, pretrain_steps=60, pretrain_val_steps=20, pretrain_patience=3,
                     finetune_epochs=2, finetune_batches=8, finetune_patience=2, n_values=(1, 2),
                     m_values=(10, 85, ALL), seeds=(0,), samples_epochs=3),
    # Pre-training runs to convergence (IoU plateau); the 200-step pre-training this profile once had
    # left networks that size fine-tuning made worse. A fine-tuning "epoch" is 29 batches (~1/4 pass).
    "cpu": Profile("cpu", "unet-small", 32, 1e-3, pretrain_steps=1500, pretrain_val_steps=50, pretrain_patience=6,
                   finetune_epochs=12, finetune_batches=29, finetune_patience=4, n_values=(1, 2, 4, 8),
                   m_values=(10, 20, 40, 85, 170, 340, ALL), seeds=(0, 1), samples_epochs=12),
    "full": Profile("full", "unet", 32, 1e-3, pretrain_steps=20000, pretrain_val_steps=100, pretrain_patience=10,
                    finetune_epochs=100, finetune_batches=None, finetune_patience=5, n_values=(1, 2, 4, 8),
                    m_values=(10, 20, 40, 85, 170, 340, ALL), seeds=(0, 1, 2, 3, 4), samples_epochs=50),
}

# The paper's figures ("Learning segmentation from object sizes", Sec. 4), as its text states them.
PAPER_SAMPLES = "paper (Fig. 5, RTX 2080 Ti): a size epoch at n = 1 took ≈10× a supervised epoch, growing roughly exponentially with n"
PAPER_PRETRAINING = "paper (Fig. 7): fine-tuning on sizes raised test IoU by ≈5 % for m < 100; negligible for larger m"

#: Fine-tuning variants of Exp. 2: stage name -> (run folder, training mode, TrainConfig changes).
FINETUNE_STAGES: dict[str, tuple[str, str, dict]] = {
    "size fine-tuned": ("finetune", "finetune", {}),
    "mixed": ("mixed", "mixed", {}),
    # SizeLoss plus BCE to the prediction moved onto the annotated size (sizeseg.ops.size_match).
    "size-matched": ("size_matched", "finetune", {"size_matched_weight": 1.0}),
}
#: Not a training stage: the pre-trained network's test predictions moved onto the *true* test
#: sizes (``size_matched_mask``), i.e. what knowing every size exactly would buy at test time.
ORACLE_STAGE = "true-size oracle"
STAGE_NAMES = tuple(FINETUNE_STAGES) + (ORACLE_STAGE,)


def m_label(m: int | None) -> str:
    return "all" if m is None else str(m)


# ---------------------------------------------------------------------------------------- runs
def _pretrain_config(profile: Profile, m: int | None, n_train: int, seed: int):
    from sizeseg.training import TrainConfig

    items = n_train if m is None else m
    per_epoch = max(1, items // profile.batch_size)
    val_every = max(1, round(profile.pretrain_val_steps / per_epoch))
    epochs = max(1, math.ceil(profile.pretrain_steps / per_epoch))
    epochs = math.ceil(epochs / val_every) * val_every  # end on a validated epoch
    return TrainConfig(model=profile.model, lr=profile.lr, batch_size=profile.batch_size, max_epochs=epochs,
                       patience=profile.pretrain_patience, m=m, seed=seed, val_every=val_every, flips=True,
                       # val/IoU is pre-training's default: "" keeps the configs of runs cached before `monitor` existed equal
                       monitor="" if profile.pretrain_monitor == "val/IoU" else profile.pretrain_monitor)


def _finetune_config(profile: Profile, m: int | None, seed: int, n_samples: int = 1, epochs: int | None = None):
    from sizeseg.training import TrainConfig

    return TrainConfig(model=profile.model, lr=profile.finetune_lr, batch_size=profile.batch_size,
                       max_epochs=epochs or profile.finetune_epochs, patience=profile.finetune_patience,
                       m=m, seed=seed, n_samples=n_samples, limit_train_batches=profile.finetune_batches,
                       mask_fraction=profile.mask_fraction)


def _scores(checkpoint: Path, split) -> dict:
    from sizeseg.training import evaluate_model, load_model

    s = evaluate_model(load_model(checkpoint), split)
    return {"IoU": s["IoU"], "Dice": s["Dice"], "E": s["E"]}


def _true_size_scores(checkpoint: Path, split) -> dict:
    """IoU, Dice and E of the network's test masks moved onto the true sizes (see ORACLE_STAGE)."""
    import numpy as np

    from sizeseg.ops import size_matched_mask
    from sizeseg.training import load_model, predict_logits
    from sizeseg.training.pipeline import evaluate_logits

    logits = predict_logits(load_model(checkpoint), split.images)
    matched = size_matched_mask(logits[:, 0], np.asarray(split.sizes, np.float32))
    s = evaluate_logits(matched[:, None].float() * 2 - 1, split)  # the matched mask as logits of ±1
    return {"IoU": s["IoU"], "Dice": s["Dice"], "E": s["E"]}


def _epochs(metrics_csv: Path) -> list[dict]:
    """Per-epoch rows of a run's merged metrics.csv: epoch, val E, val IoU, epoch time."""
    rows = read_csv(metrics_csv)
    out: dict[int, dict] = {}
    for r in rows:
        e = int(r["epoch"])
        item = out.setdefault(e, {"epoch": e + 1})
        if r.get("val/E"):
            item["val_E"], item["val_IoU"] = float(r["val/E"]), float(r["val/IoU"])
        if r.get("epoch_time"):
            item["epoch_time"] = float(r["epoch_time"])
    return [out[k] for k in sorted(out)]


def _train_once(mode: str, data, run_dir: Path, cfg, init: Path | None = None, progress_bar: bool = False):
    """``train`` unless ``run_dir/done.json`` marks it finished (a killed run resumes from last.ckpt)."""
    import json

    from sizeseg.experiments.cache import check_reusable
    from sizeseg.training import TrainConfig, TrainResult, best_checkpoint, last_checkpoint, train

    done = run_dir / "done.json"
    if done.is_file():  # reused only with the settings asked for now (keys it predates count as their defaults)
        info = json.loads(done.read_text())
        check_reusable(done, info.get("config", {}), cfg.to_dict(), TrainConfig().to_dict())
        return TrainResult(run_dir, best_checkpoint(run_dir), last_checkpoint(run_dir), run_dir / "metrics.csv", info["seconds"])
    result = train(mode, data, run_dir, cfg, init=init, progress_bar=progress_bar)
    write_json(done, {"seconds": result.seconds, "config": cfg.to_dict(), "init": str(init) if init else None})
    return result


def best_checkpoint_of(run_dir: Path) -> Path | None:
    from sizeseg.training import best_checkpoint

    return best_checkpoint(run_dir)


def _drop_checkpoints(run_dir: Path, profile: Profile) -> None:
    if not profile.keep_checkpoints:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)


def run_pretraining_item(data, out: Path, profile: Profile, m: int | None, seed: int, progress_bar: bool = False,
                         stages: Sequence[str] | None = None) -> list[dict]:
    """Pre-train on m masks, fine-tune in each of ``stages`` (default: the profile's), test after each.

    Rows are cached in ``result.json``; asking for a stage it lacks trains only that stage (and,
    when its checkpoints were dropped, the pre-training again: it is seeded and deterministic on CPU).
    """
    import json

    stages = tuple(stages if stages is not None else profile.stages)
    run = out / "runs" / "pretraining" / f"m{m_label(m)}-s{seed}"
    done = run / "result.json"
    rows = json.loads(done.read_text()) if done.is_file() else []
    have = {r["stage"] for r in rows}
    missing = [s for s in stages if s not in have]
    if rows and not missing:
        return [r for r in rows if r["stage"] == "pretrained" or r["stage"] in stages]
    test = data.split("test")
    n_train = int((data.splits == "train").sum())
    if (run / "pretrain" / "done.json").is_file() and best_checkpoint_of(run / "pretrain") is None:
        shutil.rmtree(run / "pretrain")
    t0 = time.perf_counter()
    pre = _train_once("pretrain", data, run / "pretrain", _pretrain_config(profile, m, n_train, seed), progress_bar=progress_bar)
    pretrained = {"m": m_label(m), "seed": seed, "stage": "pretrained", **_scores(pre.best, test),
                  "epochs": len(_epochs(pre.metrics_csv)), "seconds": time.perf_counter() - t0}
    old = [r for r in rows if r["stage"] == "pretrained"]
    if old and abs(old[0]["IoU"] - pretrained["IoU"]) > 1e-4:
        raise RuntimeError(f"{run}: the re-trained network's test IoU {pretrained['IoU']:.4f} differs from the cached "
                           f"{old[0]['IoU']:.4f}; remove {run} to rerun every stage")
    rows = [old[0] if old else pretrained] + [r for r in rows if r["stage"] != "pretrained"]  # same network: keep its timing
    for stage in missing:
        if stage == ORACLE_STAGE:
            rows.append({"m": m_label(m), "seed": seed, "stage": stage, **_true_size_scores(pre.best, test),
                         "epochs": 0, "seconds": 0.0})
            continue
        folder, mode, settings = FINETUNE_STAGES[stage]
        t0 = time.perf_counter()
        cfg = replace(_finetune_config(profile, m, seed), **settings)
        res = _train_once(mode, data, run / folder, cfg, init=pre.best, progress_bar=progress_bar)
        rows.append({"m": m_label(m), "seed": seed, "stage": stage, **_scores(res.best, test),
                     "epochs": len(_epochs(res.metrics_csv)), "seconds": time.perf_counter() - t0})
        _drop_checkpoints(run / folder, profile)
    _drop_checkpoints(run / "pretrain", profile)
    write_json(done, rows)
    return [r for r in rows if r["stage"] == "pretrained" or r["stage"] in stages]


def run_samples_items(data, out: Path, profile: Profile, n_values: Sequence[int] | None = None,
                      progress_bar: bool = False) -> None:
    """Pre-train on ``samples_m`` masks once, a supervised timing reference, then fine-tune per n."""
    base = out / "runs" / "samples"
    n_train = int((data.splits == "train").sum())
    pre_dir = base / "pretrain"
    pre = _train_once("pretrain", data, pre_dir, _pretrain_config(profile, profile.samples_m, n_train, 0), progress_bar=progress_bar)
    if not (base / "start.json").is_file():
        write_json(base / "start.json", _scores(pre.best, data.split("val")))
    # Supervised reference: BCE with flips on every mask, the same batches per epoch as fine-tuning.
    sup_dir = base / "supervised"
    if not (sup_dir / "result.json").is_file():
        cfg = replace(_finetune_config(profile, None, 0, epochs=max(3, min(profile.samples_epochs, 4))), patience=0)
        res = _train_once("pretrain", data, sup_dir, cfg, init=pre.best, progress_bar=progress_bar)
        write_json(sup_dir / "result.json", _epochs(res.metrics_csv))
        _drop_checkpoints(sup_dir, profile)
    for n in n_values or profile.n_values:
        run = base / f"n{n}"
        if (run / "result.json").is_file():
            continue
        # No early stopping: the curves over every epoch are the result (the paper's Fig. 6).
        cfg = replace(_finetune_config(profile, None, 0, n_samples=n, epochs=profile.samples_epochs), patience=0)
        res = _train_once("finetune", data, run, cfg, init=pre.best, progress_bar=progress_bar)
        write_json(run / "result.json", _epochs(res.metrics_csv))
        _drop_checkpoints(run, profile)


# ------------------------------------------------------------------------------------ reports
def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else 0.5 * (xs[mid - 1] + xs[mid])


def _epoch_seconds(epochs: list[dict]) -> float:
    """Median training time of an epoch, leaving out the first (warm-up: numba compilation, caches)."""
    times = [e["epoch_time"] for e in epochs if "epoch_time" in e]
    return _median(times[1:] if len(times) > 1 else times)


def report_samples(out: Path, profile: Profile, command: str) -> str:
    """samples.csv, samples_timing.csv, samples.png, samples.md from the finished runs."""
    import json

    from sizeseg.io_utils import atomic_write_text

    base = out / "runs" / "samples"
    sup_file = base / "supervised" / "result.json"
    if not sup_file.is_file():
        raise FileNotFoundError(f"{sup_file}: the samples experiment has not run yet")
    sup = _epoch_seconds(json.loads(sup_file.read_text()))
    start = json.loads((base / "start.json").read_text())
    curves, timing = [], [{"method": "supervised (BCE, flips)", "n": "", "epoch_s": sup, "relative": 1.0}]
    for run in sorted(base.glob("n*/result.json"), key=lambda p: int(p.parent.name[1:])):
        n = int(run.parent.name[1:])
        epochs = json.loads(run.read_text())
        curves.append({"n": n, "epoch": 0, "val_E": start["E"], "val_IoU": start["IoU"]})
        curves += [{"n": n, **e} for e in epochs]
        secs = _epoch_seconds(epochs)
        timing.append({"method": "size loss", "n": n, "epoch_s": secs, "relative": secs / sup,
                       "best_val_E": min(e.get("val_E", math.inf) for e in epochs),
                       "val_IoU_at_best_E": min(epochs, key=lambda e: e.get("val_E", math.inf)).get("val_IoU")})
    write_csv(out / "samples.csv", curves, ["n", "epoch", "val_E", "val_IoU", "epoch_time"])
    write_csv(out / "samples_timing.csv", timing, ["method", "n", "epoch_s", "relative", "best_val_E", "val_IoU_at_best_E"])
    fig, (ax_e, ax_iou, ax_t) = new_figure(3)
    for n in sorted({c["n"] for c in curves}):
        pts = [c for c in curves if c["n"] == n and "val_E" in c]
        ax_e.plot([p["epoch"] for p in pts], [p["val_E"] for p in pts], marker="o", label=f"n = {n}")
        ax_iou.plot([p["epoch"] for p in pts], [p["val_IoU"] for p in pts], marker="o", label=f"n = {n}")
    ax_e.set(xlabel="fine-tuning epoch", ylabel="validation E", title="E over epochs (cf. paper Fig. 6)")
    ax_iou.set(xlabel="fine-tuning epoch", ylabel="validation IoU", title="IoU over epochs (cf. paper Fig. 6)")
    ax_e.legend()
    sized = [t for t in timing if t["n"] != ""]
    used = sorted({json.loads(f.read_text())["config"]["lr"] for f in base.glob("n*/done.json")})
    ax_t.plot([t["n"] for t in sized], [t["relative"] for t in sized], marker="o", label="ours")
    ax_t.axhline(1.0, color="grey", ls="--", label="supervised epoch")
    ax_t.axhline(10.0, color="red", ls=":", label="paper, n = 1 (≈10×)")
    ax_t.set(xlabel="gradient samples n", ylabel="epoch time / supervised", title="epoch duration (cf. paper Fig. 5)", xscale="log", yscale="log")
    ax_t.legend()
    save_figure(fig, out / "samples.png")
    n1 = next((t["relative"] for t in sized if t["n"] == 1), float("nan"))
    text = "\n".join([
        f"# Experiment 1: number of gradient samples n (profile `{profile.name}`)", "",
        f"Command: `{command}`", "",
        f"Start: one network ({profile.model}) pre-trained on {profile.samples_m} masked training images "
        f"(validation E {start['E']:.4g}, IoU {start['IoU']:.4g}); size fine-tuning on every training size, "
        f"{profile.finetune_batches or 'all'} batches of {profile.batch_size} per epoch, up to {profile.samples_epochs} epochs, "
        f"Adam lr {', '.join(f'{v:g}' for v in used)}. "
        "Epoch time: median over epochs after the first, training batches only, on a shared 2-core CPU.", "",
        markdown_table(timing, ["method", "n", "epoch_s", "relative", "best_val_E", "val_IoU_at_best_E"],
                       ["method", "n", "epoch (s)", "× supervised", "best val E", "val IoU at best E"]), "",
        f"Ours: a size epoch at n = 1 costs {n1:.3g}× a supervised epoch (target ≤ 1.3×). {PAPER_SAMPLES}.", "",
        "Curves: `samples.csv`, plot `samples.png`.", "",
    ])
    atomic_write_text(out / "samples.md", text)
    return text


def report_pretraining(out: Path, profile: Profile, command: str) -> str:
    """pretraining.csv, pretraining_summary.csv, pretraining.png, pretraining.md from the finished runs."""
    import json

    from sizeseg.io_utils import atomic_write_text

    rows = []
    for f in sorted((out / "runs" / "pretraining").glob("*/result.json")):
        rows += json.loads(f.read_text())
    if not rows:
        raise FileNotFoundError(f"{out / 'runs' / 'pretraining'}: no finished pre-training runs yet")
    order = {m_label(m): i for i, m in enumerate(PROFILES["full"].m_values)}
    rows.sort(key=lambda r: (order.get(r["m"], 99), r["seed"], r["stage"]))
    write_csv(out / "pretraining.csv", rows, ["m", "seed", "stage", "IoU", "Dice", "E", "epochs", "seconds"])
    stages = ("pretrained",) + tuple(s for s in STAGE_NAMES if any(r["stage"] == s for r in rows))
    summary = []
    for m in sorted({r["m"] for r in rows}, key=lambda k: order.get(k, 99)):
        item = {"m": m}
        for stage in stages:
            mean, sd, count = mean_sd(r["IoU"] for r in rows if r["m"] == m and r["stage"] == stage)
            item[f"{stage} IoU"] = f"{mean:.4f} ± {sd:.4f}" if count else ""
            item[f"_{stage}"] = mean
            if stage == "pretrained":
                item["seeds"] = count
            e_mean, e_sd, e_count = mean_sd(r["E"] for r in rows if r["m"] == m and r["stage"] == stage)
            item[f"{stage} E"] = f"{e_mean:.2f} ± {e_sd:.2f}" if e_count else ""
        # Gains per seed (paired), then mean ± sd.
        for stage in stages[1:]:
            gains = []
            for r in rows:
                if r["m"] == m and r["stage"] == stage:
                    base = [p for p in rows if p["m"] == m and p["seed"] == r["seed"] and p["stage"] == "pretrained"]
                    if base:
                        gains.append(r["IoU"] - base[0]["IoU"])
            g, gsd, count = mean_sd(gains)
            item[f"{stage} gain"] = f"{g:+.4f} ± {gsd:.4f}" if count else ""
            item[f"_{stage}_gain"] = g
        summary.append(item)
    columns = ["m", "seeds"] + [f"{s} IoU" for s in stages] + [f"{s} gain" for s in stages[1:]]
    write_csv(out / "pretraining_summary.csv", summary, columns + [f"{s} E" for s in stages])
    fig, (ax,) = new_figure(1, width=6)
    xs = list(range(len(summary)))
    for stage in stages:
        means, sds = [], []
        for item in summary:
            mean, sd, _ = mean_sd(r["IoU"] for r in rows if r["m"] == item["m"] and r["stage"] == stage)
            means.append(mean)
            sds.append(sd)
        ax.errorbar(xs, means, yerr=sds, marker="o", capsize=3, label=stage)
    ax.set_xticks(xs, [item["m"] for item in summary])
    ax.set(xlabel="masked pre-training images m", ylabel="test IoU", title="test IoU vs m (cf. paper Fig. 7)")
    ax.legend()
    save_figure(fig, out / "pretraining.png")
    text = "\n".join([
        f"# Experiment 2: pre-training impact (profile `{profile.name}`)", "",
        f"Command: `{command}`", "",
        f"Network {profile.model}, Adam, batch {profile.batch_size}. Pre-training (lr {profile.lr}): BCE (eq. 6) with flips on m "
        f"masked training images, up to {profile.pretrain_steps} steps, best validation {profile.pretrain_monitor[4:]} kept. Fine-tuning (lr {profile.finetune_lr}) from it on the "
        f"sizes of the whole training split: SizeLoss n = 1 ('size fine-tuned'), and SizeLoss + BCE on the same m masks "
        f"('mixed', masked images ≈ {profile.mask_fraction:.0%} of each batch); up to {profile.finetune_epochs} epochs of "
        f"{profile.finetune_batches or 'all'} batches, best validation E kept (the paper's stopping rule). Test IoU, mean ± sd over seeds; "
        "gain = paired difference to the pre-trained network of the same seed."
        + (" 'size-matched': SizeLoss plus BCE to the network's own prediction moved, along its own pixel ranking, "
           "onto the annotated size (`sizeseg.ops.size_matched_mask`)." if "size-matched" in stages else "")
        + (f" '{ORACLE_STAGE}': no training; the pre-trained network's test predictions moved the same way onto the true "
           "test sizes, i.e. the most that knowing each size exactly buys through a threshold." if ORACLE_STAGE in stages else ""), "",
        markdown_table(summary, columns), "",
        "Test E (squared size error, eq. 22), mean ± sd over seeds:", "",
        markdown_table(summary, ["m", "seeds"] + [f"{s} E" for s in stages]), "",
        f"{PAPER_PRETRAINING}.", "",
        "Per run: `pretraining.csv`; plot `pretraining.png`.", "",
    ])
    atomic_write_text(out / "pretraining.md", text)
    return text


# ------------------------------------------------------------------------------------ drivers
def load_hippocampus(data_dir: str | Path, out: Path):
    """A prepared folder as is, or the raw Task04 folder prepared (cached) into ``out/prepared``."""
    from sizeseg.data.prepared import load_prepared

    data_dir = Path(data_dir)
    if (data_dir / "dataset.json").is_file():
        from sizeseg.data.hippocampus import prepare_hippocampus

        return prepare_hippocampus(data_dir, out / "prepared")[0]
    if not data_dir.is_dir():
        raise FileNotFoundError(f"--data: {data_dir} is not a folder")
    return load_prepared(data_dir)


def run_experiment(which: str, data, out: str | Path, profile: Profile, command: str,
                   seeds: Sequence[int] | None = None, m_values: Sequence[int | None] | None = None,
                   n_values: Sequence[int] | None = None, progress_bar: bool = False,
                   stages: Sequence[str] | None = None, workers: int = 1) -> str:
    """Run ``samples`` or ``pretraining`` (the parts not finished yet) and rebuild its report.

    ``workers`` > 1 trains that many (m, seed) items of ``pretraining`` at once, one process each,
    sharing this process's torch threads between them.
    """
    out = Path(out)
    write_json(out / f"{which}_profile.json", asdict(profile))
    if which == "samples":
        run_samples_items(data, out, profile, n_values, progress_bar)
        return report_samples(out, profile, command)
    if which == "pretraining":
        import torch

        from sizeseg.experiments.parallel import run_jobs

        jobs = [(data, out, profile, m, seed, progress_bar and workers == 1, stages)
                for seed in (seeds if seeds is not None else profile.seeds)
                for m in (m_values if m_values is not None else profile.m_values)]
        for _ in run_jobs(run_pretraining_item, jobs, workers, max(1, torch.get_num_threads() // workers)):
            pass
        return report_pretraining(out, profile, command)
    raise ValueError(f"which: expected 'samples' or 'pretraining', got {which!r}")


# ------------------------------------------------------------------------------------------ CLI
def _stage_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    stages = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [s for s in stages if s not in STAGE_NAMES]
    if unknown or not stages:
        raise ValueError(f"--stages: expected comma-separated names of {', '.join(STAGE_NAMES)}, got {text!r}")
    return stages


def add_arguments(parser, which: str) -> None:
    parser.add_argument("--data", required=True,
                        help="the Task04_Hippocampus folder (prepared into OUT/prepared) or a prepared folder")
    parser.add_argument("--out", required=True, help="output folder (runs/, CSV, PNG, markdown report)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="the quick profile (minutes on a CPU)")
    group.add_argument("--profile", choices=tuple(PROFILES), help="quick, cpu (pre-training to convergence; about 10-15 minutes per m and seed on one core) or full (the paper's protocol; default)")
    if which == "samples":
        parser.add_argument("--n", help="comma-separated gradient-sample counts (default: the profile's)")
    else:
        parser.add_argument("--m", help="comma-separated masked pre-training sizes, 'all' for every image (default: the profile's)")
        parser.add_argument("--seeds", help="comma-separated seeds (default: the profile's)")
        parser.add_argument("--stages", help=f"comma-separated fine-tuning variants after pre-training, of {', '.join(STAGE_NAMES)} "
                            "(default: the profile's, 'size fine-tuned,mixed,true-size oracle')")
        parser.add_argument("--pretrain-monitor", choices=("val/IoU", "val/E"), default=None,
                            help="what picks the pre-trained network and stops pre-training: val/IoU (the validation "
                            "masks; default) or val/E (the validation sizes only, as a user with m masks would)")
        parser.add_argument("--workers", type=int, default=1,
                            help="(m, seed) items trained at once, one process each sharing the torch threads (default 1)")
    parser.add_argument("--progress", action="store_true", help="show Lightning progress bars")


def run_command(args) -> int:
    which = args.experiment
    name = "quick" if args.quick else (args.profile or "full")
    profile = PROFILES[name]
    from sizeseg.experiments.options import int_list

    n_values = int_list(getattr(args, "n", None), "--n")
    m_values = int_list(getattr(args, "m", None), "--m", allow_all=True)
    seeds = int_list(getattr(args, "seeds", None), "--seeds", minimum=0)
    stages = _stage_list(getattr(args, "stages", None))
    workers = getattr(args, "workers", 1)
    if workers < 1:
        raise ValueError(f"--workers: expected a positive int, got {workers}")
    if getattr(args, "pretrain_monitor", None):
        profile = replace(profile, pretrain_monitor=args.pretrain_monitor)
    out = Path(args.out)
    data = load_hippocampus(args.data, out)  # bad data fails here, before any training
    command = f"sizeseg experiment {which} --data {args.data} --out {args.out} --profile {name}"
    for flag, value in (("--n", getattr(args, "n", None)), ("--m", getattr(args, "m", None)), ("--seeds", getattr(args, "seeds", None)),
                        ("--stages", f"'{args.stages}'" if getattr(args, "stages", None) else None),
                        ("--workers", workers if workers != 1 else None),
                        ("--pretrain-monitor", getattr(args, "pretrain_monitor", None))):
        if value is not None:
            command += f" {flag} {value}"
    print(run_experiment(which, data, out, profile, command, seeds=seeds, m_values=m_values, n_values=n_values,
                         progress_bar=args.progress, stages=stages, workers=workers))
    return 0


def register(experiment_subparsers) -> None:
    """Add ``samples`` and ``pretraining`` to the ``sizeseg experiment`` sub-parsers."""
    helps = {
        "samples": ("Experiment 1 on hippocampus: gradient samples n, epoch duration and val E/IoU (paper Figs. 5, 6)",),
        "pretraining": ("Experiment 2 on hippocampus: test IoU vs pre-training size m, before/after size and mixed fine-tuning (paper Fig. 7)",),
    }
    for which, (text,) in helps.items():
        parser = experiment_subparsers.add_parser(which, help=text, description=text + ". " + __doc__.split("\n\n")[2].replace("\n", " "))
        add_arguments(parser, which)
        parser.set_defaults(func=run_command, experiment=which)
