"""ENet (Paszke, Chaurasia, Kim and Culurciello, 2016), the network of the Constrained-CNN paper."""

from __future__ import annotations

import torch
from torch import nn

from sizeseg.models.unet import check_network_args, pad_to_multiple


def _bn_prelu(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), nn.PReLU(channels)]


class InitialBlock(nn.Module):
    """A stride-2 3x3 convolution concatenated with a 2x2 max-pool of the input: ``(B, C, H, W) -> (B, out, H/2, W/2)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if out_channels <= in_channels:
            raise ValueError(f"out_channels: expected more than in_channels={in_channels}, got {out_channels}")
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, stride=2, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.out = nn.Sequential(*_bn_prelu(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([self.conv(x), self.pool(x)], dim=1))


class Bottleneck(nn.Module):
    """Regular, dilated or asymmetric bottleneck: ``x + 1x1 -> conv -> 1x1`` (channels and size kept).

    ``kind`` is ``"regular"`` (3x3), ``"dilated"`` (3x3 with ``dilation``) or ``"asymmetric"``
    (a ``k x 1`` then a ``1 x k`` convolution, ``k = asymmetric``).
    """

    def __init__(self, channels: int, kind: str = "regular", dilation: int = 1, asymmetric: int = 5,
                 dropout: float = 0.1, ratio: int = 4) -> None:
        super().__init__()
        inner = max(channels // ratio, 1)
        if kind == "asymmetric":
            middle: list[nn.Module] = [
                nn.Conv2d(inner, inner, (asymmetric, 1), padding=(asymmetric // 2, 0), bias=False),
                nn.Conv2d(inner, inner, (1, asymmetric), padding=(0, asymmetric // 2), bias=False),
            ]
        elif kind in ("regular", "dilated"):
            middle = [nn.Conv2d(inner, inner, 3, padding=dilation, dilation=dilation, bias=False)]
        else:
            raise ValueError(f"kind: expected 'regular', 'dilated' or 'asymmetric', got {kind!r}")
        self.branch = nn.Sequential(
            nn.Conv2d(channels, inner, 1, bias=False), *_bn_prelu(inner),
            *middle, *_bn_prelu(inner),
            nn.Conv2d(inner, channels, 1, bias=False), nn.BatchNorm2d(channels),
            nn.Dropout2d(dropout),
        )
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.branch(x))


class DownsamplingBottleneck(nn.Module):
    """Halves the size: max-pool (indices kept for unpooling) + zero channel padding on the main path."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.1, ratio: int = 4) -> None:
        super().__init__()
        inner = max(in_channels // ratio, 1)
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.branch = nn.Sequential(
            nn.Conv2d(in_channels, inner, 2, stride=2, bias=False), *_bn_prelu(inner),
            nn.Conv2d(inner, inner, 3, padding=1, bias=False), *_bn_prelu(inner),
            nn.Conv2d(inner, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
            nn.Dropout2d(dropout),
        )
        self.extra = out_channels - in_channels
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        main, indices = self.pool(x)
        if self.extra > 0:
            main = torch.cat([main, main.new_zeros(main.shape[0], self.extra, *main.shape[2:])], dim=1)
        return self.act(main + self.branch(x)), indices


class UpsamplingBottleneck(nn.Module):
    """Doubles the size: 1x1 conv + max-unpooling with the encoder's indices on the main path,
    a transposed convolution on the branch."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.1, ratio: int = 4) -> None:
        super().__init__()
        inner = max(in_channels // ratio, 1)
        self.main = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.unpool = nn.MaxUnpool2d(2)
        self.branch = nn.Sequential(
            nn.Conv2d(in_channels, inner, 1, bias=False), *_bn_prelu(inner),
            nn.ConvTranspose2d(inner, inner, 2, stride=2, bias=False), *_bn_prelu(inner),
            nn.Conv2d(inner, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
            nn.Dropout2d(dropout),
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        main = self.unpool(self.main(x), indices)
        return self.act(main + self.branch(x))


#: Stage 2/3 sequence of the paper: (kind, dilation).
_STAGE = (("regular", 1), ("dilated", 2), ("asymmetric", 1), ("dilated", 4),
          ("regular", 1), ("dilated", 8), ("asymmetric", 1), ("dilated", 16))


class ENet(nn.Module):
    r"""ENet: initial block, three encoder stages, two decoder stages with max-unpooling.

    Layout (widths ``w0, w1, w2``, 16/64/128 in the paper): initial block to ``w0`` at 1/2;
    stage 1: downsampling bottleneck to ``w1`` at 1/4 + 4 regular; stage 2: downsampling to
    ``w2`` at 1/8 + regular, dilated 2, asymmetric 5, dilated 4, regular, dilated 8, asymmetric 5,
    dilated 16; stage 3: stage 2 without downsampling; stage 4: upsampling to ``w1`` + 2 regular;
    stage 5: upsampling to ``w0`` + 1 regular; a transposed convolution back to full size.
    Inputs whose size is not a multiple of 8 are zero-padded and the logits cropped back.
    2D only.

    Args:
        in_channels: image channels.
        out_channels: logit channels (2 for softmax over background/object, 1 for sigmoid).
        spatial_dims: must be 2.
        widths: ``(w0, w1, w2)``; ``(8, 32, 64)`` is a 4x cheaper variant for CPU runs.
        stage_repeats: how many times the 8-block stage is repeated (2 in the paper: stages 2 and 3).

    Shape:
        ``(B, in_channels, H, W) -> (B, out_channels, H, W)``

    Example:
        >>> net = ENet(1, 2, widths=(8, 16, 32))
        >>> net(torch.randn(2, 1, 36, 20)).shape
        torch.Size([2, 2, 36, 20])
    """

    multiple: int = 8

    def __init__(self, in_channels: int = 1, out_channels: int = 2, spatial_dims: int = 2,
                 widths: tuple[int, int, int] = (16, 64, 128), stage_repeats: int = 2) -> None:
        super().__init__()
        check_network_args(in_channels, out_channels, spatial_dims=2)  # ENet's own 2D check follows
        if not isinstance(stage_repeats, int) or stage_repeats < 1:
            raise ValueError(f"stage_repeats: expected a positive int, got {stage_repeats!r}")
        if spatial_dims != 2:
            raise ValueError(f"spatial_dims: ENet is 2D, expected 2, got {spatial_dims!r}")
        if len(widths) != 3 or not (in_channels < widths[0] <= widths[1] <= widths[2]):
            raise ValueError(f"widths: expected 3 non-decreasing ints above in_channels={in_channels}, got {widths!r}")
        w0, w1, w2 = (int(w) for w in widths)
        self.in_channels, self.out_channels, self.spatial_dims = in_channels, out_channels, spatial_dims
        self.initial = InitialBlock(in_channels, w0)
        self.down1 = DownsamplingBottleneck(w0, w1, dropout=0.01)
        self.stage1 = nn.Sequential(*[Bottleneck(w1, dropout=0.01) for _ in range(4)])
        self.down2 = DownsamplingBottleneck(w1, w2)
        self.stage23 = nn.Sequential(*[
            Bottleneck(w2, kind, dilation=dil) for _ in range(stage_repeats) for kind, dil in _STAGE
        ])
        self.up4 = UpsamplingBottleneck(w2, w1)
        self.stage4 = nn.Sequential(Bottleneck(w1), Bottleneck(w1))
        self.up5 = UpsamplingBottleneck(w1, w0)
        self.stage5 = Bottleneck(w0)
        self.head = nn.ConvTranspose2d(w0, out_channels, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x: expected shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        x, crop = pad_to_multiple(x, self.multiple)
        y = self.initial(x)
        y, idx1 = self.down1(y)
        y = self.stage1(y)
        y, idx2 = self.down2(y)
        y = self.stage23(y)
        y = self.stage4(self.up4(y, idx2))
        y = self.stage5(self.up5(y, idx1))
        return self.head(y)[crop]
