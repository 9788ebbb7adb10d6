"""Resuming must not let a worse epoch replace best.ckpt (the best score travels in last.ckpt)."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from sizeseg.training.trainer import fit, make_trainer

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
