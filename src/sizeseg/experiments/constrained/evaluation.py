"""Validation scores of Table 1 (ours and the authors'), logged each epoch and read back as Fig. 3's curves."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch

from sizeseg.experiments.constrained.profiles import MONITORS

#: The authors' softmax temperature, at which their soft pooled DSC is computed (``utils.py`` of SizeLoss_WSS).
AUTHORS_TEMPERATURE = 0.1

#: Every validation score :func:`validation_scores` computes (``report.SCORE_HEADS`` labels them); any may be monitored.
VALIDATION_SCORES = MONITORS


def validation_scores(logits: torch.Tensor, val) -> dict[str, float]:
    """Every score of :data:`VALIDATION_SCORES` for one-channel ``logits`` (S, 1, H, W) of the validation slices.

    - ``dsc_3d``: the slices of each volume pooled into one 3D Dice, then the mean over volumes;
    - ``dsc_slice`` / ``dsc_slice_lv``: Dice per slice, mean over all slices (an empty slice and an
      empty prediction score 1) / over the slices that hold the LV;
    - ``dsc_pooled``: one Dice over all validation pixels, on the thresholded prediction;
    - ``dsc_pooled_soft``: the same on ``sigmoid(logits / 0.1)``, the foreground of the authors'
      two-class softmax at temperature 0.1, which their code reports.
    """
    from sizeseg.metrics import dice_score, pooled_dice_score, volume_dice_score

    logits = logits[:, 0].float()
    pred = logits > 0
    target = torch.from_numpy(np.asarray(val.masks) > 0)
    per_slice = dice_score(pred, target)
    has_lv = target.reshape(len(target), -1).any(1)
    return {
        "dsc_3d": float(volume_dice_score(pred, target, val.volumes).mean()),
        "dsc_slice_lv": float(per_slice[has_lv].mean()) if bool(has_lv.any()) else math.nan,
        "dsc_slice": float(per_slice.mean()),
        "dsc_pooled": float(pooled_dice_score(pred, target)),
        "dsc_pooled_soft": float(pooled_dice_score(torch.sigmoid(logits / AUTHORS_TEMPERATURE), target)),
    }


def predict_validation(model, val, batch_size: int = 64, tta: bool = False) -> torch.Tensor:
    """The model's logits on every validation slice (eval mode, no gradients); ``tta``: averaged over the
    slices' flips and 90-degree turns (:func:`sizeseg.training.test_time.symmetric_logits`)."""
    from sizeseg.training.pipeline import predict_logits
    from sizeseg.training.test_time import symmetric_logits

    with torch.no_grad():
        return (symmetric_logits if tta else predict_logits)(model, val.images, batch_size=batch_size)


def evaluate(model, val, tta: bool = False) -> dict:
    """Every validation score of ``model`` (:func:`validation_scores`), with test-time averaging if ``tta``,
    and the validation set's size."""
    scores = validation_scores(predict_validation(model, val, tta=tta), val)
    return {**scores, "n_val_slices": int(len(val)), "n_val_volumes": int(len(np.unique(val.volumes)))}


def val_dice_callback(val, batch_size: int = 64):
    """A callback logging ``val/<score>`` for every score of :data:`VALIDATION_SCORES` at the end of each training epoch.

    It replaces Lightning's validation loop here: the module's own validation also computes paper 1's
    size error E with a distance transform per slice, which costs far more than the forward pass.
    It must run before the checkpoint callback (it is inserted first).
    """
    import lightning.pytorch as pl

    class ValDice(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            was_training = pl_module.training
            logits = predict_validation(pl_module, val, batch_size)  # in eval mode
            pl_module.train(was_training)
            for key, value in validation_scores(logits, val).items():
                pl_module.log(f"val/{key}", value, on_epoch=True, prog_bar=key == "dsc_3d")

    return ValDice()


def read_curve(metrics_csv: Path, score: str = "dsc_3d") -> list[float]:
    """Validation ``score`` per epoch from a Lightning CSV log (``val/Dice`` in logs older than the scores)."""
    if not metrics_csv.is_file():
        return []
    by_epoch: dict[int, float] = {}
    with open(metrics_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            value = row.get(f"val/{score}") or row.get("val/Dice")
            if value not in (None, ""):
                by_epoch[int(row["epoch"])] = float(value)
    return [by_epoch[e] for e in sorted(by_epoch)]
