"""Pathak et al.'s constrained proposals (CCNN, ICCV 2015) as used in the Constrained-CNN paper."""

from __future__ import annotations

import torch
from torch import nn

from sizeseg.checks import (IGNORE_INDEX, check_bounds, check_probabilities, check_reduction, check_weak, reduce,
                            validate_args_enabled)
from sizeseg.losses.constrained import accumulation_dtype, class_log_probabilities

_EPS = 1e-8


def _one_hot(index: torch.Tensor, classes: int, dtype: torch.dtype) -> torch.Tensor:
    """``(B, *rest)`` class indices to ``(B, K, *rest)`` one-hot; unlike F.one_hot, no host read of the range."""
    out = torch.zeros((index.shape[0], classes, *index.shape[1:]), dtype=dtype, device=index.device)
    return out.scatter_(1, index.unsqueeze(1), 1.0)


def _check_solver(iterations: int, step: float) -> None:
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations: expected a non-negative int, got {iterations!r}")
    if not step > 0:
        raise ValueError(f"step: expected a positive number, got {step!r}")


@torch.no_grad()
def pathak_proposals(
    probs: torch.Tensor,
    bounds: torch.Tensor,
    *,
    weak: torch.Tensor | None = None,
    iterations: int = 500,
    step: float = 0.5,
    eps: float = _EPS,
    validate_args: bool | None = None,
) -> torch.Tensor:
    r"""Latent distribution closest to the network output that satisfies the size bounds.

    For each image, solves :math:`\min_P \sum_p \mathrm{KL}(P_p \,\|\, S_p)` subject to
    :math:`a_k \le \sum_p P_{kp} \le b_k` by projected gradient ascent on the Lagrangian dual.
    With multipliers :math:`\lambda_k, \mu_k \ge 0` for the lower and upper bounds the primal
    minimiser is :math:`P_{kp} \propto S_{kp} \exp(\lambda_k - \mu_k)`, and the dual gradient is
    :math:`\partial_{\lambda_k} = a_k - \sum_p P_{kp}`, :math:`\partial_{\mu_k} = \sum_p P_{kp} - b_k`.
    Each iteration takes a step ``step`` along the gradient scaled by the inverse curvature
    :math:`1 / (1 + \sum_p P_{kp}(1 - P_{kp}))` (a diagonal Newton preconditioner, so the step
    does not depend on the image size), then projects the multipliers onto :math:`\ge 0`.
    Labelled pixels (``weak != -1``) are fixed to their one-hot label and count in the sizes.

    Args:
        probs: network probabilities ``(B, K, *spatial)`` summing to one over K (not differentiated).
        bounds: ``(B, K, 2)`` or ``(K, 2)`` size bounds in pixels; NaN = no bound.
        weak: optional ``(B, *spatial)`` weak labels, -1 where unlabelled.
        iterations: dual iterations (the paper used 500).
        step: damping of the preconditioned step.
        validate_args: run the value checks (host syncs); None = :func:`sizeseg.checks.set_validate_args`.

    Returns:
        latent distribution ``(B, K, *spatial)``, detached.

    Example:
        >>> probs = torch.full((1, 2, 4, 4), 0.5)
        >>> latent = pathak_proposals(probs, torch.tensor([[0., 16.], [0., 4.]]), iterations=200)
        >>> bool(latent[:, 1].sum() <= 4.01)
        True
    """
    validate = validate_args_enabled(validate_args)
    check_probabilities(probs, validate=validate)
    _check_solver(iterations, step)
    ab = check_bounds(bounds, probs, validate=validate)
    lower, upper = ab[..., 0], ab[..., 1]
    has_upper = torch.isfinite(upper)
    upper_f = torch.where(has_upper, upper, torch.zeros_like(upper))
    batch, classes = probs.shape[:2]
    log_q = torch.log(probs.flatten(2) + eps)  # (B, K, N)
    fixed = None
    if weak is not None:
        check_weak(weak, probs, validate=validate)
        flat = weak.flatten(1)
        fixed = (flat != IGNORE_INDEX).unsqueeze(1)  # (B, 1, N)
        onehot = _one_hot(flat.clamp_min(0), classes, probs.dtype)  # (B, K, N)
    lam = probs.new_zeros(batch, classes)
    mu = probs.new_zeros(batch, classes)

    def latent_of(lam: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(log_q + (lam - mu).unsqueeze(-1), dim=1)
        if fixed is not None:
            p = torch.where(fixed, onehot, p)
        return p

    for _ in range(iterations):
        p = latent_of(lam, mu)
        size = p.sum(-1)
        free = p if fixed is None else p * (~fixed)
        curvature = 1.0 + (free * (1 - free)).sum(-1)
        lam = torch.relu(lam + step * (lower - size) / curvature)
        mu = torch.where(has_upper, torch.relu(mu + step * (size - upper_f) / curvature), mu)
    return latent_of(lam, mu).reshape(probs.shape)


def proposal_loss(
    probs: torch.Tensor,
    bounds: torch.Tensor,
    *,
    weak: torch.Tensor | None = None,
    iterations: int = 500,
    step: float = 0.5,
    eps: float = _EPS,
    reduction: str = "mean",
    hard: bool = False,
    sigmoid: bool = False, softmax: bool = False, validate_args: bool | None = None,
) -> torch.Tensor:
    r"""Cross-entropy of the network output against Pathak's proposals.

    .. math:: L_i = -\frac{1}{N} \sum_p \sum_k \tilde Y_{ikp} \log(S_{ikp} + \epsilon)

    With ``hard=False`` :math:`\tilde Y = \tilde P` = :func:`pathak_proposals` (the latent
    distribution itself, Pathak et al.'s KL form); with ``hard=True`` :math:`\tilde Y` is its
    one-hot arg-max, a synthetic ground-truth mask, so the loss is the fully supervised
    cross-entropy against that mask (one reading of the constrained-CNN paper, §3.3: "a synthetic
    ground truth is generated ... before computing the cross entropy"). No gradient flows through
    the proposal. Ties go to the lower class.

    Where the bounds hold the soft latent equals the output, so this loss has no gradient outside
    the labelled pixels; the mask instead pushes the output towards its own arg-max
    (self-training).

    ``probs`` may be logits with ``sigmoid``/``softmax`` (the log-probabilities then come from
    ``log_softmax``/``logsigmoid`` and ``eps`` only enters the proposal); ``reduction`` is over
    images, as in :func:`~sizeseg.losses.size_penalty.size_penalty`.

    Example:
        >>> probs = torch.full((1, 2, 4, 4), 0.5, requires_grad=True)
        >>> loss = proposal_loss(probs, torch.tensor([[0., 16.], [0., 4.]]), iterations=50)
        >>> loss.backward(); probs.grad.shape
        torch.Size([1, 2, 4, 4])
    """
    check_reduction(reduction)
    log_probs = class_log_probabilities(probs, sigmoid=sigmoid, softmax=softmax, eps=eps, validate_args=validate_args)
    source = (log_probs.detach().exp() if sigmoid or softmax else probs.detach()).to(accumulation_dtype(log_probs.dtype))
    latent = pathak_proposals(source, bounds, weak=weak, iterations=iterations, step=step, eps=eps,
                              validate_args=validate_args)
    if hard:
        latent = _one_hot(latent.argmax(1), log_probs.shape[1], log_probs.dtype)
    per_image = -(latent * log_probs).flatten(1).sum(-1, dtype=latent.dtype) / log_probs[0, 0].numel()
    return reduce(per_image, reduction)


class ProposalLoss(nn.Module):
    """Module form of :func:`proposal_loss`.

    Example:
        >>> ProposalLoss(iterations=10)(torch.full((1, 2, 2, 2), 0.5), torch.tensor([[0., 4.], [0., 4.]]))
        tensor(0.6931)
    """

    def __init__(self, iterations: int = 500, step: float = 0.5, eps: float = _EPS, reduction: str = "mean",
                 hard: bool = False, *, sigmoid: bool = False, softmax: bool = False,
                 validate_args: bool | None = None) -> None:
        super().__init__()
        _check_solver(iterations, step)
        check_reduction(reduction)
        self.iterations, self.step, self.eps, self.reduction, self.hard = iterations, step, eps, reduction, bool(hard)
        self.sigmoid, self.softmax, self.validate_args = sigmoid, softmax, validate_args

    def forward(self, probs: torch.Tensor, bounds: torch.Tensor, weak: torch.Tensor | None = None) -> torch.Tensor:
        return proposal_loss(
            probs, bounds, weak=weak, iterations=self.iterations, step=self.step, eps=self.eps, reduction=self.reduction,
            hard=self.hard, sigmoid=self.sigmoid, softmax=self.softmax, validate_args=self.validate_args,
        )
