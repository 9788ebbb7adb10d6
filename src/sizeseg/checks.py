"""Input checks shared by the losses, the metrics and the weak labels.

One message style, ``"<arg>: expected ..., got ..."``; one :data:`IGNORE_INDEX` for unlabelled
pixels; one set of :data:`REDUCTIONS`.

Two kinds of check:

* **shape and dtype checks** read only tensor metadata; they always run.
* **value checks** (NaN, ranges, sums to one, bound order) read tensor values back to the host,
  which stalls a CUDA stream until the GPU has caught up. They run only when validation is on,
  as with ``torch.distributions``: per call through a loss's ``validate_args=True/False``, or,
  where ``validate_args`` is left as ``None``, through the process-wide switch
  :func:`set_validate_args` (on by default, so a new user's mistakes surface as a clear error).
  Turn it off in a training loop once the inputs are known to be right::

      sizeseg.checks.set_validate_args(False)

Example:
    >>> import torch
    >>> check_reduction("avg")
    Traceback (most recent call last):
    ...
    ValueError: reduction: expected one of ('mean', 'sum', 'none'), got 'avg'
    >>> probability_tolerance(torch.bfloat16, classes=2)
    0.015625
"""

from __future__ import annotations

from typing import Any

import torch

IGNORE_INDEX = -1
"""Weak-label value of an unlabelled pixel."""

REDUCTIONS = ("mean", "sum", "none")
"""The reductions every loss accepts."""

_FLOOR_TOLERANCE = 1e-3  # float32/float64 probabilities computed outside torch.softmax still pass

_validate_args_default = True


def set_validate_args(value: bool) -> None:
    """Turn the value checks of every call with ``validate_args=None`` on or off (default on).

    >>> set_validate_args(False); validate_args_enabled(None)
    False
    >>> set_validate_args(True); validate_args_enabled(None), validate_args_enabled(False)
    (True, False)
    """
    global _validate_args_default
    if not isinstance(value, bool):
        raise TypeError(f"value: expected a bool, got {type(value).__name__}")
    _validate_args_default = value


def validate_args_enabled(validate_args: bool | None) -> bool:
    """Whether a call runs its value checks: ``validate_args`` itself, or the switch when None."""
    if validate_args is None:
        return _validate_args_default
    if not isinstance(validate_args, bool):
        raise TypeError(f"validate_args: expected True, False or None, got {validate_args!r}")
    return validate_args


def shape_of(value: Any) -> Any:
    """What to print after "got" for a value that should have been a tensor."""
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def check_tensor(value: Any, name: str, floating: bool = False) -> None:
    """Raise TypeError unless ``value`` is a tensor (floating-point when ``floating``)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {value.dtype}")


def check_reduction(reduction: Any) -> None:
    """Raise ValueError unless ``reduction`` is one of :data:`REDUCTIONS`."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")


def reduce(per_item: torch.Tensor, reduction: str) -> torch.Tensor:
    """``reduction`` over the leading axis of per-image (or per-volume) values ``(B,)``.

    ``"mean"`` of an empty batch is 0 (still in the graph), not the NaN of an empty mean.

    >>> reduce(torch.tensor([1.0, 3.0]), "mean"), reduce(torch.zeros(0), "mean")
    (tensor(2.), tensor(0.))
    """
    if reduction == "mean":
        return per_item.mean() if per_item.numel() else per_item.sum()
    if reduction == "sum":
        return per_item.sum()
    return per_item


def probability_tolerance(dtype: torch.dtype, classes: int) -> float:
    r"""How far probabilities of ``dtype`` may stray from [0, 1] and from summing to one.

    :math:`\max(10^{-3},\ K\,\epsilon_{dtype})`: each of the ``K`` rounded probabilities is off by
    at most half an ulp (:math:`\epsilon / 2` near 1), so ``K eps`` leaves a factor two for the
    softmax's own rounding. bfloat16 (eps 2^-7) with two classes: 1/64.
    """
    return max(_FLOOR_TOLERANCE, classes * torch.finfo(dtype).eps)


def check_probabilities(probs: Any, name: str = "probs", validate: bool = True) -> None:
    """Raise unless ``probs`` is a float tensor ``(B, K, *spatial)``, K >= 2, in [0, 1], summing to one over K.

    The value checks (finite, range, sum; see :func:`probability_tolerance`) run only when ``validate``.
    """
    check_tensor(probs, name, floating=True)
    if probs.ndim < 3:
        raise ValueError(f"{name}: expected shape (B, K, *spatial) with at least one spatial axis, "
                         f"got {tuple(probs.shape)}")
    if probs.shape[1] < 2:
        raise ValueError(f"{name}: expected K >= 2 class probabilities along axis 1, got shape "
                         f"{tuple(probs.shape)}; for one-channel logits pass sigmoid=True "
                         "(or use two_class_probabilities)")
    if not validate or not probs.numel():
        return
    tol = probability_tolerance(probs.dtype, probs.shape[1])
    with torch.no_grad():
        finite = torch.isfinite(probs)
        if not bool(finite.all()):  # NaN passes every range check below
            raise ValueError(f"{name}: expected finite probabilities, got {int((~finite).sum())} NaN or "
                             f"infinite value(s) in shape {tuple(probs.shape)}")
        low, high = probs.min().item(), probs.max().item()
        if low < -tol or high > 1 + tol:
            raise ValueError(f"{name}: expected values in [0, 1] (for logits pass softmax=True or sigmoid=True), "
                             f"got values in [{low:.4g}, {high:.4g}]")
        err = (probs.sum(dim=1, dtype=torch.float32) - 1).abs().max().item()
        if err > tol:
            raise ValueError(f"{name}: expected probabilities summing to one over the class axis 1 "
                             f"(apply softmax first, or pass softmax=True), got a largest deviation "
                             f"of {err:.4g} (tolerance {tol:.3g} for {probs.dtype})")


def check_finite(value: torch.Tensor, name: str, validate: bool = True) -> None:
    """Raise ValueError if ``value`` holds NaN or inf (only when ``validate``)."""
    if validate and value.numel() and not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name}: expected finite values, got NaN or inf")


def check_weak(weak: Any, probs: torch.Tensor, name: str = "weak", validate: bool = True) -> None:
    """Raise unless ``weak`` is an integer tensor ``(B, *spatial)`` of classes in ``[0, K)`` or :data:`IGNORE_INDEX`.

    The class range is checked only when ``validate``.
    """
    check_tensor(weak, name)
    if weak.is_floating_point() or weak.dtype == torch.bool:
        raise TypeError(f"{name}: expected an integer tensor of class indices, got dtype {weak.dtype}")
    expected = (probs.shape[0], *probs.shape[2:])
    if tuple(weak.shape) != expected:
        raise ValueError(f"{name}: expected shape (B, *spatial) = {expected} to match probs, got {tuple(weak.shape)}")
    if validate and weak.numel():
        bad = (weak != IGNORE_INDEX) & ((weak < 0) | (weak >= probs.shape[1]))
        if bad.any():
            raise ValueError(f"{name}: expected class indices in [0, {probs.shape[1]}) or {IGNORE_INDEX} "
                             f"(unlabelled), got value {weak[bad][0].item()}")


def check_bounds(bounds: Any, probs: torch.Tensor, name: str = "bounds", validate: bool = True) -> torch.Tensor:
    """``bounds`` as ``(B, K, 2)`` on the device of ``probs``, NaNs resolved.

    The dtype is that of ``probs``, at least float32 (a bound of 1001 pixels is 1000 in bfloat16).
    Accepts ``(B, K, 2)`` or ``(K, 2)`` (shared by every image). A NaN lower bound becomes 0, a
    NaN upper bound +inf. When ``validate``: lower bounds finite, both >= 0, lower <= upper.
    """
    if not isinstance(bounds, torch.Tensor):
        bounds = torch.as_tensor(bounds, dtype=probs.dtype)
    batch, classes = probs.shape[:2]
    if bounds.ndim == 2:
        bounds = bounds.unsqueeze(0).expand(batch, -1, -1)
    if bounds.ndim != 3 or bounds.shape != (batch, classes, 2):
        raise ValueError(f"{name}: expected shape (B, K, 2) = ({batch}, {classes}, 2) or (K, 2) = ({classes}, 2) "
                         f"to match probs {tuple(probs.shape)}, got {tuple(bounds.shape)}")
    bounds = bounds.to(device=probs.device, dtype=torch.promote_types(probs.dtype, torch.float32))
    lower = torch.nan_to_num(bounds[..., 0], nan=0.0, posinf=float("inf"), neginf=float("-inf"))
    upper = torch.where(torch.isnan(bounds[..., 1]), torch.full_like(bounds[..., 1], float("inf")), bounds[..., 1])
    if validate:
        if torch.isinf(lower).any():
            raise ValueError(f"{name}: expected finite lower bounds (NaN for none), got inf")
        if (lower < 0).any() or (upper < 0).any():
            raise ValueError(f"{name}: expected non-negative bounds, got minimum "
                             f"{torch.minimum(lower, upper).min().item():.4g}")
        if (lower > upper).any():
            idx = tuple(torch.nonzero(lower > upper)[0].tolist())
            raise ValueError(f"{name}: expected lower <= upper, got a={lower[idx].item():.4g} > "
                             f"b={upper[idx].item():.4g} at (image, class) {idx}")
    return torch.stack([lower, upper], dim=-1)


def binary_pair(pred: Any, target: Any, validate: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Check two binary masks of equal shape ``(B, *spatial)``; return them flattened to ``(B, V)`` bools.

    A non-bool mask must hold only 0 and 1 (checked when ``validate``).
    """
    for name, value in (("pred", pred), ("target", target)):
        check_tensor(value, name)
        if value.ndim < 2:
            raise ValueError(f"{name}: expected shape (B, *spatial), got {tuple(value.shape)}")
        if validate and value.dtype != torch.bool and not bool(((value == 0) | (value == 1)).all()):
            raise ValueError(f"{name}: expected a binary mask (bool or values in {{0, 1}}), got other values")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target: expected equal shapes, got {tuple(pred.shape)} and {tuple(target.shape)}")
    return pred.flatten(1).bool(), target.flatten(1).bool()  # flatten: reshape(0, -1) is ambiguous


__all__ = ["IGNORE_INDEX", "REDUCTIONS", "set_validate_args", "validate_args_enabled", "check_tensor",
           "check_reduction", "reduce", "probability_tolerance", "check_probabilities", "check_finite",
           "check_weak", "check_bounds", "binary_pair", "shape_of"]
