"""``sizeseg bench objects``: the per-object flip computation against brute force, side by side.

Rows (same layout as :mod:`sizeseg.benchmarks.core`):

* ``object_flip_sizes`` on a (32, 96, 128) batch of multi-object blob masks vs brute force: every
  flipped copy labelled by ``scipy.ndimage.label`` and transformed by scipy's chessboard
  transform, each object's size read off per label (copies stacked into chunks, so one scipy call
  serves many copies; the structuring elements never reach across copies). The anchor is timed on
  a subset of pixels and scaled to the batch; target speed-up >= 100. The subset is also checked
  for equality.
* ``ObjectSizeLoss`` forward + backward (n = 1) on the same batch against ``SizeLoss`` (the
  single-object loss): what the per-object loss costs on top (informative).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from .core import _row, blob_masks
from .timing import time_call


def brute_object_sizes(stack: np.ndarray, spatial_dims: int, border: str,
                       connectivity: int | None) -> list[list[float]]:
    """Object sizes (label order) of each image of a stack (N, *spatial), by scipy alone.

    One ``scipy.ndimage.label`` and one ``distance_transform_cdt`` call for the whole stack,
    with structuring elements that do not connect neighbouring images of the stack.
    """
    from scipy import ndimage

    stack = np.asarray(stack, bool)
    n = stack.shape[0]
    full = connectivity in (None, 8, 26)
    struct = np.zeros((3,) * (spatial_dims + 1), bool)
    struct[1] = ndimage.generate_binary_structure(spatial_dims, spatial_dims if full else 1)
    labels, count = ndimage.label(stack, structure=struct)
    chess = np.zeros((3,) * (spatial_dims + 1), bool)
    chess[1] = True  # chessboard metric inside each image only
    if border == "background":
        pad = [(0, 0)] + [(1, 1)] * spatial_dims
        inner = (slice(None),) + (slice(1, -1),) * spatial_dims
        dist = ndimage.distance_transform_cdt(np.pad(stack, pad), metric=chess)[inner]
    else:
        dist = ndimage.distance_transform_cdt(stack, metric=chess).astype(np.float64)
        dist[stack.reshape(n, -1).all(axis=1)] = np.inf  # no background: scipy leaves -1
    out: list[list[float]] = [[] for _ in range(n)]
    if count == 0:
        return out
    index = np.arange(1, count + 1)
    maxima = np.atleast_1d(ndimage.maximum(dist, labels, index))
    first = np.atleast_1d(ndimage.minimum(np.arange(stack.size).reshape(stack.shape), labels, index))
    for img, mx in zip((first // int(np.prod(stack.shape[1:]))).astype(int), maxima):
        out[img].append(2.0 * float(mx))
    return out


def brute_flip_multisets(mask: np.ndarray, spatial_dims: int, border: str,
                         connectivity: int | None, pixels: np.ndarray | None = None,
                         chunk: int = 256) -> list[Counter]:
    """The multiset of object sizes after flipping each pixel (or the given flat ``pixels``)."""
    fg = np.asarray(mask, bool)
    flat = np.arange(fg.size) if pixels is None else np.asarray(pixels)
    out: list[Counter] = []
    for start in range(0, len(flat), chunk):
        idx = flat[start:start + chunk]
        copies = np.repeat(fg.reshape(1, -1), len(idx), axis=0)
        copies[np.arange(len(idx)), idx] ^= True
        sizes = brute_object_sizes(copies.reshape((len(idx),) + fg.shape), spatial_dims, border,
                                   connectivity)
        out += [Counter(s) for s in sizes]
    return out


def op_flip_multisets(sizes: np.ndarray, removed: np.ndarray, added: np.ndarray) -> list[Counter]:
    """``S - R_i + A_i`` per pixel from one image's :func:`object_flip_sizes` outputs."""
    base = Counter(float(s) for s in sizes if not np.isnan(s))
    out = []
    for r, a in zip(removed.reshape(-1, removed.shape[-1]), added.reshape(-1, added.shape[-1])):
        rem = Counter(float(x) for x in r if not np.isnan(x))
        if rem - base:
            raise AssertionError(f"removed {dict(rem)} not all in the sizes {dict(base)}")
        out.append(base - rem + Counter(float(x) for x in a if not np.isnan(x)))
    return out


def bench_object_flips(repeats: int, shape: tuple[int, int, int], brute_pixels: int,
                       seed: int = 5) -> list[dict[str, Any]]:
    """object_flip_sizes on the batch vs brute force on ``brute_pixels`` pixels, scaled."""
    from sizeseg.ops.components import object_flip_sizes, object_sizes

    masks = blob_masks(shape, 2, seed=seed, fill=0.5)
    ours = time_call(lambda: object_flip_sizes(masks), repeats)
    # the anchor's pixels: a random subset of the first image(s), so chunks stay full
    rng = np.random.default_rng(seed)
    v = int(np.prod(shape[1:]))
    n_images = min(shape[0], -(-brute_pixels // v))
    per_image = np.concatenate([i * v + np.sort(rng.choice(v, min(v, brute_pixels // n_images),
                                                           replace=False))
                                for i in range(n_images)])
    images = per_image // v

    def brute() -> list[Counter]:
        found: list[Counter] = []
        for img in np.unique(images):
            found += brute_flip_multisets(masks[img], 2, "background", None,
                                          per_image[images == img] % v)
        return found

    brute_s = time_call(brute, 1, warmup=0)
    brute_full = brute_s * shape[0] * v / len(per_image)
    flips = object_flip_sizes(masks)
    mine: list[Counter] = []
    for img in np.unique(images):
        ms = op_flip_multisets(flips.sizes[img], flips.removed[img], flips.added[img])
        mine += [ms[i] for i in per_image[images == img] % v]
    exact = mine == brute()
    objects = np.isfinite(object_sizes(masks)[1]).sum(-1)
    case = (f"object_flip_sizes {shape}, {objects.min()}-{objects.max()} objects/image "
            f"(equal to brute force: {exact})")
    note = f"brute force: label + transform per flipped copy, {len(per_image)} px scaled"
    return [_row(case, ours, note, brute_full, brute_full / ours, ">= 100 (speed-up)",
                 brute_full / ours >= 100 and exact)]


def bench_object_loss(repeats: int, shape: tuple[int, int, int, int]) -> list[dict[str, Any]]:
    """ObjectSizeLoss fwd+bwd against SizeLoss fwd+bwd on the same logits (informative)."""
    import torch

    from sizeseg.losses.object_size_loss import ObjectSizeLoss
    from sizeseg.losses.size_loss import SizeLoss
    from sizeseg.ops import object_size
    from sizeseg.ops.components import object_sizes

    gen = torch.Generator().manual_seed(0)
    masks = torch.from_numpy(blob_masks(shape, 2, seed=7)).float()
    logits0 = (4 * masks - 2 + torch.randn(shape, generator=gen)).contiguous()
    lists = object_sizes(masks)[1]
    single = object_size(masks[:, 0], border="background")

    def step(loss_fn, sizes) -> None:
        logits = logits0.clone().requires_grad_(True)
        loss_fn(logits, sizes).backward()

    per_object = time_call(lambda: step(ObjectSizeLoss(seed=0), lists), repeats, warmup=1)
    one = time_call(lambda: step(SizeLoss(seed=0), single), repeats, warmup=1)
    return [_row(f"ObjectSizeLoss n=1 fwd+bwd {shape}", per_object, "SizeLoss n=1 fwd+bwd", one,
                 per_object / one, "info", None)]


def warm_up() -> None:
    """Compile (or load from numba's cache) the kernels the benchmark calls."""
    import torch

    from sizeseg.losses.object_size_loss import object_size_loss
    from sizeseg.ops.components import object_flip_sizes

    tiny = np.ones((2, 3, 4), bool)
    object_flip_sizes(tiny)
    object_size_loss(torch.zeros(1, 1, 3, 4, requires_grad=True), torch.ones(1, 1)).backward()


def run_objects(repeats: int = 5, quick: bool = False,
                shape: tuple[int, int, int] = (32, 96, 128)) -> dict[str, Any]:
    """Run both sections; returns {"rows": [...], "environment": {...}}."""
    import os

    import numba
    import torch

    warm_up()
    rows = bench_object_flips(repeats, shape, brute_pixels=1024 if quick else 12288)
    rows += bench_object_loss(repeats, (shape[0], 1) + shape[1:])
    env = dict(torch=torch.__version__, numba=numba.__version__,
               numba_threads=numba.config.NUMBA_NUM_THREADS, cpu_count=os.cpu_count(),
               load_average=os.getloadavg(), repeats=repeats, quick=quick, shape=shape)
    return {"rows": rows, "environment": env}
