"""The pure-torch path (the one CUDA tensors take) never reads values back to the host.

On CPU a host read cannot be seen by timing, so the test watches the dispatched aten ops: any op
that turns device data into a Python value or a data-dependent shape (``.item()``, ``bool(t)``,
``nonzero``, boolean-mask indexing) would stall a GPU stream.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sizeseg.losses.size_criteria import get_criterion
from sizeseg.losses.size_loss import _SampledSizeLoss
from sizeseg.ops import distance_transform, flip_sizes, object_size

SYNCING_OPS = {"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2", "item",
               "equal", "is_nonzero", "bool_mask_index"}


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        self.ops.add(name)
        if name in ("index", "index_put", "index_put_") and any(
                isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] or ()) if i is not None):
            self.ops.add("bool_mask_index")
        return func(*args, **(kwargs or {}))


def test_recorder_catches_host_reads():
    m = torch.rand(3, 4) < 0.5
    assert _ops_of(lambda: m.sum().item()) & SYNCING_OPS
    assert _ops_of(lambda: bool(m.any())) & SYNCING_OPS
    assert _ops_of(lambda: torch.rand(4)[m[0]]) & SYNCING_OPS


def _ops_of(fn) -> set[str]:
    with _Recorder() as rec:
        fn()
    return rec.ops


def test_ops_run_without_host_reads():
    gen = torch.Generator().manual_seed(0)
    mask2 = torch.rand(3, 9, 11, generator=gen) < 0.8
    mask3 = torch.rand(2, 4, 5, 6, generator=gen) < 0.8
    for border in ("open", "background"):
        seen = set()
        seen |= _ops_of(lambda: distance_transform(mask2, border=border, backend="torch"))
        seen |= _ops_of(lambda: object_size(mask2, border=border, backend="torch"))
        seen |= _ops_of(lambda: flip_sizes(mask2, border=border, backend="torch"))
        seen |= _ops_of(lambda: flip_sizes(mask3, spatial_dims=3, border=border, backend="torch"))
        assert len(seen) > 10  # the recorder does see the work
        assert not seen & SYNCING_OPS, seen & SYNCING_OPS


def test_size_loss_function_runs_without_host_reads():
    """The sampled loss and its gradient (validation, done once up front, is left out)."""
    logits = torch.randn(2, 1, 8, 7, requires_grad=True)
    target = torch.tensor([[4.0], [float("nan")]])
    crit = get_criterion("squared")
    annotated = crit.annotated(target)

    def step():
        loss = _SampledSizeLoss.apply(logits, target, annotated, crit, 2, "open", "torch",
                                      torch.Generator().manual_seed(1), torch.full(target.shape, 0.25))
        loss.sum().backward()

    seen = _ops_of(step)
    assert "sigmoid" in seen and not seen & SYNCING_OPS, seen & SYNCING_OPS
