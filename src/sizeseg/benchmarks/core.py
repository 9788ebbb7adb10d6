"""``sizeseg bench core``: the core ops against their anchors, measured side by side in one run.

Sections (each returns rows ``{"case", "ours_s", "anchor", "anchor_s", "ratio", "target", "ok"}``,
``ratio`` always defined so that smaller-than-or-equal-to ``target`` is good unless noted):

* distance_transform on 2D batches vs ``cv2.distanceTransform(x, cv2.DIST_C, 3)`` per image
  (ratio ours / cv2, target <= 1.0) and vs scipy (speed-up, informative);
* distance_transform on a 3D batch vs scipy per volume (speed-up, target >= 3);
* flip_sizes vs brute force: one transform per flipped copy, using our own fast transform on the
  batch of copies (speed-up, target >= 100), plus an exactness check on those images;
* peak extra memory of flip_sizes on (8, 256, 256) (target < 200 MB);
* SizeLoss (n_samples = 1) forward + backward vs one training step (forward, backward, Adam) of a
  MONAI FlexibleUNet with a ResNet-18 encoder on the same batch (ratio, target <= 0.2), and the
  cost for n_samples = 1, 2, 4, 8;
* with a CUDA device, the pure-torch path of the same ops on the GPU (informative), and where
  CuPy is installed its ``distance_transform_edt`` per image (Euclidean: a speed anchor only).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from .timing import peak_extra_memory_mb, time_call


def blob_masks(shape: tuple[int, ...], spatial_dims: int, seed: int = 0,
               fill: float = 0.35) -> np.ndarray:
    """Segmentation-like uint8 masks: smoothed noise thresholded to cover ~``fill`` of each image."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(shape).astype(np.float32)
    sigma = [0.0] * (len(shape) - spatial_dims) + [max(1.0, s / 12) for s in shape[-spatial_dims:]]
    smooth = gaussian_filter(noise, sigma)
    axes = tuple(range(len(shape) - spatial_dims, len(shape)))
    threshold = np.quantile(smooth, 1 - fill, axis=axes, keepdims=True)
    return (smooth > threshold).astype(np.uint8)


def _row(case: str, ours: float, anchor: str, anchor_s: float, ratio: float, target: str,
         ok: bool | None) -> dict[str, Any]:
    return dict(case=case, ours_s=ours, anchor=anchor, anchor_s=anchor_s, ratio=ratio,
                target=target, ok=ok)


def bench_distance_2d(repeats: int, shapes: list[tuple[int, int, int]]) -> list[dict[str, Any]]:
    import cv2
    from scipy.ndimage import distance_transform_cdt

    from sizeseg.ops import distance_transform

    rows = []
    for shape in shapes:
        masks = blob_masks(shape, 2, seed=sum(shape))
        ours = time_call(lambda: distance_transform(masks), repeats)
        ocv = time_call(lambda: [cv2.distanceTransform(m, cv2.DIST_C, 3) for m in masks], repeats)
        sci = time_call(lambda: [distance_transform_cdt(m, metric="chessboard") for m in masks],
                        max(1, repeats // 3))
        rows.append(_row(f"distance_transform {shape}", ours, "cv2 DIST_C per image", ocv,
                         ours / ocv, "<= 1.0", ours / ocv <= 1.0))
        rows.append(_row(f"distance_transform {shape}", ours, "scipy cdt per image", sci,
                         sci / ours, "speed-up (info)", None))
    return rows


def bench_distance_3d(repeats: int, shape: tuple[int, int, int, int]) -> list[dict[str, Any]]:
    from scipy.ndimage import distance_transform_cdt

    from sizeseg.ops import distance_transform

    vols = blob_masks(shape, 3, seed=3)
    ours = time_call(lambda: distance_transform(vols, spatial_dims=3), repeats)
    sci = time_call(lambda: [distance_transform_cdt(v, metric="chessboard") for v in vols],
                    max(1, repeats // 3))
    return [_row(f"distance_transform 3D {shape}", ours, "scipy cdt per volume", sci, sci / ours,
                 ">= 3 (speed-up)", sci / ours >= 3)]


def _brute_flip_sizes(masks: np.ndarray, border: str) -> np.ndarray:
    """One transform per flipped copy (batched through our own fast kernel): the anchor."""
    from sizeseg.ops import object_size

    out = np.empty(masks.shape, np.float32)
    v = masks[0].size
    eye = np.eye(v, dtype=bool).reshape((v,) + masks.shape[1:])
    for i, m in enumerate(masks):
        copies = np.logical_xor(m.astype(bool)[None], eye)
        out[i] = object_size(copies, border=border).reshape(m.shape)
    return out


def bench_flip(repeats: int, shape: tuple[int, int, int], brute_images: int) -> list[dict[str, Any]]:
    from sizeseg.ops import flip_sizes

    masks = blob_masks(shape, 2, seed=5, fill=0.5)
    ours = time_call(lambda: flip_sizes(masks, border="background"), repeats)
    subset = masks[:brute_images]
    brute = time_call(lambda: _brute_flip_sizes(subset, "background"), 1, warmup=0)
    brute_full = brute * shape[0] / len(subset)
    exact = bool(np.array_equal(flip_sizes(subset, border="background"),
                                _brute_flip_sizes(subset, "background")))
    note = "" if len(subset) == shape[0] else f", timed on {len(subset)} images and scaled"
    return [_row(f"flip_sizes {shape} (equal to brute force: {exact})", ours,
                 f"brute force: one transform per flipped copy{note}", brute_full,
                 brute_full / ours, ">= 100 (speed-up)", brute_full / ours >= 100 and exact)]


_MEMORY_PROBE = """
import json, sys
import numpy as np
from sizeseg.benchmarks.core import blob_masks
from sizeseg.benchmarks.timing import peak_extra_memory_mb
from sizeseg.ops import flip_sizes
shape = tuple(json.loads(sys.argv[1]))
masks = blob_masks(shape, 2, seed=6, fill=0.5)
flip_sizes(masks[:2, :5, :5], border="background")  # compiled, but no large buffer seen yet
print(json.dumps(peak_extra_memory_mb(lambda: flip_sizes(masks, border="background"))))
"""


def bench_flip_memory(shape: tuple[int, int, int]) -> list[dict[str, Any]]:
    """Peak extra resident memory of one flip_sizes call, in a fresh process (so memory that
    earlier sections freed but the allocator kept cannot hide the peak)."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, json.dumps(list(shape))],
                          capture_output=True, text=True, check=True)
    peak = json.loads(proc.stdout.strip().splitlines()[-1])
    inputs_mb = np.prod(shape) / 2**20
    if peak is None:
        return [_row(f"flip_sizes {shape} peak extra memory", float("nan"), "MB (unavailable)",
                     float("nan"), float("nan"), "< 200 MB", None)]
    return [_row(f"flip_sizes {shape} peak extra memory MB (input {inputs_mb:.1f} MB)", peak,
                 "MB", peak, peak, "< 200 MB", peak < 200)]


def _unet_step(images, masks, device: str) -> Callable[[], None]:
    import torch
    from monai.networks.nets import FlexibleUNet

    torch.manual_seed(0)
    net = FlexibleUNet(in_channels=1, out_channels=1, backbone="resnet18", pretrained=False,
                       spatial_dims=2).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    bce = torch.nn.BCEWithLogitsLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = bce(net(images), masks)
        loss.backward()
        opt.step()

    return step


def bench_size_loss(repeats: int, shape: tuple[int, int, int, int], device: str = "cpu",
                    samples: tuple[int, ...] = (1, 2, 4, 8)) -> list[dict[str, Any]]:
    import torch

    from sizeseg.losses.size_loss import SizeLoss
    from sizeseg.ops import object_size

    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    gen = torch.Generator().manual_seed(0)
    masks = torch.from_numpy(blob_masks(shape, 2, seed=7)).float()
    images = (masks + 0.5 * torch.randn(shape, generator=gen)).to(device)
    masks = masks.to(device)
    sizes = object_size(masks[:, 0], border="background")
    logits0 = (4 * masks - 2 + torch.randn(shape, generator=gen).to(device)).contiguous()
    step = _unet_step(images, masks, device)
    unet = time_call(step, repeats, sync, warmup=2)
    rows = []
    base = None
    for n in samples:
        loss_fn = SizeLoss(n_samples=n, seed=0)

        def fwd_bwd() -> None:
            logits = logits0.clone().requires_grad_(True)
            loss_fn(logits, sizes).backward()

        t = time_call(fwd_bwd, repeats, sync, warmup=2)
        base = base or t
        if n == 1:
            rows.append(_row(f"SizeLoss n=1 fwd+bwd {tuple(shape)} [{device}]", t,
                             "FlexibleUNet(resnet18) train step", unet, t / unet, "<= 0.2",
                             t / unet <= 0.2))
        else:
            rows.append(_row(f"SizeLoss n={n} fwd+bwd (cost / cost at n=1)", t, "SizeLoss n=1", base,
                             t / base, f"~{n} (linear)", None))
    return rows


def bench_torch_path(repeats: int, device: str) -> list[dict[str, Any]]:
    """The pure-torch path (used for CUDA tensors) against the numba kernel on CPU (info)."""
    import torch

    from sizeseg.ops import distance_transform, flip_sizes

    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    rows = []
    for shape in [(32, 256, 256)]:
        masks = blob_masks(shape, 2, seed=8)
        cpu = time_call(lambda: distance_transform(masks), repeats)
        x = torch.from_numpy(masks).to(device)
        ours = time_call(lambda: distance_transform(x, backend="torch"), repeats, sync)
        rows.append(_row(f"distance_transform torch path {shape} [{device}]", ours,
                         "numba kernel on CPU", cpu, ours / cpu, "info", None))
        edt = _cupy_edt_per_image(masks, repeats) if device.startswith("cuda") else None
        if edt is not None:
            rows.append(_row(f"distance_transform torch path {shape} [{device}]", ours,
                             "cupyx edt per image (Euclidean, GPU)", edt, ours / edt, "info", None))
    flips = blob_masks((32, 64, 32), 2, seed=9, fill=0.5)
    cpu = time_call(lambda: flip_sizes(flips, border="background"), repeats)
    x = torch.from_numpy(flips).to(device)
    ours = time_call(lambda: flip_sizes(x, border="background", backend="torch"), repeats, sync)
    rows.append(_row(f"flip_sizes torch path (32, 64, 32) [{device}]", ours, "numba kernel on CPU",
                     cpu, ours / cpu, "info", None))
    return rows


def _cupy_edt_per_image(masks: np.ndarray, repeats: int) -> float | None:
    """Seconds for CuPy's ``distance_transform_edt`` on each image of ``masks`` on the GPU, or None
    without CuPy. It computes the Euclidean transform, not ours, but it is the nearest exact
    transform a GPU library offers, so it anchors the torch path's speed."""
    try:
        import cupy
        from cupyx.scipy.ndimage import distance_transform_edt
    except ImportError:
        return None
    images = [cupy.asarray(m) for m in masks]
    return time_call(lambda: [distance_transform_edt(m) for m in images], repeats,
                     cupy.cuda.Device().synchronize)


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel the benchmark calls."""
    from sizeseg.ops import distance_transform, flip_sizes, object_size

    tiny = np.ones((2, 3, 4), np.uint8)
    for border in ("open", "background"):
        distance_transform(tiny, border=border)
        object_size(tiny.astype(bool), border=border)
        flip_sizes(tiny.astype(bool), border=border)
        distance_transform(tiny[None], spatial_dims=3, border=border)


def run_core(repeats: int = 7, quick: bool = False, device: str = "auto") -> dict[str, Any]:
    """Run every section; returns {"rows": [...], "environment": {...}}."""
    import numba
    import torch

    warm_up()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    rows: list[dict[str, Any]] = []
    rows += bench_distance_2d(repeats, [(256, 48, 32), (32, 256, 256), (4, 512, 512)])
    rows += bench_distance_3d(max(1, repeats // 2), (8, 64, 64, 64))
    rows += bench_flip(repeats, (32, 48, 32), brute_images=4 if quick else 32)
    rows += bench_flip_memory((8, 256, 256))
    rows += bench_size_loss(repeats, (32, 1, 64, 32), "cpu", (1, 2, 4) if quick else (1, 2, 4, 8))
    if device.startswith("cuda"):
        rows += bench_size_loss(repeats, (32, 1, 64, 32), device, (1, 8))
        rows += bench_torch_path(repeats, device)
    elif not quick:
        rows += bench_torch_path(max(1, repeats // 3), "cpu")
    env = dict(torch=torch.__version__, numba=numba.__version__, numba_threads=numba.get_num_threads(),
               torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count(), device=device,
               load_average=os.getloadavg(), repeats=repeats, quick=quick,
               gpu=torch.cuda.get_device_name() if device.startswith("cuda") else None)
    return {"rows": rows, "environment": env}


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A plain-text table: case, ours, anchor, ratio, target, verdict."""
    lines = [f"{'case':62s} {'ours':>10s}  {'anchor':46s} {'anchor':>10s} {'ratio':>8s}  target"]
    for r in rows:
        unit_mb = r["anchor"] == "MB" or r["anchor"].startswith("MB")
        ours = f"{r['ours_s']:.1f} MB" if unit_mb else f"{r['ours_s'] * 1e3:.2f} ms"
        anchor = "" if unit_mb else f"{r['anchor_s'] * 1e3:.2f} ms"
        verdict = {True: "ok", False: "MISSED", None: ""}[r["ok"]]
        lines.append(f"{r['case'][:62]:62s} {ours:>10s}  {('' if unit_mb else r['anchor'])[:46]:46s} "
                     f"{anchor:>10s} {r['ratio']:8.3f}  {r['target']} {verdict}")
    return "\n".join(lines)
