"""One size convention everywhere: the array's edge is background (``border="background"``).

A 4x4 square in the corner of an 8x8 image has size 4 for every op, loss, metric and data
preparation (under ``border="open"`` it would be 8); no public entry point defaults to another
border.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest
import torch

import sizeseg
from sizeseg.data.sizes import object_sizes
from sizeseg.metrics import SquaredSizeError, predicted_size
from sizeseg.ops import DistanceTransform, FlipSizes, ObjectSize, flip_sizes_and_size, size_matched_mask

PACKAGES = ("sizeseg.ops", "sizeseg.losses", "sizeseg.metrics", "sizeseg.data")


def _public_callables():
    seen = {}
    modules = [sizeseg]
    for name in PACKAGES:
        package = importlib.import_module(name)
        modules.append(package)
        for info in pkgutil.iter_modules(package.__path__, f"{name}."):
            modules.append(importlib.import_module(info.name))
    for module in modules:
        for attr, value in vars(module).items():
            if attr.startswith("_") or not (inspect.isfunction(value) or inspect.isclass(value)):
                continue
            if getattr(value, "__module__", "").startswith("sizeseg"):
                seen[f"{value.__module__}.{value.__qualname__}"] = value
    return seen


def test_every_public_entry_point_defaults_to_the_background_border():
    defaults = {}
    for name, value in _public_callables().items():
        try:
            params = inspect.signature(value.__init__ if inspect.isclass(value) else value).parameters
        except (TypeError, ValueError):
            continue
        # a required ``border`` (internal checks) has no default to disagree
        if "border" in params and params["border"].default is not inspect.Parameter.empty:
            defaults[name] = params["border"].default
    # the test cannot pass on an empty list: the known entry points are all in it
    for known in ("distance_transform", "object_size", "flip_sizes", "flip_sizes_and_size", "DistanceTransform",
                  "ObjectSize", "FlipSizes", "size_loss", "SizeLoss", "exact_size_loss", "size_matched_mask",
                  "size_matched_bce", "SizeMatchedBCE"):
        assert any(n.endswith(f".{known}") for n in defaults), known
    assert {n: d for n, d in defaults.items() if d != "background"} == {}


def _corner_square(spatial_dims: int = 2) -> torch.Tensor:
    mask = torch.zeros((8,) * spatial_dims, dtype=torch.bool)
    mask[(slice(0, 4),) * spatial_dims] = True
    return mask


def test_a_corner_square_has_size_4_for_every_entry_point():
    mask = _corner_square()
    logits = torch.where(mask, 30.0, -30.0)[None, None]  # (1, 1, 8, 8), saturated: samples equal the mask
    assert float(sizeseg.object_size(mask)) == 4.0
    assert float(sizeseg.object_size(mask, border="open")) == 8.0  # the other convention, on request only
    assert float(ObjectSize()(mask)) == 4.0
    assert 2 * int(sizeseg.distance_transform(mask).max()) == 2 * int(DistanceTransform()(mask).max()) == 4
    flips, size = flip_sizes_and_size(mask)
    assert float(size) == 4.0 and float(flips[7, 7]) == 4.0  # a lone far pixel does not change the size
    assert torch.equal(FlipSizes()(mask), sizeseg.flip_sizes(mask))
    assert float(object_sizes(mask[None].numpy())[0]) == 4.0
    assert predicted_size(logits).tolist() == [4.0]
    assert SquaredSizeError()(logits, torch.tensor([4.0])).tolist() == [0.0]
    assert torch.equal(size_matched_mask(logits[:, 0], torch.tensor([4.0]))[0], mask)
    assert float(sizeseg.SizeLoss(seed=0)(logits, torch.tensor([4.0]))) == 0.0
    assert float(sizeseg.SizeLoss(seed=0)(logits, torch.tensor([8.0]))) == 16.0
    assert float(sizeseg.size_matched_bce(logits, torch.tensor([4.0]))) < 1e-6


def test_the_exact_loss_and_3d_share_the_convention():
    tiny = torch.zeros(4, 4, dtype=torch.bool)
    tiny[:2, :2] = True  # a 2x2 square in the corner: size 2 (4 under border="open")
    logits = torch.where(tiny, 30.0, -30.0)[None, None]
    assert float(sizeseg.exact_size_loss(logits, torch.tensor([2.0]))) == pytest.approx(0.0, abs=1e-6)
    cube = _corner_square(3)
    assert float(sizeseg.object_size(cube, spatial_dims=3)) == 4.0
    assert predicted_size(torch.where(cube, 30.0, -30.0)[None, None]).tolist() == [4.0]
    assert float(object_sizes(cube[None].numpy().astype(np.uint8))[0]) == 4.0
