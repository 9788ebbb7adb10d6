"""SizeLoss: unbiased sampled gradient (vs exact enumeration), NaN handling, reductions, bad input."""

from __future__ import annotations

import math

import pytest
import torch

import sizeseg
from sizeseg.losses.exact import exact_size_loss
from sizeseg.losses.size_loss import SizeLoss, size_loss

NAN = float("nan")


def _exact_grad(logits, sizes, **kw):
    x = logits.clone().requires_grad_(True)
    exact_size_loss(x, sizes, **kw).backward()
    return x.grad


def _sampled_grads(logits, sizes, n_runs, n_samples, seed, **kw):
    """Gradients of n_runs independent SizeLoss calls, stacked (n_runs, *logits.shape)."""
    gen = torch.Generator().manual_seed(seed)
    grads = []
    for _ in range(n_runs):
        x = logits.clone().requires_grad_(True)
        size_loss(x, sizes, n_samples=n_samples, generator=gen, **kw).backward()
        grads.append(x.grad)
    return torch.stack(grads)


CASES = [
    ("squared", "background", torch.tensor([[2.0, 4.0], [0.0, NAN]])),
    ("squared", "open", torch.tensor([[2.0, 6.0], [4.0, 2.0]])),
    ("absolute", "background", torch.tensor([[2.0, 4.0], [6.0, 0.0]])),
    ("bounds", "background", torch.tensor([[[2.0, 4.0], [0.0, 2.0]], [[4.0, math.inf], [NAN, 1.0]]])),
]


@pytest.mark.parametrize("criterion,border,sizes", CASES)
def test_sampled_gradient_is_unbiased_on_3x3_images(criterion, border, sizes):
    """Mean of sampled gradients == exact autograd gradient within ~5 standard errors."""
    logits = torch.randn(2, 2, 3, 3, generator=torch.Generator().manual_seed(3))
    kw = dict(criterion=criterion, border=border, reduction="sum", noise_scale=1.0)
    exact = _exact_grad(logits, sizes, **kw)
    grads = _sampled_grads(logits, sizes, n_runs=40, n_samples=400, seed=5, **kw)
    mean, stderr = grads.mean(0), grads.std(0) / math.sqrt(grads.shape[0])
    assert exact.abs().max() > 1e-3  # a non-trivial gradient to compare with
    z = (mean - exact).abs() / (stderr + 1e-6)
    assert z.max() < 5, f"max z {z.max():.2f}"
    # where the estimator never varies it must be exact (e.g. unannotated entries: zero)
    assert torch.allclose(mean[stderr == 0], exact[stderr == 0], atol=1e-6)


@pytest.mark.parametrize("tau", [0.2, 3.0, "per-entry"])
def test_sampled_gradient_is_unbiased_for_any_noise_scale(tau):
    """Lemma 1 holds for any p = sigmoid(a / tau): the sampled gradient's mean is the exact one.

    Logits scale with tau so that every pixel is uncertain: with a / tau of many units the
    gradient comes from events too rare for a few thousand samples to show."""
    sizes = torch.tensor([[2.0, 4.0], [6.0, 0.0]])
    if tau == "per-entry":
        tau = torch.tensor([[0.3, 1.0], [2.0, 0.5]])
    scale = tau[..., None, None] if isinstance(tau, torch.Tensor) else tau
    logits = torch.randn(2, 2, 3, 3, generator=torch.Generator().manual_seed(7)) * scale
    kw = dict(criterion="relative", reduction="sum", noise_scale=tau)
    exact = _exact_grad(logits, sizes, **kw)
    grads = _sampled_grads(logits, sizes, n_runs=40, n_samples=400, seed=11, **kw)
    mean, stderr = grads.mean(0), grads.std(0) / math.sqrt(grads.shape[0])
    assert exact.abs().max() > 1e-3
    z = (mean - exact).abs() / (stderr + 1e-6)
    assert z.max() < 5, f"max z {z.max():.2f}"


def test_smaller_noise_keeps_samples_near_the_thresholded_size():
    """A disk of size 30 with logits +-3: tau = 1 (the paper's) punctures it, tau = 0.25 does not."""
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    disk = ((yy - 31.5) ** 2 + (xx - 31.5) ** 2) < 21.5 ** 2
    logits = torch.where(disk, 3.0, -3.0)[None, None].float()
    thresholded = sizeseg.object_size(disk).item()
    size = torch.tensor([thresholded])
    gen = torch.Generator().manual_seed(0)
    paper = size_loss(logits, size, n_samples=50, generator=gen, noise_scale=1.0).item()
    small = size_loss(logits, size, n_samples=50, generator=gen, noise_scale=0.25).item()
    assert thresholded == 30 and paper > 10 ** 2 and small < 1.0


def test_sampled_loss_estimates_the_exact_loss():
    logits = torch.randn(3, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    sizes = torch.tensor([2.0, 4.0, 0.0])
    exact = exact_size_loss(logits, sizes, reduction="none", noise_scale=1.0)
    gen = torch.Generator().manual_seed(1)
    runs = torch.stack([size_loss(logits, sizes, n_samples=200, reduction="none", generator=gen, noise_scale=1.0)
                        for _ in range(30)])
    z = (runs.mean(0) - exact).abs() / (runs.std(0) / math.sqrt(30) + 1e-6)
    assert z.max() < 5


def test_more_samples_lower_the_variance():
    logits = torch.randn(1, 1, 3, 3, generator=torch.Generator().manual_seed(2))
    sizes = torch.tensor([4.0])
    var1 = _sampled_grads(logits, sizes, n_runs=300, n_samples=1, seed=0, noise_scale=1.0).var(0).sum()
    var8 = _sampled_grads(logits, sizes, n_runs=300, n_samples=8, seed=1, noise_scale=1.0).var(0).sum()
    assert var8 < var1 / 4  # expected ratio 8


def test_unbiased_in_3d():
    logits = torch.randn(1, 2, 2, 2, 3, generator=torch.Generator().manual_seed(4)) - 1.5
    sizes = torch.tensor([[2.0, 0.0]])
    kw = dict(border="open", reduction="sum", noise_scale=1.0)
    exact = _exact_grad(logits, sizes, **kw)
    grads = _sampled_grads(logits, sizes, n_runs=30, n_samples=300, seed=6, **kw)
    z = (grads.mean(0) - exact).abs() / (grads.std(0) / math.sqrt(30) + 1e-6)
    assert exact.abs().max() > 1e-2 and z.max() < 5


def test_nan_sizes_contribute_nothing_and_mean_counts_annotated_only():
    logits = torch.randn(3, 2, 6, 5, generator=torch.Generator().manual_seed(0))
    sizes = torch.tensor([[4.0, NAN], [NAN, NAN], [2.0, 6.0]])
    losses = {}
    for reduction in ("none", "sum", "mean"):
        x = logits.clone().requires_grad_(True)
        losses[reduction] = size_loss(x, sizes, reduction=reduction, generator=torch.Generator().manual_seed(9))
        losses[reduction].sum().backward()
        assert (x.grad[0, 1] == 0).all() and (x.grad[1] == 0).all()
    assert losses["none"].shape == (3, 2) and (losses["none"][sizes.isnan()] == 0).all()
    assert torch.allclose(losses["sum"], losses["none"].sum())
    assert torch.allclose(losses["mean"], losses["none"].sum() / 3)
    # nothing annotated: a finite zero with a zero gradient
    x = logits.clone().requires_grad_(True)
    loss = size_loss(x, torch.full((3, 2), NAN))
    loss.backward()
    assert loss.item() == 0 and (x.grad == 0).all()


def test_single_channel_sizes_and_finite_under_open_border():
    x = torch.full((2, 1, 5, 7), 30.0, requires_grad=True)  # all foreground, almost surely
    loss = size_loss(x, torch.tensor([4.0, 2.0]), border="open", reduction="none")
    assert loss.shape == (2,) and torch.isfinite(loss).all()
    assert torch.allclose(loss, (torch.tensor([4.0, 2.0]) - 2 * 7) ** 2)  # capped at 2 * max side
    loss.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_reproducible_and_backends_agree():
    logits = torch.randn(4, 1, 9, 8, generator=torch.Generator().manual_seed(1))
    sizes = torch.tensor([2.0, 4.0, 6.0, 8.0])
    results = []
    for backend in ("numba", "torch", "numba"):
        x = logits.clone().requires_grad_(True)
        loss = SizeLoss(n_samples=3, seed=123, backend=backend)(x, sizes)
        loss.backward()
        results.append((loss.detach(), x.grad))
    for loss, grad in results[1:]:
        assert torch.equal(loss, results[0][0]) and torch.equal(grad, results[0][1])
    assert sizeseg.SizeLoss is SizeLoss and sizeseg.exact_size_loss is exact_size_loss


def test_no_grad_path_and_repr():
    with torch.no_grad():
        loss = SizeLoss(seed=0)(torch.randn(2, 1, 8, 8), torch.tensor([2.0, 4.0]))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert "n_samples=1" in repr(SizeLoss())


GOOD = torch.zeros(2, 1, 4, 4)
BAD_INPUTS = [
    (dict(logits=GOOD.numpy(), sizes=torch.ones(2)), TypeError, "logits: expected a torch.Tensor"),
    (dict(logits=GOOD, sizes=[1.0, 2.0]), TypeError, "sizes: expected a torch.Tensor"),
    (dict(logits=torch.zeros(2, 4, 4), sizes=torch.ones(2)), ValueError, r"logits: expected shape .* got \(2, 4, 4\)"),
    (dict(logits=GOOD.long(), sizes=torch.ones(2)), TypeError, "floating-point"),
    (dict(logits=GOOD, sizes=torch.ones(3)), ValueError, r"sizes: expected shape .* got \(3,\)"),
    (dict(logits=GOOD, sizes=torch.ones(2, 2)), ValueError, r"sizes: expected shape .* got \(2, 2\)"),
    (dict(logits=torch.zeros(2, 3, 4, 4), sizes=torch.ones(2)), ValueError, r"\(2, 3\)"),
    (dict(logits=GOOD, sizes=torch.ones(1)), ValueError, "sizes: expected shape"),
    (dict(logits=GOOD.clone().index_fill_(0, torch.tensor([1]), math.nan), sizes=torch.ones(2)), ValueError, "finite"),
    (dict(logits=GOOD.clone().fill_(math.inf), sizes=torch.ones(2)), ValueError, "finite"),
    (dict(logits=GOOD, sizes=torch.tensor([2.0, -1.0])), ValueError, ">= 0"),
    (dict(logits=GOOD, sizes=torch.tensor([2.0, math.inf])), ValueError, "finite"),
    (dict(logits=GOOD, sizes=torch.ones(2), criterion="bounds"), ValueError, r"sizes: expected shape"),
    (dict(logits=GOOD, sizes=torch.tensor([[3.0, 1.0], [0.0, 1.0]]), criterion="bounds"), ValueError, "lower <= upper"),
    (dict(logits=GOOD, sizes=torch.ones(2), criterion="huber"), ValueError, "criterion"),
    (dict(logits=GOOD, sizes=torch.ones(2), reduction="avg"), ValueError, "reduction"),
    (dict(logits=GOOD, sizes=torch.ones(2), border="wrap"), ValueError, "border"),
    (dict(logits=GOOD, sizes=torch.ones(2), noise_scale=0.0), ValueError, "noise_scale: expected positive"),
    (dict(logits=GOOD, sizes=torch.ones(2), noise_scale=math.nan), ValueError, "noise_scale: expected positive"),
    (dict(logits=GOOD, sizes=torch.ones(2), noise_scale="1"), TypeError, "noise_scale: expected a positive"),
    (dict(logits=GOOD, sizes=torch.ones(2), noise_scale=torch.ones(3)), ValueError, r"noise_scale: .*\(2, 1\)"),
]


@pytest.mark.parametrize("kwargs,error,match", BAD_INPUTS)
def test_bad_input_fails_before_work(kwargs, error, match):
    with pytest.raises(error, match=match):
        size_loss(**kwargs)
    with pytest.raises(error, match=match):
        exact_size_loss(**kwargs)


def test_bad_module_arguments():
    with pytest.raises(ValueError, match="n_samples"):
        SizeLoss(n_samples=0)
    with pytest.raises(ValueError, match="n_samples"):
        size_loss(GOOD, torch.ones(2), n_samples=1.5)
    with pytest.raises(ValueError, match="border"):
        SizeLoss(border="none")
    with pytest.raises(ValueError, match="noise_scale"):
        SizeLoss(noise_scale=-1.0)
    assert "noise_scale=0.5" in repr(SizeLoss(noise_scale=0.5))


def test_half_precision_logits_stay_finite():
    x = torch.full((2, 1, 40, 300), 20.0, dtype=torch.float16, requires_grad=True)
    loss = size_loss(x, torch.tensor([0.0, 0.0]), border="open")  # (0 - 600)^2 > float16 max
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and loss.item() == 600.0 ** 2
    assert x.grad.dtype == torch.float16 and torch.isfinite(x.grad).all()
