r"""SizeLoss: learn segmentation from object sizes through a sampled gradient (paper sec. 3.2).

For logits :math:`a` and Bernoulli pixels :math:`Y_i = \mathrm{sign}(a_i - Z_i)` with logistic
noise :math:`Z_i \sim \mathrm{Logistic}(0, \tau)` (eq. 8-11), so that
:math:`\Pr(Y_i = +1) = p_i = F_Z(a_i) = \sigma(a_i / \tau)`, the loss is the expectation

.. math::
    \mathcal{L} = \mathbb{E}_Y\, l(s, g(Y)),\qquad g(y) = 2 \max_i d_i(y)

(``g`` is :func:`sizeseg.object_size`). The forward pass estimates it with ``n_samples`` samples
``y``; the backward pass uses the unbiased single-sample estimator of Lemma 1 (eq. 21),

.. math::
    \frac{\partial \mathcal{L}}{\partial p_i} \approx y_i\,[\,l(s, g(y)) - l(s, g(y^{\downarrow i}))\,]
    = l(y_i{=}{+}1) - l(y_i{=}{-}1),

averaged over the samples and chained through :math:`\partial p_i / \partial a_i = p_i(1 - p_i) / \tau`.
Lemma 1 holds for any probabilities :math:`p_i`, so the estimate is unbiased for every noise scale
:math:`\tau` (tested against :func:`sizeseg.exact_size_loss` with the same ``noise_scale``).

The paper uses :math:`\tau = 1`. Under that noise the sampled size of an object much larger than a
few pixels falls far below its thresholded size (interior pixels flip and puncture the largest
inscribed square: a disk of size 30 with logits :math:`\pm 3` samples to 10 on average), so the
expected loss is far from the thresholded size error. A smaller scale keeps the samples near the
thresholded prediction and puts the gradient on the boundary pixels, where the size is decided;
:data:`DEFAULT_NOISE_SCALE` is the one measured in ``results/sizes-noise/``. As
:math:`\tau \to 0` the loss tends to :math:`l(s, g(a > 0))` and the gradient vanishes except at
pixels with :math:`|a_i| \lesssim \tau`.
All ``V`` flipped sizes :math:`g(y^{\downarrow i})` come from one call of
:func:`sizeseg.flip_sizes` (exact, O(V) memory), so a step costs a few passes per sample instead of
V distance transforms.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from sizeseg.checks import REDUCTIONS, check_finite, check_reduction, check_tensor, validate_args_enabled
from sizeseg.ops import flip_sizes_and_size, object_size
from sizeseg.ops._inputs import BACKENDS, BORDERS

from .size_criteria import SizeCriterion, get_criterion
#: the scale tau of the logistic noise unless one is given (the paper's is 1; see the module doc)
DEFAULT_NOISE_SCALE = 0.25


def check_noise_scale(noise_scale: Any, entries: tuple[int, int], device: torch.device,
                      validate: bool = True) -> torch.Tensor:
    """``noise_scale`` as a float32 (B, C) tensor of positive finite scales on ``device``.

    Accepts a positive number (always checked: no host sync), or a tensor broadcastable to
    ``entries`` = (B, C) (one scale per image and channel; its values are checked when
    ``validate``); anything else is a ValueError/TypeError naming ``noise_scale``.
    """
    if isinstance(noise_scale, bool):
        raise TypeError(f"noise_scale: expected a positive number or tensor, got {noise_scale!r}")
    if isinstance(noise_scale, (int, float)):
        if not (math.isfinite(noise_scale) and noise_scale > 0):
            raise ValueError(f"noise_scale: expected positive finite scales, got {noise_scale:g}")
        return torch.full(entries, float(noise_scale), device=device)
    if not isinstance(noise_scale, torch.Tensor):
        raise TypeError(f"noise_scale: expected a positive number or tensor, got {type(noise_scale).__name__}")
    try:
        tau = torch.broadcast_to(noise_scale.detach().to(device, torch.float32), entries)
    except RuntimeError:
        raise ValueError(f"noise_scale: expected a tensor broadcastable to (B, C) = {entries}, "
                         f"got shape {tuple(noise_scale.shape)}") from None
    if validate and (not bool(torch.isfinite(tau).all()) or not bool((tau > 0).all())):
        raise ValueError(f"noise_scale: expected positive finite scales, got minimum {tau.min().item():g}")
    return tau


def check_logits_and_options(logits: Any, sizes: Any, border: str, reduction: str) -> None:
    """The checks every size loss shares: logits a floating (B, C, *spatial) tensor with 2 or 3
    spatial dims, sizes a tensor, border and reduction known. Raises TypeError/ValueError."""
    check_tensor(logits, "logits")
    check_tensor(sizes, "sizes")
    check_tensor(logits, "logits", floating=True)
    if logits.ndim not in (4, 5) or min(logits.shape) < 1:
        raise ValueError("logits: expected shape (B, C, H, W) or (B, C, D, H, W) with no empty dim, "
                         f"got {tuple(logits.shape)}")
    if border not in BORDERS:
        raise ValueError(f"border: expected one of {BORDERS}, got {border!r}")
    check_reduction(reduction)


def check_size_loss_inputs(logits: Any, sizes: Any, criterion: SizeCriterion, border: str,
                           reduction: str, validate: bool = True) -> tuple[torch.Tensor, bool]:
    """Validate (logits, sizes) and return sizes as (B, C) or (B, C, 2) plus whether C was dropped.

    Shapes, dtypes and devices are always checked; the values (finite logits, sizes the
    criterion accepts and an image can hold) only when ``validate``, as they read back to the host.
    Raises TypeError/ValueError naming the argument, what was expected and what came.
    """
    check_logits_and_options(logits, sizes, border, reduction)
    b, c = logits.shape[:2]
    tail = (2,) if criterion.n_values == 2 else ()
    allowed = [(b, c) + tail] + ([(b,) + tail] if c == 1 else [])
    if tuple(sizes.shape) not in allowed:
        raise ValueError(f"sizes: expected shape {' or '.join(map(str, allowed))} for logits of shape "
                         f"{tuple(logits.shape)} and criterion {criterion!r}, got {tuple(sizes.shape)}")
    if sizes.device != logits.device:
        raise ValueError(f"sizes: expected a tensor on {logits.device} like logits, got {sizes.device}")
    sizes = sizes.to(torch.float32)
    if validate:
        check_finite(logits, "logits")
        criterion.validate(sizes, "sizes")
        # no object in the image reaches size_cap: a larger size is a unit mistake, and 1e20 squared
        # overflows float32 into an inf loss with NaN gradients
        limit = size_cap(tuple(logits.shape[2:]))
        reached = sizes[..., 0] if tail else sizes  # bounds: an upper bound beyond reach is merely loose
        finite = reached[torch.isfinite(reached)]
        if finite.numel() and bool((finite > limit).any()):
            raise ValueError(f"sizes: expected sizes an image of spatial shape {tuple(logits.shape[2:])} can hold "
                             f"(<= {limit:g}), got {finite.max().item():g}")
    dropped = sizes.ndim == 1 + len(tail)
    return sizes.reshape((b, c) + tail), dropped


def reduce_size_loss(per_entry: torch.Tensor, annotated: torch.Tensor, reduction: str,
                     dropped_channel: bool) -> torch.Tensor:
    """Mean over annotated entries (0 when there is none), sum, or the (B, C) / (B,) values.

    The mean divides by the number of annotated (image, channel) entries, not by B: an image
    without a size neither adds to the loss nor dilutes it (unlike the constrained losses, whose
    mean is over all images).
    """
    per_entry = torch.where(annotated, per_entry, torch.zeros_like(per_entry))
    if reduction == "sum":
        return per_entry.sum()
    if reduction == "mean":
        return per_entry.sum() / annotated.sum().clamp(min=1)
    return per_entry[:, 0] if dropped_channel else per_entry


def size_cap(spatial: tuple[int, ...]) -> float:
    """Finite stand-in for the infinite size of a sample without background (border="open"):
    larger than any finite size, so it still reads as "far too large"."""
    return 2.0 * max(spatial)


class _SampledSizeLoss(torch.autograd.Function):
    """Per-entry (B, C) sampled loss; backward returns the eq. 21 estimate for the logits."""

    @staticmethod
    def forward(ctx, logits, target, annotated, criterion, n_samples, border, backend, generator, tau):
        spatial_dims = logits.ndim - 2
        b, c = logits.shape[:2]
        cap = size_cap(tuple(logits.shape[2:]))
        tau = tau.reshape((b, c) + (1,) * spatial_dims)
        scaled = logits.detach().to(torch.float32) / tau
        p = torch.sigmoid(scaled)
        noise = torch.rand((n_samples,) + tuple(p.shape), generator=generator, device=p.device)
        y = noise < p  # (n, B, C, *spatial) bool: the sampled segmentations
        target = torch.where(torch.isnan(target), torch.zeros_like(target), target)
        need_grad = ctx.needs_input_grad[0]
        if need_grad:
            flips, sizes = flip_sizes_and_size(y, spatial_dims, border, backend)
            flips = flips.to(p.device).clamp(max=cap)
        else:
            sizes = object_size(y, spatial_dims, border, backend)
        sizes = sizes.to(p.device).clamp(max=cap)  # (n, B, C)
        losses = criterion(sizes, target)  # (n, B, C)
        if need_grad:
            expand = (b, c) + (1,) * spatial_dims + target.shape[2:]
            flip_losses = criterion(flips, target.reshape(expand))  # (n, B, C, *spatial)
            here = losses.reshape(losses.shape + (1,) * spatial_dims)
            # y_i [l(y) - l(y flipped at i)] = l(y_i = +1) - l(y_i = -1)
            d_dp = torch.where(y, here - flip_losses, flip_losses - here).mean(dim=0)
            mask = annotated.reshape((b, c) + (1,) * spatial_dims)
            # dp/da = p (1 - p) / tau, as sigmoid(x) sigmoid(-x): 1 - p rounds to 0 in float32 from x ~ 17
            dp_da = p * torch.sigmoid(-scaled) / tau
            grad = torch.where(mask, d_dp * dp_da, torch.zeros_like(d_dp))
            ctx.save_for_backward(grad)
        ctx.logits_dtype = logits.dtype
        return losses.mean(dim=0)  # float32 even for half logits: squared sizes overflow float16

    @staticmethod
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        scale = grad_out.reshape(grad_out.shape + (1,) * (grad.ndim - 2)).to(grad.dtype)
        return (scale * grad).to(ctx.logits_dtype), None, None, None, None, None, None, None, None


def size_loss(logits: torch.Tensor, sizes: torch.Tensor, n_samples: int = 1,
              reduction: str = "mean", border: str = "background",
              criterion: str | SizeCriterion = "squared",
              generator: torch.Generator | None = None, backend: str = "auto",
              noise_scale: float | torch.Tensor = DEFAULT_NOISE_SCALE,
              validate_args: bool | None = None) -> torch.Tensor:
    r"""Sampled expected size loss with the unbiased gradient of eq. 21 (see the module doc).

    Args:
        logits: (B, C, H, W) or (B, C, D, H, W) network outputs; channel c is the binary
            segmentation of class c, foreground with probability sigmoid(logits).
        sizes: (B, C), or (B,) when C == 1: annotated object sizes (2 x max Chebyshev distance,
            in pixels); NaN = no annotation for that image/class (contributes nothing). With
            ``criterion="bounds"``: (B, C, 2) or (B, 2) holding [lower, upper]
            (see :mod:`sizeseg.losses.size_criteria`).
        n_samples: samples per image; the estimate's variance falls as 1 / n_samples, the cost
            grows linearly.
        reduction: "mean" over the annotated (image, class) entries only (0 if none): an image
            with a NaN size does not count in the denominator. This differs from
            :func:`~sizeseg.size_penalty`, whose mean is over all images. "sum", or "none"
            (the per-entry losses, shaped like ``sizes`` without its pair dim; 0 where unannotated).
        border: border of the distance transform; the default "background" treats the image edge
            as background. With "open", a sample without background has infinite size; it is
            replaced by ``2 * max(spatial shape)`` so the loss stays finite.
        criterion: "squared" (default, the paper's), "absolute", "relative" (squared error divided
            by the annotated size squared), "bounds", or a SizeCriterion.
        generator: torch.Generator on the logits' device for reproducible samples.
        backend: "auto" (numba on CPU, torch elsewhere), "numba" or "torch".
        noise_scale: the scale :math:`\tau` of the logistic noise, :math:`p = \sigma(a / \tau)`:
            a positive number, or a tensor broadcastable to (B, C) for one scale per entry.
            Default :data:`DEFAULT_NOISE_SCALE`; 1 is the paper's.
        validate_args: run the value checks (finite logits, sizes >= 0 and within the image),
            which read back to the host; None = :func:`sizeseg.checks.set_validate_args`
            (on by default). With False, forward and backward never wait on the GPU (backend "torch").

    Returns:
        The reduced loss; finite for finite inputs. Its gradient w.r.t. ``logits`` is the sampled
        estimate (no gradient flows to ``sizes``).

    Example:
        >>> import torch
        >>> logits = torch.zeros(2, 1, 8, 8, requires_grad=True)
        >>> loss = size_loss(logits, torch.tensor([4.0, float("nan")]),
        ...                  generator=torch.Generator().manual_seed(0))
        >>> loss.backward(); logits.grad.shape, bool(logits.grad[1].abs().sum() == 0)
        (torch.Size([2, 1, 8, 8]), True)
    """
    crit = get_criterion(criterion)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples: expected an int >= 1, got {n_samples!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    validate = validate_args_enabled(validate_args)
    target, dropped = check_size_loss_inputs(logits, sizes, crit, border, reduction, validate)
    tau = check_noise_scale(noise_scale, tuple(logits.shape[:2]), logits.device, validate)
    annotated = crit.annotated(target)
    per_entry = _SampledSizeLoss.apply(logits, target, annotated, crit, n_samples, border,
                                       backend, generator, tau)
    return reduce_size_loss(per_entry, annotated, reduction, dropped)


def check_module_options(n_samples: Any, reduction: str, border: str) -> None:
    """The options a sampled size-loss module checks when it is built (ValueError naming each)."""
    if border not in BORDERS:
        raise ValueError(f"border: expected one of {BORDERS}, got {border!r}")
    check_reduction(reduction)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples: expected an int >= 1, got {n_samples!r}")


class SizeLoss(nn.Module):
    """Module form of :func:`size_loss`; ``loss(logits, sizes)``.

    Args:
        n_samples, reduction, border, criterion, backend, noise_scale, validate_args: as in
            :func:`size_loss` (``noise_scale`` a positive number here).
        seed: if given, samples come from a generator seeded once with it (per device), so a
            run is reproducible; otherwise from torch's global generator.

    Example:
        >>> import torch
        >>> loss_fn = SizeLoss(n_samples=2, seed=0)
        >>> logits = torch.randn(4, 1, 16, 16, requires_grad=True)
        >>> loss = loss_fn(logits, torch.tensor([6.0, 8.0, float("nan"), 2.0]))
        >>> loss.backward(); bool(torch.isfinite(loss))
        True
    """

    def __init__(self, n_samples: int = 1, reduction: str = "mean", border: str = "background",
                 criterion: str | SizeCriterion = "squared", seed: int | None = None,
                 backend: str = "auto", noise_scale: float = DEFAULT_NOISE_SCALE,
                 validate_args: bool | None = None):
        super().__init__()
        validate_args_enabled(validate_args)  # a TypeError now for anything but True, False, None
        self.validate_args = validate_args
        check_noise_scale(noise_scale, (1, 1), torch.device("cpu"))
        self.noise_scale = float(noise_scale)
        self.criterion = get_criterion(criterion)
        check_module_options(n_samples, reduction, border)
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        self.n_samples, self.reduction, self.border = n_samples, reduction, border
        self.seed, self.backend = seed, backend
        self._generators: dict[str, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def forward(self, logits: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        device = logits.device if isinstance(logits, torch.Tensor) else torch.device("cpu")
        return size_loss(logits, sizes, self.n_samples, self.reduction, self.border,
                         self.criterion, self._generator(device), self.backend, self.noise_scale,
                         self.validate_args)

    def extra_repr(self) -> str:
        return (f"n_samples={self.n_samples}, reduction={self.reduction!r}, border={self.border!r}, "
                f"criterion={self.criterion!r}, noise_scale={self.noise_scale:g}")


__all__ = ["SizeLoss", "size_loss", "check_size_loss_inputs", "check_logits_and_options",
           "reduce_size_loss", "size_cap", "check_noise_scale", "check_module_options",
           "DEFAULT_NOISE_SCALE", "REDUCTIONS"]
