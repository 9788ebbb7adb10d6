"""Loss-term adapters of the constrained losses: batch to loss arguments, sigmoid adapter, t schedule."""

from __future__ import annotations

import pytest
import torch

from sizeseg.losses.kl_size import kl_size_loss
from sizeseg.losses.log_barrier import log_barrier_size_loss
from sizeseg.losses.partial_ce import partial_cross_entropy
from sizeseg.losses.proposals import proposal_loss
from sizeseg.losses.size_penalty import size_penalty
from sizeseg.training.constrained_terms import (
    KLSizeTerm,
    LogBarrierSchedule,
    LogBarrierTerm,
    PartialCETerm,
    ProposalTerm,
    SizePenaltyTerm,
    object_bounds,
    probabilities,
)

NAN = float("nan")


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    weak = torch.full((3, 6, 6), -1)
    weak[0, 2:4, 2:4] = 1
    weak[1, 0, 0] = 0
    return {
        "logits": torch.randn(3, 1, 6, 6, generator=g, dtype=torch.float64),
        "weak": weak,
        "bounds": torch.tensor([[2.0, 10.0], [0.0, 0.0], [NAN, NAN]], dtype=torch.float64),
    }


def test_sigmoid_logits_give_two_class_softmax(batch):
    x = batch["logits"]
    probs = probabilities(x)
    assert torch.allclose(probs, torch.softmax(torch.cat([torch.zeros_like(x), x], 1), 1))
    assert torch.allclose(probabilities(torch.cat([x, -x], 1)), torch.softmax(torch.cat([x, -x], 1), 1))


def test_terms_equal_their_losses(batch):
    x = batch["logits"]
    probs = torch.softmax(torch.cat([torch.zeros_like(x), x], 1), 1)
    full_bounds = torch.tensor([[[NAN, NAN], [2.0, 10.0]], [[NAN, NAN], [0.0, 0.0]], [[NAN, NAN], [NAN, NAN]]],
                               dtype=torch.float64)
    assert torch.equal(object_bounds(batch, probs).isnan(), full_bounds.isnan())
    assert PartialCETerm()(x, batch).item() == pytest.approx(partial_cross_entropy(probs, batch["weak"]).item())
    assert SizePenaltyTerm()(x, batch).item() == pytest.approx(size_penalty(probs, full_bounds).item())
    assert LogBarrierTerm(t=3.0)(x, batch).item() == pytest.approx(log_barrier_size_loss(probs, full_bounds, 3.0).item())
    want = proposal_loss(probs, full_bounds, weak=batch["weak"], iterations=40)
    assert ProposalTerm(iterations=40)(x, batch).item() == pytest.approx(want.item())
    # KL: target proportion = mid-point of the bounds / N, images with NaN bounds left out
    v = torch.tensor([[1 - 6 / 36, 6 / 36], [1.0, 0.0]], dtype=torch.float64)
    assert KLSizeTerm()(x, batch).item() == pytest.approx(kl_size_loss(probs[:2], v).item())
    assert SizePenaltyTerm().weight == 1e-2


def test_discrete_size_term_uses_size_loss_with_bounds(batch):
    import torch

    from sizeseg.losses.size_loss import size_loss
    from sizeseg.training.constrained_terms import DiscreteSizeBoundTerm

    x = batch["logits"].float()
    got = DiscreteSizeBoundTerm(seed=3)(x, batch)
    want = size_loss(x[:2], batch["bounds"][:2].float(), criterion="bounds", generator=torch.Generator().manual_seed(3))
    assert got.item() == pytest.approx(want.item())
    with pytest.raises(ValueError, match="one sigmoid channel"):
        DiscreteSizeBoundTerm()(torch.zeros(1, 2, 4, 4), {"bounds": torch.zeros(1, 2)})
    # beside a soft-size term: its own bounds (discrete size units) under "size_bounds"
    other = batch["bounds"] * 0 + torch.tensor([9.0, 12.0], dtype=batch["bounds"].dtype)  # NaN rows stay NaN
    beside = {**batch, "bounds": other, "size_bounds": batch["bounds"]}
    assert DiscreteSizeBoundTerm(seed=3, bounds_key="size_bounds")(x, beside).item() == pytest.approx(want.item())
    assert DiscreteSizeBoundTerm(seed=3)(x, beside).item() != pytest.approx(want.item())
    with pytest.raises(ValueError, match="bounds_key"):
        DiscreteSizeBoundTerm(bounds_key="sizes")


def test_term_gradients_reach_the_logits(batch):
    x = batch["logits"].clone().requires_grad_()
    total = sum(t(x, batch) for t in (PartialCETerm(), SizePenaltyTerm(), LogBarrierTerm(), KLSizeTerm()))
    total.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_log_barrier_schedule_follows_the_epoch():
    class FakeModule:
        loss_terms = [LogBarrierTerm(t=5.0, t_factor=1.1), PartialCETerm()]

    class FakeTrainer:
        current_epoch = 0

    schedule = LogBarrierSchedule()
    for epoch in (0, 3, 7):  # e.g. resumed at epoch 7
        FakeTrainer.current_epoch = epoch
        schedule.on_train_epoch_start(FakeTrainer, FakeModule)
        assert FakeModule.loss_terms[0].t == pytest.approx(5.0 * 1.1**epoch)


def test_bad_batch_bounds_and_weights(batch):
    bad = dict(batch, bounds=torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"batch\['bounds'\]: expected shape \(3, 2\)"):
        SizePenaltyTerm()(batch["logits"], bad)
    with pytest.raises(ValueError, match="lower <= upper"):
        SizePenaltyTerm()(batch["logits"], dict(batch, bounds=torch.tensor([[5.0, 1.0]] * 3)))
    with pytest.raises(ValueError, match="weight"):
        PartialCETerm(weight=-1)
    with pytest.raises(ValueError, match="t_factor"):
        LogBarrierTerm(t_factor=0.5)


@pytest.mark.parametrize("make_term", [
    lambda: SizePenaltyTerm(), lambda: LogBarrierTerm(t=3.0), lambda: KLSizeTerm(), lambda: ProposalTerm(iterations=20),
], ids=["size_penalty", "log_barrier", "kl_size", "proposals"])
def test_a_batch_of_b_images_is_the_mean_of_b_single_image_steps(make_term):
    """The size terms stay per image inside a batch: batching changes the step, not the loss."""
    g = torch.Generator().manual_seed(3)
    b = 5
    logits = torch.randn(b, 1, 8, 8, generator=g, dtype=torch.float64) * 3
    weak = torch.full((b, 8, 8), -1)
    weak[:, 3, 3] = 1
    bounds = torch.tensor([[4.0, 20.0], [0.0, 0.0], [10.0, 30.0], [1.0, 2.0], [30.0, 40.0]], dtype=torch.float64)
    term = make_term()
    batched = term(logits, {"weak": weak, "bounds": bounds})
    single = [term(logits[i:i + 1], {"weak": weak[i:i + 1], "bounds": bounds[i:i + 1]}) for i in range(b)]
    torch.testing.assert_close(batched, torch.stack(single).mean())


def test_dice_term_is_one_soft_dice_over_the_masked_images_of_the_batch():
    from sizeseg.training.loss_terms import DiceTerm

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 5, 5, generator=g)
    mask = (torch.rand(3, 1, 5, 5, generator=g) < 0.4).float()
    has = torch.tensor([True, False, True])
    p, y = torch.sigmoid(logits[has]), mask[has]
    expected = 1 - (2 * (p * y).sum() + 1e-5) / (p.sum() + y.sum() + 1e-5)
    got = DiceTerm()(logits, {"mask": mask, "has_mask": has})
    torch.testing.assert_close(got, expected)
    zero = DiceTerm()(logits.requires_grad_(), {"mask": mask, "has_mask": torch.zeros(3, dtype=torch.bool)})
    assert zero.item() == 0.0 and zero.requires_grad


def test_per_class_bounds_from_a_three_class_acdc_preparation(acdc):
    """The constrained losses on the label maps of ``prepare acdc --classes``: per-class bounds (N, 3, 2)
    from the class areas go through the dataset and collation to the terms, class c of the label map
    being softmax channel c (background 0) and sigmoid channel c - 1."""
    import numpy as np

    from sizeseg.data.acdc import build_acdc
    from sizeseg.data.datasets import SegmentationDataset, collate_batch
    from sizeseg.losses.size_loss import size_loss
    from sizeseg.training.constrained_terms import DiscreteSizeBoundTerm

    data = build_acdc(acdc, size=32, classes=("LV", "RV", "MYO"))
    areas = data.extra["class_areas"]
    bounds = np.stack([0.9 * areas, 1.1 * areas], -1)  # (N, 3, 2)
    bounds[1, 2] = np.nan  # one class of one slice without bounds
    batch = collate_batch([SegmentationDataset(data, bounds=bounds)[i] for i in range(4)])
    assert tuple(batch["bounds"].shape) == (4, 3, 2) and tuple(batch["mask"].shape) == (4, 3, 32, 32)
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 4, 32, 32, generator=g, dtype=torch.float64)  # background + 3 classes
    probs = torch.softmax(logits, 1)
    full = torch.cat([torch.full((4, 1, 2), NAN, dtype=torch.float64), batch["bounds"].double()], 1)
    assert torch.equal(object_bounds(batch, probs).isnan(), full.isnan())
    assert SizePenaltyTerm()(logits, batch).item() == pytest.approx(size_penalty(probs, full).item())
    assert SizePenaltyTerm()(logits, {"bounds": full}).item() == pytest.approx(size_penalty(probs, full).item())
    # the soft size of channel c is the area of label c: bounds around the true areas cost nothing
    exact = torch.cat([1 - batch["mask"].sum(1, keepdim=True), batch["mask"]], 1).double() * 50 - 25
    assert SizePenaltyTerm()(exact, batch).item() == pytest.approx(0.0, abs=1e-12)
    assert SizePenaltyTerm()(exact.roll(1, dims=1), batch).item() > 1.0  # classes moved: a cost
    sizes_bounds = torch.stack([(batch["object_sizes"][..., 0] - 2).clamp(min=0), batch["object_sizes"][..., 0] + 2], -1)
    sig = logits[:, 1:].float()
    got = DiscreteSizeBoundTerm(seed=3)(sig, {"bounds": sizes_bounds})
    want = size_loss(sig, sizes_bounds.float(), criterion="bounds", generator=torch.Generator().manual_seed(3))
    assert got.item() == pytest.approx(want.item())
    with pytest.raises(ValueError, match=r"expected shape \(4, 2\), \(4, 4, 2\) or \(4, 3, 2\) for 4 classes"):
        SizePenaltyTerm()(logits, {"bounds": torch.zeros(4, 2, 2)})
