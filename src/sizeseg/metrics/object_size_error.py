r"""Per-object size error and per-class scores of multi-class / multi-object predictions.

**Per-object size error.** The predicted objects of a class are the connected components of its
thresholded mask (8-connected in 2D, 26 in 3D, as in the loss), with sizes
:math:`g_{(1)} \ge g_{(2)} \ge \dots`; the annotated list is :math:`t_{(1)} \ge t_{(2)} \ge \dots`
with :math:`N` sizes > 0. Both are zero-padded and matched in sorted order (the loss's matching,
:func:`sizeseg.losses.object_size_loss.matched_size_loss`):

.. math::
    E_{obj} = \frac{1}{\max(N, 1)} \sum_j \big(t_{(j)} - g_{(j)}\big)^2, \qquad
    AE_{obj} = \frac{1}{\max(N, 1)} \sum_j \big|t_{(j)} - g_{(j)}\big|,

the squared (pixels^2) and absolute (pixels) error per annotated object; a spurious predicted
object adds its size, a missed one the annotated size. With one object on both sides
:math:`E_{obj}` is the paper's E (eq. 22).

**Several classes.** With C > 1 channels (one sigmoid each; class c predicted where its logit > 0)
per-image scores are means over the classes: IoU and Dice over all C classes (two empty masks
score 1, as for one class), E and the per-object errors over the annotated classes. The per-class
values are returned too.
"""

from __future__ import annotations

from typing import Mapping

import torch

from sizeseg.metrics.overlap import dice_score, iou_score
from sizeseg.metrics.size_error import predicted_size


def object_size_error(pred: torch.Tensor, target: torch.Tensor, spatial_dims: int = 2,
                      criterion: str = "squared", connectivity: int | None = None) -> torch.Tensor:
    r"""Per-object size error of each mask (module doc): :math:`E_{obj}` or, with
    ``criterion="absolute"``, :math:`AE_{obj}`.

    Args:
        pred: predicted masks (..., *spatial), bool or {0, 1}.
        target: (..., K) annotated sizes, NaN-padded; an all-NaN list gives NaN.
        spatial_dims: 2 or 3.
        criterion: "squared" or "absolute".
        connectivity: None (8 / 26), or 4 / 8, 6 / 26.

    Returns:
        float32 (...).

    Example:
        >>> pred = torch.zeros(1, 6, 9, dtype=torch.bool); pred[0, 1:5, 1:5] = True; pred[0, 2, 7] = True
        >>> object_size_error(pred, torch.tensor([[4.0, 4.0]]))  # {4, 2} vs {4, 4}: (4 - 2)^2 / 2
        tensor([2.])
    """
    from sizeseg.losses.object_size_loss import matched_size_loss
    from sizeseg.ops.components import object_sizes

    if criterion not in ("squared", "absolute"):
        raise ValueError(f"criterion: expected 'squared' or 'absolute', got {criterion!r}")
    sizes = torch.as_tensor(object_sizes(pred.detach().cpu() > 0, spatial_dims, "background", connectivity)[1])
    target = target.detach().cpu().float()
    if sizes.shape[-1] == 0:
        sizes = torch.zeros(sizes.shape[:-1] + (1,))
    loss = matched_size_loss(sizes, target, criterion)
    count = (torch.nan_to_num(target, nan=0.0) > 0).sum(-1).clamp_min(1)
    out = (loss / count).float()
    return torch.where(torch.isnan(target).all(-1), torch.full_like(out, float("nan")), out).to(pred.device)


def _nanmean_last(x: torch.Tensor) -> torch.Tensor:
    ok = ~torch.isnan(x)
    total = torch.where(ok, x, torch.zeros_like(x)).sum(-1)
    count = ok.sum(-1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


def score_batch(logits: torch.Tensor, batch: Mapping, threshold: float = 0.0) -> dict[str, torch.Tensor]:
    """Per-image scores of logits (B, C, *spatial) against a batch dictionary (module doc).

    Returns ``E`` (B,) (NaN without a size), ``IoU`` and ``Dice`` (M,) over the M images with
    ``has_mask``, ``IoU_class`` (M, C), ``predicted_size`` (B, C) and, when the batch has
    ``object_sizes`` (B, C, K): ``E_obj``, ``AE_obj`` (B,) and ``E_class`` (B, C).

    Example:
        >>> logits = torch.full((1, 2, 6, 6), -1.0); logits[0, 0, 1:5, 1:5] = 1.0
        >>> batch = {"mask": (logits > 0).float(), "has_mask": torch.tensor([True]),
        ...          "size": torch.tensor([4.0]), "object_sizes": torch.tensor([[[4.0], [2.0]]])}
        >>> s = score_batch(logits, batch); s["IoU"].tolist(), s["E_obj"].tolist(), s["E_class"].tolist()
        ([1.0], [2.0], [[0.0, 4.0]])
    """
    spatial_dims = logits.ndim - 2
    b, c = logits.shape[:2]
    pred = logits > threshold
    sizes = torch.stack([predicted_size(logits[:, k:k + 1], threshold, spatial_dims) for k in range(c)], 1)
    out: dict[str, torch.Tensor] = {"predicted_size": sizes}
    lists = batch.get("object_sizes")
    if lists is not None:
        lists = lists.float().reshape(b, c, -1).to(logits.device)
        filled = torch.where(torch.isnan(lists), torch.full_like(lists, -1.0), lists).amax(-1)
        largest = torch.where(filled < 0, torch.full_like(filled, float("nan")), filled)
        out["E_class"] = (largest - sizes) ** 2
        out["E_obj"] = _nanmean_last(object_size_error(pred, lists, spatial_dims))
        out["AE_obj"] = _nanmean_last(object_size_error(pred, lists, spatial_dims, "absolute"))
    if c == 1 or lists is None:
        out["E"] = (batch["size"].float().to(logits.device) - sizes[:, 0]) ** 2
    else:
        out["E"] = _nanmean_last(out["E_class"])
    has = batch["has_mask"].bool()
    target = batch["mask"][has] > 0.5
    per_class = [iou_score(pred[has][:, k], target[:, k]) for k in range(c)]
    out["IoU_class"] = torch.stack(per_class, 1) if per_class else torch.zeros(0, c)
    out["IoU"] = out["IoU_class"].mean(1)
    dice = [dice_score(pred[has][:, k], target[:, k]) for k in range(c)]
    out["Dice"] = torch.stack(dice, 1).mean(1) if dice else torch.zeros(0)
    return out


__all__ = ["object_size_error", "score_batch"]
