"""Log-barrier extension of the size constraints (Kervadec et al., 2019, arXiv:1904.04205)."""

from __future__ import annotations

import math

import torch
from torch import nn

from sizeseg.checks import check_reduction, reduce
from sizeseg.losses.constrained import bounded_sizes


def _check_t(t: float) -> None:
    if not (isinstance(t, (int, float)) and math.isfinite(t) and t > 0):
        raise ValueError(f"t: expected a positive finite number, got {t!r}")


def log_barrier_extension(z: torch.Tensor, t: float) -> torch.Tensor:
    r"""The log-barrier extension :math:`\tilde\psi_t` of a constraint ``z <= 0``.

    .. math::
        \tilde\psi_t(z) = \begin{cases} -\frac{1}{t}\log(-z) & z \le -\frac{1}{t^2} \\
                                      t z - \frac{1}{t}\log\frac{1}{t^2} + \frac{1}{t} & \text{otherwise}
                          \end{cases}

    continuous and differentiable at :math:`z = -1/t^2`, linear (so defined) for violated
    constraints, and approaching the hard barrier as :math:`t \to \infty`.

    Example:
        >>> log_barrier_extension(torch.tensor([-1.0, 0.0]), t=1.0)
        tensor([-0., 1.])
    """
    _check_t(t)
    threshold = -1.0 / t**2
    inside = z <= threshold
    safe = torch.where(inside, z, torch.full_like(z, -1.0))
    barrier = -torch.log(-safe) / t
    linear = t * z - math.log(1.0 / t**2) / t + 1.0 / t
    return torch.where(inside, barrier, linear)


def log_barrier_size_loss(
    probs: torch.Tensor,
    bounds: torch.Tensor,
    t: float,
    *,
    groups: torch.Tensor | None = None,
    normalize: bool = False,
    reduction: str = "mean",
    sigmoid: bool = False, softmax: bool = False, validate_args: bool | None = None,
) -> torch.Tensor:
    r"""Size bounds enforced through the log-barrier extension.

    For soft sizes :math:`s_{ik}` and bounds :math:`[a_{ik}, b_{ik}]` (in pixels):

    .. math:: L_i = \sum_k [a_{ik} > 0]\,\tilde\psi_t(a_{ik} - s_{ik}) + [b_{ik} < \infty]\,\tilde\psi_t(s_{ik} - b_{ik})

    A zero lower bound (or NaN) and an infinite upper bound (NaN) impose nothing; an upper bound
    of 0 (an absent tag) is never strictly feasible and acts as a linear suppression ``t * s``.
    ``t`` is raised during training by a schedule (e.g. ``t <- 1.1 t`` each epoch, starting at
    5, as in the log-barrier paper): see :class:`LogBarrierSizeLoss.step_t`.
    ``normalize`` divides by the pixel count; ``groups`` sums sizes per volume, and ``reduction``,
    ``sigmoid``, ``softmax`` and ``validate_args`` act, as in :func:`~sizeseg.losses.size_penalty.size_penalty`.

    Example:
        >>> probs = torch.full((1, 2, 4, 4), 0.5)                    # soft sizes 8 and 8
        >>> log_barrier_size_loss(probs, torch.tensor([[float('nan')] * 2, [0., 10.]]), t=1.0)   # -log(10 - 8)
        tensor(-0.6931)
    """
    _check_t(t)
    sizes, ab, pixels = bounded_sizes(probs, bounds, groups, reduction, sigmoid=sigmoid, softmax=softmax,
                                      validate_args=validate_args)
    lower, upper = ab[..., 0], ab[..., 1]
    has_upper = torch.isfinite(upper)
    lower_term = torch.where(lower > 0, log_barrier_extension(lower - sizes, t), torch.zeros_like(sizes))
    upper_gap = sizes - torch.where(has_upper, upper, torch.zeros_like(upper))
    upper_term = torch.where(has_upper, log_barrier_extension(upper_gap, t), torch.zeros_like(sizes))
    per_item = (lower_term + upper_term).sum(-1)
    if normalize:
        per_item = per_item / pixels
    return reduce(per_item, reduction)


class LogBarrierSizeLoss(nn.Module):
    """Module form of :func:`log_barrier_size_loss` holding ``t`` and its schedule.

    ``step_t()`` multiplies ``t`` by ``t_factor`` (call it once per epoch).

    Example:
        >>> loss = LogBarrierSizeLoss(t=5.0, t_factor=1.1)
        >>> round(loss.step_t(), 2)
        5.5
    """

    def __init__(self, t: float = 5.0, t_factor: float = 1.1, normalize: bool = False, reduction: str = "mean",
                 *, sigmoid: bool = False, softmax: bool = False, validate_args: bool | None = None) -> None:
        super().__init__()
        _check_t(t)
        if not t_factor >= 1.0:
            raise ValueError(f"t_factor: expected a number >= 1, got {t_factor!r}")
        check_reduction(reduction)
        self.t, self.t_factor, self.normalize, self.reduction = float(t), float(t_factor), normalize, reduction
        self.sigmoid, self.softmax, self.validate_args = sigmoid, softmax, validate_args

    def step_t(self) -> float:
        self.t *= self.t_factor
        return self.t

    def forward(self, probs: torch.Tensor, bounds: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        return log_barrier_size_loss(
            probs, bounds, self.t, groups=groups, normalize=self.normalize, reduction=self.reduction,
            sigmoid=self.sigmoid, softmax=self.softmax, validate_args=self.validate_args,
        )
