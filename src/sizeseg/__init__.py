"""sizeseg: train segmentation networks from object sizes and size bounds instead of pixel masks.

The top level holds the core ops and the losses; the rest lives in subpackages:
:mod:`sizeseg.ops`, :mod:`sizeseg.losses` (with the exact oracles in
:mod:`sizeseg.losses.testing`), :mod:`sizeseg.metrics`, :mod:`sizeseg.checks`, :mod:`sizeseg.data`.

Example:
    >>> import torch, sizeseg
    >>> mask = torch.zeros(1, 6, 6, dtype=torch.bool); mask[0, 1:5, 1:5] = True
    >>> sizeseg.object_size(mask)
    tensor([4.])
"""

__version__ = "0.1.0"

from sizeseg.ops import NO_BACKGROUND, distance_transform, flip_sizes, object_size  # noqa: E402
from sizeseg.losses import (  # noqa: E402
    AbsoluteError, BoundPenalty, KLSizeLoss, LogBarrierSizeLoss, ObjectSizeLoss, PartialCrossEntropy, ProposalLoss,
    RelativeSquaredError, SizeCriterion, SizeLoss, SizeMatchedBCE, SizePenalty, SquaredError, SymmetricRelativeError,
    kl_size_loss,
    log_barrier_extension, log_barrier_size_loss, object_size_loss, partial_cross_entropy, pathak_proposals,
    proposal_loss, size_loss, size_matched_bce, size_penalty,
)

__all__ = [
    "__version__",
    "NO_BACKGROUND", "distance_transform", "flip_sizes", "object_size",
    "SizeLoss", "size_loss", "ObjectSizeLoss", "object_size_loss", "SizeMatchedBCE", "size_matched_bce",
    "SizeCriterion", "SquaredError", "AbsoluteError", "RelativeSquaredError", "SymmetricRelativeError", "BoundPenalty",
    "SizePenalty", "size_penalty", "PartialCrossEntropy", "partial_cross_entropy",
    "ProposalLoss", "proposal_loss", "pathak_proposals",
    "LogBarrierSizeLoss", "log_barrier_size_loss", "log_barrier_extension", "KLSizeLoss", "kl_size_loss",
]

_TESTING_TOOLS = ("exact_size_loss", "ExactSizeLoss")


def __getattr__(name: str):
    # the exact oracles are testing tools (sizeseg.losses.testing), not part of the top level;
    # older code that reached them here still finds them
    if name in _TESTING_TOOLS:
        from sizeseg.losses import testing

        return getattr(testing, name)
    raise AttributeError(f"module 'sizeseg' has no attribute {name!r}")
