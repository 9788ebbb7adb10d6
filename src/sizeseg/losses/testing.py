"""Testing tools: exact expected losses by enumerating all 2^V segmentations of tiny images.

These are the oracles the sampled losses are tested against (values and gradients), not losses
to train with: they refuse images of more than 16 pixels.

Example:
    >>> import torch
    >>> from sizeseg.losses.testing import exact_size_loss
    >>> exact_size_loss(torch.zeros(1, 1, 2, 2), torch.tensor([2.0])).item() > 0
    True
"""

from sizeseg.losses.exact import MAX_EXACT_PIXELS, ExactSizeLoss, enumerate_segmentations, exact_size_loss
from sizeseg.losses.exact_objects import ExactObjectSizeLoss, exact_object_size_loss

__all__ = ["exact_size_loss", "ExactSizeLoss", "exact_object_size_loss", "ExactObjectSizeLoss",
           "enumerate_segmentations", "MAX_EXACT_PIXELS"]
