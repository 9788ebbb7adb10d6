"""Losses on object sizes (paper 1) and on size bounds (paper 2).

Sampled size losses take logits ``(B, C, *spatial)`` (a sigmoid per channel). The constrained
losses take class probabilities ``(B, K, *spatial)`` by default, or raw logits with
``softmax=True`` (K >= 2) or ``sigmoid=True`` (one channel), as MONAI's losses do. Every loss
accepts ``reduction`` in ``("mean", "sum", "none")`` and ``validate_args`` (see
:mod:`sizeseg.checks`). The exact enumeration oracles live in :mod:`sizeseg.losses.testing`.

Example:
    >>> import torch
    >>> from sizeseg.losses import PartialCrossEntropy, SizePenalty
    >>> logits = torch.zeros(2, 1, 4, 4)                          # a one-channel network
    >>> SizePenalty(sigmoid=True)(logits, torch.tensor([[0.0, 16.0], [0.0, 4.0]]))   # (8 - 4)^2 / 16
    tensor(1.)
"""

from sizeseg.losses.constrained import class_probabilities, tag_bounds, two_class_probabilities
from sizeseg.losses.kl_size import KLSizeLoss, kl_size_loss, size_targets
from sizeseg.losses.log_barrier import LogBarrierSizeLoss, log_barrier_extension, log_barrier_size_loss
from sizeseg.losses.object_size_loss import ObjectSizeLoss, object_size_loss, pad_object_sizes
from sizeseg.losses.partial_ce import PartialCrossEntropy, partial_cross_entropy
from sizeseg.losses.proposals import ProposalLoss, pathak_proposals, proposal_loss
from sizeseg.losses.size_criteria import (AbsoluteError, BoundPenalty, RelativeSquaredError, SizeCriterion,
                                          SquaredError, SymmetricRelativeError, get_criterion)
from sizeseg.losses.size_loss import DEFAULT_NOISE_SCALE, SizeLoss, size_loss
from sizeseg.losses.size_matched_bce import SizeMatchedBCE, size_matched_bce
from sizeseg.losses.size_penalty import SizePenalty, size_penalty

__all__ = [
    # object sizes (paper 1)
    "SizeLoss", "size_loss", "DEFAULT_NOISE_SCALE", "ObjectSizeLoss", "object_size_loss", "pad_object_sizes",
    "SizeMatchedBCE", "size_matched_bce",
    "SizeCriterion", "SquaredError", "AbsoluteError", "RelativeSquaredError", "SymmetricRelativeError", "BoundPenalty",
    "get_criterion",
    # size bounds (paper 2)
    "SizePenalty", "size_penalty", "PartialCrossEntropy", "partial_cross_entropy",
    "ProposalLoss", "proposal_loss", "pathak_proposals",
    "LogBarrierSizeLoss", "log_barrier_size_loss", "log_barrier_extension",
    "KLSizeLoss", "kl_size_loss", "size_targets",
    "class_probabilities", "two_class_probabilities", "tag_bounds",
]
