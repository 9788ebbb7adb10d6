"""Segmentation metrics per image (IoU eq. 23, Dice, squared size error E eq. 22) and DDP-safe means."""

from sizeseg.metrics.aggregate import MeanOverImages
from sizeseg.metrics.object_size_error import object_size_error, score_batch
from sizeseg.metrics.overlap import IoU, Dice, dice_score, iou_score, pooled_dice_score, volume_dice_score
from sizeseg.metrics.size_error import SquaredSizeError, predicted_size, squared_size_error

__all__ = [
    "Dice", "IoU", "MeanOverImages", "SquaredSizeError",
    "dice_score", "iou_score", "pooled_dice_score", "predicted_size", "squared_size_error", "volume_dice_score",
    "object_size_error", "score_batch",
]
