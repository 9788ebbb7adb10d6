"""Progress a user can see: a bar when stdout is a terminal, one line per epoch otherwise."""

from __future__ import annotations

import sys
from typing import Callable

import lightning.pytorch as pl

PROGRESS_MODES = ("auto", "bar", "lines", "none")


def resolve_progress(progress: str | bool | None) -> str:
    """``"bar"``, ``"lines"`` or ``"none"`` from a mode name; ``"auto"`` (or None) is a bar when
    stdout is a terminal, lines otherwise (a log file gets one line per epoch, not bar redraws).
    ``True`` / ``False`` mean ``"bar"`` / ``"none"``.

    >>> resolve_progress(False), resolve_progress("lines")
    ('none', 'lines')
    """
    if progress is None:
        progress = "auto"
    if isinstance(progress, bool):
        return "bar" if progress else "none"
    if progress not in PROGRESS_MODES:
        raise ValueError(f"progress: expected one of {PROGRESS_MODES}, got {progress!r}")
    if progress == "auto":
        return "bar" if sys.stdout.isatty() else "lines"
    return progress


class EpochLines(pl.Callback):
    """Print one line per training epoch: the mean training loss and the latest validation scores.

    ``epoch 3/50: loss 0.1234; val E 12.3, IoU 0.8123, Dice 0.8901; 4.2 s``
    """

    def __init__(self, write: Callable[[str], None] | None = None) -> None:
        self.write = write or (lambda line: print(line, flush=True))
        self._total, self._count = 0.0, 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        import time

        self._total, self._count, self._start = 0.0, 0, time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            self._total += float(loss.detach())
            self._count += 1

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        import time

        if not trainer.is_global_zero:
            return
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}:"]
        if self._count:
            parts.append(f"loss {self._total / self._count:.4g};")
        validated = (trainer.current_epoch + 1) % max(1, trainer.check_val_every_n_epoch or 1) == 0
        metrics = trainer.callback_metrics
        scores = [f"{name} {float(metrics[f'val/{name}']):.4g}" for name in ("E", "IoU", "Dice")
                  if validated and f"val/{name}" in metrics]
        if scores:
            parts.append("val " + ", ".join(scores) + ";")
        parts.append(f"{time.perf_counter() - self._start:.1f} s")
        self.write(" ".join(parts))
