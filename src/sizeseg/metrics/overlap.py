"""Overlap metrics per image: intersection over union (paper 1, eq. 23) and Dice; Dice per 3D volume of 2D slices."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sizeseg.checks import binary_pair


def iou_score(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Intersection over union of each image's binary masks (eq. 23 of the size paper).

    With labels :math:`y_i, \hat y_i \in \{-1, +1\}` eq. 23 reads
    :math:`\sum_i (1 + y_i + \hat y_i + y_i \hat y_i) / \sum_i (3 + y_i + \hat y_i - y_i \hat y_i)`,
    i.e. :math:`|Y \cap \hat Y| / |Y \cup \hat Y|` for the foreground sets. Two empty masks agree
    perfectly and score 1.

    Args:
        pred: predicted mask (B, *spatial), bool or {0, 1}.
        target: ground-truth mask of the same shape.

    Returns:
        float32 (B,) in [0, 1].

    Example:
        >>> pred = torch.tensor([[1, 1, 0, 0]])
        >>> target = torch.tensor([[1, 0, 0, 0]])
        >>> iou_score(pred, target)
        tensor([0.5000])
    """
    p, t = binary_pair(pred, target)
    inter = (p & t).sum(1).float()
    union = (p | t).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def dice_score(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Dice coefficient :math:`2 |Y \cap \hat Y| / (|Y| + |\hat Y|)` of each image; 1 for two empty masks.

    Args:
        pred: predicted mask (B, *spatial), bool or {0, 1}.
        target: ground-truth mask of the same shape.

    Returns:
        float32 (B,) in [0, 1].

    Example:
        >>> dice_score(torch.tensor([[1, 1, 0, 0]]), torch.tensor([[1, 0, 0, 0]]))
        tensor([0.6667])
    """
    p, t = binary_pair(pred, target)
    inter = (p & t).sum(1).float()
    total = p.sum(1).float() + t.sum(1).float()
    return torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.ones_like(total))


def volume_dice_score(pred, target, volumes) -> torch.Tensor:
    r"""3D Dice of each volume whose 2D slices are rows of ``pred`` and ``target``; 1 for two empty volumes.

    The slices of one volume are pooled before :func:`dice_score`, so a volume's score weighs its
    pixels, not its slices (the challenge's 3D DSC, e.g. ACDC's).

    Args:
        pred: predicted masks (S, *spatial), bool or {0, 1}; a tensor or a numpy array.
        target: ground-truth masks of the same shape.
        volumes: (S,) the volume of each slice (any sortable ids).

    Returns:
        float32 (V,) in [0, 1], one per distinct volume id, in sorted order of the ids.

    Example:
        >>> pred = torch.tensor([[[1, 0]], [[1, 1]], [[0, 0]]])
        >>> target = torch.tensor([[[1, 0]], [[0, 1]], [[0, 0]]])
        >>> volume_dice_score(pred, target, ["a", "a", "b"])
        tensor([0.8000, 1.0000])
    """
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    ids = np.asarray(volumes)
    if ids.shape != pred.shape[:1] or pred.shape != target.shape:
        raise ValueError(f"volume_dice_score: expected pred and target of one shape (S, *spatial) and S volume ids, got "
                         f"{tuple(pred.shape)}, {tuple(target.shape)} and {len(ids)} ids")
    keys, volume_of_slice = np.unique(ids, return_inverse=True)  # keys sorted
    volume_of_slice = torch.from_numpy(volume_of_slice.reshape(-1))
    scores = [dice_score(pred[volume_of_slice == v].reshape(1, -1), target[volume_of_slice == v].reshape(1, -1))
              for v in range(len(keys))]
    return torch.cat(scores) if scores else torch.zeros(0)


def pooled_dice_score(pred, target) -> torch.Tensor:
    r"""One Dice over all slices pooled: :math:`2 \sum_i p_i t_i / (\sum_i p_i + \sum_i t_i)`; 1 when both are empty.

    The constrained-CNN authors' validation DSC: intersections and sizes are summed over the whole
    validation set before one ratio is taken, so large objects weigh more than small ones and empty
    slices count only through their false positives. ``pred`` may be soft (probabilities in
    [0, 1]), as the authors compute it on their softmax at temperature 0.1, or a hard mask.

    Args:
        pred: predictions (S, *spatial) in [0, 1], bool or float; a tensor or a numpy array.
        target: ground-truth masks of the same shape, {0, 1}.

    Returns:
        a float32 scalar tensor in [0, 1].

    Example:
        >>> pred = torch.tensor([[[1.0, 0.0]], [[0.5, 1.0]]])
        >>> target = torch.tensor([[[1, 0]], [[0, 1]]])
        >>> pooled_dice_score(pred, target)   # 2 * 2 / (2.5 + 2)
        tensor(0.8889)
    """
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.shape != target.shape or pred.ndim < 2:
        raise ValueError(f"pooled_dice_score: expected pred and target of one shape (S, *spatial), got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
    p, t = pred.double(), target.double()
    if bool(((p < 0) | (p > 1) | torch.isnan(p)).any()):
        raise ValueError("pooled_dice_score: pred: expected values in [0, 1]")
    denominator = p.sum() + t.sum()
    if denominator == 0:
        return torch.tensor(1.0)
    return (2 * (p * t).sum() / denominator).float()


class IoU(nn.Module):
    """Module form of :func:`iou_score`.

    Example:
        >>> IoU()(torch.ones(2, 3, 3), torch.ones(2, 3, 3))
        tensor([1., 1.])
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return iou_score(pred, target)


class Dice(nn.Module):
    """Module form of :func:`dice_score`.

    Example:
        >>> Dice()(torch.zeros(1, 3, 3), torch.zeros(1, 3, 3))
        tensor([1.])
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dice_score(pred, target)
