"""CUDA tensors: the pure-torch path equals the CPU numba kernels exactly and never waits on the GPU.

Every test runs twice: on ``"cuda"`` (skipped, with the reason, where no CUDA device is present;
``scripts/gpu-check.sh`` runs them on a GPU machine) and on ``"cpu"`` with ``backend="torch"``,
the same code path on host tensors, so the checks themselves are exercised on every machine.
Host reads are caught by ``torch.cuda.set_sync_debug_mode("error")`` on CUDA and by watching the
dispatched aten ops on the CPU (see ``test_torch_path_no_sync.py``).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from sizeseg.losses import SizeLoss
from sizeseg.metrics import predicted_size
from sizeseg.ops import distance_transform, flip_sizes, flip_sizes_and_size, object_size, size_matched_mask
from tests.ops.test_torch_path_no_sync import SYNCING_OPS, _Recorder

NO_CUDA = "no CUDA device here: the CUDA-tensor checks run on a GPU machine (scripts/gpu-check.sh)"
DEVICES = [pytest.param("cpu", id="cpu-torch-path"),
           pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA))]
BORDERS = ("background", "open")


def _masks(shape, seed: int, fill: float = 0.6) -> np.ndarray:
    """Random masks with the edge cases in the batch: an empty and a full one."""
    masks = np.random.default_rng(seed).random(shape) < fill
    masks[0] = False
    masks[-1] = True
    return masks


def _backend(device: str) -> str:
    return "torch" if device == "cpu" else "auto"  # CUDA tensors take the torch path by themselves


@contextlib.contextmanager
def _no_host_reads(device: str):
    """Fail if the block reads device values back to the host."""
    if device == "cuda":
        torch.cuda.synchronize()
        previous = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("error")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    else:
        with _Recorder() as recorder:
            yield
        assert len(recorder.ops) > 5 and not recorder.ops & SYNCING_OPS, recorder.ops & SYNCING_OPS


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("shape, spatial_dims", [((6, 17, 23), 2), ((3, 2, 40, 9), 2), ((4, 7, 9, 6), 3)])
def test_ops_equal_the_cpu_kernels(device, border, shape, spatial_dims):
    masks = _masks(shape, seed=sum(shape))
    x = torch.from_numpy(masks).to(device)
    backend = _backend(device)
    expected_flips, expected_size = flip_sizes_and_size(masks, spatial_dims, border, backend="numba")
    for got, expected in [
        (distance_transform(x, spatial_dims, border, backend=backend), distance_transform(masks, spatial_dims, border)),
        (object_size(x, spatial_dims, border, backend=backend), object_size(masks, spatial_dims, border)),
        (flip_sizes(x, spatial_dims, border, backend=backend), expected_flips),
        *zip(flip_sizes_and_size(x, spatial_dims, border, backend=backend), (expected_flips, expected_size)),
    ]:
        assert got.device.type == device
        np.testing.assert_array_equal(got.cpu().numpy(), np.asarray(expected))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_metrics_and_size_matching_equal_the_cpu(device, spatial_dims):
    gen = torch.Generator().manual_seed(spatial_dims)
    logits = torch.randn((5, 1) + (9,) * spatial_dims, generator=gen) * 3
    sizes = torch.tensor([0.0, 2.0, 4.0, float("nan"), 20.0])
    expected = predicted_size(logits)
    np.testing.assert_array_equal(predicted_size(logits.to(device)).cpu().numpy(), expected.numpy())
    matched = size_matched_mask(logits[:, 0].to(device), sizes.to(device), spatial_dims=spatial_dims)
    assert matched.device.type == device
    assert torch.equal(matched.cpu(), size_matched_mask(logits[:, 0], sizes, spatial_dims=spatial_dims))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("criterion", ["squared", "relative"])
@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_size_loss_equals_the_cpu_kernel_on_the_same_noise(device, criterion, spatial_dims, monkeypatch):
    """Same logits, same uniform noise: the loss and its eq. 21 gradient on ``device`` (torch
    path) equal those of the CPU numba kernel. Only the noise source differs between devices
    (the CPU and CUDA generators draw different streams), so it is drawn once on the CPU."""
    gen = torch.Generator().manual_seed(7)
    shape = (4, 1) + (7, 11, 6)[-spatial_dims:]
    grid = torch.meshgrid(*[torch.arange(n) - (n - 1) / 2 for n in shape[2:]], indexing="ij")
    blob = sum(g ** 2 for g in grid) <= 6.0  # an object whose size single flips can change
    logits = 2.0 * blob - 1.0 + 0.3 * torch.randn(shape, generator=gen)
    sizes = torch.tensor([2.0, 4.0, float("nan"), 6.0])
    noise = torch.rand((3,) + shape, generator=gen)

    def same_noise(size, *args, generator=None, device=None, **kwargs):
        assert tuple(size) == noise.shape, "SizeLoss drew noise of another shape"
        return noise.to(device)

    def loss_and_grad(on: str, backend: str):
        x = logits.clone().to(on).requires_grad_()  # a fresh leaf per call: no shared .grad
        loss = SizeLoss(n_samples=3, criterion=criterion, backend=backend, seed=0)(x, sizes.to(on))
        loss.backward()
        return loss.detach().cpu().clone(), x.grad.cpu().clone()

    with monkeypatch.context() as patch:
        patch.setattr(torch, "rand", same_noise)  # the draw inside SizeLoss
        expected = loss_and_grad("cpu", "numba")
        got = loss_and_grad(device, _backend(device))
    assert float(expected[1].abs().sum()) > 0  # the gradient is not trivially zero
    # sigmoid may differ in the last bit between devices; sizes and flips are integers
    torch.testing.assert_close(got[0], expected[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[1], expected[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("border", BORDERS)
def test_ops_and_size_loss_never_read_back_to_the_host(device, border):
    masks2 = torch.from_numpy(_masks((3, 9, 11), seed=1)).to(device)
    masks3 = torch.from_numpy(_masks((2, 4, 5, 6), seed=2)).to(device)
    logits = torch.randn(2, 1, 8, 7).to(device)
    sizes = torch.tensor([4.0, float("nan")]).to(device)
    loss_fn = SizeLoss(n_samples=2, border=border, backend="torch", seed=0, validate_args=False)
    loss_fn(logits.clone().requires_grad_(), sizes).backward()  # its generator is made before the watch
    backend = _backend(device)
    with _no_host_reads(device):
        distance_transform(masks2, border=border, backend=backend)
        object_size(masks2, border=border, backend=backend)
        flip_sizes(masks2, border=border, backend=backend)
        flip_sizes_and_size(masks3, spatial_dims=3, border=border, backend=backend)
        predicted_size(logits)
        x = logits.clone().requires_grad_()
        loss_fn(x, sizes).backward()
