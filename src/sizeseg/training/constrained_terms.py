"""Loss-term adapters for the constrained (size-bound) losses, and the log-barrier's t schedule.

Each term has ``name``, ``weight`` and ``__call__(logits, batch)`` (see
:mod:`sizeseg.training.loss_terms`). Logits are ``(B, 1, *spatial)`` (a sigmoid network: the
two-class probabilities ``[1 - sigmoid, sigmoid]`` are built here) or ``(B, K, *spatial)``
(softmax over K). The batch supplies ``weak`` (B, *spatial) and ``bounds`` (B, 2): the bounds
``[a, b]`` of the object class (class 1); the background is unconstrained. Images whose bounds
are NaN carry no constraint. Several classes take the multi-class path of the size losses:
``bounds`` (B, K, 2) or (B, K - 1, 2) per class (:func:`object_bounds`), and the discrete size
one sigmoid channel per class with (B, C, 2) bounds.
"""

from __future__ import annotations

from typing import Mapping

import lightning.pytorch as pl
import torch

from sizeseg.losses.constrained import two_class_probabilities
from sizeseg.losses.kl_size import kl_size_loss
from sizeseg.losses.log_barrier import log_barrier_size_loss
from sizeseg.losses.partial_ce import partial_cross_entropy
from sizeseg.losses.proposals import proposal_loss
from sizeseg.losses.size_penalty import size_penalty


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities ``(B, K, *spatial)`` from sigmoid (one channel) or softmax logits."""
    if logits.ndim < 3:
        raise ValueError(f"logits: expected shape (B, C, *spatial), got {tuple(logits.shape)}")
    return two_class_probabilities(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)


def object_bounds(batch: Mapping, probs: torch.Tensor) -> torch.Tensor:
    """``(B, K, 2)`` bounds for class probabilities ``probs`` (B, K, *spatial) from ``batch["bounds"]``:

    - (B, 2): the bounds of class 1 (the object of a binary task), NaN (free) on the other classes;
    - (B, K, 2): one pair per class, background included;
    - (B, K - 1, 2): one pair per foreground class 1..K-1 (the classes of a label map, as
      ``--classes`` and ``extra["object_sizes"]`` number them), the background free.
    """
    bounds = batch["bounds"]
    b, k = probs.shape[:2]
    shapes = [(b, 2), (b, k, 2), (b, k - 1, 2)]
    if not isinstance(bounds, torch.Tensor) or tuple(bounds.shape) not in shapes:
        got = tuple(bounds.shape) if isinstance(bounds, torch.Tensor) else type(bounds).__name__
        raise ValueError(f"batch['bounds']: expected shape {shapes[0]}, {shapes[1]} or {shapes[2]} for {k} "
                         f"classes, got {got}")
    if bounds.ndim == 3 and bounds.shape[1] == k:
        return bounds.to(probs)
    out = torch.full((b, k, 2), float("nan"), dtype=probs.dtype, device=probs.device)
    out[:, 1:] = bounds.to(probs).reshape(b, -1, 2)
    return out


class _Term:
    def __init__(self, weight: float, name: str) -> None:
        if not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"weight: expected a number >= 0, got {weight!r}")
        self.weight, self.name = float(weight), name


class PartialCETerm(_Term):
    """Partial cross-entropy on ``batch["weak"]`` (labelled pixels only).

    Example:
        >>> batch = {"weak": torch.tensor([[[1, -1]]])}
        >>> round(PartialCETerm()(torch.zeros(1, 1, 1, 2), batch).item(), 4)
        0.6931
    """

    def __init__(self, weight: float = 1.0, name: str = "partial_ce") -> None:
        super().__init__(weight, name)

    def __call__(self, logits: torch.Tensor, batch: Mapping) -> torch.Tensor:
        return partial_cross_entropy(probabilities(logits), batch["weak"].long())


class SizePenaltyTerm(_Term):
    """Size-bound penalty (eq. 3, normalised by the pixel count) on ``batch["bounds"]``; weight 1e-2 as the paper.

    Example:
        >>> batch = {"bounds": torch.tensor([[0.0, 1.0]])}
        >>> SizePenaltyTerm()(torch.zeros(1, 1, 2, 2), batch)   # (2 - 1)^2 / 4
        tensor(0.2500)
    """

    def __init__(self, weight: float = 1e-2, name: str = "size_penalty") -> None:
        super().__init__(weight, name)

    def __call__(self, logits: torch.Tensor, batch: Mapping) -> torch.Tensor:
        probs = probabilities(logits)
        return size_penalty(probs, object_bounds(batch, probs))


class LogBarrierTerm(_Term):
    """Log-barrier extension of the bounds with ``t = t0 * t_factor ** epoch``.

    :class:`LogBarrierSchedule` calls :meth:`set_epoch` at the start of every training epoch,
    so ``t`` follows the epoch counter (also after resuming from a checkpoint).

    Example:
        >>> term = LogBarrierTerm(t=5.0)
        >>> term.set_epoch(1); round(term.t, 2)
        5.5
    """

    def __init__(self, weight: float = 1e-3, t: float = 5.0, t_factor: float = 1.1, name: str = "log_barrier") -> None:
        super().__init__(weight, name)
        if not t > 0 or not t_factor >= 1:
            raise ValueError(f"t and t_factor: expected t > 0 and t_factor >= 1, got {t!r}, {t_factor!r}")
        self.t0, self.t, self.t_factor = float(t), float(t), float(t_factor)

    def set_epoch(self, epoch: int) -> None:
        self.t = self.t0 * self.t_factor ** int(epoch)

    def __call__(self, logits: torch.Tensor, batch: Mapping) -> torch.Tensor:
        probs = probabilities(logits)
        return log_barrier_size_loss(probs, object_bounds(batch, probs), self.t)


class LogBarrierSchedule(pl.Callback):
    """Set ``t`` of every :class:`LogBarrierTerm` of the module from the epoch, at each epoch start."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for term in getattr(pl_module, "loss_terms", []):
            if isinstance(term, LogBarrierTerm):
                term.set_epoch(trainer.current_epoch)


class ProposalTerm(_Term):
    """Cross-entropy against Pathak's proposals built under ``batch["bounds"]`` (weak pixels fixed).

    ``hard=True``: against the proposal's arg-max mask (a synthetic ground truth, one reading of
    the constrained-CNN paper); ``hard=False`` (default): against the latent distribution itself.

    Example:
        >>> batch = {"bounds": torch.tensor([[0.0, 4.0]]), "weak": torch.full((1, 2, 2), -1)}
        >>> round(ProposalTerm(iterations=10)(torch.zeros(1, 1, 2, 2), batch).item(), 4)
        0.6931
    """

    def __init__(self, weight: float = 1.0, iterations: int = 500, hard: bool = False, name: str = "proposals") -> None:
        super().__init__(weight, name)
        self.iterations, self.hard = iterations, bool(hard)

    def __call__(self, logits: torch.Tensor, batch: Mapping) -> torch.Tensor:
        probs = probabilities(logits)
        return proposal_loss(probs, object_bounds(batch, probs), weak=batch["weak"].long(), iterations=self.iterations,
                             hard=self.hard)


class KLSizeTerm(_Term):
    """KL(v || mean softmax) with the target object proportion ``v_1`` = mid-point of ``batch["bounds"]`` / N.

    With bounds ``[s, s]`` for an approximate size ``s`` this is Fan, Zhang and Boykov's size-target
    loss; images with NaN bounds are left out.

    Example:
        >>> batch = {"bounds": torch.tensor([[2.0, 2.0]])}
        >>> KLSizeTerm()(torch.zeros(1, 1, 2, 2), batch)
        tensor(0.)
    """

    def __init__(self, weight: float = 1.0, name: str = "kl_size") -> None:
        super().__init__(weight, name)

    def __call__(self, logits: torch.Tensor, batch: Mapping) -> torch.Tensor:
        probs = probabilities(logits)
        bounds = batch["bounds"].to(probs)
        keep = ~torch.isnan(bounds).any(-1)
        if not bool(keep.any()):
            return logits.sum() * 0.0
        pixels = probs[0, 0].numel()
        fg = (bounds[keep].mean(-1) / pixels).clamp(0.0, 1.0)
        target = torch.zeros(int(keep.sum()), probs.shape[1], dtype=probs.dtype, device=probs.device)
        target[:, 1], target[:, 0] = fg, 1 - fg
        return kl_size_loss(probs[keep], target)


class DiscreteSizeBoundTerm(_Term):
    """The first paper's discrete size through :class:`sizeseg.losses.size_loss.SizeLoss` with the bound penalty.

    The size of a thresholded sample is ``2 * max Chebyshev distance to background`` (paper 1);
    the loss is ``max(0, a - s)^2 + max(0, s - b)^2`` with ``batch[bounds_key]`` ``(B, 2)`` read in
    those size units (not pixel counts), its gradient the sampled estimate of paper 1, eq. 21.
    ``bounds_key="size_bounds"`` lets it sit beside a soft-size term that reads pixel counts from
    ``batch["bounds"]``. One sigmoid channel per class: (B, 1, *spatial) logits with (B, 2)
    bounds, or (B, C, *spatial) with (B, C, 2) bounds (NaN pairs leave a class free).

    Example:
        >>> batch = {"bounds": torch.tensor([[0.0, 100.0]])}
        >>> DiscreteSizeBoundTerm(seed=0)(torch.zeros(1, 1, 8, 8), batch)
        tensor(0.)
    """

    def __init__(self, weight: float = 1e-3, n_samples: int = 1, seed: int | None = 0, name: str = "discrete_size",
                 bounds_key: str = "bounds") -> None:
        super().__init__(weight, name)
        if bounds_key not in ("bounds", "size_bounds"):
            raise ValueError(f"bounds_key: expected 'bounds' or 'size_bounds', got {bounds_key!r}")
        self.bounds_key = bounds_key
        from sizeseg.losses.size_loss import SizeLoss

        self.loss = SizeLoss(n_samples=n_samples, criterion="bounds", seed=seed)

    def __call__(self, logits: torch.Tensor, batch: Mapping) -> torch.Tensor:
        bounds = batch[self.bounds_key].to(logits)
        per_class = logits.ndim >= 3 and bounds.ndim == 3 and tuple(bounds.shape[:2]) == tuple(logits.shape[:2])
        if logits.ndim < 3 or not (per_class or logits.shape[1] == 1):
            raise ValueError(f"logits: the discrete size needs one sigmoid channel per class: (B, 1, *spatial) with "
                             f"(B, 2) bounds or (B, C, *spatial) with (B, C, 2), got logits {tuple(logits.shape)} "
                             f"and bounds {tuple(bounds.shape)}")
        keep = ~torch.isnan(bounds).any(-1)
        if per_class:
            keep = keep.any(-1)
        if not bool(keep.any()):
            return logits.sum() * 0.0
        return self.loss(logits[keep], bounds[keep])
