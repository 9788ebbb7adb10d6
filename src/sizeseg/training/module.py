"""``SegmentationModule``: one LightningModule for every training mode (masks, sizes, bounds, mixed)."""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import lightning.pytorch as pl
import torch
from torch import nn

from sizeseg.metrics import MeanOverImages
from sizeseg.metrics.object_size_error import score_batch
from sizeseg.training.loss_terms import LossTerm

STAGES = ("val", "test")
LR_SCHEDULES = ("step", "cosine")
METRICS = ("E", "IoU", "Dice")
#: logged only for data with size lists (``batch["object_sizes"]``)
OBJECT_METRICS = ("E_obj", "AE_obj")


class SegmentationModule(pl.LightningModule):
    r"""Train ``model`` on the weighted sum of loss terms; report E, IoU and Dice.

    The training loss is :math:`\sum_k w_k \, L_k(\text{logits}, \text{batch})` over ``loss_terms``
    (objects with ``name``, ``weight``, ``__call__(logits, batch)``; see
    :mod:`sizeseg.training.loss_terms`). Each term is logged as ``train/<name>``, the sum as
    ``train/loss``. On validation and test the per-image metrics are averaged over all images
    seen by all processes (exact under DDP): ``<stage>/E`` (eq. 22, on images with a size),
    ``<stage>/IoU`` (eq. 23) and ``<stage>/Dice`` (on images with a mask). The wall time of the
    training batches of each epoch is logged as ``epoch_time`` (seconds).

    Several classes (``class_names`` of C > 1): the network has C output channels, one sigmoid
    each (a pixel may be scored for several classes; see the README for why not a softmax); IoU,
    Dice and E are means over the classes (:func:`sizeseg.metrics.object_size_error.score_batch`)
    and ``<stage>/IoU_<class>`` are logged per class. With size lists in the batch
    (``object_sizes``) the per-object size errors ``<stage>/E_obj`` (pixels^2) and
    ``<stage>/AE_obj`` (pixels) are logged too.

    Args:
        model: network mapping (B, C_in, *spatial) to one-channel logits (B, 1, *spatial).
        loss_terms: the loss terms; at least one.
        lr: Adam learning rate.
        lr_step: multiply the learning rate by ``lr_gamma`` every ``lr_step`` epochs (0: constant).
        lr_gamma: the step schedule's factor.
        lr_schedule: ``"step"`` (the schedule above) or ``"cosine"`` (cosine decay from ``lr`` to 0
            over the trainer's ``max_epochs``, stepped per epoch; ``lr_step`` is then ignored).
        betas: Adam's ``(beta1, beta2)``; the constrained-CNN authors' code uses ``(0.5, 0.999)``.
        weight_decay: decoupled weight decay (AdamW) when > 0, plain Adam otherwise.
        temperature: the training losses see ``logits / temperature``: a softmax (or sigmoid) at
            temperature T, as the constrained-CNN authors' code takes it at T = 0.1. Predictions
            (logit > ``threshold`` = 0) do not depend on it.
        threshold: logit threshold of the predicted mask (0 ↔ probability 0.5).
        model_spec: how to rebuild ``model`` (``build_model`` arguments), stored in checkpoints.
        class_names: the C class names when the network has C > 1 output channels (logged per class).

    Example:
        >>> from sizeseg.models import build_model
        >>> from sizeseg.training import BCETerm
        >>> module = SegmentationModule(build_model("unet-small"), [BCETerm()], lr=1e-3)
        >>> [t.name for t in module.loss_terms]
        ['bce']
    """

    def __init__(
        self,
        model: nn.Module,
        loss_terms: Sequence[LossTerm],
        lr: float = 1e-3,
        lr_step: int = 0,
        lr_gamma: float = 0.5,
        threshold: float = 0.0,
        model_spec: Mapping[str, Any] | None = None,
        lr_schedule: str = "step",
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        temperature: float = 1.0,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        loss_terms = list(loss_terms)
        if not loss_terms:
            raise ValueError("loss_terms: expected at least one loss term, got none")
        for term in loss_terms:
            if not (hasattr(term, "name") and hasattr(term, "weight") and callable(term)):
                raise TypeError(f"loss_terms: expected objects with name, weight and __call__, got {term!r}")
        if not lr > 0:
            raise ValueError(f"lr: expected a positive learning rate, got {lr!r}")
        if not isinstance(lr_step, int) or lr_step < 0:
            raise ValueError(f"lr_step: expected an int >= 0, got {lr_step!r}")
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule: expected one of {LR_SCHEDULES}, got {lr_schedule!r}")
        betas = tuple(float(b) for b in betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas: expected two numbers in [0, 1), got {betas!r}")
        if not weight_decay >= 0 or weight_decay == float("inf"):
            raise ValueError(f"weight_decay: expected a finite number >= 0, got {weight_decay!r}")
        if not 0 < temperature < float("inf"):
            raise ValueError(f"temperature: expected a positive finite number, got {temperature!r}")
        self.model = model
        self.loss_terms = loss_terms
        self.save_hyperparameters(ignore=["model", "loss_terms"])
        self.class_names = list(class_names or [])
        names = METRICS + OBJECT_METRICS + tuple(f"IoU_{c}" for c in self.class_names)
        self.metrics = nn.ModuleDict(
            {f"{stage}_{name}": MeanOverImages() for stage in STAGES for name in names}
        )
        self._epoch_start = 0.0
        self._last_batch_end = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    # ----------------------------------------------------------------- training
    def training_step(self, batch: Mapping, batch_idx: int) -> torch.Tensor:
        logits = self(batch["image"])
        if self.hparams.get("temperature", 1.0) != 1.0:
            logits = logits / self.hparams.temperature
        total = 0.0
        n = batch["image"].shape[0]
        for term in self.loss_terms:
            value = term(logits, batch)
            self.log(f"train/{term.name}", value.detach(), on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
            total = total + term.weight * value
        self.log("train/loss", total.detach(), on_step=False, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True)
        return total

    def on_train_epoch_start(self) -> None:
        self._epoch_start = self._last_batch_end = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self._last_batch_end = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        # Training batches only: validation runs inside the epoch in Lightning and is excluded.
        self.log("epoch_time", self._last_batch_end - self._epoch_start, on_epoch=True, sync_dist=True, reduce_fx="max")

    # --------------------------------------------------------- validation / test
    def _evaluate(self, batch: Mapping, stage: str) -> None:
        scores = score_batch(self(batch["image"]), batch, self.hparams.threshold)
        logged = list(METRICS)
        self.metrics[f"{stage}_E"].update(scores["E"])
        if len(scores["IoU"]):
            self.metrics[f"{stage}_IoU"].update(scores["IoU"])
            self.metrics[f"{stage}_Dice"].update(scores["Dice"])
            for k, name in enumerate(self.class_names):
                self.metrics[f"{stage}_IoU_{name}"].update(scores["IoU_class"][:, k])
        logged += [f"IoU_{name}" for name in self.class_names]
        if "E_obj" in scores:
            for name in OBJECT_METRICS:
                self.metrics[f"{stage}_{name}"].update(scores[name])
            logged += list(OBJECT_METRICS)
        # Logging the metric objects lets Lightning compute (and DDP-reduce) them at epoch end.
        for name in logged:
            self.log(f"{stage}/{name}", self.metrics[f"{stage}_{name}"], on_step=False, on_epoch=True,
                     prog_bar=name in ("E", "IoU"))

    def _sync_buffers(self) -> None:
        # Without SyncBatchNorm (not available on CPU) each DDP process updates its own batch-norm
        # running statistics; evaluate every process with rank 0's, the ones checkpoints keep.
        if self.trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            for buffer in self.model.buffers():
                torch.distributed.broadcast(buffer.data, src=0)

    def on_validation_epoch_start(self) -> None:
        self._sync_buffers()

    def on_test_epoch_start(self) -> None:
        self._sync_buffers()

    def validation_step(self, batch: Mapping, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Mapping, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    # ---------------------------------------------------------------- optimiser
    def configure_optimizers(self):
        hp = self.hparams
        betas = tuple(hp.get("betas", (0.9, 0.999)))
        if hp.get("weight_decay", 0.0) > 0:
            optimizer = torch.optim.AdamW(self.model.parameters(), lr=hp.lr, betas=betas, weight_decay=hp.weight_decay)
        else:
            optimizer = torch.optim.Adam(self.model.parameters(), lr=hp.lr, betas=betas)
        if hp.get("lr_schedule", "step") == "cosine":
            epochs = max(1, int(self.trainer.max_epochs)) if self._trainer is not None else 1
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        elif not hp.lr_step:
            return optimizer
        else:
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=hp.lr_step, gamma=hp.lr_gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
