"""The constrained losses on raw logits (sigmoid=/softmax=), validate_args, low-precision probabilities,
and the losses' forward and backward without host syncs."""

from __future__ import annotations

import math

import pytest
import torch

from sizeseg import checks
from sizeseg.losses import (KLSizeLoss, LogBarrierSizeLoss, PartialCrossEntropy, ProposalLoss, SizeLoss, SizePenalty,
                            two_class_probabilities)
from tests.ops.test_torch_path_no_sync import SYNCING_OPS, _ops_of

NAN = float("nan")


def _inputs(channels: int, batch: int = 2, shape=(5, 6), device="cpu", dtype=torch.float64, seed=0):
    """Logits, bounds (B, K, 2), weak labels and proportion targets for K = max(channels, 2) classes."""
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn((batch, channels, *shape), generator=g, dtype=dtype) * 2).to(device)
    classes = max(channels, 2)
    pixels = math.prod(shape)
    bounds = torch.full((batch, classes, 2), NAN, dtype=dtype)
    bounds[:, 1] = torch.tensor([0.3 * pixels, 0.4 * pixels], dtype=dtype)  # class 1: violated by most draws
    bounds[0, 0] = torch.tensor([0.0, 0.2 * pixels], dtype=dtype)
    weak = torch.randint(-1, classes, (batch, *shape), generator=g)
    target = torch.softmax(torch.randn(batch, classes, generator=g, dtype=dtype), 1)
    return logits, bounds.to(device), weak.to(device), target.to(device)


def _losses():
    """(name, module factory, second argument picker) for each constrained loss."""
    return [
        ("size_penalty", lambda **kw: SizePenalty(**kw), lambda b, w, t: (b,)),
        ("partial_ce", lambda **kw: PartialCrossEntropy(eps=0.0, **kw), lambda b, w, t: (w,)),
        ("proposal", lambda **kw: ProposalLoss(iterations=20, eps=0.0, **kw), lambda b, w, t: (b, w)),
        ("proposal_hard", lambda **kw: ProposalLoss(iterations=20, eps=0.0, hard=True, **kw), lambda b, w, t: (b, w)),
        ("log_barrier", lambda **kw: LogBarrierSizeLoss(t=3.0, normalize=True, **kw), lambda b, w, t: (b,)),
        ("kl", lambda **kw: KLSizeLoss(eps=0.0, **kw), lambda b, w, t: (t,)),
    ]


LOSSES = _losses()


@pytest.mark.parametrize("name,make,args", LOSSES, ids=[n for n, _, _ in LOSSES])
@pytest.mark.parametrize("flag", ["sigmoid", "softmax"])
def test_logits_flags_match_the_manual_path(name, make, args, flag):
    """loss(logits, sigmoid/softmax=True) == loss(probabilities built by hand), values and gradients."""
    channels = 1 if flag == "sigmoid" else 3
    logits, bounds, weak, target = _inputs(channels)
    manual = two_class_probabilities if flag == "sigmoid" else (lambda x: torch.softmax(x, 1))
    x1, x2 = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    got = make(**{flag: True})(x1, *args(bounds, weak, target))
    want = make()(manual(x2), *args(bounds, weak, target))
    got.backward()
    want.backward()
    assert got.item() == pytest.approx(want.item(), rel=1e-9, abs=1e-12)
    assert torch.allclose(x1.grad, x2.grad, rtol=1e-7, atol=1e-12)
    assert x1.grad.abs().sum() > 0  # the comparison is not between two zeros


def test_logits_flags_refuse_wrong_channels_and_both_flags():
    x1, x3 = torch.zeros(1, 1, 3, 3), torch.zeros(1, 3, 3, 3)
    bounds = torch.tensor([[0.0, 9.0], [0.0, 4.0]])
    with pytest.raises(ValueError, match=r"probs: expected one-channel logits .* sigmoid=True, got shape \(1, 3, 3, 3\)"):
        SizePenalty(sigmoid=True)(x3, torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"probs: expected logits .*K >= 2.* softmax=True, got shape \(1, 1, 3, 3\)"):
        SizePenalty(softmax=True)(x1, bounds)
    with pytest.raises(ValueError, match="sigmoid, softmax: expected at most one"):
        SizePenalty(sigmoid=True, softmax=True)(x1, bounds)
    with pytest.raises(TypeError, match="probs: expected a floating-point tensor"):
        PartialCrossEntropy(softmax=True)(x3.long(), torch.zeros(1, 3, 3, dtype=torch.long))
    # probabilities stay the default: logits are refused, and the message names the flags
    with pytest.raises(ValueError, match="softmax=True"):
        SizePenalty()(torch.randn(1, 2, 3, 3) * 5, bounds)


def test_partial_ce_on_logits_is_exact_where_probabilities_underflow():
    x = torch.full((1, 1, 1, 2), -200.0)  # sigmoid(-200) is 0 in float32: log would be -inf
    weak = torch.tensor([[[1, -1]]])
    assert PartialCrossEntropy(sigmoid=True)(x, weak).item() == pytest.approx(200.0)


def test_partial_ce_is_nll_loss_with_ignore_index_and_zero_when_nothing_is_labelled():
    logits, _, weak, _ = _inputs(3, seed=3)
    want = torch.nn.functional.cross_entropy(logits, weak, ignore_index=checks.IGNORE_INDEX)
    assert PartialCrossEntropy(softmax=True)(logits, weak).item() == pytest.approx(want.item(), rel=1e-12)
    x = logits.clone().requires_grad_()
    empty = PartialCrossEntropy(softmax=True)(x, torch.full_like(weak, checks.IGNORE_INDEX))
    empty.backward()
    assert empty.item() == 0.0 and torch.all(x.grad == 0)  # nll_loss's own mean would be NaN here


# validate_args ---------------------------------------------------------------------------------


def test_validate_args_false_skips_value_checks_but_not_shape_checks():
    nan_probs = torch.full((1, 2, 3, 3), NAN)
    bounds = torch.tensor([[0.0, 9.0], [0.0, 4.0]])
    with pytest.raises(ValueError, match="probs: expected finite"):
        SizePenalty()(nan_probs, bounds)
    assert torch.isnan(SizePenalty(validate_args=False)(nan_probs, bounds))  # garbage in, no check, no sync
    with pytest.raises(ValueError, match=r"bounds: expected shape"):
        SizePenalty(validate_args=False)(nan_probs, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="sizes: expected sizes >= 0"):
        SizeLoss()(torch.zeros(1, 1, 4, 4), torch.tensor([-1.0]))
    SizeLoss(validate_args=False, seed=0)(torch.zeros(1, 1, 4, 4), torch.tensor([-1.0]))
    with pytest.raises(ValueError, match=r"sizes: expected shape"):
        SizeLoss(validate_args=False)(torch.zeros(1, 1, 4, 4), torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="validate_args: expected True, False or None"):
        SizeLoss(validate_args="yes")


def test_the_module_switch_sets_the_default_and_an_argument_overrides_it():
    nan_probs = torch.full((1, 2, 3, 3), NAN)
    bounds = torch.tensor([[0.0, 9.0], [0.0, 4.0]])
    try:
        checks.set_validate_args(False)
        assert torch.isnan(SizePenalty()(nan_probs, bounds))
        with pytest.raises(ValueError, match="probs: expected finite"):
            SizePenalty(validate_args=True)(nan_probs, bounds)
    finally:
        checks.set_validate_args(True)
    with pytest.raises(ValueError, match="probs: expected finite"):
        SizePenalty()(nan_probs, bounds)
    with pytest.raises(TypeError, match="value: expected a bool"):
        checks.set_validate_args(None)


# low-precision probabilities -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("classes", [2, 4])
def test_half_precision_softmax_outputs_pass_the_sum_check(dtype, classes):
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax((torch.randn(8, classes, 32, 32, generator=g) * 3).to(dtype), dim=1)
    deviation = (probs.float().sum(1) - 1).abs().max().item()
    if dtype == torch.bfloat16:
        assert deviation > 1e-3  # the old fixed tolerance refused these
    assert deviation <= checks.probability_tolerance(dtype, classes)
    bounds = torch.tensor([[0.0, 1024.0]] * (classes - 1) + [[0.0, 100.0]])
    loss = SizePenalty()(probs, bounds)
    assert torch.isfinite(loss) and loss.dtype == torch.float32  # sums over pixels run in float32
    weak = torch.randint(-1, classes, (8, 32, 32), generator=g)
    assert torch.isfinite(PartialCrossEntropy()(probs, weak))
    with pytest.raises(ValueError, match="summing to one"):  # still refuses what is not normalised
        SizePenalty()((probs.float() * 0.95).to(dtype), bounds)


def test_tolerance_scales_with_the_dtype():
    assert checks.probability_tolerance(torch.float32, 2) == 1e-3  # the floor, as before
    assert checks.probability_tolerance(torch.bfloat16, 2) == 2 * torch.finfo(torch.bfloat16).eps
    assert checks.probability_tolerance(torch.float16, 4) == 4 * torch.finfo(torch.float16).eps


# no host syncs -----------------------------------------------------------------------------------


def _steps(device: str, validate_args: bool | None):
    """forward + backward of every loss (SizeLoss on its torch backend) on ``device``."""
    logits1, bounds, weak, _ = _inputs(1, device=device, dtype=torch.float32)
    logits3, bounds3, weak3, target3 = _inputs(3, device=device, dtype=torch.float32)
    sizes = torch.tensor([4.0, NAN], device=device)
    kw = {"validate_args": validate_args}
    calls = [
        lambda x: SizeLoss(seed=0, backend="torch", **kw)(x, sizes),
        lambda x: SizePenalty(sigmoid=True, **kw)(x, bounds),
        lambda x: PartialCrossEntropy(sigmoid=True, **kw)(x, weak),
        lambda x: ProposalLoss(iterations=3, sigmoid=True, **kw)(x, bounds, weak),
        lambda x: LogBarrierSizeLoss(sigmoid=True, **kw)(x, bounds),
        lambda x: SizePenalty(**kw)(torch.softmax(x, 1), bounds3),
        lambda x: PartialCrossEntropy(**kw)(torch.softmax(x, 1), weak3),
        lambda x: KLSizeLoss(softmax=True, **kw)(x, target3),
    ]
    steps = []
    for i, call in enumerate(calls):
        base = logits1 if i < 5 else logits3

        def step(call=call, base=base):
            x = base.clone().requires_grad_()
            call(x).backward()
            return x.grad

        steps.append(step)
    return steps


def test_losses_forward_and_backward_read_nothing_back_without_validation():
    for step in _steps("cpu", validate_args=False):
        seen = _ops_of(step)
        assert len(seen) > 5 and not seen & SYNCING_OPS, seen & SYNCING_OPS
    # the recorder does see the value checks' host reads when validation is on
    assert all(_ops_of(step) & SYNCING_OPS for step in _steps("cpu", validate_args=True))


def test_the_module_switch_turns_the_host_reads_off():
    try:
        checks.set_validate_args(False)
        for step in _steps("cpu", validate_args=None):
            assert not _ops_of(step) & SYNCING_OPS
    finally:
        checks.set_validate_args(True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (sync debug mode); "
                    "the CPU test above watches the dispatched ops instead")
def test_losses_on_cuda_never_synchronise():
    quiet = _steps("cuda", validate_args=False)  # inputs are made (and copied) before the watch starts
    checked = _steps("cuda", validate_args=True)
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in quiet:
            step()
        with pytest.raises(RuntimeError):  # and the mode does catch the validating path
            checked[1]()
    finally:
        torch.cuda.set_sync_debug_mode(previous)
