"""The constrained losses against direct computations (values and gradients) and their input checks."""

from __future__ import annotations

import math

import pytest
import torch

from sizeseg.losses.constrained import tag_bounds, two_class_probabilities
from sizeseg.losses.kl_size import kl_size_loss, size_targets
from sizeseg.losses.log_barrier import LogBarrierSizeLoss, log_barrier_extension, log_barrier_size_loss
from sizeseg.losses.partial_ce import partial_cross_entropy
from sizeseg.losses.proposals import pathak_proposals, proposal_loss
from sizeseg.losses.size_penalty import SizePenalty, size_penalty

NAN = float("nan")


def _probs(shape, seed=0, scale=2.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(shape, generator=g, dtype=dtype) * scale, dim=1)


def _direct_penalty(probs, bounds):
    """Loop over images and classes, straight from eq. 3, divided by the pixel count."""
    out = []
    for i in range(probs.shape[0]):
        total = 0.0
        for k in range(probs.shape[1]):
            s = float(probs[i, k].sum())
            a, b = bounds[i][k]
            a = 0.0 if math.isnan(a) else a
            b = math.inf if math.isnan(b) else b
            total += (s - a) ** 2 if s < a else (s - b) ** 2 if s > b else 0.0
        out.append(total / probs[i, 0].numel())
    return out


@pytest.mark.parametrize("shape", [(3, 3, 6, 5), (2, 2, 3, 4, 5)])
def test_size_penalty_matches_direct(shape):
    probs = _probs(shape)
    n = probs[0, 0].numel()
    # per image and class: below, inside, above, unbounded; upper-only (a = 0); suppression (b = 0)
    rows = [[0.6 * n, n], [0.0, 0.1 * n], [NAN, NAN]], [[0.0, 0.0], [0.2 * n, 0.9 * n], [NAN, 0.05 * n]], [
        [0.0, 0.01 * n], [NAN, NAN], [0.5 * n, 0.6 * n]]
    bounds = torch.tensor(rows[: shape[0]], dtype=torch.float64)[:, : shape[1]]
    got = size_penalty(probs, bounds, reduction="none")
    want = _direct_penalty(probs, bounds.tolist())
    assert torch.allclose(got, torch.tensor(want, dtype=torch.float64))
    assert torch.isclose(size_penalty(probs, bounds), got.mean())
    assert torch.isclose(SizePenalty(reduction="sum")(probs, bounds), got.sum())
    assert got.gt(0).any()


def test_size_penalty_gradcheck():
    logits = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    bounds = torch.tensor([[[0.0, 2.0], [9.0, 12.0], [NAN, 3.0]], [[NAN, NAN], [1.0, 1.5], [14.0, 16.0]]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: size_penalty(torch.softmax(x, 1), bounds), (logits,))
    # the gradient w.r.t. S is 2 (s - b) / N on every pixel of a class above its bound (eq. 4)
    probs = torch.full((1, 2, 4, 4), 0.5, dtype=torch.float64, requires_grad=True)
    size_penalty(probs, torch.tensor([[0.0, 16.0], [0.0, 5.0]])).backward()
    assert torch.allclose(probs.grad[0, 1], torch.full((4, 4), 2 * (8 - 5) / 16, dtype=torch.float64))
    assert torch.all(probs.grad[0, 0] == 0)


def test_size_penalty_per_volume_sums_slices():
    probs = _probs((4, 2, 5, 5), seed=1)
    groups = torch.tensor([7, 3, 7, 3])
    bounds = torch.tensor([[[0.0, 60.0], [0.0, 10.0]], [[0.0, 60.0], [30.0, 40.0]]] * 2, dtype=torch.float64)
    got = size_penalty(probs, bounds, groups=groups, reduction="none")
    for slot, (gid, img) in enumerate([(3, 1), (7, 0)]):
        members = (groups == gid).nonzero().flatten()
        vol = probs[members].sum(0, keepdim=True)
        want = _direct_penalty(vol, bounds[img : img + 1].tolist())[0] / len(members)
        assert got[slot].item() == pytest.approx(want)
    with pytest.raises(ValueError, match="bounds: expected equal bounds for all images of one group"):
        size_penalty(probs, bounds, groups=torch.tensor([0, 0, 1, 1]))


def test_tag_bounds_suppress_absent_classes():
    bounds = tag_bounds(torch.tensor([[True, False], [False, True]]), torch.tensor([[0.0, 5.0], [1.0, 9.0]]))
    assert bounds.tolist() == [[[0.0, 5.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 9.0]]]
    probs = torch.full((2, 2, 2, 2), 0.5)
    # absent class: (sum S - 0)^2 / N = 2^2 / 4 on each image
    assert size_penalty(probs, bounds, reduction="none").tolist() == [1.0, 1.0]


def test_two_class_probabilities_and_sigmoid_adapter():
    logits = torch.randn(2, 1, 3, 3)
    probs = two_class_probabilities(logits)
    assert torch.allclose(probs.sum(1), torch.ones(2, 3, 3))
    assert torch.allclose(probs[:, 1:], torch.sigmoid(logits))


def test_partial_ce_matches_direct_and_gradcheck():
    probs = _probs((2, 3, 4, 5), seed=2)
    weak = torch.full((2, 4, 5), -1)
    weak[0, 1, 2], weak[0, 3, 3], weak[1, 0, 0] = 2, 0, 1
    want = -(math.log(probs[0, 2, 1, 2]) + math.log(probs[0, 0, 3, 3]) + math.log(probs[1, 1, 0, 0])) / 3
    assert partial_cross_entropy(probs, weak, eps=0.0).item() == pytest.approx(want)
    logits = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: partial_cross_entropy(torch.softmax(x, 1), weak), (logits,))
    empty = partial_cross_entropy(probs.requires_grad_(), torch.full((2, 4, 5), -1))
    empty.backward()
    assert empty.item() == 0.0 and torch.all(probs.grad == 0)


def test_proposals_satisfy_their_constraints():
    probs = _probs((2, 3, 12, 12), seed=3, scale=3.0)
    bounds = torch.tensor([[10.0, 100.0], [60.0, 70.0], [NAN, 15.0]], dtype=torch.float64)
    before = probs.flatten(2).sum(-1)
    assert (before[:, 1] < 60).any() or (before[:, 2] > 15).any()  # violated to start with
    latent = pathak_proposals(probs, bounds, iterations=500)
    sizes = latent.flatten(2).sum(-1)
    assert torch.allclose(latent.sum(1), torch.ones(2, 12, 12, dtype=torch.float64))
    assert torch.all(sizes[:, 0] >= 10 - 1e-3) and torch.all(sizes[:, 0] <= 100 + 1e-3)
    assert torch.all(sizes[:, 1] >= 60 - 1e-3) and torch.all(sizes[:, 1] <= 70 + 1e-3)
    assert torch.all(sizes[:, 2] <= 15 + 1e-3)
    # KKT: the latent is the output reweighted per class, P ∝ S exp(nu_k), the closest feasible distribution
    ratio = torch.log(latent) - torch.log(probs + 1e-8)  # the solver's eps
    ratio = ratio - ratio[:, :1]
    assert torch.allclose(ratio, ratio[..., :1, :1].expand_as(ratio), atol=1e-4)


def test_proposals_fix_labelled_pixels_and_loss_gradient():
    probs = _probs((1, 2, 6, 6), seed=4)
    weak = torch.full((1, 6, 6), -1)
    weak[0, 2, 2], weak[0, 0, 0] = 1, 0
    bounds = torch.tensor([[NAN, NAN], [0.0, 4.0]], dtype=torch.float64)
    latent = pathak_proposals(probs, bounds, weak=weak, iterations=300)
    assert latent[0, 1, 2, 2] == 1 and latent[0, 0, 0, 0] == 1
    assert latent[0, 1].sum() <= 4 + 1e-3
    x = probs.clone().requires_grad_()
    proposal_loss(x, bounds, weak=weak, iterations=300, eps=0.0).backward()
    assert torch.allclose(x.grad, -latent / probs / 36)


def test_hard_proposals_are_the_fully_supervised_ce_against_the_argmax_mask():
    probs = _probs((2, 2, 8, 8), seed=5)
    weak = torch.full((2, 8, 8), -1)
    weak[0, 3, 3] = 1
    bounds = torch.tensor([[NAN, NAN], [0.0, 6.0]], dtype=torch.float64)
    latent = pathak_proposals(probs, bounds, weak=weak, iterations=200)
    mask = latent[:, 1] > latent[:, 0]  # the synthetic ground truth, built directly
    want = -torch.where(mask, torch.log(probs[:, 1]), torch.log(probs[:, 0])).flatten(1).mean(1).mean()
    x = probs.clone().requires_grad_()
    got = proposal_loss(x, bounds, weak=weak, iterations=200, eps=0.0, hard=True)
    assert got.item() == pytest.approx(want.item())
    assert mask[0, 3, 3]  # the labelled pixel is foreground in the mask
    got.backward()
    onehot = torch.stack([~mask, mask], 1).to(probs.dtype)
    assert torch.allclose(x.grad, -onehot / probs / (2 * 64))


def test_soft_latent_target_gives_no_signal_once_the_bound_holds_unlike_the_mask():
    """Why the soft target collapsed: when the soft size is within the bound the latent equals the
    output, so the cross-entropy against it has no gradient outside the labelled pixels (nothing
    sharpens the output, and the tag slices' b = 0 only push it down); against the arg-max mask
    the confident pixels are pushed up and the others down (self-training).
    """
    from sizeseg.losses.constrained import two_class_probabilities

    logit = torch.full((1, 1, 8, 8), math.log(0.3 / 0.7), dtype=torch.float64)
    logit[..., 2:5, 2:5] = math.log(0.7 / 0.3)  # a blob of 9 pixels at 0.7 on a background at 0.3
    bounds = torch.tensor([[NAN, NAN], [0.0, 30.0]], dtype=torch.float64)  # soft size 21.4 <= 30
    grads = {}
    for hard in (False, True):
        x = logit.clone().requires_grad_()
        proposal_loss(two_class_probabilities(x), bounds, iterations=300, hard=hard, eps=0.0).backward()
        grads[hard] = x.grad[0, 0]
    assert torch.allclose(grads[False], torch.zeros_like(grads[False]), atol=1e-6)
    assert (grads[True][2:5, 2:5] < 0).all()  # descent raises the blob's logits
    outside = torch.ones(8, 8, dtype=torch.bool)
    outside[2:5, 2:5] = False
    assert (grads[True][outside] > 0).all()  # and lowers the background's


def test_log_barrier_extension_branches_and_continuity():
    t = 3.0
    z = torch.tensor([-2.0, -0.5, -1 / t**2, 0.0, 0.7], dtype=torch.float64)
    want = [-math.log(2.0) / t, -math.log(0.5) / t, -math.log(1 / t**2) / t,
            -math.log(1 / t**2) / t + 1 / t, t * 0.7 - math.log(1 / t**2) / t + 1 / t]
    assert log_barrier_extension(z, t).tolist() == pytest.approx(want)
    edge = torch.tensor(-1 / t**2, dtype=torch.float64)
    left = log_barrier_extension(edge - 1e-9, t)
    right = log_barrier_extension(edge + 1e-9, t)
    assert left.item() == pytest.approx(right.item(), abs=1e-7)
    zz = torch.tensor([-2.0, -0.3, 0.4], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: log_barrier_extension(v, t), (zz,))


def test_log_barrier_size_loss_matches_direct():
    probs = _probs((2, 2, 4, 4), seed=5)
    t = 5.0
    bounds = torch.tensor([[[NAN, NAN], [2.0, 6.0]], [[NAN, NAN], [0.0, 0.0]]], dtype=torch.float64)
    s = probs[:, 1].flatten(1).sum(-1)
    psi = lambda z: log_barrier_extension(torch.tensor(z, dtype=torch.float64), t).item()  # noqa: E731
    want = [psi(2.0 - s[0].item()) + psi(s[0].item() - 6.0), psi(s[1].item())]
    assert log_barrier_size_loss(probs, bounds, t, reduction="none").tolist() == pytest.approx(want)
    logits = torch.randn(2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: log_barrier_size_loss(torch.softmax(x, 1), bounds, t), (logits,))
    module = LogBarrierSizeLoss(t=5.0, t_factor=1.1)
    module.step_t()
    assert module.t == pytest.approx(5.5)
    with pytest.raises(ValueError, match="t: expected a positive"):
        log_barrier_size_loss(probs, bounds, -1.0)


def test_kl_size_loss_matches_direct_and_gradcheck():
    probs = _probs((2, 3, 4, 4), seed=6)
    target = torch.tensor([[0.2, 0.8, 0.0], [0.5, 0.25, 0.25]], dtype=torch.float64)
    mean = probs.flatten(2).mean(-1)
    want = [sum(v * math.log(v / m) for v, m in zip(target[i].tolist(), mean[i].tolist()) if v > 0) for i in range(2)]
    assert kl_size_loss(probs, target, eps=0.0, reduction="none").tolist() == pytest.approx(want)
    logits = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: kl_size_loss(torch.softmax(x, 1), target), (logits,))
    assert size_targets(torch.tensor([4.0, 0.0]), 16).tolist() == [[0.75, 0.25], [1.0, 0.0]]
    with pytest.raises(ValueError, match="target: expected proportions summing to one"):
        kl_size_loss(probs, torch.full((2, 3), 0.5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"target: expected shape \(B, K\)"):
        kl_size_loss(probs, torch.full((2, 2), 0.5, dtype=torch.float64))


@pytest.mark.parametrize(
    "bounds, match",
    [
        (torch.tensor([[0.0, 10.0], [8.0, 3.0]]), "lower <= upper"),
        (torch.tensor([[0.0, 10.0], [-1.0, 3.0]]), "bounds: expected non-negative"),
        (torch.tensor([[0.0, 10.0], [0.0, 3.0], [0.0, 3.0]]), r"shape \(B, K, 2\)"),
        (torch.zeros(2, 2), None),
    ],
)
def test_bad_bounds_are_rejected(bounds, match):
    probs = torch.full((2, 2, 3, 3), 0.5)
    if match is None:
        size_penalty(probs, bounds)  # a valid (K, 2) tensor shared by both images
        return
    for fn in (size_penalty, lambda p, b: log_barrier_size_loss(p, b, 1.0), lambda p, b: pathak_proposals(p, b, iterations=1)):
        with pytest.raises(ValueError, match=match):
            fn(probs, bounds)


def test_bad_probabilities_and_weak_labels_are_rejected():
    bounds = torch.tensor([[0.0, 9.0], [0.0, 9.0]])
    with pytest.raises(ValueError, match="probs: expected probabilities summing to one"):
        size_penalty(torch.full((1, 2, 3, 3), 0.7), bounds)
    with pytest.raises(ValueError, match="sigmoid=True"):
        size_penalty(torch.full((1, 1, 3, 3), 0.7), bounds[:1])
    with pytest.raises(TypeError, match="floating-point"):
        partial_cross_entropy(torch.ones(1, 2, 3, 3, dtype=torch.long), torch.zeros(1, 3, 3, dtype=torch.long))
    probs = torch.full((1, 2, 3, 3), 0.5)
    with pytest.raises(ValueError, match=r"weak: expected shape \(B, \*spatial\)"):
        partial_cross_entropy(probs, torch.zeros(1, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"weak: expected class indices in \[0, 2\)"):
        partial_cross_entropy(probs, torch.full((1, 3, 3), 2))
    with pytest.raises(TypeError, match="weak: expected an integer tensor"):
        partial_cross_entropy(probs, torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match="iterations: expected"):
        pathak_proposals(probs, bounds, iterations=-1)
