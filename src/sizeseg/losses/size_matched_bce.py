"""Binary cross-entropy against the network's own prediction moved onto the annotated size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sizeseg.ops.size_match import size_matched_mask


def size_matched_bce(logits: torch.Tensor, sizes: torch.Tensor, spatial_dims: int = 2,
                     threshold: float = 0.0, border: str = "background") -> torch.Tensor:
    r"""BCE with logits to the size-matched pseudo-label of the (detached) logits.

    .. math::
        L = \frac{1}{|B| V} \sum_{b \in B} \sum_i \mathrm{BCE}(a_{bi}, \tilde y_{bi}),
        \qquad \tilde y_b = \texttt{size\_matched\_mask}(a_b, s_b)

    where :math:`\tilde y_b` keeps the network's ranking of pixels and moves its threshold, as
    little as possible, to the one whose object size is nearest :math:`s_b`
    (:func:`sizeseg.ops.size_match.size_matched_mask`). Where the predicted size is already
    right, this is self-training on the thresholded prediction; where it is not, the pixels
    between the two thresholds are pushed across. Images with a NaN size are left out.

    Args:
        logits: (B, 1, *spatial) logits, or (B, *spatial).
        sizes: (B,) annotated sizes; NaN for none.
        spatial_dims, threshold, border: as in :func:`~sizeseg.ops.size_match.size_matched_mask`.

    Returns:
        scalar tensor; a zero connected to ``logits`` when no image has a size.

    Example:
        >>> logits = torch.zeros(1, 1, 7, 7); logits[0, 0, 1:6, 1:6] = 1.0; logits[0, 0, 2:5, 2:5] = 2.0
        >>> target_is_current = size_matched_bce(logits, torch.tensor([6.0]))   # size already 6
        >>> shrink = size_matched_bce(logits, torch.tensor([2.0]))              # pushes the ring down
        >>> bool(shrink > target_is_current)
        True
    """
    if logits.ndim == spatial_dims + 2:
        if logits.shape[1] != 1:
            raise ValueError(f"logits: expected one channel (B, 1, *spatial), got shape {tuple(logits.shape)}")
        flat = logits[:, 0]
    elif logits.ndim == spatial_dims + 1:
        flat = logits
    else:
        raise ValueError(f"logits: expected (B, 1, *spatial) or (B, *spatial) with {spatial_dims} spatial dims, got shape {tuple(logits.shape)}")
    sizes = torch.as_tensor(sizes, device=logits.device).float()
    if sizes.shape != flat.shape[:1]:
        raise ValueError(f"sizes: expected shape ({flat.shape[0]},), got {tuple(sizes.shape)}")
    keep = ~torch.isnan(sizes)
    if not bool(keep.any()):
        return logits.sum() * 0.0
    target = size_matched_mask(flat[keep].detach(), sizes[keep], spatial_dims, threshold, border)
    return F.binary_cross_entropy_with_logits(flat[keep], target.float())


class SizeMatchedBCE(nn.Module):
    """Module form of :func:`size_matched_bce`.

    Example:
        >>> loss = SizeMatchedBCE()
        >>> loss(torch.zeros(2, 1, 5, 5, requires_grad=True), torch.tensor([2.0, float("nan")])).shape
        torch.Size([])
    """

    def __init__(self, spatial_dims: int = 2, threshold: float = 0.0, border: str = "background") -> None:
        super().__init__()
        self.spatial_dims, self.threshold, self.border = spatial_dims, threshold, border

    def forward(self, logits: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        return size_matched_bce(logits, sizes, self.spatial_dims, self.threshold, self.border)
