"""ObjectSizeLoss: flipped losses vs brute force, unbiased gradient vs exact enumeration, inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from sizeseg.losses.exact_objects import ExactObjectSizeLoss, exact_object_size_loss
from sizeseg.losses.object_size_loss import (ObjectSizeLoss, matched_size_loss, max_objects,
                                             object_flip_losses, object_size_loss, pad_object_sizes)
from tests.ops._component_reference import (brute_flip_multisets, random_object_masks,
                                            reference_sizes)

NAN = float("nan")
TERMS = {"squared": lambda t, s: (t - s) ** 2, "absolute": lambda t, s: abs(t - s),
         "relative": lambda t, s: (t - s) ** 2 / max(t, 1.0) ** 2,
         "symmetric": lambda t, s: (t - s) ** 2 / max(t, s, 1.0) ** 2}


def _direct_loss(target: list[float], sizes: list[float], criterion: str) -> float:
    """Sorted matching written out: both lists descending, zero-padded to one length."""
    t = sorted([x for x in target if not math.isnan(x)], reverse=True)
    s = sorted(sizes, reverse=True)
    n = max(len(t), len(s))
    t, s = t + [0.0] * (n - len(t)), s + [0.0] * (n - len(s))
    return sum(TERMS[criterion](a, b) for a, b in zip(t, s))


def test_matched_loss_values_and_optimal_matching():
    assert matched_size_loss(torch.tensor([2.0, 8.0, NAN]), torch.tensor([8.0, 4.0, 4.0])).item() == 20.0
    assert matched_size_loss(torch.tensor([NAN]), torch.tensor([6.0]), "absolute").item() == 6.0
    assert matched_size_loss(torch.tensor([4.0, 2.0]), torch.tensor([NAN, NAN])).item() == 20.0
    # for convex errors of t - s the sorted matching is the cheapest one-to-one matching
    rng = np.random.default_rng(0)
    for _ in range(50):
        k, n = rng.integers(0, 5, size=2)
        s, t = list(rng.integers(1, 10, k) * 2.0), list(rng.uniform(0, 20, n))
        for crit in ("squared", "absolute"):
            length = max(k, n)
            sp, tp = s + [0.0] * (length - k), t + [0.0] * (length - n)
            best = min(sum(TERMS[crit](a, b) for a, b in zip(tp, perm))
                       for perm in itertools.permutations(sp)) if length else 0.0
            got = matched_size_loss(torch.tensor(s + [NAN]), torch.tensor(t + [NAN]), crit).item()
            assert got == pytest.approx(best, rel=1e-9, abs=1e-9)
            assert got == pytest.approx(_direct_loss(t, s, crit), rel=1e-9, abs=1e-9)


def _targets(rng: np.random.Generator, n: int) -> np.ndarray:
    """n NaN-padded target lists of 0..5 sizes, some with zeros (no object) or odd values."""
    out = np.full((n, 5), np.nan)
    for i in range(n):
        k = int(rng.integers(0, 6))
        out[i, :k] = rng.choice([0.0, 2.0, 4.0, 6.0, 3.5, 10.0], size=k)
    return out


@pytest.mark.parametrize("spatial_dims,shape,n", [(2, (5, 6), 120), (2, (1, 8), 30), (3, (3, 3, 4), 40)])
@pytest.mark.parametrize("criterion", ["squared", "absolute", "relative", "symmetric"])
@pytest.mark.parametrize("border", ["background", "open"])
def test_flipped_losses_equal_brute_force(spatial_dims, shape, n, criterion, border):
    rng = np.random.default_rng(len(shape) + n + len(criterion) + len(border))
    masks = random_object_masks(rng, n, shape)
    targets = _targets(rng, n)
    connectivity = None if n % 3 else (4 if spatial_dims == 2 else 6)
    loss, flipped = object_flip_losses(torch.from_numpy(masks), torch.from_numpy(targets),
                                       spatial_dims, border, criterion, connectivity)
    cap = 2.0 * max(shape)
    for k, mask in enumerate(masks):
        t = list(targets[k])
        sizes = [min(x, cap) for x in reference_sizes(mask, spatial_dims, border, connectivity)[1]]
        assert loss[k].item() == pytest.approx(_direct_loss(t, sizes, criterion), rel=1e-9, abs=1e-9)
        brute = brute_flip_multisets(mask, spatial_dims, border, connectivity)
        expected = [_direct_loss(t, [min(x, cap) for x in ms.elements()], criterion) for ms in brute]
        np.testing.assert_allclose(flipped[k].reshape(-1).numpy(), expected, rtol=1e-9, atol=1e-9,
                                   err_msg=f"{mask.astype(int).tolist()} target {t}")


def test_inactive_masks_are_skipped():
    masks = torch.ones(2, 4, 4, dtype=torch.bool)
    loss, flipped = object_flip_losses(masks, torch.tensor([2.0]), active=torch.tensor([True, False]))
    assert loss[0].item() == 4.0 and loss[1].item() == 0.0 and (flipped[1] == 0).all()


def _grads(loss_fn, logits, sizes, runs=1, **kw):
    """Gradients w.r.t. the logits of ``runs`` calls of ``loss_fn``, stacked (runs, *shape)."""
    out = []
    for _ in range(runs):
        x = logits.clone().requires_grad_(True)
        loss_fn(x, sizes, **kw).backward()
        out.append(x.grad)
    return torch.stack(out)


def _sampled(n_samples, seed):
    gen = torch.Generator().manual_seed(seed)
    return lambda x, s, **kw: object_size_loss(x, s, n_samples=n_samples, generator=gen, **kw)


CASES = [  # several objects per list; an empty annotation; an unannotated entry
    (dict(criterion="squared", border="background"),
     torch.tensor([[[2.0, 2.0, NAN], [4.0, 2.0, 2.0]], [[0.0, NAN, NAN], [NAN, NAN, NAN]]])),
    (dict(criterion="absolute", border="open", connectivity=4),
     torch.tensor([[[2.0, 2.0, 2.0], [6.0, 2.0, NAN]], [[4.0, 2.0, NAN], [2.0, NAN, NAN]]])),
    (dict(criterion="relative", border="background", noise_scale=0.5),
     torch.tensor([[[2.0, 2.0, NAN], [2.0, 2.0, 2.0]], [[4.0, NAN, NAN], [3.0, 1.0, NAN]]])),
    (dict(criterion="symmetric", border="background"),
     torch.tensor([[[4.0, 2.0, NAN], [2.0, 2.0, 2.0]], [[0.0, NAN, NAN], [2.0, NAN, NAN]]])),
]


@pytest.mark.parametrize("kw,sizes", CASES)
def test_sampled_gradient_is_unbiased_on_3x3_images(kw, sizes):
    """Mean of sampled gradients == exact autograd gradient within ~5 standard errors."""
    logits = torch.randn(2, 2, 3, 3, generator=torch.Generator().manual_seed(3))
    kw = dict(kw, reduction="sum")
    exact = _grads(exact_object_size_loss, logits, sizes, **kw)[0]
    grads = _grads(_sampled(300, 5), logits, sizes, runs=30, **kw)
    mean, stderr = grads.mean(0), grads.std(0) / math.sqrt(grads.shape[0])
    assert exact.abs().max() > 1e-2
    z = (mean - exact).abs() / (stderr + 1e-6)
    assert z.max() < 5, f"max z {z.max():.2f}"
    assert torch.allclose(mean[stderr == 0], exact[stderr == 0], atol=1e-6)


def test_a_biased_estimate_would_be_caught():
    """The unbiasedness check can fail: the gradient of the single-object loss (largest object
    only) differs from the per-object one by many standard errors on the same images."""
    from sizeseg.losses.size_loss import size_loss

    logits = torch.randn(2, 2, 3, 3, generator=torch.Generator().manual_seed(3))
    sizes = torch.tensor([[[2.0, 2.0], [2.0, 2.0]], [[2.0, 2.0], [2.0, 2.0]]])
    exact = _grads(exact_object_size_loss, logits, sizes, reduction="sum")[0]
    gen = torch.Generator().manual_seed(1)
    single = lambda x, s, **kw: size_loss(x, s[..., 0], n_samples=300, generator=gen, **kw)  # noqa: E731
    grads = _grads(single, logits, sizes, runs=30, reduction="sum")
    z = (grads.mean(0) - exact).abs() / (grads.std(0) / math.sqrt(30) + 1e-6)
    assert z.max() > 10


def test_unbiased_in_3d_and_loss_estimates_exact():
    logits = torch.randn(1, 1, 2, 2, 3, generator=torch.Generator().manual_seed(4)) - 0.5
    sizes = torch.tensor([[2.0, 2.0]])
    kw = dict(reduction="sum", border="background")
    exact = _grads(exact_object_size_loss, logits, sizes, **kw)[0]
    grads = _grads(_sampled(300, 6), logits, sizes, runs=30, **kw)
    # entries whose exact gradient is ~1e-5 come from rare samples that 9000 draws may all miss:
    # their error is bounded in absolute terms, not in standard errors of an all-zero sample
    z = (grads.mean(0) - exact).abs() / (grads.std(0) / math.sqrt(30) + 1e-3 * exact.abs().max())
    assert exact.abs().max() > 1e-2 and z.max() < 5
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():  # the no-gradient path computes the loss without the flips
        runs = torch.stack([object_size_loss(logits, sizes, n_samples=300, generator=gen)
                            for _ in range(20)])
    target = exact_object_size_loss(logits, sizes)
    assert abs(runs.mean() - target) < 5 * runs.std() / math.sqrt(20)


def test_nan_lists_contribute_nothing_and_reductions():
    logits = torch.randn(3, 2, 6, 5, generator=torch.Generator().manual_seed(0))
    sizes = torch.tensor([[[4.0, 2.0], [NAN, NAN]], [[NAN, NAN], [NAN, NAN]], [[2.0, NAN], [0.0, NAN]]])
    losses = {}
    for reduction in ("none", "sum", "mean"):
        x = logits.clone().requires_grad_(True)
        losses[reduction] = object_size_loss(x, sizes, reduction=reduction,
                                             generator=torch.Generator().manual_seed(9))
        losses[reduction].sum().backward()
        assert (x.grad[0, 1] == 0).all() and (x.grad[1] == 0).all() and (x.grad[2] != 0).any()
    assert losses["none"].shape == (3, 2) and (losses["none"][1] == 0).all()
    assert torch.allclose(losses["sum"], losses["none"].sum())
    assert torch.allclose(losses["mean"], losses["none"].sum() / 3)
    x = logits.clone().requires_grad_(True)
    loss = object_size_loss(x, torch.full((3, 2, 1), NAN))
    loss.backward()
    assert loss.item() == 0 and (x.grad == 0).all()


def test_one_channel_module_reproducible_and_half_precision():
    logits = torch.randn(2, 1, 9, 8, generator=torch.Generator().manual_seed(1))
    sizes = pad_object_sizes([[4, 2, 2], [6]])
    assert sizes.shape == (2, 3) and torch.isnan(sizes[1, 1:]).all()
    results = []
    for _ in range(2):
        x = logits.clone().requires_grad_(True)
        loss = ObjectSizeLoss(n_samples=2, seed=3)(x, sizes)
        loss.backward()
        results.append((loss.detach(), x.grad))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    assert object_size_loss(logits, sizes, reduction="none").shape == (2,)
    assert "connectivity=None" in repr(ObjectSizeLoss())
    x = torch.full((2, 1, 40, 300), 20.0, dtype=torch.float16, requires_grad=True)
    loss = object_size_loss(x, torch.tensor([[0.0], [0.0]]), border="open")
    loss.backward()
    assert loss.dtype == torch.float32 and loss.item() == 600.0 ** 2  # one object, capped
    assert x.grad.dtype == torch.float16 and torch.isfinite(x.grad).all()
    a = torch.randn(2, 1, 2, 2)
    assert torch.equal(ExactObjectSizeLoss(reduction="sum")(a, sizes[:, :1]),
                       exact_object_size_loss(a, sizes[:, :1], reduction="sum"))


def test_max_objects():
    assert max_objects((5, 5), True) == 9 and max_objects((5, 5), False) == 13
    assert max_objects((2, 3, 3), True) == 4
    m = np.zeros((5, 5), bool)
    m[::2, ::2] = True
    assert len(reference_sizes(m, 2, "background", None)[1]) == 9
    m = (np.indices((5, 5)).sum(0) % 2 == 0)
    assert len(reference_sizes(m, 2, "background", 4)[1]) == 13


GOOD = torch.zeros(2, 1, 4, 4)
BAD_INPUTS = [
    (dict(logits=GOOD.numpy(), sizes=torch.ones(2, 1)), TypeError, "logits: expected a torch.Tensor"),
    (dict(logits=GOOD, sizes=[[1.0], [2.0]]), TypeError, "sizes: expected a torch.Tensor"),
    (dict(logits=GOOD.long(), sizes=torch.ones(2, 1)), TypeError, "floating-point"),
    (dict(logits=torch.zeros(2, 4, 4), sizes=torch.ones(2, 1)), ValueError, r"logits: expected shape"),
    (dict(logits=GOOD, sizes=torch.ones(2)), ValueError, r"sizes: expected shape .* got \(2,\)"),
    (dict(logits=GOOD, sizes=torch.ones(3, 1)), ValueError, r"sizes: expected shape"),
    (dict(logits=GOOD, sizes=torch.ones(2, 0)), ValueError, r"N >= 1"),
    (dict(logits=torch.zeros(2, 3, 4, 4), sizes=torch.ones(2, 2)), ValueError, r"\(2, 3, N\)"),
    (dict(logits=GOOD, sizes=torch.tensor([[2.0, -1.0], [0.0, NAN]])), ValueError,
     r"sizes: expected finite sizes >= 0 .* got -1.0 at index \(0, 0, 1\)"),
    (dict(logits=GOOD, sizes=torch.tensor([[2.0], [math.inf]])), ValueError, r"inf at index \(1, 0, 0\)"),
    (dict(logits=GOOD, sizes=torch.full((2, 5), 2.0)), ValueError,
     r"sizes: entry \(0, 0\) lists 5 objects, more than the 4 that fit a \(4, 4\) image"),
    (dict(logits=GOOD.clone().fill_(math.nan), sizes=torch.ones(2, 1)), ValueError, "finite"),
    (dict(logits=GOOD, sizes=torch.ones(2, 1), criterion="bounds"), ValueError, "criterion"),
    (dict(logits=GOOD, sizes=torch.ones(2, 1), reduction="avg"), ValueError, "reduction"),
    (dict(logits=GOOD, sizes=torch.ones(2, 1), border="wrap"), ValueError, "border"),
    (dict(logits=GOOD, sizes=torch.ones(2, 1), connectivity=6), ValueError, "connectivity"),
]


@pytest.mark.parametrize("kwargs,error,match", BAD_INPUTS)
def test_bad_input_fails_before_work(kwargs, error, match):
    with pytest.raises(error, match=match):
        object_size_loss(**kwargs)
    with pytest.raises(error, match=match):
        exact_object_size_loss(**kwargs)


def test_bad_module_arguments():
    with pytest.raises(ValueError, match="n_samples"):
        ObjectSizeLoss(n_samples=0)
    with pytest.raises(ValueError, match="n_samples"):
        object_size_loss(GOOD, torch.ones(2, 1), n_samples=1.5)
    with pytest.raises(ValueError, match="noise_scale"):
        ObjectSizeLoss(noise_scale=0.0)
    with pytest.raises(ValueError, match="connectivity"):
        ObjectSizeLoss(connectivity=5)
    with pytest.raises(ValueError, match="criterion"):
        ObjectSizeLoss(criterion="bounds")
