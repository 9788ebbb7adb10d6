"""ENet: shapes for any input size, the blocks' shapes, a training step, input checks."""

from __future__ import annotations

import pytest
import torch

from sizeseg.models.enet import Bottleneck, DownsamplingBottleneck, ENet, UpsamplingBottleneck


@pytest.mark.parametrize("size", [(32, 32), (36, 20), (17, 9)])
def test_output_has_input_size(size):
    torch.manual_seed(0)
    net = ENet(1, 2, widths=(8, 16, 32), stage_repeats=1).eval()
    x = torch.randn(2, 1, *size)
    assert net(x).shape == (2, 2, *size)


def test_paper_width_parameter_count():
    # The ENet paper reports 0.37 M parameters for 16/64/128 widths (with its classifier).
    count = sum(p.numel() for p in ENet(1, 2).parameters())
    assert 0.3e6 < count < 0.4e6


def test_blocks_shapes_and_unpooling_restores_positions():
    torch.manual_seed(0)
    x = torch.randn(1, 8, 8, 8)
    down = DownsamplingBottleneck(8, 16).eval()
    y, idx = down(x)
    assert y.shape == (1, 16, 4, 4) and idx.shape == (1, 8, 4, 4)
    for kind, dil in (("regular", 1), ("dilated", 4), ("asymmetric", 1)):
        assert Bottleneck(16, kind, dilation=dil).eval()(y).shape == y.shape
    up = UpsamplingBottleneck(16, 8).eval()
    assert up(y, idx).shape == x.shape
    # max-unpooling puts each pooled value back where its maximum was
    pooled, indices = torch.nn.functional.max_pool2d(x, 2, return_indices=True)
    restored = torch.nn.functional.max_unpool2d(pooled, indices, 2)
    assert torch.equal(restored[restored != 0], x[restored != 0])


def test_gradient_step_lowers_the_loss():
    torch.manual_seed(0)
    net = ENet(1, 2, widths=(8, 16, 32), stage_repeats=1)
    x = torch.randn(2, 1, 16, 16)
    target = (x[:, 0] > 0).long()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), target)
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_registered_in_build_model():
    from sizeseg.models import build_model

    net = build_model("enet", in_channels=1, out_channels=2, widths=(8, 16, 32))
    assert isinstance(net, ENet)


def test_bad_arguments():
    with pytest.raises(ValueError, match="spatial_dims"):
        ENet(1, 2, spatial_dims=3)
    with pytest.raises(ValueError, match="widths"):
        ENet(1, 2, widths=(16, 8, 32))
    with pytest.raises(ValueError, match="kind"):
        Bottleneck(8, "wide")
    with pytest.raises(ValueError, match=r"x: expected shape \(B, 1, H, W\)"):
        ENet(1, 2, widths=(8, 16, 32))(torch.randn(1, 3, 16, 16))
