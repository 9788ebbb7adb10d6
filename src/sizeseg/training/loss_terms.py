"""Loss-term adapters: they turn a batch dictionary into the arguments of a loss.

A loss term is any object with ``name`` (str), ``weight`` (float) and
``__call__(logits, batch) -> scalar tensor``; :class:`~sizeseg.training.SegmentationModule`
sums ``weight * term(logits, batch)`` over its terms. A term whose images are absent from a
batch returns a zero that is still connected to the graph (DDP needs every parameter used).
"""

from __future__ import annotations

import math
from typing import Mapping, Protocol, runtime_checkable

import torch
import torch.nn.functional as F


@runtime_checkable
class LossTerm(Protocol):
    name: str
    weight: float

    def __call__(self, logits: torch.Tensor, batch: Mapping) -> torch.Tensor: ...


def zero_like_graph(logits: torch.Tensor) -> torch.Tensor:
    """A scalar zero that depends on ``logits`` (so backward reaches every parameter)."""
    return logits.sum() * 0.0


#: units a size term may measure its sizes in (see :func:`unit_scale`)
SIZE_UNITS = ("pixels", "image")


def _check_units(units: str) -> str:
    if units not in SIZE_UNITS:
        raise ValueError(f"units: expected one of {', '.join(SIZE_UNITS)}, got {units!r}")
    return units


def unit_scale(logits: torch.Tensor, units: str, degree: int | None) -> float:
    r"""The factor that turns a loss of size-degree ``degree`` from pixels into fractions of the image.

    With ``units="image"`` a size is measured in image sides, :math:`s / N^{1/d}` (N pixels or
    voxels of one image, d spatial dimensions), and an area in images, :math:`A / N`. A loss that
    scales as :math:`c^k` when every size is multiplied by c (``degree`` k: 2 for the squared error,
    1 for the absolute, 0 for the relative ones) is then multiplied by :math:`N^{-k/d}`. Why: a
    squared size error in pixels grows 4x when the same images are prepared at twice the resolution,
    while BCE (a mean over pixels) does not, so a weight that balances the two at one resolution is
    4x too strong at the next (measured on ACDC LV, ``results/sizes-acdc/``); in image units the
    loss's value does not depend on the working resolution.

    Example:
        >>> unit_scale(torch.zeros(2, 1, 64, 64), "image", 2)   # 1 / 64^2
        0.000244140625
        >>> unit_scale(torch.zeros(2, 1, 64, 64), "pixels", 2)
        1.0
    """
    if units == "pixels":
        return 1.0
    if degree is None:
        raise ValueError("units: 'image' needs a size criterion whose scaling with the size unit is known "
                         "(its class attribute degree); this one has none")
    spatial = logits.shape[2:]
    pixels = math.prod(int(n) for n in spatial)
    return float(pixels) ** (-degree / len(spatial))


def _sized_images(logits: torch.Tensor, batch: Mapping) -> torch.Tensor:
    """Boolean (B,) of the images whose ``batch["size"]`` is not NaN; the sizes' shape checked."""
    sizes = batch["size"]
    if sizes.ndim != 1 or sizes.shape[0] != logits.shape[0]:
        raise ValueError(f"batch['size']: expected shape ({logits.shape[0]},), got {tuple(sizes.shape)}")
    return ~torch.isnan(sizes)


def _check_weight(weight: float) -> float:
    if not isinstance(weight, (int, float)) or weight < 0:
        raise ValueError(f"weight: expected a number >= 0, got {weight!r}")
    return float(weight)


def _on_masked_images(loss, logits: torch.Tensor, batch: Mapping) -> torch.Tensor:
    """``loss(logits, mask)`` over the images with ``batch["has_mask"]``; a connected zero when there are none."""
    has = batch["has_mask"].bool()
    if logits.shape != batch["mask"].shape:
        raise ValueError(f"logits and batch['mask']: expected equal shapes, got {tuple(logits.shape)} and {tuple(batch['mask'].shape)}")
    if not bool(has.any()):
        return zero_like_graph(logits)
    return loss(logits[has], batch["mask"][has].float())


class BCETerm:
    r"""Binary cross-entropy with logits (paper 1, eq. 6) on the images that carry a mask.

    :math:`\frac{1}{|M| V} \sum_{b \in M} \sum_i a_{bi} (1 - y_{bi}) + \log(1 + e^{-a_{bi}})`
    over the images ``M`` with ``batch["has_mask"]`` (eq. 6 summed over pixels, averaged here).

    Example:
        >>> batch = {"mask": torch.ones(2, 1, 4, 4), "has_mask": torch.tensor([True, False])}
        >>> round(BCETerm()(torch.zeros(2, 1, 4, 4), batch).item(), 4)
        0.6931
    """

    def __init__(self, weight: float = 1.0, name: str = "bce") -> None:
        self.weight = _check_weight(weight)
        self.name = name

    def __call__(self, logits: torch.Tensor, batch: Mapping) -> torch.Tensor:
        return _on_masked_images(F.binary_cross_entropy_with_logits, logits, batch)


class DiceTerm:
    r"""Soft Dice loss (MONAI ``DiceLoss(sigmoid=True, batch=True)``) on the images that carry a mask.

    :math:`1 - \frac{2 \sum_i p_i y_i + \epsilon}{\sum_i p_i + \sum_i y_i + \epsilon}` with
    :math:`p = \sigma(a)`, the sums over every pixel of the masked images of the batch (one Dice per
    batch: slices without the object do not each count as a perfect or a failed score).

    Example:
        >>> batch = {"mask": torch.ones(2, 1, 4, 4), "has_mask": torch.tensor([True, False])}
        >>> round(DiceTerm()(torch.full((2, 1, 4, 4), 20.0), batch).item(), 4)
        0.0
    """

    def __init__(self, weight: float = 1.0, name: str = "dice") -> None:
        from monai.losses import DiceLoss

        self.weight = _check_weight(weight)
        self.name = name
        self.loss = DiceLoss(sigmoid=True, batch=True)

    def __call__(self, logits: torch.Tensor, batch: Mapping) -> torch.Tensor:
        return _on_masked_images(self.loss, logits, batch)


class SizeTerm:
    r"""The size loss (paper 1) on the images that carry a size: ``SizeLoss(n_samples)(logits, sizes)``.

    Images whose ``batch["size"]`` is NaN are left out. See :class:`sizeseg.SizeLoss` for the
    sampled gradient of the square loss :math:`(s - g(\hat y))^2`. With several classes
    (logits (B, C, ...), C > 1) the sizes are each class's largest listed size (from
    ``batch["object_sizes"]`` (B, C, K)), one independent sigmoid per class; images or classes without a
    size contribute nothing. This is the single-object loss: of several objects of a class it
    sees only the largest (use :class:`ObjectSizeTerm` for lists). ``units="image"`` measures the
    sizes in image sides (:func:`unit_scale`), so that one weight holds at any working resolution.

    Example:
        >>> term = SizeTerm(n_samples=1)
        >>> batch = {"size": torch.tensor([float("nan")])}
        >>> term(torch.zeros(1, 1, 6, 6, requires_grad=True), batch).item()
        0.0
    """

    def __init__(self, n_samples: int = 1, weight: float = 1.0, name: str = "size", units: str = "pixels",
                 **loss_kwargs) -> None:
        from sizeseg.losses.size_criteria import get_criterion

        if not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples: expected a positive int, got {n_samples!r}")
        self.weight = _check_weight(weight)
        self.units = _check_units(units)
        self._degree = get_criterion(loss_kwargs.get("criterion", "squared")).degree
        unit_scale(torch.zeros(1, 1, 1), self.units, self._degree)  # an unknown degree fails here, not mid-run
        self.name = name
        self.n_samples = n_samples
        self.loss_kwargs = loss_kwargs
        self._loss = None

    def _module(self):
        if self._loss is None:
            try:
                from sizeseg import SizeLoss
            except ImportError:  # before the package exports it
                from sizeseg.losses.size_loss import SizeLoss

            self._loss = SizeLoss(n_samples=self.n_samples, **self.loss_kwargs)
        return self._loss

    def __call__(self, logits: torch.Tensor, batch: Mapping) -> torch.Tensor:
        if logits.shape[1] > 1:
            sizes = _class_lists(logits, batch)[..., 0]  # (B, C): each class's largest
            keep = ~torch.isnan(sizes).all(-1)
            if not bool(keep.any()):
                return zero_like_graph(logits)
            return self._module()(logits[keep], sizes[keep]) * unit_scale(logits, self.units, self._degree)
        keep = _sized_images(logits, batch)
        if not bool(keep.any()):
            return zero_like_graph(logits)
        return self._module()(logits[keep], batch["size"][keep].float()) * unit_scale(logits, self.units, self._degree)


def _class_lists(logits: torch.Tensor, batch: Mapping) -> torch.Tensor:
    """``batch["object_sizes"]`` as (B, C, K) sorted descending (NaN last), checked against the logits."""
    if "object_sizes" not in batch:
        raise ValueError(f"batch['object_sizes']: logits have {logits.shape[1]} channels or the loss takes lists of "
                         "object sizes, but the batch carries no size lists; the data needs extra['object_sizes'] "
                         "(e.g. finetune --sizes CSV)")
    lists = batch["object_sizes"].float()
    if lists.ndim == 2:
        lists = lists[:, None]
    if lists.ndim != 3 or tuple(lists.shape[:2]) != tuple(logits.shape[:2]):
        raise ValueError(f"batch['object_sizes']: expected shape ({logits.shape[0]}, {logits.shape[1]}, K) for logits "
                         f"{tuple(logits.shape)}, got {tuple(lists.shape)}")
    filled = torch.where(torch.isnan(lists), torch.full_like(lists, -1.0), lists)
    ordered = torch.sort(filled, dim=-1, descending=True).values
    return torch.where(ordered < 0, torch.full_like(ordered, float("nan")), ordered)


class ObjectSizeTerm:
    r"""The per-object size loss (:class:`~sizeseg.losses.object_size_loss.ObjectSizeLoss`) on the
    images whose ``batch["object_sizes"]`` (B, C, K) lists any size.

    Each class's predicted objects (the connected components of its sampled mask, 8-connected in
    2D and 26 in 3D unless ``connectivity`` says otherwise) are matched to its listed sizes in
    sorted order, missing objects counting as size 0; one independent sigmoid per class.
    ``units="image"``: sizes in image sides, as :class:`SizeTerm`'s.

    Example:
        >>> nan = float("nan")
        >>> batch = {"object_sizes": torch.tensor([[[4.0, 2.0]], [[nan, nan]]])}
        >>> term = ObjectSizeTerm(seed=0)
        >>> logits = torch.zeros(2, 1, 8, 8, requires_grad=True)
        >>> term(logits, batch).backward(); bool(logits.grad[1].abs().sum() == 0)
        True
    """

    def __init__(self, n_samples: int = 1, weight: float = 1.0, name: str = "object_size", units: str = "pixels",
                 **loss_kwargs) -> None:
        from sizeseg.losses.object_size_loss import ObjectSizeLoss

        self.weight = _check_weight(weight)
        self.name = name
        self.units = _check_units(units)
        self._loss = ObjectSizeLoss(n_samples=n_samples, **loss_kwargs)

    def __call__(self, logits: torch.Tensor, batch: Mapping) -> torch.Tensor:
        lists = _class_lists(logits, batch)
        keep = ~torch.isnan(lists).all(-1).all(-1)
        if not bool(keep.any()):
            return zero_like_graph(logits)
        return self._loss(logits[keep], lists[keep]) * unit_scale(logits, self.units, self._loss.criterion.degree)


class SizeMatchedTerm:
    r"""BCE to the size-matched pseudo-label (:func:`sizeseg.losses.size_matched_bce`) on the
    images that carry a size and no mask: the prediction, moved onto the annotated size, is the target.

    Example:
        >>> batch = {"size": torch.tensor([2.0, float("nan")]), "has_mask": torch.tensor([False, False])}
        >>> SizeMatchedTerm()(torch.zeros(2, 1, 5, 5, requires_grad=True), batch).shape
        torch.Size([])
    """

    def __init__(self, weight: float = 1.0, name: str = "size_matched") -> None:
        self.weight = _check_weight(weight)
        self.name = name

    def __call__(self, logits: torch.Tensor, batch: Mapping) -> torch.Tensor:
        from sizeseg.losses.size_matched_bce import size_matched_bce

        keep = _sized_images(logits, batch) & ~batch["has_mask"].bool()
        if not bool(keep.any()):
            return zero_like_graph(logits)
        return size_matched_bce(logits[keep], batch["size"][keep].float(), spatial_dims=logits.ndim - 2)


class AreaBoundTerm:
    r"""Paper 2's size penalty with the area bounds that object sizes imply, on the sized images.

    An object of size :math:`s` (the side of its largest inscribed square) has an area of about
    :math:`r s^2`, with the shape ratio :math:`r` in a narrow range ``ratio_range = (lo, hi)``
    measured on masked images (:func:`sizeseg.data.bounds.area_ratio_range`). For each image with
    a size this term is :func:`sizeseg.losses.size_penalty.size_penalty` with bounds
    :math:`[lo\,s^2, hi\,s^2]` on the soft area

    .. math:: A = \sum_p \sigma(a_p / \tau),

    the expected area of the mask that :class:`sizeseg.SizeLoss` samples with noise scale
    :math:`\tau`. With lists of object sizes (``batch["object_sizes"]``) the bounds are the sums
    :math:`[lo \sum_k s_k^2, hi \sum_k s_k^2]` over the image's objects.

    Why: the size of the largest inscribed square gives no gradient to pixels that do not change
    it (a second blob, a protrusion), and size fine-tuning lets them grow; the upper bound reaches
    every pixel. Why :math:`\tau`: with the plain sigmoid, thousands of background pixels at
    p ~ 0.05 add up to more than the object's area, and the upper bound then shrinks the object.

    The penalty is divided by the pixel count N, as paper 2's (``units="pixels"``): it then grows
    with the working resolution. ``units="image"`` measures the area in images, A / N: the penalty is
    :math:`((A - b) / N)^2` and its value does not depend on the resolution (:func:`unit_scale`).

    One class (logits ``(B, 1, *spatial)``); images without a size add nothing. ``per_object``
    says which annotation the bounds come from: the lists (True, for the per-object loss) or each
    image's one size ``batch["size"]`` (False, for the single-object loss, whose annotation does
    not include the other objects even where the batch carries their lists).

    Example:
        >>> term = AreaBoundTerm((1.0, 2.0), noise_scale=1.0)
        >>> batch = {"size": torch.tensor([2.0, float("nan")])}   # bounds [4, 8] on image 0
        >>> round(term(torch.zeros(2, 1, 4, 4), batch).item(), 4)       # soft area 8: inside
        0.0
        >>> round(term(torch.full((2, 1, 4, 4), 10.0), batch).item(), 2)  # about 16: (16 - 8)^2 / 16
        4.0
    """

    def __init__(self, ratio_range: tuple[float, float], weight: float = 1.0, noise_scale: float = 1.0,
                 name: str = "area_bound", per_object: bool = True, units: str = "pixels") -> None:
        lo, hi = (float(r) for r in ratio_range)
        if not (0 <= lo <= hi and hi < float("inf")):
            raise ValueError(f"ratio_range: expected 0 <= lo <= hi < inf, got {ratio_range!r}")
        if not noise_scale > 0:
            raise ValueError(f"noise_scale: expected a number > 0, got {noise_scale!r}")
        self.ratio_range = (lo, hi)
        self.weight = _check_weight(weight)
        self.noise_scale = float(noise_scale)
        self.name = name
        self.per_object = bool(per_object)
        self.units = _check_units(units)

    def __call__(self, logits: torch.Tensor, batch: Mapping) -> torch.Tensor:
        from sizeseg.losses.size_penalty import size_penalty

        if logits.shape[1] != 1:
            raise ValueError(f"area bounds: expected one-class logits (B, 1, ...), got {tuple(logits.shape)}")
        if self.per_object and "object_sizes" in batch:
            lists = batch["object_sizes"].float().reshape(logits.shape[0], -1)
            known = ~torch.isnan(lists).all(-1)
            squares = torch.nan_to_num(lists, nan=0.0).square().sum(-1)
        else:
            known = _sized_images(logits, batch)
            squares = torch.nan_to_num(batch["size"].float(), nan=0.0).square()
        if not bool(known.any()):
            return zero_like_graph(logits)
        lo, hi = self.ratio_range
        squares = squares[known]
        foreground = torch.stack([lo * squares, hi * squares], -1)
        bounds = torch.stack([torch.full_like(foreground, float("nan")), foreground], 1)  # no bound on background
        penalty = size_penalty(logits[known] / self.noise_scale, bounds.to(logits.dtype), sigmoid=True)
        # (A - b)^2 / N in pixels; in image units ((A - b) / N)^2, i.e. one more 1 / N (an area has degree d)
        return penalty * unit_scale(logits, self.units, logits.ndim - 2)
