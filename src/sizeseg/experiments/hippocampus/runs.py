"""Training the items of both experiments: pre-training, the fine-tuning stages, the samples runs; cached per run folder."""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Sequence

from sizeseg.experiments.hippocampus.profiles import FINETUNE_STAGES, ORACLE_STAGE, Profile, m_label
from sizeseg.experiments.hippocampus.reports import report_pretraining, report_samples
from sizeseg.experiments.report import read_csv, write_json

#: the paper's size loss (logistic noise of scale 1, squared error in pixels, weight 1 beside BCE's): this
#: experiment reproduces it
PAPER_SIZE_LOSS = {"noise_scale": 1.0, "size_criterion": "squared", "size_weight": 1.0, "size_units": "pixels"}


def pretrain_config(profile: Profile, m: int | None, n_train: int, seed: int):
    """Pre-training on m masks (all ``n_train`` for m None): the profile's step budget as whole epochs that end
    on a validated epoch, validation about every ``pretrain_val_steps`` steps."""
    from sizeseg.training import TrainConfig

    items = n_train if m is None else m
    per_epoch = max(1, items // profile.batch_size)
    val_every = max(1, round(profile.pretrain_val_steps / per_epoch))
    epochs = max(1, math.ceil(profile.pretrain_steps / per_epoch))
    epochs = math.ceil(epochs / val_every) * val_every  # end on a validated epoch
    return TrainConfig(model=profile.model, lr=profile.lr, batch_size=profile.batch_size, max_epochs=epochs,
                       patience=profile.pretrain_patience, m=m, seed=seed, val_every=val_every, flips=True,
                       min_epochs=0,  # the profile's step budget and patience govern, as in its recorded runs
                       # val/IoU is pre-training's default: "" keeps the configs of runs cached before `monitor` existed equal
                       monitor="" if profile.pretrain_monitor == "val/IoU" else profile.pretrain_monitor,
                       epoch_items=None, **PAPER_SIZE_LOSS)  # the profile counts steps per pass


def stage_settings(settings: dict) -> dict:
    """A stage's changes to the paper's fine-tuning config; ``defaults`` stands for the library's size loss."""
    from sizeseg.training import TrainConfig

    settings = dict(settings)
    if settings.pop("defaults", False):
        library = TrainConfig()  # the stage's own settings win over the library's
        settings = {**{key: getattr(library, key) for key in PAPER_SIZE_LOSS}, **settings}
    return settings


def finetune_config(profile: Profile, m: int | None, seed: int, n_samples: int = 1, epochs: int | None = None):
    """Fine-tuning on the sizes (n_samples gradient samples), the profile's epochs unless ``epochs`` is given."""
    from sizeseg.training import TrainConfig

    return TrainConfig(model=profile.model, lr=profile.finetune_lr, batch_size=profile.batch_size,
                       max_epochs=epochs or profile.finetune_epochs, patience=profile.finetune_patience,
                       monitor="val/E",  # the paper's selection; the library's default is now validation IoU
                       m=m, seed=seed, n_samples=n_samples, limit_train_batches=profile.finetune_batches,
                       mask_fraction=profile.mask_fraction, epoch_items=None, **PAPER_SIZE_LOSS)


def _stage_plan(profile: Profile, m: int | None, seed: int, stage: str):
    """(run folder, training mode, TrainConfig) of a fine-tuning stage."""
    folder, mode, settings = FINETUNE_STAGES[stage]
    return folder, mode, replace(finetune_config(profile, m, seed), **stage_settings(settings))


def _scores(checkpoint: Path, split) -> dict:
    from sizeseg.training import evaluate_model, load_model

    s = evaluate_model(load_model(checkpoint), split)
    return {"IoU": s["IoU"], "Dice": s["Dice"], "E": s["E"]}


def true_size_scores(checkpoint: Path, split) -> dict:
    """IoU, Dice and E of the network's test masks moved onto the true sizes (see ORACLE_STAGE)."""
    from sizeseg.training import load_model, predict_logits
    from sizeseg.training.oracle import size_oracle

    s = size_oracle(predict_logits(load_model(checkpoint), split.images), split)
    return {"IoU": s["oracle_IoU"], "Dice": s["oracle_Dice"], "E": s["oracle_E"]}


def read_epochs(metrics_csv: Path) -> list[dict]:
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


def _record_of(run_dir: Path, cfg, mode: str) -> dict | None:
    """The ``done.json`` of a finished ``mode`` run trained with ``cfg``, None when there is none; a ValueError
    naming the file and the differing settings when it was trained with others (keys it predates count as
    their defaults, and an empty monitor in a size mode as validation E, which it then meant)."""
    import json

    from sizeseg.experiments.cache import check_reusable
    from sizeseg.training import TrainConfig
    from sizeseg.training.selection import former_default

    done = run_dir / "done.json"
    if not done.is_file():
        return None
    info = json.loads(done.read_text())
    former = former_default(mode, cfg.size_loss)
    check_reusable(done, info.get("config", {}), cfg.to_dict(), TrainConfig.record_defaults(),
                   {"monitor": {"": former}} if former else None)
    return info


def _train_once(mode: str, data, run_dir: Path, cfg, init: Path | None = None, progress_bar: bool = False):
    """``train`` unless ``run_dir/done.json`` marks it finished (a killed run resumes from last.ckpt)."""
    from sizeseg.training import TrainResult, best_checkpoint, last_checkpoint, train

    if (run_dir / "done.json").is_file() and best_checkpoint(run_dir) is None:
        # finished, but its checkpoints were dropped before the item recorded its scores (a killed run):
        # train it again (seeded, deterministic on CPU) rather than score a checkpoint that is gone
        shutil.rmtree(run_dir)
    info = _record_of(run_dir, cfg, mode)  # reused only with the settings asked for now
    if info is not None:
        return TrainResult(run_dir, best_checkpoint(run_dir), last_checkpoint(run_dir), run_dir / "metrics.csv", info["seconds"])
    result = train(mode, data, run_dir, cfg, init=init, progress_bar=progress_bar)
    write_json(run_dir / "done.json", {"seconds": result.seconds, "config": cfg.to_dict(), "init": str(init) if init else None})
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
    A cached row counts only while its run folder's ``done.json`` records the settings that its stage
    and the pre-training have now.
    """
    import json

    stages = tuple(stages if stages is not None else profile.stages)
    run = out / "runs" / "pretraining" / f"m{m_label(m)}-s{seed}"
    done = run / "result.json"
    n_train = int((data.splits == "train").sum())
    pre_cfg = pretrain_config(profile, m, n_train, seed)
    rows = json.loads(done.read_text()) if done.is_file() else []
    plans = {s: _stage_plan(profile, m, seed, s) for s in dict.fromkeys([*stages, *(r["stage"] for r in rows)])
             if s in FINETUNE_STAGES}
    if rows:
        # a row is the score of the run folder that trained it: reused only while the settings that folder
        # records are the ones asked for now (a ValueError otherwise), so a stage whose meaning changed
        # cannot return an old row; a row whose run left no record is trained again
        _record_of(run / "pretrain", pre_cfg, "pretrain")
        stale = {s for s, (folder, mode, cfg) in plans.items() if _record_of(run / folder, cfg, mode) is None}
        rows = [r for r in rows if r["stage"] not in stale]
    have = {r["stage"] for r in rows}
    missing = [s for s in stages if s not in have]
    if rows and not missing:
        return [r for r in rows if r["stage"] == "pretrained" or r["stage"] in stages]
    test = data.split("test")
    if (run / "pretrain" / "done.json").is_file() and best_checkpoint_of(run / "pretrain") is None:
        shutil.rmtree(run / "pretrain")
    t0 = time.perf_counter()
    pre = _train_once("pretrain", data, run / "pretrain", pre_cfg, progress_bar=progress_bar)
    pretrained = {"m": m_label(m), "seed": seed, "stage": "pretrained", **_scores(pre.best, test),
                  "epochs": len(read_epochs(pre.metrics_csv)), "seconds": time.perf_counter() - t0}
    old = [r for r in rows if r["stage"] == "pretrained"]
    if old and abs(old[0]["IoU"] - pretrained["IoU"]) > 1e-4:
        raise RuntimeError(f"{run}: the re-trained network's test IoU {pretrained['IoU']:.4f} differs from the cached "
                           f"{old[0]['IoU']:.4f}; remove {run} to rerun every stage")
    rows = [old[0] if old else pretrained] + [r for r in rows if r["stage"] != "pretrained"]  # same network: keep its timing
    for stage in missing:
        if stage == ORACLE_STAGE:
            rows.append({"m": m_label(m), "seed": seed, "stage": stage, **true_size_scores(pre.best, test),
                         "epochs": 0, "seconds": 0.0})
            continue
        folder, mode, cfg = plans[stage]
        t0 = time.perf_counter()
        res = _train_once(mode, data, run / folder, cfg, init=pre.best, progress_bar=progress_bar)
        rows.append({"m": m_label(m), "seed": seed, "stage": stage, **_scores(res.best, test),
                     "epochs": len(read_epochs(res.metrics_csv)), "seconds": time.perf_counter() - t0})
        write_json(done, rows)  # each stage's scores are kept before its checkpoints go: a killed item loses none
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
    pre = _train_once("pretrain", data, pre_dir, pretrain_config(profile, profile.samples_m, n_train, 0), progress_bar=progress_bar)
    if not (base / "start.json").is_file():
        write_json(base / "start.json", _scores(pre.best, data.split("val")))
    # Supervised reference: BCE with flips on every mask, the same batches per epoch as fine-tuning.
    sup_dir = base / "supervised"
    if not (sup_dir / "result.json").is_file():
        cfg = replace(finetune_config(profile, None, 0, epochs=max(3, min(profile.samples_epochs, 4))), patience=0)
        res = _train_once("pretrain", data, sup_dir, cfg, init=pre.best, progress_bar=progress_bar)
        write_json(sup_dir / "result.json", read_epochs(res.metrics_csv))
        _drop_checkpoints(sup_dir, profile)
    for n in n_values or profile.n_values:
        run = base / f"n{n}"
        if (run / "result.json").is_file():
            continue
        # No early stopping: the curves over every epoch are the result (the paper's Fig. 6).
        cfg = replace(finetune_config(profile, None, 0, n_samples=n, epochs=profile.samples_epochs), patience=0)
        res = _train_once("finetune", data, run, cfg, init=pre.best, progress_bar=progress_bar)
        write_json(run / "result.json", read_epochs(res.metrics_csv))
        _drop_checkpoints(run, profile)


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
