"""How strongly each loss term pulls on the network, against BCE: the size of each term's gradient.

A weight is only meaningful against the other terms' gradients, and those depend on the network and
on how closely it fits its masks as much as on the data: on ACDC LV at 64x64 the same weights gave
size and area terms of 2-3x BCE's gradient on a 0.2 M-parameter U-Net and 5-16x on a
ResNet-18-encoder one (results/sizes-acdc/). So mixed training reports these ratios at its start,
where a user sees them before spending the run. One batch gives an order of magnitude, no more:
the area bounds are a hinge, zero for a batch whose soft areas lie within their bounds (over nine
ACDC runs the area term's ratio ranged from 0 to 52).
"""

from __future__ import annotations

import copy
import math
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, default_collate

from sizeseg.training.loss_terms import LossTerm


def probe_batch(dataset: Dataset, batch_size: int, mask_fraction: float = 0.5, seed: int = 0) -> dict:
    """One training batch of ``dataset`` with ``round(batch_size * mask_fraction)`` masked items, the rest sized.

    The items are drawn without replacement by a generator seeded with ``seed`` (the run's own random
    state is not touched), as many of each kind as there are when the data hold fewer.
    ``dataset`` needs ``has_mask`` (N,) and items that are batch dictionaries.
    """
    has = np.asarray(dataset.has_mask, bool)
    rng = np.random.default_rng(seed)
    n_masked = min(int(round(batch_size * mask_fraction)), int(has.sum()))
    masked = rng.choice(np.flatnonzero(has), n_masked, replace=False)
    sized = rng.choice(np.flatnonzero(~has), min(batch_size - n_masked, int((~has).sum())), replace=False)
    return default_collate([dataset[int(i)] for i in np.concatenate([masked, sized])])


def gradient_balance(model: nn.Module, terms: Sequence[LossTerm], batch: Mapping,
                     reference: str = "bce") -> dict[str, float]:
    r"""Each weighted term's gradient norm over the reference term's, on one batch.

    For every term k other than ``reference`` with a weight above 0:
    :math:`\|w_k \nabla_\theta L_k\| / \|w_r \nabla_\theta L_r\|` over all of the network's
    parameters :math:`\theta`. A copy of ``model`` in training mode does the work, inside
    :func:`torch.random.fork_rng`, so neither the network (its batch-norm statistics) nor the random
    state of the run that follows changes. A ratio is NaN when the reference's gradient is zero.

    Args:
        model: the network (B, C_in, *spatial) -> logits (B, C, *spatial).
        terms: loss terms (``name``, ``weight``, ``__call__(logits, batch)``), one named ``reference``.
        batch: a batch dictionary with ``image`` and whatever the terms read.
        reference: the name of the term the others are measured against.

    Returns:
        ``{name: ratio}`` for the other weighted terms, in the order of ``terms``.

    Example:
        >>> from sizeseg.models import build_model
        >>> from sizeseg.training import BCETerm, SizeTerm
        >>> batch = {"image": torch.randn(4, 1, 32, 32), "mask": torch.zeros(4, 1, 32, 32),
        ...          "has_mask": torch.tensor([True, True, False, False]),
        ...          "size": torch.tensor([float("nan"), float("nan"), 8.0, 12.0])}
        >>> ratios = gradient_balance(build_model("unet-tiny"), [BCETerm(), SizeTerm(weight=1e-3)], batch)
        >>> list(ratios)
        ['size']
    """
    names = [t.name for t in terms]
    if reference not in names:
        raise ValueError(f"reference: expected one of the terms' names {names}, got {reference!r}")
    if "image" not in batch:
        raise ValueError("batch: expected a batch dictionary with 'image'")
    probe = copy.deepcopy(model).train()
    params = [p for p in probe.parameters() if p.requires_grad]

    def norm(term, logits) -> float:
        grads = torch.autograd.grad(term.weight * term(logits, batch), params, retain_graph=True, allow_unused=True)
        return math.sqrt(sum(float(g.pow(2).sum()) for g in grads if g is not None))

    with torch.random.fork_rng(devices=[]):
        logits = probe(batch["image"])
        ref = norm(terms[names.index(reference)], logits)
        out = {}
        for term in terms:
            if term.name != reference and term.weight > 0:
                value = norm(term, logits)
                out[term.name] = value / ref if ref > 0 else float("nan")
    return out


def balance_note(ratios: Mapping[str, float], reference: str = "bce") -> str:
    """One line for the user: each term's gradient against the reference's, at the start of training."""
    parts = ", ".join(f"{name} {ratio:.2g}x" for name, ratio in ratios.items())
    return (f"gradient at the start, against {reference}'s on one batch: {parts} (a weight means this much "
            f"pull on this network; results/sizes-acdc/ lists it beside each result)")
