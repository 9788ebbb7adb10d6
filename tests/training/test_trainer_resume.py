"""Resuming must not let a worse epoch replace best.ckpt (the best score travels in last.ckpt)."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from sizeseg.training.trainer import fit, make_trainer, merge_metrics

SCRIPTED_VAL_E = {0: 3.0, 1: 1.0, 2: 2.0}  # epoch 1 is the best; epoch 2 only beats epoch 0


class ScriptedModule(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).square().mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/E", SCRIPTED_VAL_E[self.current_epoch], on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class TinyData(pl.LightningDataModule):
    def _loader(self):
        return DataLoader(TensorDataset(torch.ones(2, 1)), batch_size=2)

    train_dataloader = val_dataloader = _loader


def _run(out, epochs):
    trainer = make_trainer(out, max_epochs=epochs, monitor="val/E", mode="min", patience=None,
                           progress_bar=False)
    fit(trainer, ScriptedModule(), TinyData())


def test_resumed_run_keeps_the_best_checkpoint(tmp_path):
    _run(tmp_path, 2)
    _run(tmp_path, 3)  # resumes from last.ckpt (epoch 1) and runs epoch 2
    checkpoints = tmp_path / "checkpoints"
    assert torch.load(checkpoints / "last.ckpt", weights_only=False)["epoch"] == 2
    assert torch.load(checkpoints / "best.ckpt", weights_only=False)["epoch"] == 1


def _metrics(out):
    import csv

    with open(out / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def _epochs(out):
    return [int(r["epoch"]) for r in _metrics(out) if r.get("val/E")]


def test_no_resume_into_a_used_folder_logs_only_the_new_run(tmp_path):
    _run(tmp_path, 2)
    trainer = make_trainer(tmp_path, max_epochs=1, monitor="val/E", mode="min", patience=None, progress_bar=False)
    fit(trainer, ScriptedModule(), TinyData(), resume=False)
    assert (tmp_path / "logs" / "version_0").is_dir()  # the old run's log is kept, not merged
    assert _epochs(tmp_path) == [0]


def test_merged_log_keeps_a_redone_epoch_once(tmp_path):
    # a run killed after logging epoch 1 but before checkpointing it redoes epoch 1 when resumed
    for version, text in ((0, "epoch,step,val/E\n0,1,3.0\n1,2,1.0\n"), (1, "epoch,step,val/E\n1,2,1.5\n2,3,2.0\n")):
        (tmp_path / "logs" / f"version_{version}").mkdir(parents=True)
        (tmp_path / "logs" / f"version_{version}" / "metrics.csv").write_text(text)
    merge_metrics(tmp_path)
    assert [(r["epoch"], r["val/E"]) for r in _metrics(tmp_path)] == [("0", "3.0"), ("1", "1.5"), ("2", "2.0")]
    merge_metrics(tmp_path, first_version=1)
    assert [r["epoch"] for r in _metrics(tmp_path)] == ["1", "2"]


def test_checkpoints_leave_no_temporary_file(tmp_path, monkeypatch):
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # Lightning's writer staged checkpoints here
    _run(tmp_path / "run", 2)
    assert list(scratch.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


KILL_DURING_SAVE = """
import os, signal, sys
import torch
from tests.training.test_trainer_resume import _run

saves, save = [], torch.save
def half_save(obj, path):
    saves.append(path)
    if len(saves) == {kill_at}:  # SIGKILL halfway through writing this checkpoint
        with open(path, "wb") as fh:
            fh.write(b"PK\\x03\\x04 half a checkpoint")
        os.kill(os.getpid(), signal.SIGKILL)
    save(obj, path)
torch.save = half_save
_run(sys.argv[1], 3)
"""


def test_a_kill_during_the_checkpoint_write_resumes_cleanly(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    # saves per epoch: best (when it improves), then last; epoch 0 writes 2, epoch 1 writes 2: kill in the 4th
    child = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE.format(kill_at=4), str(tmp_path)], cwd=root,
                           env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    checkpoints = tmp_path / "checkpoints"
    assert [p.name for p in checkpoints.glob(".*.part")]  # the killed write's temporary file
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["epoch"] == 0  # last.ckpt itself is whole
    _run(tmp_path, 3)  # the same command again resumes from epoch 0's last.ckpt
    assert not list(checkpoints.glob(".*.part"))
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["epoch"] == 2
    assert _epochs(tmp_path) == [0, 1, 2]


def test_resume_is_bit_exact(tmp_path):
    from sizeseg.training import TrainConfig, train
    from sizeseg.training.checkpoints import read_checkpoint
    from tests.training.helpers import tiny_data

    data = tiny_data(24)
    cfg = dict(model="unet-tiny", batch_size=4, patience=0, m=8)  # pre-training flips and shuffles at random
    train("pretrain", data, tmp_path / "whole", TrainConfig(**cfg, max_epochs=2), progress_bar=False)
    train("pretrain", data, tmp_path / "resumed", TrainConfig(**cfg, max_epochs=1), progress_bar=False)
    train("pretrain", data, tmp_path / "resumed", TrainConfig(**cfg, max_epochs=2), progress_bar=False)
    losses = [[r["train/loss"] for r in _metrics(tmp_path / run) if r.get("train/loss")] for run in ("whole", "resumed")]
    assert len(losses[0]) == 2 and losses[0] == losses[1]
    whole, resumed = (read_checkpoint(tmp_path / run / "checkpoints" / "last.ckpt")["state_dict"]
                      for run in ("whole", "resumed"))
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
