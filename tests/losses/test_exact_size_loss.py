"""exact_size_loss against a direct, independent enumeration; size criteria values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from sizeseg.losses.exact import ExactSizeLoss, exact_size_loss
from sizeseg.losses.size_criteria import (AbsoluteError, BoundPenalty, RelativeSquaredError, SizeCriterion,
                                          SquaredError, bound_penalty, get_criterion)

from scipy.ndimage import distance_transform_cdt


def _size_scipy(mask: np.ndarray) -> float:
    padded = np.pad(mask, 1)  # border="background"
    return 2.0 * distance_transform_cdt(padded, metric="chessboard").max()


def _direct(logits: np.ndarray, target: float, tau: float) -> float:
    """sum_y Pr(y) (t - g(y))^2 with a plain loop over all masks; Pr(y_i = 1) = sigmoid(a_i / tau)."""
    p = 1 / (1 + np.exp(-logits.astype(np.float64) / tau))
    total = 0.0
    for bits in itertools.product([0, 1], repeat=p.size):
        y = np.array(bits, bool).reshape(p.shape)
        prob = np.prod(np.where(y, p, 1 - p))
        total += prob * (target - _size_scipy(y)) ** 2
    return total


@pytest.mark.parametrize("tau", [1.0, 0.25, 3.0])
def test_matches_direct_enumeration(tau):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 1, 3, 3))
    sizes = np.array([2.0, 4.0, 0.0])
    got = exact_size_loss(torch.tensor(logits), torch.tensor(sizes), reduction="none", noise_scale=tau)
    for i in range(3):
        assert got[i].item() == pytest.approx(_direct(logits[i, 0], sizes[i], tau), rel=1e-5)


def test_per_entry_noise_scale_is_each_entry_alone():
    logits = torch.randn(3, 2, 2, 2, generator=torch.Generator().manual_seed(0))
    sizes = torch.tensor([[2.0, 4.0], [0.0, 2.0], [4.0, 2.0]])
    tau = torch.tensor([[0.5, 2.0], [1.0, 0.1], [3.0, 0.7]])
    got = exact_size_loss(logits, sizes, reduction="none", noise_scale=tau)
    for b in range(3):
        for c in range(2):
            alone = exact_size_loss(logits[b:b + 1, c:c + 1], sizes[b:b + 1, c:c + 1], reduction="none",
                                    noise_scale=float(tau[b, c]))
            assert got[b, c].item() == pytest.approx(alone.item(), rel=1e-6)
    # the loss only depends on a / tau: scaling both leaves it unchanged
    assert torch.allclose(exact_size_loss(logits * 2, sizes, noise_scale=tau * 2),
                          exact_size_loss(logits, sizes, noise_scale=tau))


def test_gradient_matches_finite_differences():
    logits = torch.randn(1, 1, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    sizes = torch.tensor([2.0])
    assert torch.autograd.gradcheck(lambda a: exact_size_loss(a, sizes), (logits.requires_grad_(True),))
    assert torch.autograd.gradcheck(lambda a: exact_size_loss(a, sizes, noise_scale=0.3), (logits,))


def test_refuses_large_images_and_module_form():
    with pytest.raises(ValueError, match="at most 16 pixels"):
        exact_size_loss(torch.zeros(1, 1, 4, 5), torch.ones(1))
    assert exact_size_loss(torch.zeros(1, 1, 4, 4), torch.ones(1)).isfinite()
    a = torch.randn(2, 1, 2, 2)
    assert torch.equal(ExactSizeLoss(reduction="sum")(a, torch.tensor([2.0, 0.0])),
                       exact_size_loss(a, torch.tensor([2.0, 0.0]), reduction="sum"))


def test_criteria_values():
    pred = torch.tensor([0.0, 3.0, 5.0, 9.0])
    assert SquaredError()(pred, torch.tensor(4.0)).tolist() == [16.0, 1.0, 1.0, 25.0]
    assert AbsoluteError()(pred, torch.tensor(4.0)).tolist() == [4.0, 1.0, 1.0, 5.0]
    assert RelativeSquaredError()(pred, torch.tensor(4.0)).tolist() == [1.0, 1 / 16, 1 / 16, 25 / 16]
    # an empty object (t = 0) divides by 1, not 0; a 10 % error weighs the same at any size
    assert RelativeSquaredError()(pred, torch.tensor(0.0)).tolist() == [0.0, 9.0, 25.0, 81.0]
    rel = get_criterion("relative")(torch.tensor([4.4, 88.0]), torch.tensor([4.0, 80.0]))
    assert torch.allclose(rel, torch.tensor([0.01, 0.01]))
    assert BoundPenalty()(pred, torch.tensor([3.0, 5.0])).tolist() == [9.0, 0.0, 0.0, 16.0]
    assert bound_penalty(pred, torch.tensor([2.0, math.inf])).tolist() == [4.0, 0.0, 0.0, 0.0]
    crit = BoundPenalty()
    assert crit.annotated(torch.tensor([[1.0, 2.0], [math.nan, 2.0], [1.0, math.nan]])).tolist() == [True, False, False]
    assert isinstance(get_criterion("absolute"), AbsoluteError)
    custom = SquaredError()
    assert get_criterion(custom) is custom and isinstance(custom, SizeCriterion)
    with pytest.raises(ValueError, match="lower bounds"):
        crit.validate(torch.tensor([[-1.0, 2.0]]))
    with pytest.raises(ValueError, match="lower bounds"):
        crit.validate(torch.tensor([[math.inf, math.inf]]))


def test_exact_bounds_zero_inside():
    # all logits very negative: the empty mask (size 0) is almost sure; bounds [0, 2] cost ~0
    a = torch.full((1, 1, 3, 3), -20.0)
    assert exact_size_loss(a, torch.tensor([[0.0, 2.0]]), criterion="bounds").item() < 1e-6
    assert exact_size_loss(a, torch.tensor([[4.0, 8.0]]), criterion="bounds").item() == pytest.approx(16.0, rel=1e-4)
