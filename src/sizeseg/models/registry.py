"""``build_model(name, ...)``: every network the training code can build, by name."""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

#: name -> (module, class, fixed keyword arguments). One line per model; the class is
#: imported only when built. Classes take ``in_channels, out_channels, spatial_dims``.
MODELS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "unet": ("sizeseg.models.unet", "UNet", {"backbone": "resnet18"}),
    "unet-resnet18": ("sizeseg.models.unet", "UNet", {"backbone": "resnet18"}),
    "unet-resnet34": ("sizeseg.models.unet", "UNet", {"backbone": "resnet34"}),
    # Narrow decoder: same encoder, about 3x cheaper decoder; for CPU runs and tests.
    "unet-small": ("sizeseg.models.unet", "UNet", {"backbone": "resnet18", "decoder_channels": (64, 32, 16, 16, 8)}),
    # A narrow plain U-Net (~0.1 M parameters): tests, the quick demo.
    "unet-tiny": ("sizeseg.models.unet", "TinyUNet", {}),
    # MONAI's residual U-Net, widths 16-128 (~0.2 M parameters), batch norm: the constrained experiment's CPU profile.
    "unet-plain": ("sizeseg.models.unet", "PlainUNet", {}),
    # The same with MONAI's default instance norm (slower to start training on ACDC; kept for the comparison).
    "unet-plain-instancenorm": ("sizeseg.models.unet", "PlainUNet", {"norm": "instance"}),
    "enet": ("sizeseg.models.enet", "ENet", {}),
}


def check_model_name(name: Any, argument: str = "name") -> str:
    """``name`` if it is a key of :data:`MODELS`, else a ValueError naming ``argument`` and the choices."""
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"{argument}: expected one of {sorted(MODELS)}, got {name!r}")
    return name


def build_model(name: str, in_channels: int = 1, out_channels: int = 1, spatial_dims: int = 2, **kwargs: Any) -> nn.Module:
    """Build the network registered as ``name`` in :data:`MODELS`.

    Args:
        name: a key of :data:`MODELS` (e.g. ``"unet"``, ``"unet-resnet34"``).
        in_channels: image channels, taken from the data.
        out_channels: logit channels (1 for binary tasks).
        spatial_dims: 2 or 3.
        **kwargs: extra keyword arguments for the model class (override the registry's).

    Example:
        >>> net = build_model("unet-small", in_channels=1, out_channels=1)
        >>> type(net).__name__
        'UNet'
    """
    module, cls, fixed = MODELS[check_model_name(name)]
    model_cls = getattr(importlib.import_module(module), cls)
    return model_cls(in_channels=in_channels, out_channels=out_channels, spatial_dims=spatial_dims, **{**fixed, **kwargs})
