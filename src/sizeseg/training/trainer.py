"""``make_trainer``: the Lightning Trainer every mode uses (CSV logs, checkpoints, early stopping, DDP)."""

from __future__ import annotations

import os
import random
import signal
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger

from sizeseg.io_utils import atomic_path
from sizeseg.training.checkpoints import read_checkpoint

LAST_CHECKPOINT = "last.ckpt"
BEST_CHECKPOINT = "best.ckpt"
#: what a user can do when the run folder's last.ckpt cannot be resumed
RESUME_HINT = "start afresh with --no-resume (resume=False) or use another --out"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file beside their target, then renamed over it.

    Lightning's own writer stages the file in ``$TMPDIR`` and moves it: a kill leaves the
    temporary file there, and across file systems the move is a copy that a kill can cut short.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class RunState(pl.Callback):
    """What a resumed run needs beyond Lightning's own state, stored in ``last.ckpt``.

    - ``first_log_version``: the ``logs/version_<k>`` this run started in, so that
      :func:`merge_metrics` skips the logs of earlier runs in the same folder (``--no-resume``).
    - ``rng``: the torch, numpy and Python random states at the checkpoint, restored on resume, so
      the resumed epochs draw the same batch orders, flips and SizeLoss noise as an uninterrupted
      run (on CPU; GPU kernels may still differ in the last bits).
    """

    def __init__(self) -> None:
        self.first_log_version: int | None = None
        self.resumed = False

    def state_dict(self) -> dict[str, Any]:
        legacy = np.random.get_state()
        return {
            "first_log_version": self.first_log_version,
            "torch": torch.get_rng_state(),
            "numpy": [legacy[0], torch.from_numpy(legacy[1].astype(np.int64)), *map(float, legacy[2:])],
            "python": [list(v) if isinstance(v, tuple) else v for v in random.getstate()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.resumed = True
        self.first_log_version = state.get("first_log_version")
        if "torch" in state:
            torch.set_rng_state(state["torch"])
            name, keys, pos, has_gauss, gauss = state["numpy"]
            np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), gauss))
            version, internal, gauss_next = state["python"]
            random.setstate((version, tuple(internal), gauss_next))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.first_log_version is None and not self.resumed and trainer.logger is not None:
            self.first_log_version = int(trainer.logger.version)


class NonFiniteLossError(ValueError):
    """Training produced a NaN or infinite loss; the message names the epoch, the step and the batch's items."""


class StopOnNonFiniteLoss(pl.Callback):
    """Stop training at the first non-finite loss, before its backward pass can spread NaN into the weights.

    Without it a NaN loss gives NaN gradients, NaN weights and checkpoints of them, and the run
    ends (if at all) with an error about the next batch's logits that does not say where it began.
    """

    def __init__(self) -> None:
        self._ids: list[str] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self._ids = [str(i) for i in batch.get("id", [])] if isinstance(batch, dict) else []

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss.detach()).all()):
            items = ", ".join(self._ids[:8]) + (f" and {len(self._ids) - 8} more" if len(self._ids) > 8 else "")
            raise NonFiniteLossError(
                f"training stopped: the loss is {float(loss.detach().reshape(-1)[0])} at epoch {trainer.current_epoch}, "
                f"step {trainer.global_step} (batch of items {items or 'without ids'}); the weights before this step "
                "are finite. Lower the learning rate or check these items' sizes and the loss weights")


def remove_stale_parts(folder: str | Path) -> list[Path]:
    """Delete the temporary ``.*.part`` files a killed atomic write left in ``folder``; return them."""
    stale = sorted(Path(folder).glob(".*.part"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


class EarlyStoppingAfter(EarlyStopping):
    """Lightning's early stopping, except that it may end a run only from the end of epoch ``min_epochs`` on.

    The best score and the count of epochs without improvement are kept from the first epoch, so a
    run whose metric has not improved for ``patience`` epochs stops right at ``min_epochs``, and one
    that improved late runs on. (The Trainer's own ``min_epochs`` is not the same: a stop decided
    before it stays set, and ends the run at ``min_epochs`` even after the metric improved again.)
    """

    def __init__(self, min_epochs: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.min_epochs = min_epochs

    # Lightning decides in one of these two public hooks (which one depends on
    # ``check_on_train_epoch_end``); wrapping both keeps to its public API.
    def on_validation_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        before = trainer.should_stop
        super().on_validation_end(trainer, pl_module)
        self._drop_early_decision(trainer, before)

    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        before = trainer.should_stop
        super().on_train_epoch_end(trainer, pl_module)
        self._drop_early_decision(trainer, before)

    def _drop_early_decision(self, trainer: "pl.Trainer", before: bool) -> None:
        if trainer.current_epoch + 1 < self.min_epochs:
            trainer.should_stop = before  # too early: this callback's decision is dropped
            self.stopped_epoch = 0


def make_trainer(
    out_dir: str | Path,
    max_epochs: int = 50,
    monitor: str | None = "val/E",
    mode: str = "min",
    patience: int | None = 5,
    accelerator: str = "cpu",
    devices: int | str = 1,
    strategy: str = "auto",
    progress_bar: bool = True,
    limit_train_batches: int | float | None = None,
    limit_val_batches: int | float | None = None,
    deterministic: bool = False,
    val_every: int = 1,
    min_epochs: int = 0,
    **trainer_kwargs,
) -> pl.Trainer:
    """A Trainer writing CSV logs and checkpoints under ``out_dir``.

    - ``out_dir/checkpoints/best.ckpt``: the weights (and hyper-parameters) of the best epoch by
      ``monitor`` (``mode`` min/max), without optimiser state;
      ``out_dir/checkpoints/last.ckpt``: the full state of the last finished epoch (resume with :func:`fit`).
      Lightning writes both through a temporary file and a rename.
    - ``out_dir/logs/version_<k>/metrics.csv``: one row per logged epoch, a new version per
      (resumed) run; :func:`merge_metrics` joins them into ``out_dir/metrics.csv``.
    - Early stopping on ``monitor`` after ``patience`` epochs without improvement (None: off), never
      before the end of epoch ``min_epochs`` (:class:`EarlyStoppingAfter`).
    - Validation and checkpoints every ``val_every`` epochs (for runs of many tiny epochs).
    - ``strategy="ddp"`` with ``devices=N`` trains on N processes (``accelerator="cpu"`` uses gloo).

    Example:
        >>> import tempfile
        >>> t = make_trainer(tempfile.mkdtemp(), max_epochs=1, progress_bar=False)
        >>> t.max_epochs
        1
    """
    if not isinstance(max_epochs, int) or max_epochs < 1:
        raise ValueError(f"max_epochs: expected a positive int, got {max_epochs!r}")
    if mode not in ("min", "max"):
        raise ValueError(f"mode: expected 'min' or 'max', got {mode!r}")
    if not isinstance(val_every, int) or val_every < 1:
        raise ValueError(f"val_every: expected a positive int, got {val_every!r}")
    if not isinstance(min_epochs, int) or min_epochs < 0:
        raise ValueError(f"min_epochs: expected an int >= 0, got {min_epochs!r}")
    if patience is not None and (not isinstance(patience, int) or patience < 1):
        raise ValueError(f"patience: expected a positive int or None, got {patience!r}")
    out_dir = Path(out_dir)
    checkpoints = out_dir / "checkpoints"
    if os.environ.get("LOCAL_RANK", "0") == "0":  # DDP workers start later and must not race rank 0
        remove_stale_parts(checkpoints)
    callbacks: list[pl.Callback] = [RunState(), StopOnNonFiniteLoss()]
    if monitor:
        # "best" runs before "last": last.ckpt then stores the best score including this epoch,
        # so a resumed run cannot let a worse epoch replace best.ckpt.
        # best.ckpt is for inference and --init: the weights alone, no optimiser state to share.
        callbacks.append(ModelCheckpoint(dirpath=checkpoints, filename="best", monitor=monitor, mode=mode,
                                         save_top_k=1, enable_version_counter=False, every_n_epochs=val_every,
                                         save_weights_only=True))
    # "last" is its own callback: Lightning's save_last only writes when the best changed.
    callbacks.append(ModelCheckpoint(dirpath=checkpoints, filename="last", monitor=None, save_top_k=1,
                                     enable_version_counter=False, every_n_epochs=val_every))
    if monitor and patience:
        callbacks.append(EarlyStoppingAfter(min_epochs, monitor=monitor, mode=mode, patience=patience,
                                            check_finite=False))
    if progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    if limit_train_batches is not None:
        trainer_kwargs["limit_train_batches"] = limit_train_batches
    if limit_val_batches is not None:
        trainer_kwargs["limit_val_batches"] = limit_val_batches
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    return pl.Trainer(
        default_root_dir=out_dir,
        max_epochs=max_epochs,
        accelerator=accelerator,
        devices=devices,
        strategy=strategy,
        logger=CSVLogger(out_dir, name="logs"),  # a resumed run adds logs/version_<k>/
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        deterministic=deterministic,
        log_every_n_steps=1,
        check_val_every_n_epoch=val_every,
        **trainer_kwargs,
    )


def last_checkpoint(out_dir: str | Path) -> Path | None:
    """``out_dir/checkpoints/last.ckpt`` if it exists (a run to resume), else None."""
    path = Path(out_dir) / "checkpoints" / LAST_CHECKPOINT
    return path if path.is_file() else None


def best_checkpoint(out_dir: str | Path) -> Path | None:
    path = Path(out_dir) / "checkpoints" / BEST_CHECKPOINT
    return path if path.is_file() else last_checkpoint(out_dir)



def merge_metrics(out_dir: str | Path, first_version: int = 0) -> Path:
    """Join ``out_dir/logs/version_<k>/metrics.csv`` for k >= ``first_version`` into ``out_dir/metrics.csv``.

    The versions are the run's pieces, one per (resumed) start, in order; earlier versions are
    other runs in the same folder. Rows a later piece repeats (a run killed after logging an
    epoch but before checkpointing it redoes that epoch) are kept from the later piece only: a
    piece's first epoch drops the earlier pieces' rows from that epoch on. Columns are the union
    of the pieces' columns; the file is written atomically.
    """
    import csv
    import io

    from sizeseg.io_utils import atomic_write_text

    out_dir = Path(out_dir)
    parts = sorted((out_dir / "logs").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    parts = [p for p in parts if int(p.parent.name.split("_")[1]) >= first_version]
    rows: list[dict] = []
    columns: list[str] = []
    for part in parts:
        with open(part, newline="") as fh:
            reader = csv.DictReader(fh)
            columns += [c for c in reader.fieldnames or [] if c not in columns]
            new = list(reader)
        epochs = [int(r["epoch"]) for r in new if (r.get("epoch") or "").isdigit()]
        if epochs:
            rows = [r for r in rows if not (r.get("epoch") or "").isdigit() or int(r["epoch"]) < min(epochs)]
        rows += new
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(out_dir / "metrics.csv", buf.getvalue())


def fit(trainer: pl.Trainer, module: pl.LightningModule, datamodule: pl.LightningDataModule, resume: bool = True) -> None:
    """``trainer.fit``, resuming from ``last.ckpt`` under the trainer's folder when there is one.

    A resumed run restores the weights, the optimiser, the epoch counter, the callbacks' state
    (best score, early-stopping patience) and the random states (:class:`RunState`), and
    continues with the next epoch. ``out_dir/metrics.csv`` then holds this run's epochs once
    each, without the logs of earlier runs in the folder. The file is
    first read with :func:`~sizeseg.training.checkpoints.read_checkpoint`, so a corrupt or crafted
    ``last.ckpt`` is a one-line ValueError, and Lightning then loads it with ``weights_only=True``:
    nothing in it is run.
    """
    ckpt = last_checkpoint(trainer.default_root_dir) if resume else None
    if ckpt:
        read_checkpoint(ckpt, hint=RESUME_HINT)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None, weights_only=True)
    except SystemExit:
        # Lightning turns Ctrl-C into sys.exit(1) and leaves SIGINT ignored; give the caller the interrupt
        if trainer.interrupted:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt from None
        raise
    if trainer.is_global_zero:
        state = next((c for c in trainer.callbacks if isinstance(c, RunState)), None)
        first = state.first_log_version if state is not None else None
        merge_metrics(trainer.default_root_dir, first_version=first or 0)
