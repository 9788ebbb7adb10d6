"""A mean over images that stays exact under DDP (sums and counts are reduced, not means)."""

from __future__ import annotations

import torch
from torchmetrics.aggregation import MeanMetric


class MeanOverImages(MeanMetric):
    """Mean of per-image values over every image seen, on all processes together.

    :class:`torchmetrics.aggregation.MeanMetric` with ``nan_strategy="ignore"``: each process
    accumulates a sum and a count, which torchmetrics all-reduces under DDP before
    :meth:`compute`, so the result equals the single-process mean even when processes saw
    different numbers of images (a mean of per-process means would not). NaN values (e.g. E of
    an image without a size) are skipped; with nothing counted the result is NaN. ``update``
    takes a 1-D tensor of per-image values.

    Example:
        >>> m = MeanOverImages()
        >>> m.update(torch.tensor([1.0, 2.0])); m.update(torch.tensor([6.0, float("nan")]))
        >>> m.compute()
        tensor(3.)
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(nan_strategy="ignore", **kwargs)

    def update(self, values: torch.Tensor) -> None:
        if not isinstance(values, torch.Tensor) or values.ndim != 1:
            raise ValueError(f"values: expected a 1-D tensor of per-image values, got {getattr(values, 'shape', type(values))}")
        super().update(values)
