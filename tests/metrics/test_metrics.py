import numpy as np
import pytest
import torch

from sizeseg.metrics import (
    Dice, IoU, MeanOverImages, SquaredSizeError, dice_score, iou_score, predicted_size, squared_size_error,
    volume_dice_score,
)
from tests.builders import reference_size


def _random_masks(seed, shape=(6, 9, 7)):
    rng = np.random.default_rng(seed)
    level = (shape[0],) + (1,) * (len(shape) - 1)
    pred = rng.random(shape) < rng.random(level)
    target = rng.random(shape) < rng.random(level)
    pred[0] = target[0] = False  # both empty
    pred[1] = False  # one empty
    return pred, target


def _iou_eq23(pred, target):
    # Eq. 23 literally, with labels in {-1, +1}.
    y, yh = 2.0 * target - 1, 2.0 * pred - 1
    num = (1 + y + yh + y * yh).sum()
    den = (3 + y + yh - y * yh).sum()
    return 1.0 if den == 0 else num / den


@pytest.mark.parametrize("seed", range(5))
def test_iou_and_dice_match_direct_numpy(seed):
    pred, target = _random_masks(seed)
    iou = iou_score(torch.from_numpy(pred), torch.from_numpy(target).int())
    dice = Dice()(torch.from_numpy(pred).float(), torch.from_numpy(target))
    for b in range(len(pred)):
        assert iou[b].item() == pytest.approx(_iou_eq23(pred[b], target[b]), abs=1e-6)
        s = pred[b].sum() + target[b].sum()
        ref = 1.0 if s == 0 else 2 * (pred[b] & target[b]).sum() / s
        assert dice[b].item() == pytest.approx(ref, abs=1e-6)
    assert iou[0] == 1 and iou[1] == 0
    assert torch.equal(IoU()(torch.from_numpy(pred), torch.from_numpy(target)), iou)


def test_overlap_3d_and_channel_dim():
    pred, target = _random_masks(7, (3, 4, 5, 6))
    a = iou_score(torch.from_numpy(pred)[:, None], torch.from_numpy(target)[:, None])
    b = iou_score(torch.from_numpy(pred), torch.from_numpy(target))
    assert torch.equal(a, b)


def test_overlap_validates():
    with pytest.raises(ValueError, match=r"pred and target: expected equal shapes, got \(2, 3\) and \(2, 4\)"):
        iou_score(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="pred: expected a binary mask"):
        dice_score(torch.full((1, 3), 0.5), torch.zeros(1, 3))
    with pytest.raises(TypeError, match="target"):
        iou_score(torch.zeros(1, 3), np.zeros((1, 3)))


def test_squared_size_error_direct():
    pred = torch.tensor([3.0, 10.0, 0.0])
    target = torch.tensor([5.0, float("nan"), 2.0])
    e = squared_size_error(pred, target)
    assert e[0] == 4 and torch.isnan(e[1]) and e[2] == 4
    with pytest.raises(ValueError, match="target_size: expected sizes >= 0"):
        squared_size_error(pred, torch.tensor([-1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="pred_size: expected shape"):
        squared_size_error(torch.zeros(3, 1), target)


@pytest.mark.parametrize("seed", range(3))
def test_predicted_size_and_e_against_reference(seed):
    rng = np.random.default_rng(seed)
    logits = torch.from_numpy(rng.normal(size=(5, 1, 12, 10)).astype(np.float32))
    logits[:, :, 3:9, 2:8] += 3  # a solid block inside each image
    logits[0] = -1  # empty prediction
    sizes = predicted_size(logits)
    ref = np.array([reference_size(m[0] > 0) for m in logits.numpy()])
    np.testing.assert_allclose(sizes.numpy(), ref)
    target = torch.tensor([2.0, 4.0, float("nan"), 6.0, 0.0])
    e = SquaredSizeError()(logits, target)
    np.testing.assert_allclose(e.numpy(), (target.numpy() - ref) ** 2)


def test_mean_over_images_is_a_weighted_mean_of_batches():
    values = torch.tensor([1.0, 2.0, 3.0, 10.0, float("nan"), 5.0])
    m = MeanOverImages()
    m.update(values[:1])
    m.update(values[1:])
    assert m.compute().item() == pytest.approx(np.nanmean(values.numpy()))
    assert torch.isnan(MeanOverImages().compute())


@pytest.mark.parametrize("seed", range(3))
def test_volume_dice_pools_each_volumes_slices(seed):
    rng = np.random.default_rng(seed)
    pred, target = rng.random((9, 5, 4)) < 0.4, rng.random((9, 5, 4)) < 0.4
    volumes = np.array(["b", "a", "b", "c", "a", "c", "d", "b", "d"])
    pred[volumes == "d"] = target[volumes == "d"] = False  # an empty volume scores 1
    got = volume_dice_score(pred, target, volumes)
    for value, key in zip(got.tolist(), ["a", "b", "c", "d"]):
        p, t = pred[volumes == key], target[volumes == key]
        expected = 1.0 if p.sum() + t.sum() == 0 else 2 * (p & t).sum() / (p.sum() + t.sum())
        assert value == pytest.approx(expected, abs=1e-6)
    assert got.shape == (4,)


def test_volume_dice_rejects_ids_of_another_length():
    with pytest.raises(ValueError, match=r"S volume ids, got \(2, 3, 3\), \(2, 3, 3\) and 3 ids"):
        volume_dice_score(torch.zeros(2, 3, 3), torch.zeros(2, 3, 3), ["a", "b", "c"])


@pytest.mark.parametrize("seed", range(3))
def test_pooled_dice_on_hard_masks_is_torchmetrics_f1_over_all_pixels(seed):
    from torchmetrics.functional.classification import binary_f1_score

    from sizeseg.metrics import pooled_dice_score

    pred, target = _random_masks(seed)
    expected = binary_f1_score(torch.from_numpy(pred).long().reshape(-1), torch.from_numpy(target).long().reshape(-1))
    assert pooled_dice_score(pred, target).item() == pytest.approx(expected.item(), abs=1e-6)


def test_pooled_dice_on_soft_probabilities_and_empty_input():
    from sizeseg.metrics import pooled_dice_score

    rng = np.random.default_rng(0)
    prob, target = rng.random((4, 5, 6)), rng.random((4, 5, 6)) < 0.3
    expected = 2 * (prob * target).sum() / (prob.sum() + target.sum())
    assert pooled_dice_score(prob, target).item() == pytest.approx(expected, rel=1e-6)
    assert pooled_dice_score(np.zeros((2, 3, 3)), np.zeros((2, 3, 3))).item() == 1.0
    with pytest.raises(ValueError, match=r"pred: expected values in \[0, 1\]"):
        pooled_dice_score(prob * 2, target)
    with pytest.raises(ValueError, match="one shape"):
        pooled_dice_score(prob[:2], target)


@pytest.mark.parametrize("spatial", [(7, 9), (4, 5, 6)])
def test_iou_and_dice_match_monai(spatial):
    """MONAI's DiceMetric and MeanIoU as the reference (ignore_empty=False: two empty masks agree)."""
    from monai.metrics import DiceMetric, MeanIoU

    g = torch.Generator().manual_seed(len(spatial))
    pred = torch.rand((6, *spatial), generator=g) < torch.linspace(0.05, 0.9, 6).view(-1, *[1] * len(spatial))
    target = torch.rand((6, *spatial), generator=g) < 0.4
    pred[0] = target[0] = False  # both empty: 1
    target[1] = False            # empty target, something predicted: 0
    pred[2] = target[2]          # perfect: 1
    kw = dict(include_background=True, reduction="none", ignore_empty=False)
    want_dice = DiceMetric(**kw)(pred[:, None].float(), target[:, None].float())[:, 0]
    want_iou = MeanIoU(**kw)(pred[:, None].float(), target[:, None].float())[:, 0]
    assert torch.allclose(dice_score(pred, target), want_dice.float(), atol=1e-6)
    assert torch.allclose(iou_score(pred, target), want_iou.float(), atol=1e-6)
    assert torch.allclose(Dice()(pred, target), want_dice.float(), atol=1e-6)
    assert want_dice[0] == 1 and want_dice[1] == 0 and 0 < want_iou[3] < 1


def test_overlap_of_an_empty_batch_is_empty():
    empty = torch.zeros(0, 3, 4, dtype=torch.bool)
    assert dice_score(empty, empty).shape == (0,) and iou_score(empty, empty).shape == (0,)
