"""sizeseg: train segmentation networks from object sizes and size bounds instead of pixel masks."""

__version__ = "0.1.0"

# core ops (issue 2)
from sizeseg.ops import NO_BACKGROUND, distance_transform, flip_sizes, object_size  # noqa: E402
from sizeseg.losses.size_loss import SizeLoss, size_loss  # noqa: E402
from sizeseg.losses.exact import ExactSizeLoss, exact_size_loss  # noqa: E402
from sizeseg.losses.size_matched_bce import SizeMatchedBCE, size_matched_bce  # noqa: E402
from sizeseg.losses.size_criteria import (  # noqa: E402
    AbsoluteError, BoundPenalty, SizeCriterion, SquaredError)

# constrained size losses (issue 4)
from sizeseg.losses.kl_size import KLSizeLoss, kl_size_loss  # noqa: E402
from sizeseg.losses.log_barrier import LogBarrierSizeLoss, log_barrier_extension, log_barrier_size_loss  # noqa: E402
from sizeseg.losses.partial_ce import PartialCrossEntropy, partial_cross_entropy  # noqa: E402
from sizeseg.losses.proposals import ProposalLoss, pathak_proposals, proposal_loss  # noqa: E402
from sizeseg.losses.size_penalty import SizePenalty, size_penalty  # noqa: E402
