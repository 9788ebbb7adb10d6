"""A mean over images that stays exact under DDP (sums and counts are reduced, not means)."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class MeanOverImages(Metric):
    """Mean of per-image values over every image seen, on all processes together.

    Each process accumulates ``sum`` and ``count``; under DDP torchmetrics all-reduces both
    with a sum before :meth:`compute`, so the result equals the single-process mean even when
    processes saw different numbers of images (a mean of per-process means would not). NaN
    values (e.g. E of an image without a size) are skipped; with nothing counted the result is NaN.

    Example:
        >>> m = MeanOverImages()
        >>> m.update(torch.tensor([1.0, 2.0])); m.update(torch.tensor([6.0, float("nan")]))
        >>> m.compute()
        tensor(3.)
    """

    full_state_update = False
    higher_is_better = None

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, values: torch.Tensor) -> None:
        if not isinstance(values, torch.Tensor) or values.ndim != 1:
            raise ValueError(f"values: expected a 1-D tensor of per-image values, got {getattr(values, 'shape', type(values))}")
        ok = ~torch.isnan(values)
        self.total += values[ok].double().sum()
        self.count += ok.sum().double()

    def compute(self) -> torch.Tensor:
        if self.count == 0:
            return torch.tensor(float("nan"))
        return (self.total / self.count).float()
