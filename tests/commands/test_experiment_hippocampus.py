import json
import math

import numpy as np
import pytest

from sizeseg.experiments import hippocampus as H
from sizeseg.experiments.report import mean_sd, read_csv


def test_pretrain_config_keeps_the_step_budget():
    profile = H.PROFILES["cpu"]
    for m in (10, 85, 340, None):
        cfg = H._pretrain_config(profile, m, n_train=3715, seed=0)
        per_epoch = max(1, (3715 if m is None else m) // profile.batch_size)
        assert cfg.max_epochs % cfg.val_every == 0  # ends on a validated epoch
        assert profile.pretrain_steps <= cfg.max_epochs * per_epoch < profile.pretrain_steps + cfg.val_every * per_epoch
        assert abs(cfg.val_every * per_epoch - profile.pretrain_val_steps) <= per_epoch or cfg.val_every == 1


def test_report_pretraining_means_and_paired_gains(tmp_path):
    rng = np.random.default_rng(0)
    truth = {}
    for m in ("10", "85", "all"):
        for seed in (0, 1, 2):
            rows = []
            for stage in ("pretrained", "size fine-tuned", "mixed"):
                iou, e = float(rng.uniform(0.4, 0.8)), float(rng.uniform(0.5, 3.0))
                truth[(m, seed, stage)] = iou
                truth[(m, seed, stage, "E")] = e
                rows.append({"m": m, "seed": seed, "stage": stage, "IoU": iou, "Dice": iou, "E": e,
                             "epochs": 2, "seconds": 1.0})
            run = tmp_path / "runs" / "pretraining" / f"m{m}-s{seed}"
            run.mkdir(parents=True)
            (run / "result.json").write_text(json.dumps(rows))
    text = H.report_pretraining(tmp_path, H.PROFILES["quick"], "cmd")
    assert "Command: `cmd`" in text and "paper (Fig. 7)" in text
    summary = {r["m"]: r for r in read_csv(tmp_path / "pretraining_summary.csv")}
    assert list(summary) == ["10", "85", "all"]
    for m, row in summary.items():
        mean, sd, _ = mean_sd(truth[(m, s, "mixed")] for s in range(3))
        assert row["mixed IoU"] == f"{mean:.4f} ± {sd:.4f}"
        gains = [truth[(m, s, "size fine-tuned")] - truth[(m, s, "pretrained")] for s in range(3)]
        g, gsd, _ = mean_sd(gains)
        assert row["size fine-tuned gain"] == f"{g:+.4f} ± {gsd:.4f}"
        e_mean, e_sd, _ = mean_sd(truth[(m, s, "pretrained", "E")] for s in range(3))
        assert row["pretrained E"] == f"{e_mean:.2f} ± {e_sd:.2f}"
    assert len(read_csv(tmp_path / "pretraining.csv")) == 27
    assert (tmp_path / "pretraining.png").stat().st_size > 0


def test_report_samples_relative_epoch_time(tmp_path):
    base = tmp_path / "runs" / "samples"
    (base / "supervised").mkdir(parents=True)
    (base / "start.json").write_text(json.dumps({"E": 9.0, "IoU": 0.5}))
    (base / "supervised" / "result.json").write_text(json.dumps(
        [{"epoch": e, "epoch_time": t} for e, t in ((1, 9.0), (2, 2.0), (3, 2.0))]))
    for n, t in ((1, 2.4), (2, 3.0)):
        (base / f"n{n}").mkdir()
        (base / f"n{n}" / "result.json").write_text(json.dumps(
            [{"epoch": e, "epoch_time": 50.0 if e == 1 else t, "val_E": 10.0 / e, "val_IoU": 0.5} for e in (1, 2, 3)]))
    H.report_samples(tmp_path, H.PROFILES["quick"], "cmd")
    timing = read_csv(tmp_path / "samples_timing.csv")
    assert [float(r["relative"]) for r in timing] == pytest.approx([1.0, 1.2, 1.5])  # first epoch left out
    curves = read_csv(tmp_path / "samples.csv")
    assert len(curves) == 8 and math.isclose(float(curves[0]["val_E"]), 9.0)


def test_experiment_cli_rejects_bad_lists():
    with pytest.raises(ValueError, match="--n: expected"):
        H._int_list("1,x", "--n")
    assert H._int_list("10,all", "--m", allow_all=True) == [10, None]
