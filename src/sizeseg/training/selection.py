"""What picks ``best.ckpt``: the monitored metric that the validation split can support, and the start.

- :func:`choose_monitor`: validation IoU by default, the size error when validation cannot support
  it (fine-tuning falls back to validation E below :data:`MIN_VAL_MASKS` masked validation images;
  the user is told), and a warning when a metric the user asked for rests on too few masks.
- :func:`start_scores`: the network a run starts from (``--init``), scored on validation with the
  same metric, so that a run can tell when none of its epochs beat its start.
- :func:`overlap_warning`: when a size metric picked ``best.ckpt``, whether its validation IoU fell
  below the start's (the size error can fall while the masks drift off the objects).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sizeseg.data.splits import MIN_VAL_MASKS
#: metric -> direction ("max": higher is better)
MONITORABLE = {"val/IoU": "max", "val/Dice": "max", "val/E": "min", "val/E_obj": "min", "val/AE_obj": "min"}
#: metrics scored from sizes alone (the rest need masks)
SIZE_METRICS = ("val/E", "val/E_obj", "val/AE_obj")
#: how far validation IoU may fall below the start's, while a size metric picks best.ckpt, unremarked
IOU_DROP_TOLERANCE = 0.01


def choose_monitor(default: str, asked: str, val, fallback: str | None = None) -> tuple[str, list[str]]:
    """The metric that picks ``best.ckpt`` and stops early, and messages for the user.

    Validation IoU measures what the user wants from the network, on masks they trust; validation E
    only the size error, which can fall while the masks drift off the objects: on the hippocampus,
    the epochs it picked had lost validation IoU in 35 of 60 fine-tuning runs, and each of those
    lost test IoU (results/hippocampus/selection-check.md). So the default is validation IoU
    wherever enough validation images have masks.

    Args:
        default: the mode's metric (``val/IoU``).
        asked: the metric the user named (``TrainConfig.monitor``), or ``""`` for the default.
        val: the validation split (a ``PreparedData``).
        fallback: the size metric a size-trained run falls back to, unasked, when fewer than
            :data:`MIN_VAL_MASKS` validation images have masks and some have sizes (``val/E``, or
            ``val/E_obj`` with size lists); None for pre-training, which keeps validation IoU on any
            masks it has and warns when they are few.

    Returns:
        ``(monitor, messages)``; a ValueError naming ``monitor`` when validation cannot score the
        metric the user asked for, or any metric at all.

    Example:
        >>> from sizeseg.data.synthetic import synthetic_data
        >>> val = synthetic_data(12, seed=0).split("val")
        >>> val.has_mask[:] = False
        >>> choose_monitor("val/IoU", "", val)[0]
        'val/E'
    """
    masks = int(np.asarray(val.has_mask, bool).sum())
    sizes = int(np.isfinite(np.asarray(val.sizes, np.float32)).sum())
    monitor = asked or default
    if monitor not in MONITORABLE:
        raise ValueError(f"monitor: expected one of {', '.join(MONITORABLE)} or empty (the mode's default), "
                         f"got {monitor!r}")
    needs_masks = monitor not in SIZE_METRICS
    if needs_masks and not asked and sizes and (masks == 0 or (fallback and masks < MIN_VAL_MASKS)):
        to = fallback or "val/E"
        why = (f"the validation split has sizes only ({sizes} images, no mask)" if masks == 0 else
               f"{masks} validation image(s) have masks, fewer than {MIN_VAL_MASKS}")
        return to, [f"note: {why}: best.ckpt is selected, and training stopped early, by validation "
                    f"{to.split('/')[1]} instead of validation IoU"
                    + (" (--monitor val/IoU to use the masks anyway)" if masks else "")]
    if needs_masks and masks == 0:
        raise ValueError(f"monitor: {monitor} needs validation images with masks; the validation split has "
                         f"none ({sizes} with sizes)" + ("; use --monitor val/E" if sizes else ""))
    if monitor in SIZE_METRICS[1:] and "object_sizes" not in val.extra:
        raise ValueError(f"monitor: {monitor} needs size lists (extra['object_sizes']); this data has one size per "
                         "image: use val/E")
    if not needs_masks and sizes == 0:
        raise ValueError(f"monitor: {monitor} needs validation images with sizes; the validation split has none")
    messages = []
    if needs_masks and masks < MIN_VAL_MASKS:
        messages.append(f"warning: validation {monitor.split('/')[1]} rests on {masks} masked image(s), fewer than "
                        f"{MIN_VAL_MASKS}; it picks best.ckpt and stops training early, so it is noisy. Put more "
                        "masks in validation (sizeseg prepare folder --fractions / --val-list) or use "
                        "--monitor val/E")
    return monitor, messages


def former_default(mode: str, size_loss: str = "object") -> str | None:
    """What an empty ``monitor`` meant in a ``mode`` run recorded while fine-tuning's default was the size
    error: ``val/E`` (``val/E_obj`` with ``size_loss`` ``objects``) in the size modes; None in
    pre-training, whose default has not changed. Records keep the empty value, so a cached or resumed
    run is compared as what it was trained with.

    >>> former_default("mixed"), former_default("finetune", "objects"), former_default("pretrain")
    ('val/E', 'val/E_obj', None)
    """
    if mode == "pretrain":
        return None
    return "val/E_obj" if size_loss == "objects" else "val/E"


def start_scores(model, val, monitor: str) -> tuple[float, float | None]:
    """``monitor`` (``val/E``, ``val/IoU`` or ``val/Dice``) of ``model`` on the validation split, as
    validation computes it (means over the images with a size, or with a mask), and, when ``monitor``
    is a size metric and validation has masks, its validation IoU (None otherwise), for
    :func:`overlap_warning`: both from one validation pass."""
    from sizeseg.training.pipeline import evaluate_model

    scores = evaluate_model(model, val)
    iou = float(scores["IoU"]) if monitor in SIZE_METRICS and scores["n_masks"] > 0 else None
    return float(scores[monitor.split("/")[1]]), iou


def beats(score: Any, other: float, monitor: str) -> bool:
    """Whether ``score`` is strictly better than ``other`` on ``monitor`` (NaN is never better).

    >>> beats(0.8, 0.7, "val/IoU"), beats(12.0, 10.0, "val/E"), beats(float("nan"), 1.0, "val/E")
    (True, False, False)
    """
    if score is None:
        return False
    score = float(score)
    if np.isnan(score):
        return False
    if np.isnan(other):
        return True
    return score > other if MONITORABLE[monitor] == "max" else score < other


def overlap_warning(start_iou: float, best_iou: float, monitor: str, n_masks: int, init: Any) -> str | None:
    """A warning when ``best.ckpt``, picked by the size metric ``monitor``, has a validation IoU more than
    :data:`IOU_DROP_TOLERANCE` below its start's ``init``; None otherwise.

    A size metric says nothing of where the predicted object lies: on the hippocampus, mixed
    fine-tuning from 10 masks lowered validation E from 2.09 to 1.72 while validation IoU fell from
    0.58 to 0.41, and validation E picked that network (test IoU -0.16). There, all 35 of 60 runs
    this warns of lost test IoU (``scripts/selection_check.py``, ``results/hippocampus/``). With few
    validation masks it is noisy: on ``results/user-folder/`` (7 masks) it warned of 2 of 7 runs,
    and one of them gained test IoU. Hence a warning, with the count of masks, not a rule.

    >>> overlap_warning(0.58, 0.41, "val/E", 20, "runs/pre/checkpoints/best.ckpt")[:64]
    'warning: best.ckpt, picked by validation E, has validation IoU 0'
    >>> overlap_warning(0.58, 0.575, "val/E", 20, "pre.ckpt") is None
    True
    """
    if not best_iou < start_iou - IOU_DROP_TOLERANCE:
        return None
    return (f"warning: best.ckpt, picked by validation {monitor.split('/')[1]}, has validation IoU {best_iou:.3f} "
            f"against its start's {start_iou:.3f} ({n_masks} masked validation images). A size error cannot see a "
            f"mask move off its object: compare best.ckpt with the start ({init}) on masks you trust "
            f"(sizeseg evaluate), or pick by the masks with --monitor val/IoU")
