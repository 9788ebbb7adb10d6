"""U-Net with a ResNet encoder: MONAI ``FlexibleUNet`` behind a pad-and-crop wrapper."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Encoders accepted by :class:`UNet` (no pretrained weights are ever downloaded).
UNET_BACKBONES: tuple[str, ...] = ("resnet10", "resnet18", "resnet34", "resnet50")


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Zero-pad the spatial dimensions of ``x`` up to the next multiple of ``multiple``.

    The padding is split evenly on both sides of each spatial dimension (the extra pixel, if
    any, goes to the end). Returns the padded tensor and the slices that crop it back.

    Args:
        x: tensor of shape (B, C, *spatial) with 1 to 3 spatial dimensions.
        multiple: positive integer.

    Returns:
        ``(padded, crop)`` with ``padded[crop]`` equal to ``x``.

    Example:
        >>> x = torch.ones(2, 1, 48, 30)
        >>> padded, crop = pad_to_multiple(x, 32)
        >>> tuple(padded.shape), torch.equal(padded[crop], x)
        ((2, 1, 64, 32), True)
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"x: expected shape (B, C, *spatial) with 1-3 spatial dims, got {tuple(x.shape)}")
    if not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"multiple: expected a positive int, got {multiple!r}")
    spatial = x.shape[2:]
    pads: list[int] = []
    crop: list[slice] = [slice(None), slice(None)]
    for size in spatial:
        total = (-size) % multiple
        before = total // 2
        crop.append(slice(before, before + size))
    # F.pad takes pairs from the last dimension backwards.
    for size in reversed(spatial):
        total = (-size) % multiple
        pads += [total // 2, total - total // 2]
    if any(pads):
        x = F.pad(x, pads)
    return x, tuple(crop)


def check_network_args(in_channels: int, out_channels: int, spatial_dims: int) -> None:
    """Validate the arguments every network constructor shares; ValueError naming the argument."""
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims: expected 2 or 3, got {spatial_dims!r}")


class UNet(nn.Module):
    r"""U-Net with a ResNet encoder and a mirroring decoder (MONAI ``FlexibleUNet``).

    The encoder downsamples five times, so inputs are zero-padded to a multiple of
    :math:`2^5 = 32` in every spatial dimension and the logits are cropped back: any input
    size works and the output has the input's spatial shape.

    Args:
        in_channels: channels of the input image (1 for grey MRI, 3 for RGB).
        out_channels: channels of the output logits (1 for a binary sigmoid task).
        spatial_dims: 2 or 3.
        backbone: one of :data:`UNET_BACKBONES`.
        decoder_channels: five decoder widths, deepest first.

    Shape:
        - input: (B, in_channels, *spatial)
        - output: (B, out_channels, *spatial) logits

    Example:
        >>> net = UNet(1, 1, spatial_dims=2, decoder_channels=(32, 16, 16, 8, 8))
        >>> net(torch.randn(2, 1, 48, 30)).shape
        torch.Size([2, 1, 48, 30])
    """

    multiple: int = 32

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        spatial_dims: int = 2,
        backbone: str = "resnet18",
        decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16),
    ) -> None:
        super().__init__()
        check_network_args(in_channels, out_channels, spatial_dims)
        if backbone not in UNET_BACKBONES:
            raise ValueError(f"backbone: expected one of {UNET_BACKBONES}, got {backbone!r}")
        if len(decoder_channels) != 5 or any(int(c) < 1 for c in decoder_channels):
            raise ValueError(f"decoder_channels: expected 5 positive ints, got {tuple(decoder_channels)!r}")
        from monai.networks.nets import FlexibleUNet

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.spatial_dims = spatial_dims
        self.backbone = backbone
        self.net = FlexibleUNet(
            in_channels=in_channels,
            out_channels=out_channels,
            backbone=backbone,
            pretrained=False,
            decoder_channels=tuple(int(c) for c in decoder_channels),
            spatial_dims=spatial_dims,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x: expected shape (B, {self.in_channels}, {', '.join(['*'] * self.spatial_dims)}), "
                f"got {tuple(x.shape)}"
            )
        padded, crop = pad_to_multiple(x, self.multiple)
        return self.net(padded)[crop]


class TinyUNet(nn.Module):
    r"""A narrow U-Net (MONAI ``BasicUNet``, about 0.1 M parameters) for tests and quick CPU demos.

    Four downsamplings, so inputs are zero-padded to a multiple of 16 (and, when no side exceeds 16,
    to 32 along the last axis, so the bottleneck holds more than one element) and the logits
    cropped back.

    Args:
        in_channels, out_channels, spatial_dims: as for :class:`UNet`.
        features: the six ``BasicUNet`` widths (four encoder levels, bottleneck, last decoder).

    Example:
        >>> TinyUNet(1, 1)(torch.randn(2, 1, 48, 30)).shape
        torch.Size([2, 1, 48, 30])
        >>> TinyUNet(1, 1, spatial_dims=3).train()(torch.randn(2, 1, 8, 8, 8)).shape  # small volumes too
        torch.Size([2, 1, 8, 8, 8])
    """

    multiple: int = 16

    def __init__(self, in_channels: int = 1, out_channels: int = 1, spatial_dims: int = 2,
                 features: tuple[int, ...] = (8, 8, 16, 32, 64, 8)) -> None:
        super().__init__()
        check_network_args(in_channels, out_channels, spatial_dims)
        if len(features) != 6:
            raise ValueError(f"features: expected 6 widths, got {tuple(features)!r}")
        from monai.networks.nets import BasicUNet

        self.in_channels, self.out_channels, self.spatial_dims = in_channels, out_channels, spatial_dims
        self.net = BasicUNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
                             features=tuple(int(f) for f in features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.ndim >= 3 and all(s <= self.multiple for s in x.shape[2:]):
            # the bottleneck (1/16 of each side) would hold one element, which instance norm
            # refuses in training: small inputs (8x8x8 volumes) go in padded to 32 along the last axis
            width = x.shape[-1]
            before = (2 * self.multiple - width) // 2
            padded = F.pad(x, (before, 2 * self.multiple - width - before))
            return UNet.forward(self, padded)[..., before:before + width]
        return UNet.forward(self, x)


class PlainUNet(nn.Module):
    r"""A plain residual U-Net (MONAI ``UNet``), about 0.2 M parameters: the network that trains well on a CPU.

    Three stride-2 downsamplings with widths ``channels`` and one residual unit per level
    (MONAI's ``num_res_units=1``). Inputs are zero-padded to a multiple of :math:`2^3 = 8` and the
    logits are cropped back.

    Batch normalisation by default (``norm="batch"``); ``norm="instance"`` gives MONAI's default
    instance normalisation. The comparison of the two on ACDC is in the constrained results README.

    Args:
        in_channels, out_channels, spatial_dims: as for :class:`UNet`.
        channels: the four level widths, shallowest first.
        norm: ``"batch"`` or ``"instance"`` (MONAI's default).

    Example:
        >>> PlainUNet(1, 1)(torch.randn(2, 1, 48, 30)).shape
        torch.Size([2, 1, 48, 30])
    """

    multiple: int = 8

    def __init__(self, in_channels: int = 1, out_channels: int = 1, spatial_dims: int = 2,
                 channels: tuple[int, ...] = (16, 32, 64, 128), norm: str = "batch") -> None:
        super().__init__()
        check_network_args(in_channels, out_channels, spatial_dims)
        if len(channels) != 4 or any(int(c) < 1 for c in channels):
            raise ValueError(f"channels: expected 4 positive widths, got {tuple(channels)!r}")
        if norm not in ("batch", "instance"):
            raise ValueError(f"norm: expected 'batch' or 'instance', got {norm!r}")
        from monai.networks.nets import UNet as MonaiUNet

        self.in_channels, self.out_channels, self.spatial_dims = in_channels, out_channels, spatial_dims
        self.net = MonaiUNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
                             channels=tuple(int(c) for c in channels), strides=(2, 2, 2), num_res_units=1,
                             norm=norm)

    forward = UNet.forward
