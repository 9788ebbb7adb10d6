"""Tiny prepared data for the training tests (built directly, so no other package is needed)."""

from __future__ import annotations

import numpy as np

from sizeseg.data.prepared import PreparedData
from tests.builders import reference_size


def tiny_data(n: int = 24, shape=(32, 32), seed: int = 0, splits=None) -> PreparedData:
    """``n`` images with one bright rectangle each; splits 50 % train, 25 % val, 25 % test."""
    rng = np.random.default_rng(seed)
    h, w = shape
    masks = np.zeros((n, h, w), np.uint8)
    for i in range(n):
        a, b = rng.integers(3, h // 2, size=2)
        y, x = rng.integers(0, h - a), rng.integers(0, w - b)
        masks[i, y:y + a, x:x + b] = 1
    images = (masks[:, None].astype(np.float32) * 2 - 1 + rng.normal(scale=0.5, size=(n, 1, h, w))).astype(np.float32)
    ids = np.array([f"tiny:{i}" for i in range(n)])
    if splits is None:
        splits = np.array(["train"] * (n // 2) + ["val"] * (n // 4) + ["test"] * (n - n // 2 - n // 4))
    return PreparedData(
        images=images, masks=masks, has_mask=np.ones(n, bool),
        sizes=np.array([reference_size(m) for m in masks], np.float32), ids=ids, sources=ids,
        slices=np.arange(n), volumes=ids, splits=np.asarray(splits),
    )

