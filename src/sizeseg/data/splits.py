"""Seeded train/validation/test splits, by group (volume, patient) or by item."""

from __future__ import annotations

from typing import Sequence

import numpy as np

PAPER1_FRACTIONS = (0.7, 0.1, 0.2)  # train / val / test of the object-size paper
PAPER2_FRACTIONS = (0.75, 0.25)  # train / val of the constrained-CNN paper (75 / 25 patients)


def split_groups(
    groups: Sequence[str],
    fractions: Sequence[float] = PAPER1_FRACTIONS,
    names: Sequence[str] = ("train", "val", "test"),
    seed: int = 0,
) -> np.ndarray:
    """Assign each item to a split so that no group is in two splits.

    The distinct groups (sorted, so the result does not depend on item order) are shuffled with
    ``numpy.random.default_rng(seed)``; the first ``round(c_1 G)`` go to ``names[0]``, the
    groups up to ``round(c_2 G)`` to ``names[1]``, and so on, where ``c_k`` is the cumulative sum
    of ``fractions`` and ``G`` the number of groups. Splitting by item is the special case where
    every item is its own group.

    Args:
        groups: (N,) group key per item (e.g. the source volume).
        fractions: one fraction per split, positive, summing to 1.
        names: split names, as many as ``fractions``.
        seed: random seed.

    Returns:
        (N,) array of split names.

    >>> split_groups(["a", "a", "b", "c"], (0.5, 0.5), ("train", "val"), seed=0).tolist()
    ['train', 'train', 'val', 'train']
    """
    fractions = [float(f) for f in fractions]
    if len(fractions) != len(names):
        raise ValueError(f"fractions ({len(fractions)}) and names ({len(names)}) differ in length")
    if any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
    groups = np.asarray(groups).astype(str)
    unique = np.unique(groups)
    order = np.random.default_rng(seed).permutation(len(unique))
    bounds = np.rint(np.cumsum(fractions) * len(unique)).astype(int)
    assignment = np.empty(len(unique), dtype=object)
    start = 0
    for name, stop in zip(names, bounds):
        assignment[order[start:stop]] = name
        start = stop
    lookup = dict(zip(unique.tolist(), assignment.tolist()))
    return np.array([lookup[g] for g in groups.tolist()], dtype=str)


def split_items(
    groups: Sequence[str], by: str, fractions: Sequence[float] = PAPER1_FRACTIONS,
    names: Sequence[str] = ("train", "val", "test"), seed: int = 0,
) -> np.ndarray:
    """Split by ``"volume"`` (no group in two splits) or by ``"slice"`` (each item on its own)."""
    groups = np.asarray(groups).astype(str)
    if by == "volume":
        return split_groups(groups, fractions, names, seed)
    if by == "slice":
        return split_groups(np.char.add(np.arange(len(groups)).astype(str), "#"), fractions, names, seed)
    raise ValueError(f"split_by must be 'volume' or 'slice', got {by!r}")
