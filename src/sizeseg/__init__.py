"""sizeseg: train segmentation networks from object sizes and size bounds instead of pixel masks."""

__version__ = "0.1.0"

# core ops (issue 2)
from sizeseg.ops import NO_BACKGROUND, distance_transform, flip_sizes, object_size  # noqa: E402
from sizeseg.losses.size_loss import SizeLoss, size_loss  # noqa: E402
from sizeseg.losses.exact import ExactSizeLoss, exact_size_loss  # noqa: E402
from sizeseg.losses.size_criteria import (  # noqa: E402
    AbsoluteError, BoundPenalty, SizeCriterion, SquaredError)
