"""Thin glue from prepared data to the datasets and loaders of each training mode.

Items come from :class:`sizeseg.data.datasets.SegmentationDataset` (the batch dictionary of
docs/ARCHITECTURE.md); this module only decides what each mode may see and how batches are drawn.
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, WeightedRandomSampler

TRAINING_MODES = ("pretrain", "finetune", "mixed")


def mode_dataset(train, mode: str, m: int | None = None, seed: int = 0, flips: bool = True,
                 mixed_flips: bool = False) -> Dataset:
    """The training dataset of one mode, from the training split ``train`` (a ``PreparedData``).

    - ``pretrain``: only the ``m`` masked items chosen by ``choose_masked(seed)`` (all if ``m`` is
      None), with random flips when ``flips`` (the size paper's augmentation);
    - ``finetune``: every item with its size and no mask, no augmentation (as in the paper);
    - ``mixed``: every item with its size, masks on the same ``m`` items as ``pretrain``; random flips
      when ``mixed_flips``.

    Example:
        >>> from sizeseg.data.synthetic import synthetic_data
        >>> d = synthetic_data(10, seed=0)
        >>> len(mode_dataset(d, "pretrain", m=3)), int(mode_dataset(d, "mixed", m=3).has_mask.sum())
        (3, 3)
    """
    from sizeseg.data.datasets import SegmentationDataset, choose_masked

    if mode not in TRAINING_MODES:
        raise ValueError(f"mode: expected one of {TRAINING_MODES}, got {mode!r}")
    n_masked = int(np.asarray(train.has_mask, bool).sum())
    if mode != "finetune" and m is not None and (not isinstance(m, (int, np.integer)) or not 1 <= m <= n_masked):
        raise ValueError(f"m: expected an int in [1, {n_masked}] (training items with a mask), got {m!r}")
    if mode == "pretrain":
        chosen = np.flatnonzero(choose_masked(train.has_mask, m, seed))
        if len(chosen) == 0:
            raise ValueError("pretrain: no training item has a mask; prepare the data with masks")
        return SegmentationDataset(train.take(chosen), masked=None, sizes="all", augment="flip" if flips else "none")
    if np.isnan(np.asarray(train.sizes, np.float32)).all():
        raise ValueError(f"{mode}: no training item has a size; prepare the data with sizes")
    augment = "flip" if mode == "mixed" and mixed_flips else "none"
    return SegmentationDataset(train, masked=0 if mode == "finetune" else m, sizes="all", seed=seed, augment=augment)


def eval_dataset(data) -> Dataset:
    """Validation / test items with every mask and size they have, no augmentation."""
    from sizeseg.data.datasets import SegmentationDataset

    return SegmentationDataset(data, masked=None, sizes="all")


def mask_fraction_weights(has_mask, mask_fraction: float) -> np.ndarray:
    """Per-item draw probabilities under which masked items (``has_mask``) make ``mask_fraction`` of
    the draws, each masked item alike and each unmasked one alike; needs both kinds present.

    >>> mask_fraction_weights([True, False, False, False], 0.5).tolist()
    [0.5, 0.16666666666666666, 0.16666666666666666, 0.16666666666666666]
    """
    has = np.asarray(has_mask, bool)
    return np.where(has, mask_fraction / has.sum(), (1 - mask_fraction) / (~has).sum())


class NoSingletonBatchSampler(BatchSampler):
    """Batches of ``batch_size`` with the last partial batch kept, except that a last batch of one
    item joins the batch before it: every item is seen each epoch, and batch normalisation, which
    cannot train on one image, never gets a batch of one.

    Example:
        >>> [len(b) for b in NoSingletonBatchSampler(range(9), batch_size=4, drop_last=False)]
        [4, 5]
        >>> [len(b) for b in NoSingletonBatchSampler(range(10), batch_size=4, drop_last=False)]
        [4, 4, 2]
    """

    def __iter__(self):
        pending = None
        for batch in super().__iter__():
            if pending is not None:
                if len(batch) == 1 and not self.drop_last:
                    batch = pending + batch
                else:
                    yield pending
            pending = batch
        if pending is not None:
            yield pending

    def __len__(self) -> int:
        n = len(self.sampler)
        if self.drop_last:
            return n // self.batch_size
        full, rest = divmod(n, self.batch_size)
        return full + (1 if rest > 1 or (rest == 1 and full == 0) else 0)


class SegmentationDataModule(pl.LightningDataModule):
    """Loaders over datasets of batch dictionaries; in mixed runs masked items make ``mask_fraction`` of each epoch.

    Args:
        train, val, test: datasets (any may be None), e.g. from :func:`mode_dataset` / :func:`eval_dataset`.
        batch_size: images per batch (per process under DDP).
        mask_fraction: if set, training items are drawn with replacement so that masked items
            (``train.has_mask``) make this expected fraction of each epoch (of ``epoch_items``
            draws when the set is smaller); else shuffled.
        num_workers: loader worker processes.
        seed: seed of the mixed-training sampler.
        epoch_items: a smaller training set is repeated (in fresh random orders) to about this
            many items per epoch (None: one pass).
    """

    def __init__(self, train: Dataset | None = None, val: Dataset | None = None, test: Dataset | None = None,
                 batch_size: int = 32, mask_fraction: float | None = None, num_workers: int = 0, seed: int = 0,
                 epoch_items: int | None = None) -> None:
        super().__init__()
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
        if mask_fraction is not None and not 0.0 < mask_fraction < 1.0:
            raise ValueError(f"mask_fraction: expected a fraction in (0, 1), got {mask_fraction!r}")
        self.sets = {"train": train, "val": val, "test": test}
        self.batch_size = batch_size
        self.mask_fraction = mask_fraction
        self.num_workers = num_workers
        self.seed = seed
        if epoch_items is not None and (not isinstance(epoch_items, int) or epoch_items < 1):
            raise ValueError(f"epoch_items: expected a positive int or None, got {epoch_items!r}")
        self.epoch_items = epoch_items

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        dataset = self.sets[name]
        if dataset is None:
            raise ValueError(f"{name}: this data module has no {name} split")
        sampler = None
        if name == "train" and self.mask_fraction is not None:
            has = np.asarray(dataset.has_mask, bool)
            if has.any() and (~has).any():
                weights = mask_fraction_weights(has, self.mask_fraction)
                epoch = self.trainer.current_epoch if self.trainer is not None else 0
                g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
                items = max(len(dataset), self.epoch_items or 0)  # a small set: epochs of epoch_items draws
                sampler = WeightedRandomSampler(torch.from_numpy(weights), items, replacement=True, generator=g)
                shuffle = False
        if name == "train" and sampler is None and self.epoch_items and len(dataset) < self.epoch_items:
            # whole random permutations, repeated: a few images (pre-training on m = 10 masks) still
            # make epochs of several batches, so per-epoch costs (validation, checkpoints) stay small
            repeats = -(-self.epoch_items // len(dataset))
            epoch = self.trainer.current_epoch if self.trainer is not None else 0
            sampler = RandomSampler(dataset, num_samples=len(dataset) * repeats,
                                    generator=torch.Generator().manual_seed(self.seed * 100003 + epoch))
            shuffle = False
        if name != "train":
            return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, sampler=sampler,
                              num_workers=self.num_workers)
        # every training item each epoch (a partial last batch is kept), but no batch of one image:
        # batch normalisation cannot train on it
        if sampler is None:
            sampler = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
        batches = NoSingletonBatchSampler(sampler, batch_size=self.batch_size, drop_last=False)
        return DataLoader(dataset, batch_sampler=batches, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
