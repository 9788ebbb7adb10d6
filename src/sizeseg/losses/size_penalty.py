"""Size-bound penalty (Kervadec et al., "Constrained-CNN losses", eq. 3)."""

from __future__ import annotations

import torch
from torch import nn

from sizeseg.checks import check_reduction, reduce
from sizeseg.losses.constrained import bounded_sizes


def size_penalty(
    probs: torch.Tensor,
    bounds: torch.Tensor,
    *,
    groups: torch.Tensor | None = None,
    normalize: bool = True,
    reduction: str = "mean",
    sigmoid: bool = False, softmax: bool = False, validate_args: bool | None = None,
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
        probs: class probabilities ``(B, K, *spatial)`` summing to one over K; or logits with
            ``sigmoid``/``softmax``.
        bounds: ``(B, K, 2)`` or ``(K, 2)``; NaN = no bound on that side.
        groups: optional ``(B,)`` integer volume ids; images of one volume share bounds.
        normalize: divide by the pixel count.
        reduction: ``'mean'`` over all images (volumes with ``groups``), including those whose
            bounds are all NaN (they add 0), ``'sum'``, or ``'none'``. This differs from
            :func:`~sizeseg.size_loss`, whose mean runs over the annotated entries only: an image
            without bounds here still counts in the denominator, as in the authors' code.
        sigmoid: ``probs`` is one-channel logits ``(B, 1, *spatial)``; class 1 = ``sigmoid(x)``.
        softmax: ``probs`` is logits ``(B, K, *spatial)``; softmax over K.
        validate_args: run the value checks (host syncs); None = :func:`sizeseg.checks.set_validate_args`.

    Returns:
        scalar, or ``(B,)`` (``(G,)`` with groups) for ``reduction='none'``.

    Example:
        >>> probs = torch.full((1, 2, 4, 4), 0.5)          # soft size 8 per class
        >>> size_penalty(probs, torch.tensor([[0., 16.], [0., 5.]]))   # (8-5)^2 / 16
        tensor(0.5625)
        >>> size_penalty(torch.zeros(1, 1, 4, 4), torch.tensor([[0., 16.], [0., 5.]]), sigmoid=True)
        tensor(0.5625)
    """
    sizes, ab, pixels = bounded_sizes(probs, bounds, groups, reduction, sigmoid=sigmoid, softmax=softmax,
                                      validate_args=validate_args)
    below = torch.relu(ab[..., 0] - sizes)
    above = torch.relu(sizes - ab[..., 1])
    per_item = (below.square() + above.square()).sum(-1)
    if normalize:
        per_item = per_item / pixels
    return reduce(per_item, reduction)


class SizePenalty(nn.Module):
    """Module form of :func:`size_penalty`; ``loss(probs_or_logits, bounds, groups=None)``.

    Example:
        >>> loss = SizePenalty()
        >>> loss(torch.full((1, 2, 4, 4), 0.5), torch.tensor([[0., 16.], [0., 5.]]))
        tensor(0.5625)
    """

    def __init__(self, normalize: bool = True, reduction: str = "mean", *, sigmoid: bool = False,
                 softmax: bool = False, validate_args: bool | None = None) -> None:
        super().__init__()
        check_reduction(reduction)
        self.normalize, self.reduction = normalize, reduction
        self.sigmoid, self.softmax, self.validate_args = sigmoid, softmax, validate_args

    def forward(self, probs: torch.Tensor, bounds: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        return size_penalty(probs, bounds, groups=groups, normalize=self.normalize, reduction=self.reduction,
                            sigmoid=self.sigmoid, softmax=self.softmax, validate_args=self.validate_args)
