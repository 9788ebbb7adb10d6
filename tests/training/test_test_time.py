import torch

from sizeseg.training.pipeline import predict_logits
from sizeseg.training.test_time import grid_symmetries, symmetric_logits


def test_symmetric_logits_average_each_symmetry_mapped_back():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 5, padding=2))
    x = torch.randn(3, 1, 12, 12)
    with torch.no_grad():
        views = [torch.rot90(net(torch.rot90(x, k, (-2, -1))), -k, (-2, -1)) for k in range(4)]
        views += [torch.rot90(net(torch.rot90(x, k, (-2, -1)).flip(-1)).flip(-1), -k, (-2, -1)) for k in range(4)]
        expected = torch.stack(views).mean(0)
        torch.testing.assert_close(symmetric_logits(net, x, batch_size=2), expected)
        assert not torch.allclose(predict_logits(net, x), expected, atol=1e-4)  # the network is not symmetric


def test_symmetric_logits_of_rectangles_and_volumes_use_flips_only():
    torch.manual_seed(1)
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    rect = torch.randn(2, 1, 8, 6)
    net3 = torch.nn.Conv3d(1, 1, 3, padding=1)
    vol = torch.randn(1, 1, 4, 6, 6)
    with torch.no_grad():
        flips = torch.stack([net(rect.flip(a)).flip(a) if a else net(rect) for a in ((), (-1,), (-2,), (-2, -1))])
        torch.testing.assert_close(symmetric_logits(net, rect), flips.mean(0))
        views = [net3(vol.flip(f)).flip(f) if f else net3(vol) for _, f in grid_symmetries(3, square=True)]
        assert len(views) == 8
        torch.testing.assert_close(symmetric_logits(net3, vol), torch.stack(views).mean(0))
