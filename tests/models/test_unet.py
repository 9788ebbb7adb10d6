import pytest
import torch

from sizeseg.models import MODELS, UNet, build_model, pad_to_multiple

SMALL = (16, 8, 8, 8, 4)


@pytest.mark.parametrize("shape", [(1, 2, 48, 32), (2, 1, 33, 7), (1, 3, 5, 64)])
def test_pad_to_multiple_round_trip(shape):
    x = torch.randn(shape)
    padded, crop = pad_to_multiple(x, 32)
    assert all(s % 32 == 0 and s >= o for s, o in zip(padded.shape[2:], shape[2:]))
    assert torch.equal(padded[crop], x)
    # Everything outside the crop is zero padding.
    assert padded.abs().sum() == pytest.approx(x.abs().sum().item(), rel=1e-6)


def test_pad_rejects_bad_input():
    with pytest.raises(ValueError, match="x"):
        pad_to_multiple(torch.zeros(4, 4), 32)
    with pytest.raises(ValueError, match="multiple"):
        pad_to_multiple(torch.zeros(1, 1, 4, 4), 0)


@pytest.mark.parametrize("hw", [(48, 32), (37, 21)])
def test_unet_2d_keeps_spatial_shape(hw):
    torch.manual_seed(0)
    net = UNet(3, 2, spatial_dims=2, decoder_channels=SMALL)
    y = net(torch.randn(2, 3, *hw))
    assert y.shape == (2, 2, *hw)
    y.sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_unet_3d_keeps_spatial_shape():
    net = UNet(1, 1, spatial_dims=3, backbone="resnet10", decoder_channels=SMALL)
    assert net(torch.randn(2, 1, 20, 17, 9)).shape == (2, 1, 20, 17, 9)


def test_unet_runs_the_inner_network_on_the_zero_padded_input_and_crops():
    torch.manual_seed(1)
    net = UNet(1, 1, decoder_channels=SMALL).eval()
    x = torch.randn(1, 1, 40, 24)
    padded, crop = pad_to_multiple(x, 32)
    outside = torch.ones_like(padded, dtype=torch.bool)
    outside[crop] = False
    with torch.no_grad():
        assert torch.allclose(net(x), net.net(padded)[crop])
        # The padding is seen by the network, so the check above pins it to zeros: other values
        # in the same pixels give another output.
        other = torch.where(outside, torch.full_like(padded, 5.0), padded)
        assert not torch.allclose(net(x), net.net(other)[crop])


def test_unet_validates():
    with pytest.raises(ValueError, match="backbone"):
        UNet(1, 1, backbone="vgg")
    with pytest.raises(ValueError, match="spatial_dims"):
        UNet(1, 1, spatial_dims=4)
    with pytest.raises(ValueError, match="in_channels"):
        UNet(0, 1)
    net = UNet(1, 1, decoder_channels=SMALL)
    with pytest.raises(ValueError, match=r"x: expected shape \(B, 1, \*, \*\), got \(2, 3, 8, 8\)"):
        net(torch.zeros(2, 3, 8, 8))


def test_build_model_registry():
    for name in MODELS:
        if name.startswith("unet") and name != "unet-tiny":
            net = build_model(name, in_channels=2, out_channels=1, spatial_dims=2)
            assert net.in_channels == 2
    assert build_model("unet-resnet34").backbone == "resnet34"
    with pytest.raises(ValueError, match="name: expected one of"):
        build_model("nope")


def test_tiny_unet_pads_and_crops():
    from sizeseg.models import TinyUNet

    net = build_model("unet-tiny", in_channels=2)
    assert isinstance(net, TinyUNet)
    x = torch.randn(2, 2, 45, 30)
    y = net(x)
    assert y.shape == (2, 1, 45, 30)
    padded, crop = pad_to_multiple(x, 16)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), net.net(padded)[crop])
    assert sum(p.numel() for p in net.parameters()) < 200_000


@pytest.mark.parametrize("shape, pads", [((8, 8, 8), (12, 12, 4, 4, 4, 4)), ((16, 5, 16), (8, 8, 5, 6, 0, 0))])
def test_tiny_unet_trains_on_volumes_no_side_of_which_exceeds_16(shape, pads):
    """Padded to 16 alone, such a volume reaches the bottleneck as one element, which instance
    norm refuses in training; its last axis is padded to 32 instead (``pads``: F.pad's, last axis first)."""
    torch.manual_seed(0)
    net = build_model("unet-tiny", spatial_dims=3).train()
    x = torch.randn(2, 1, *shape)
    y = net(x)
    assert y.shape == x.shape
    y.sum().backward()
    crop = tuple(slice(before, before + n) for before, n in zip(pads[-2::-2], shape))
    with torch.no_grad():
        net.eval()
        assert torch.allclose(net(x), net.net(torch.nn.functional.pad(x, pads))[(..., *crop)])


def test_plain_unet_pads_crops_and_validates():
    from sizeseg.models import PlainUNet

    net = build_model("unet-plain", in_channels=2)
    assert isinstance(net, PlainUNet)
    x = torch.randn(2, 2, 45, 30)
    assert net(x).shape == (2, 1, 45, 30)
    padded, crop = pad_to_multiple(x, 8)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), net.net(padded)[crop])
    assert 150_000 < sum(p.numel() for p in net.parameters()) < 300_000
    with pytest.raises(ValueError, match="channels: expected 4 positive widths"):
        PlainUNet(1, 1, channels=(8, 16))
    with pytest.raises(ValueError, match="norm: expected 'batch' or 'instance'"):
        PlainUNet(1, 1, norm="group")
    norms = {type(m).__name__ for m in build_model("unet-plain-instancenorm").modules()}
    assert "InstanceNorm2d" in norms and "BatchNorm2d" not in norms
    assert "BatchNorm2d" in {type(m).__name__ for m in net.modules()}
