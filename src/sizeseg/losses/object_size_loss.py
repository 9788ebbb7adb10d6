r"""ObjectSizeLoss: learn from a *list* of object sizes per image and class (several objects).

The single-object size (paper eq. 4-5) sees only the largest object. Here the objects of a
segmentation :math:`y` are its connected components (8-connected in 2D, 26 in 3D by default;
:mod:`sizeseg.ops.components`), each with its own size, so :math:`y` has a multiset of sizes
:math:`S(y) = \{g_1, \dots, g_K\}`; the annotation is a multiset :math:`T = \{t_1, \dots, t_N\}`
(e.g. one size per lesion).

**The loss on two multisets.** Sort both in descending order, pad the shorter with zeros (a
missing object has size 0) and match rank to rank:

.. math::
    l(T, S) = \sum_{j=1}^{\max(N, K)} \ell\big(t_{(j)}, g_{(j)}\big),
    \qquad t_{(1)} \ge t_{(2)} \ge \dots,\ g_{(1)} \ge g_{(2)} \ge \dots,\ t_{(j)}, g_{(j)} = 0
    \text{ beyond the list,}

with :math:`\ell` the squared (default), absolute, relative or symmetric error of
:mod:`sizeseg.losses.size_criteria` (each has :math:`\ell(0, 0) = 0`, so the padding length does
not matter). A predicted object with no annotated partner costs :math:`\ell(0, g)`, a missed
annotated object :math:`\ell(t, 0)`: :math:`g^2` and :math:`t^2` under the squared error, but
:math:`g^2` and 1 under the relative one, :math:`(t - g)^2 / \max(t, 1)^2`, whose denominator is
the annotation's. Under sampling every uncertain background pixel drawn as foreground is a
spurious object, so the relative criterion makes the gradient mostly clear uncertain pixels. The
symmetric error :math:`(t - g)^2 / \max(t, g, 1)^2` prices a spurious and a missed object alike
(1 each, whatever their sizes) and a matched pair relative to its larger size; it is the
scale-free choice for lists of objects (``results/objects/`` compares them). For an error :math:`\ell(t, g) = c(t - g)` with ``c``
convex (all three but the relative one), the sorted matching is the cheapest one-to-one matching
of the two zero-padded lists (the 1-D optimal transport), so this is the Hungarian-matching loss
without the Hungarian algorithm. With one annotated and one predicted object it is the
single-object loss.

Alternatives, and why not: (a) Hungarian matching on positions needs object locations, which a
size list does not give; (b) only the count :math:`|K - N|` ignores the sizes; (c) the sum of
sizes lets one big object stand for several small ones; (d) Chamfer-style nearest-size matching
lets several predictions match one annotation, so extra objects cost nothing.

**The gradient.** As for :class:`~sizeseg.SizeLoss`: pixels are Bernoulli with
:math:`p_i = \sigma(a_i / \tau)` and Lemma 1 (eq. 21) gives the unbiased single-sample estimate

.. math::
    \frac{\partial\, \mathbb{E}_Y\, l(T, S(Y))}{\partial p_i} \approx
    y_i\,\big[\,l(T, S(y)) - l(T, S(y^{\downarrow i}))\,\big],

for any :math:`l`, in particular this one. :math:`S(y^{\downarrow i}) = S(y) - R_i + A_i` comes
for every pixel at once from :func:`sizeseg.ops.components.object_flip_sizes`, and the loss of
each flipped multiset from prefix sums along the sorted sizes (a flip moves runs of ranks by a
few places), so a sample costs O(V log V) instead of V labellings and transforms. The estimate is
tested against :func:`exact_object_size_loss` (enumeration of all 2^V segmentations).

**Several classes.** Channel ``c`` of the logits is its own binary segmentation (one sigmoid per
class, as in :class:`~sizeseg.SizeLoss`), with its own list of sizes: ``sizes`` (B, C, N).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from sizeseg.ops import _component_kernels as ck
from sizeseg.ops.components import check_connectivity, object_sizes
from sizeseg.ops.distance import border_values

from .size_criteria import (AbsoluteError, RelativeSquaredError, SizeCriterion, SquaredError,
                            SymmetricRelativeError, get_criterion)
from .size_loss import (DEFAULT_NOISE_SCALE, SizeLoss, check_logits_and_options, check_module_options,
                        check_noise_scale, reduce_size_loss, size_cap)

#: criteria the per-object loss evaluates inside its kernel, by type
CRITERION_CODES = {SquaredError: ck.SQUARED, AbsoluteError: ck.ABSOLUTE,
                   RelativeSquaredError: ck.RELATIVE, SymmetricRelativeError: ck.SYMMETRIC}


def object_criterion(criterion: str | SizeCriterion) -> tuple[SizeCriterion, int]:
    """The criterion object and its kernel code; ValueError for criteria it cannot evaluate."""
    crit = get_criterion(criterion)
    code = CRITERION_CODES.get(type(crit))
    if code is None:
        raise ValueError("criterion: the per-object loss supports 'squared', 'absolute', 'relative' "
                         f"and 'symmetric', got {criterion!r}")
    return crit, code


def matched_size_loss(predicted: torch.Tensor, target: torch.Tensor,
                      criterion: str | SizeCriterion = "squared") -> torch.Tensor:
    r"""Sorted-matching loss of two NaN-padded lists of sizes (see the module doc).

    Args:
        predicted: (..., K) sizes; NaN pads the list (no object).
        target: (..., N) sizes, NaN-padded; broadcast against ``predicted`` over the leading dims.
        criterion: "squared", "absolute", "relative" (or their SizeCriterion objects).

    Returns:
        float64 (...): the loss :math:`\sum_j \ell(t_{(j)}, g_{(j)})` over the zero-padded sorted
        lists.

    Example:
        >>> import torch
        >>> nan = float("nan")
        >>> matched_size_loss(torch.tensor([2.0, 8.0, nan]), torch.tensor([8.0, 4.0, 4.0])).item()
        20.0
    """
    crit, _ = object_criterion(criterion)
    length = max(predicted.shape[-1], target.shape[-1])

    def ranked(x: torch.Tensor) -> torch.Tensor:
        x = torch.nan_to_num(x.to(torch.float64), nan=0.0)
        x = torch.sort(x, dim=-1, descending=True).values
        return nn.functional.pad(x, (0, length - x.shape[-1]))

    return crit(ranked(predicted), ranked(target)).sum(-1)


def max_objects(spatial: tuple[int, ...], full: bool) -> int:
    """The most components a mask of this shape can hold: one per 2^n block with full
    connectivity (components are 2 apart along some axis), one per checkerboard square else."""
    if full:
        return math.prod((s + 1) // 2 for s in spatial)
    return (math.prod(spatial) + 1) // 2


def check_object_size_inputs(logits: Any, sizes: Any, border: str, reduction: str,
                             connectivity: int | None) -> tuple[torch.Tensor, bool]:
    """Validate (logits, sizes); return sizes as (B, C, N) float32 and whether C was dropped.

    Raises TypeError/ValueError naming the argument, what was expected and what came (with the
    index of the first bad entry).
    """
    check_logits_and_options(logits, sizes, border, reduction)
    full = check_connectivity(connectivity, logits.ndim - 2)
    b, c = logits.shape[:2]
    ok = (sizes.ndim == 3 and tuple(sizes.shape[:2]) == (b, c)) or (
        c == 1 and sizes.ndim == 2 and sizes.shape[0] == b)
    if not ok or sizes.shape[-1] < 1:
        expected = f"(B, C, N) = ({b}, {c}, N)" + (f" or (B, N) = ({b}, N)" if c == 1 else "")
        raise ValueError(f"sizes: expected shape {expected} with N >= 1 (NaN-padded lists of "
                         f"object sizes) for logits of shape {tuple(logits.shape)}, "
                         f"got {tuple(sizes.shape)}")
    if sizes.device != logits.device:
        raise ValueError(f"sizes: expected a tensor on {logits.device} like logits, got {sizes.device}")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("logits: expected finite values, got NaN or inf")
    dropped = sizes.ndim == 2
    sizes = sizes.to(torch.float32).reshape(b, c, -1)
    bad = (sizes < 0) | torch.isinf(sizes)
    if bool(bad.any()):
        where = tuple(torch.nonzero(bad)[0].tolist())
        raise ValueError(f"sizes: expected finite sizes >= 0 (NaN pads the lists), got "
                         f"{sizes[where].item()} at index {where}")
    limit = max_objects(tuple(logits.shape[2:]), full)
    counts = (sizes > 0).sum(-1)
    if bool((counts > limit).any()):
        where = tuple(torch.nonzero(counts > limit)[0].tolist())
        raise ValueError(f"sizes: entry {where} lists {int(counts[where])} objects, more than the "
                         f"{limit} that fit a {tuple(logits.shape[2:])} image")
    return sizes, dropped


def pad_object_sizes(lists: Sequence[Sequence[float]], device: torch.device | str | None = None
                     ) -> torch.Tensor:
    """Lists of object sizes (one list per image) as a NaN-padded (B, N) float32 tensor.

    An empty list means "annotated, no object" and becomes ``[0, NaN, ...]``; use ``None`` for an
    image without annotation (all NaN).

    Example:
        >>> pad_object_sizes([[6, 2], [], None])
        tensor([[6., 2.],
                [0., nan],
                [nan, nan]])
    """
    rows = [[float("nan")] if x is None else ([0.0] if len(x) == 0 else [float(v) for v in x])
            for x in lists]
    width = max([len(r) for r in rows] + [1])
    out = torch.full((len(rows), width), float("nan"), device=device)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r)
    return out


def object_flip_losses(mask: torch.Tensor, target: torch.Tensor, spatial_dims: int = 2,
                       border: str = "background", criterion: str | SizeCriterion = "squared",
                       connectivity: int | None = None, active: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The per-object loss of each mask and of each of its single-pixel flips, exactly.

    .. math::
        L = l(T, S(y)), \qquad L_i = l(T, S(y^{\downarrow i})) \quad \text{for every pixel } i,

    with infinite sizes (``border="open"``) counted as ``2 * max(spatial shape)``. O(V log V) per
    mask (numba, on the CPU; the results come back on ``mask``'s device).

    Args:
        mask: bool or {0, 1} tensor (..., *spatial).
        target: (..., N) NaN-padded annotated sizes, broadcastable to ``mask``'s leading dims.
        spatial_dims, border, connectivity: as in :func:`sizeseg.ops.components.object_sizes`.
        criterion: "squared", "absolute", "relative" or "symmetric".
        active: optional bool (...) tensor; masks where it is False are skipped (zeros).

    Returns:
        float64 ``(L (...), L_i (..., *spatial))``.

    Example:
        >>> import torch
        >>> m = torch.tensor([[1, 1, 0, 0, 1]], dtype=torch.bool)
        >>> loss, flipped = object_flip_losses(m, torch.tensor([2.0, 2.0]), border="open")
        >>> loss.item(), flipped[0].tolist()  # sizes {4, 2} against {2, 2}: (2 - 4)^2
        (4.0, [0.0, 0.0, 16.0, 8.0, 8.0])
    """
    _, code = object_criterion(criterion)
    full = check_connectivity(connectivity, spatial_dims)
    spatial = tuple(mask.shape[mask.ndim - spatial_dims:])
    batch_shape = tuple(mask.shape[: mask.ndim - spatial_dims])
    t = torch.nan_to_num(target.detach().to(torch.float64), nan=0.0)
    t = torch.sort(t, dim=-1, descending=True).values.cpu()
    t = torch.broadcast_to(t, batch_shape + t.shape[-1:]).reshape(-1, t.shape[-1])
    on = active.cpu() if active is not None else torch.ones(batch_shape, dtype=torch.bool)
    vol = mask.detach().cpu()
    vol = (vol if vol.dtype == torch.bool else vol > 0).reshape(
        (-1, spatial[0] if spatial_dims == 3 else 1) + spatial[-2:])
    flipped = np.zeros((vol.shape[0], math.prod(spatial)), np.float64)
    base = np.zeros(vol.shape[0], np.float64)
    ck.object_flip_losses(vol.contiguous().numpy().view(np.uint8), t.contiguous().numpy(),
                          torch.broadcast_to(on, batch_shape).reshape(-1).contiguous().numpy(),
                          flipped, base, *border_values(border, spatial_dims), spatial_dims == 3,
                          full, ck.max_changes(spatial_dims, full), size_cap(spatial), code)
    return (torch.from_numpy(base).reshape(batch_shape).to(mask.device),
            torch.from_numpy(flipped).reshape(tuple(mask.shape)).to(mask.device))


class _SampledObjectSizeLoss(torch.autograd.Function):
    """Per-entry (B, C) sampled per-object loss; backward returns the eq. 21 estimate."""

    @staticmethod
    def forward(ctx, logits, target, annotated, code, n_samples, border, connectivity, generator, tau):
        spatial = tuple(logits.shape[2:])
        spatial_dims = len(spatial)
        b, c = logits.shape[:2]
        cap = size_cap(spatial)
        tau = tau.reshape((b, c) + (1,) * spatial_dims)
        scaled = logits.detach().to(torch.float32) / tau
        p = torch.sigmoid(scaled)
        noise = torch.rand((n_samples,) + tuple(p.shape), generator=generator, device=p.device)
        y = noise < p  # (n, B, C, *spatial): the sampled segmentations
        if not ctx.needs_input_grad[0]:
            sizes = object_sizes(y, spatial_dims, border, connectivity)[1].clamp(max=cap)
            ctx.logits_dtype = logits.dtype
            return matched_size_loss(sizes, target, code_criterion(code)).mean(0).to(torch.float32)
        losses, flipped = object_flip_losses(y, target, spatial_dims, border, code_criterion(code),
                                             connectivity, annotated.expand(y.shape[:3]))
        here = losses.reshape(losses.shape + (1,) * spatial_dims)
        # y_i [l(y) - l(y flipped at i)], averaged over the samples, chained through dp/da
        d_dp = torch.where(y, here - flipped, flipped - here).mean(0).to(torch.float32)
        dp_da = p * torch.sigmoid(-scaled) / tau  # p (1 - p) / tau without 1 - p rounding to 0
        ctx.save_for_backward(d_dp * dp_da * annotated.reshape(tau.shape))
        ctx.logits_dtype = logits.dtype
        return losses.mean(0).to(torch.float32)

    @staticmethod
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        scale = grad_out.reshape(grad_out.shape + (1,) * (grad.ndim - 2)).to(grad.dtype)
        return (scale * grad).to(ctx.logits_dtype), None, None, None, None, None, None, None, None


def code_criterion(code: int) -> SizeCriterion:
    """The criterion object of a kernel code (inverse of :func:`object_criterion`)."""
    return next(kind() for kind, k in CRITERION_CODES.items() if k == code)


def object_size_loss(logits: torch.Tensor, sizes: torch.Tensor, n_samples: int = 1,
                     reduction: str = "mean", border: str = "background",
                     criterion: str | SizeCriterion = "squared", connectivity: int | None = None,
                     generator: torch.Generator | None = None,
                     noise_scale: float | torch.Tensor = DEFAULT_NOISE_SCALE) -> torch.Tensor:
    r"""Sampled expected per-object size loss with the unbiased gradient of eq. 21 (module doc).

    Args:
        logits: (B, C, H, W) or (B, C, D, H, W); channel c is the binary segmentation of class c,
            foreground with probability sigmoid(logits / noise_scale).
        sizes: (B, C, N), or (B, N) when C == 1: the annotated object sizes of each image and
            class (2 x max Chebyshev distance of each object, in pixels), NaN-padded to a
            common length N. An entry whose list is all NaN is unannotated (contributes
            nothing); ``[0, NaN, ...]`` says "no object" (see :func:`pad_object_sizes`).
        n_samples: samples per image (variance ~ 1 / n_samples, cost ~ n_samples).
        reduction: "mean" (over annotated entries; 0 if none), "sum", or "none" ((B, C), or (B,)
            for (B, N) sizes; 0 where unannotated).
        border: "background" (default) or "open", as in :func:`sizeseg.ops.components.object_sizes`;
            an infinite size (no background under "open") counts as ``2 * max(spatial shape)``.
        criterion: "squared" (default), "absolute", "relative" or "symmetric" (per matched pair of
            objects; the module doc says how each prices an unmatched object).
        connectivity: None (8 in 2D, 26 in 3D), or 4 / 8, 6 / 26: what makes one object.
        generator: torch.Generator on the logits' device for reproducible samples.
        noise_scale: the logistic noise's scale tau: a positive number or a (B, C)-broadcastable
            tensor, as in :func:`sizeseg.size_loss`.

    Returns:
        The reduced loss (float32); its gradient w.r.t. ``logits`` is the sampled estimate.
        Runs on the CPU (numba); CUDA logits are sampled on the GPU and labelled on the host.

    Example:
        >>> import torch
        >>> logits = torch.zeros(2, 1, 8, 8, requires_grad=True)
        >>> sizes = pad_object_sizes([[4, 2, 2], None])   # three objects; no annotation
        >>> loss = object_size_loss(logits, sizes, generator=torch.Generator().manual_seed(0))
        >>> loss.backward(); bool(logits.grad[1].abs().sum() == 0)
        True
    """
    _, code = object_criterion(criterion)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples: expected an int >= 1, got {n_samples!r}")
    target, dropped = check_object_size_inputs(logits, sizes, border, reduction, connectivity)
    tau = check_noise_scale(noise_scale, tuple(logits.shape[:2]), logits.device)
    annotated = ~torch.isnan(target).all(-1)
    per_entry = _SampledObjectSizeLoss.apply(logits, target, annotated, code, n_samples, border,
                                             connectivity, generator, tau)
    return reduce_size_loss(per_entry, annotated, reduction, dropped)


class ObjectSizeLoss(nn.Module):
    """Module form of :func:`object_size_loss`; ``loss(logits, sizes)``.

    Args:
        n_samples, reduction, border, criterion, connectivity, noise_scale: as in
            :func:`object_size_loss` (``noise_scale`` a positive number here).
        seed: if given, samples come from a generator seeded once with it (per device).

    Example:
        >>> import torch
        >>> loss_fn = ObjectSizeLoss(n_samples=2, seed=0)
        >>> logits = torch.randn(2, 1, 16, 16, requires_grad=True)
        >>> loss = loss_fn(logits, pad_object_sizes([[6, 4], [2]]))
        >>> loss.backward(); bool(torch.isfinite(loss))
        True
    """

    def __init__(self, n_samples: int = 1, reduction: str = "mean", border: str = "background",
                 criterion: str | SizeCriterion = "squared", connectivity: int | None = None,
                 seed: int | None = None, noise_scale: float = DEFAULT_NOISE_SCALE):
        super().__init__()
        self.criterion, _ = object_criterion(criterion)
        check_noise_scale(noise_scale, (1, 1), torch.device("cpu"))
        check_module_options(n_samples, reduction, border)
        if connectivity is not None and connectivity not in (4, 8, 6, 26):
            raise ValueError(f"connectivity: expected None, 4, 8, 6 or 26, got {connectivity!r}")
        self.n_samples, self.reduction, self.border = n_samples, reduction, border
        self.connectivity, self.seed, self.noise_scale = connectivity, seed, float(noise_scale)
        self._generators: dict[str, torch.Generator] = {}

    _generator = SizeLoss._generator  # one generator per device, seeded once with self.seed

    def forward(self, logits: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        device = logits.device if isinstance(logits, torch.Tensor) else torch.device("cpu")
        return object_size_loss(logits, sizes, self.n_samples, self.reduction, self.border,
                                self.criterion, self.connectivity, self._generator(device),
                                self.noise_scale)

    def extra_repr(self) -> str:
        return (f"n_samples={self.n_samples}, reduction={self.reduction!r}, border={self.border!r}, "
                f"criterion={self.criterion!r}, connectivity={self.connectivity}, "
                f"noise_scale={self.noise_scale:g}")


__all__ = ["ObjectSizeLoss", "object_size_loss", "matched_size_loss", "object_flip_losses", "pad_object_sizes",
           "check_object_size_inputs", "max_objects", "object_criterion"]
