"""Seeded train/validation/test splits, by group (volume, patient) or by item."""

from __future__ import annotations

from typing import Sequence

import numpy as np

PAPER1_FRACTIONS = (0.7, 0.1, 0.2)  # train / val / test of the object-size paper
PAPER2_FRACTIONS = (0.75, 0.25)  # train / val of the constrained-CNN paper (75 / 25 patients)
#: validation IoU picks best.ckpt and stops pre-training early: on fewer masks than this it is noise
MIN_VAL_MASKS = 5


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


def split_by_masks(
    has_mask: Sequence[bool], fractions: Sequence[float] = PAPER1_FRACTIONS,
    names: Sequence[str] = ("train", "val", "test"), seed: int = 0,
    fixed: Sequence[str] | None = None,
) -> np.ndarray:
    """Split items so that every split holds its fraction of the masked items (stratified).

    Masked and size-only items are split separately with :func:`split_groups` (each item its own
    group, ``fractions`` and ``seed`` as there): a random split over all items can leave
    validation with one mask, where validation IoU picks the checkpoint and stops training. Items
    whose entry in ``fixed`` is a split name (e.g. from a validation list) keep it; the others are
    split with the remaining names, their fractions renormalised.

    Args:
        has_mask: (N,) bool, the item carries a mask.
        fractions, names, seed: as in :func:`split_groups`.
        fixed: (N,) split name per item, or ``""`` for items to be split; None: none fixed.

    Returns:
        (N,) array of split names.

    >>> split_by_masks([True] * 10 + [False] * 10, (0.6, 0.2, 0.2)).tolist().count("val")
    4
    >>> masks = np.array([True] * 10 + [False] * 10)
    >>> int((split_by_masks(masks, (0.6, 0.2, 0.2))[masks] == "val").sum())
    2
    >>> split_by_masks([True, False, True], (0.5, 0.5), ("train", "val"), fixed=["val", "", ""]).tolist()[0]
    'val'
    """
    has_mask = np.asarray(has_mask, dtype=bool)
    out = np.full(len(has_mask), "", dtype=object)
    free_names, free_fractions = list(names), [float(f) for f in fractions]
    if fixed is not None:
        fixed = np.asarray(fixed, dtype=str)
        if fixed.shape != has_mask.shape:
            raise ValueError(f"fixed: expected {len(has_mask)} entries, got {len(fixed)}")
        unknown = sorted(set(fixed.tolist()) - set(names) - {""})
        if unknown:
            raise ValueError(f"fixed: split names {unknown} are not among {list(names)}")
        out[fixed != ""] = fixed[fixed != ""]
        taken = set(fixed.tolist()) - {""}
        kept = [(n, f) for n, f in zip(names, fractions) if n not in taken]
        free_names, free_fractions = [n for n, _ in kept], [float(f) for _, f in kept]
    free = out == ""
    if free.any():
        if not free_names or sum(free_fractions) <= 0:
            raise ValueError(f"fractions: no split left with a positive fraction for the {int(free.sum())} "
                             f"items that are not fixed")
        free_fractions = [f / sum(free_fractions) for f in free_fractions]
        for k, stratum in enumerate((has_mask, ~has_mask)):
            index = np.flatnonzero(free & stratum)
            if len(index):
                keys = np.char.add(index.astype(str), "#")
                out[index] = split_groups(keys, free_fractions, free_names, seed + k)
    return out.astype(str)


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
