"""The reports of both experiments (CSV, PNG, markdown), rebuilt from every finished run."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from sizeseg.experiments.hippocampus.profiles import (
    CONTROL_STAGE, FINETUNE_STAGES, IOU_CONTROL_STAGE, PAPER_PRETRAINING, PAPER_SAMPLES, PROFILES, ORACLE_STAGE, STAGE_NAMES, Profile, m_label,
)
from sizeseg.experiments.report import mean_sd, markdown_table, new_figure, save_figure, write_csv


def _epoch_seconds(epochs: list[dict]) -> float:
    """Median training time of an epoch, leaving out the first (warm-up: numba compilation, caches)."""
    times = [e["epoch_time"] for e in epochs if "epoch_time" in e]
    return statistics.median(times[1:] if len(times) > 1 else times) if times else math.nan


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


def _paired_gains(rows: list[dict], m: str, stage: str, baseline: str) -> list[float]:
    """Test IoU of ``stage`` minus ``baseline``'s, per seed of ``m`` that has both."""
    by_seed = {r["seed"]: r["IoU"] for r in rows if r["m"] == m and r["stage"] == baseline}
    return [r["IoU"] - by_seed[r["seed"]] for r in rows if r["m"] == m and r["stage"] == stage and r["seed"] in by_seed]


def control_of(stage: str) -> str:
    """The mask-only control a mixed stage is compared with: the one picked by the same validation metric."""
    return IOU_CONTROL_STAGE if FINETUNE_STAGES[stage][2].get("monitor") == "val/IoU" else CONTROL_STAGE


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
    controls = (CONTROL_STAGE, IOU_CONTROL_STAGE)
    against_control = [s for s in stages if s in FINETUNE_STAGES and FINETUNE_STAGES[s][1] == "mixed"
                       and s not in controls and control_of(s) in stages]
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
        # Gains per seed (paired), then mean ± sd: over the pre-trained network, and the mixed stages over
        # the mask-only control (what the sizes added to the same training on the masks)
        for stage in stages[1:]:
            g, gsd, count = mean_sd(_paired_gains(rows, m, stage, "pretrained"))
            item[f"{stage} gain"] = f"{g:+.4f} ± {gsd:.4f}" if count else ""
            item[f"_{stage}_gain"] = g
        for stage in against_control:
            g, gsd, count = mean_sd(_paired_gains(rows, m, stage, control_of(stage)))
            item[f"{stage} − control"] = f"{g:+.4f} ± {gsd:.4f}" if count else ""
        summary.append(item)
    columns = (["m", "seeds"] + [f"{s} IoU" for s in stages] + [f"{s} gain" for s in stages[1:]]
               + [f"{s} − control" for s in against_control])
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
        f"{profile.finetune_batches or 'all'} batches, best validation E kept (the paper's stopping rule; the '(IoU selection)' "
        "stages keep the best validation IoU instead). Test IoU, mean ± sd over seeds; "
        "gain = paired difference to the pre-trained network of the same seed."
        + (" 'size-matched': SizeLoss plus BCE to the network's own prediction moved, along its own pixel ranking, "
           "onto the annotated size (`sizeseg.ops.size_matched_mask`)." if "size-matched" in stages else "")
        + (f" '{ORACLE_STAGE}': no training; the pre-trained network's test predictions moved the same way onto the true "
           "test sizes, i.e. the most that knowing each size exactly buys through a threshold." if ORACLE_STAGE in stages else "")
        + (f" '{CONTROL_STAGE}': mixed training with the size term off (the same batches, schedule and selection); "
           "'− control' is a mixed stage's paired difference to it (to the IoU-selected control for an IoU-selected "
           "stage), what the sizes added." if against_control else ""), "",
        markdown_table(summary, columns), "",
        "Test E (squared size error, eq. 22), mean ± sd over seeds:", "",
        markdown_table(summary, ["m", "seeds"] + [f"{s} E" for s in stages]), "",
        f"{PAPER_PRETRAINING}.", "",
        "Per run: `pretraining.csv`; plot `pretraining.png`.", "",
    ])
    atomic_write_text(out / "pretraining.md", text)
    return text
