"""Per-object size error and multi-class scores against scipy labelling and per-class IoU."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from sizeseg.metrics import iou_score
from sizeseg.metrics.object_size_error import object_size_error, score_batch


def _reference(mask: np.ndarray, target: list[float], absolute: bool) -> float:
    labels, k = ndimage.label(mask, structure=np.ones((3, 3)))
    padded = np.pad(mask, 1)  # outside the image is background
    dist = ndimage.distance_transform_cdt(padded, metric="chessboard")[1:-1, 1:-1]
    sizes = sorted((2.0 * dist[labels == j].max() for j in range(1, k + 1)), reverse=True)
    t = sorted(target, reverse=True)
    n = max(len(sizes), len(t))
    g, t = np.pad(sizes, (0, n - len(sizes))), np.pad(t, (0, n - len(t)))
    err = np.abs(t - g) if absolute else (t - g) ** 2
    return float(err.sum() / max(1, sum(v > 0 for v in target)))


def test_object_size_error_equals_scipy_reference():
    rng = np.random.default_rng(0)
    masks = rng.random((40, 12, 12)) < rng.uniform(0.05, 0.6, size=(40, 1, 1))
    targets = [sorted(rng.choice([2.0, 4.0, 6.0], size=rng.integers(1, 5)).tolist()) for _ in range(40)]
    padded = torch.full((40, 4), float("nan"))
    for i, t in enumerate(targets):
        padded[i, : len(t)] = torch.tensor(t)
    for absolute in (False, True):
        got = object_size_error(torch.from_numpy(masks), padded, criterion="absolute" if absolute else "squared")
        want = [_reference(m, t, absolute) for m, t in zip(masks, targets)]
        assert np.allclose(got.numpy(), want)


def test_scores_of_several_classes_are_per_class_means():
    rng = np.random.default_rng(1)
    logits = torch.from_numpy(rng.normal(size=(5, 3, 10, 10)).astype(np.float32))
    mask = torch.from_numpy(rng.random((5, 3, 10, 10)) < 0.4).float()
    has = torch.tensor([True, False, True, True, True])
    lists = torch.full((5, 3, 2), float("nan"))
    lists[:, 0, 0] = 4.0
    lists[2, 2] = torch.tensor([6.0, 2.0])
    scores = score_batch(logits, {"mask": mask, "has_mask": has, "size": torch.zeros(5), "object_sizes": lists})
    per_class = torch.stack([iou_score(logits[has][:, c] > 0, mask[has][:, c] > 0) for c in range(3)], 1)
    assert torch.allclose(scores["IoU_class"], per_class) and torch.allclose(scores["IoU"], per_class.mean(1))
    # E: the mean over the annotated classes of (largest listed - predicted size)^2
    sizes = scores["predicted_size"]
    want = torch.stack([(4.0 - sizes[:, 0]) ** 2, (6.0 - sizes[:, 2]) ** 2], 1)
    assert torch.allclose(scores["E"][[0, 1, 3, 4]], want[[0, 1, 3, 4], 0])
    assert torch.allclose(scores["E"][2], want[2].mean())
