"""Test-time augmentation: a network's logits averaged over the symmetries of the image grid."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn


def grid_symmetries(spatial_dims: int, square: bool) -> list[tuple[int, tuple[int, ...]]]:
    """(quarter turns in the last two axes, flipped axes) of each symmetry :func:`symmetric_logits` averages over:
    the 8 flips and 90-degree turns of square 2D images, else every combination of flips of the spatial axes.

    >>> len(grid_symmetries(2, square=True)), len(grid_symmetries(2, square=False)), len(grid_symmetries(3, False))
    (8, 4, 8)
    """
    if spatial_dims == 2 and square:
        return [(turns, flip) for turns in range(4) for flip in ((), (-1,))]
    axes = tuple(range(-spatial_dims, 0))
    return [(0, tuple(a for a, on in zip(axes, mask) if on)) for mask in itertools.product((False, True), repeat=len(axes))]


def symmetric_logits(model: nn.Module, images: np.ndarray | torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Logits (N, 1, *spatial) of ``model`` in eval mode, averaged over :func:`grid_symmetries` of images (N, C, *spatial).

    Each view's prediction is mapped back before averaging (as nnU-Net mirrors at test time), so a
    model that commutes with the symmetries gives its plain logits.

    >>> net = torch.nn.Conv2d(1, 1, 1)
    >>> x = torch.randn(2, 1, 8, 8)
    >>> torch.allclose(symmetric_logits(net, x), net(x), atol=1e-6)
    True
    """
    images = torch.as_tensor(images, dtype=torch.float32)
    model.eval()
    views = grid_symmetries(images.ndim - 2, square=images.shape[-1] == images.shape[-2])
    total = torch.zeros((len(images), 1) + tuple(images.shape[2:]))
    for turns, flips in views:
        for i in range(0, len(images), batch_size):
            x = torch.rot90(images[i:i + batch_size], turns, (-2, -1))
            y = model(x.flip(flips) if flips else x)
            total[i:i + batch_size] += torch.rot90(y.flip(flips) if flips else y, -turns, (-2, -1))
    return total / len(views)
