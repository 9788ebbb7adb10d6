"""Size-bound penalty (Kervadec et al., "Constrained-CNN losses", eq. 3)."""

from __future__ import annotations

import torch
from torch import nn

from sizeseg.losses.constrained import bounded_sizes, check_reduction, reduce


def size_penalty(
    probs: torch.Tensor,
    bounds: torch.Tensor,
    *,
    groups: torch.Tensor | None = None,
    normalize: bool = True,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Quadratic penalty on soft sizes outside their bounds.

    For image (or volume) ``i`` and class ``k`` with soft size :math:`s_{ik} = \sum_p S_{ikp}`
    and bounds :math:`[a_{ik}, b_{ik}]`:

    .. math::
        C_{ik} = \begin{cases} (s_{ik} - a_{ik})^2 & s_{ik} < a_{ik} \\
                               (s_{ik} - b_{ik})^2 & s_{ik} > b_{ik} \\ 0 & \text{otherwise}\end{cases}
        \qquad L_i = \frac{1}{N_i} \sum_k C_{ik}

    where :math:`N_i` is the number of pixels of the image (``normalize=True``, as the authors'
    code ``SizeLoss_WSS/losses.py`` divides by ``H*W``; their extra ``/100`` is the size weight
    1e-2, which belongs to the loss term's ``weight`` here).

    Variants, all through ``bounds``: two bounds ``[a, b]``; upper bound only (``a = 0``);
    image tags (``[0, 0]`` where the class is absent: suppression, see
    :func:`~sizeseg.losses.constrained.tag_bounds`); per volume (``groups`` gives each image's
    volume id: the soft size is summed over all slices of a volume, the volume's bounds apply to
    that sum, and :math:`N_i` is the volume's voxel count).

    Args:
        probs: class probabilities ``(B, K, *spatial)`` summing to one over K.
        bounds: ``(B, K, 2)`` or ``(K, 2)``; NaN = no bound on that side.
        groups: optional ``(B,)`` integer volume ids; images of one volume share bounds.
        normalize: divide by the pixel count.
        reduction: ``'mean'`` / ``'sum'`` over images (volumes) or ``'none'``.

    Returns:
        scalar, or ``(B,)`` (``(G,)`` with groups) for ``reduction='none'``.

    Example:
        >>> probs = torch.full((1, 2, 4, 4), 0.5)          # soft size 8 per class
        >>> size_penalty(probs, torch.tensor([[0., 16.], [0., 5.]]))   # (8-5)^2 / 16
        tensor(0.5625)
    """
    sizes, ab, pixels = bounded_sizes(probs, bounds, groups, reduction)
    below = torch.relu(ab[..., 0] - sizes)
    above = torch.relu(sizes - ab[..., 1])
    per_item = (below.square() + above.square()).sum(-1)
    if normalize:
        per_item = per_item / pixels
    return reduce(per_item, reduction)


class SizePenalty(nn.Module):
    """Module form of :func:`size_penalty`.

    Example:
        >>> loss = SizePenalty()
        >>> loss(torch.full((1, 2, 4, 4), 0.5), torch.tensor([[0., 16.], [0., 5.]]))
        tensor(0.5625)
    """

    def __init__(self, normalize: bool = True, reduction: str = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.normalize = normalize
        self.reduction = reduction

    def forward(self, probs: torch.Tensor, bounds: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        return size_penalty(probs, bounds, groups=groups, normalize=self.normalize, reduction=self.reduction)
