"""Synthetic generator and the torch dataset / batch dictionary."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from sizeseg.data.datasets import SegmentationDataset, choose_masked, collate_batch
from sizeseg.data.synthetic import FRACTION_RANGE, synthetic_data, synthetic_item
from tests.builders import reference_size


def test_synthetic_deterministic_and_in_range():
    a, b = synthetic_data(30, seed=5), synthetic_data(30, seed=5)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.masks, b.masks)
    c = synthetic_data(30, seed=6)
    assert not np.array_equal(a.masks, c.masks)
    prefix = synthetic_data(10, seed=5)  # item i depends on (seed, i) only
    np.testing.assert_array_equal(prefix.images, a.images[:10])
    fraction = a.masks.reshape(30, -1).mean(axis=1)
    assert (fraction >= FRACTION_RANGE[0]).all() and (fraction <= FRACTION_RANGE[1]).all()
    np.testing.assert_array_equal(a.sizes, [reference_size(m) for m in a.masks])
    np.testing.assert_allclose(a.images.mean(axis=(1, 2, 3)), 0, atol=1e-4)
    assert len(np.unique(a.sizes)) > 5  # varied sizes
    from scipy import ndimage
    assert all(ndimage.label(m)[1] == 1 for m in a.masks)  # one object per image


def test_synthetic_blur_default_scales_with_the_side_and_a_pixel_range_overrides_it():
    # at a side of 32 the default range is 0.5-1.2 px: the same draw, the same image
    default, explicit = synthetic_item(3, 5, (32, 32)), synthetic_item(3, 5, (32, 32), blur=(0.5, 1.2))
    assert np.array_equal(default[0], explicit[0]) and np.array_equal(default[1], explicit[1])
    # at 96 the default range is 3 times wider: 1.5-3.6 px, and 0.5-1.2 px gives another image
    default = synthetic_item(3, 5, (96, 96))[0]
    assert np.allclose(default, synthetic_item(3, 5, (96, 96), blur=(1.5, 3.6))[0], atol=1e-5)
    assert not np.allclose(default, synthetic_item(3, 5, (96, 96), blur=(0.5, 1.2))[0], atol=1e-2)
    with pytest.raises(ValueError, match=r"blur: expected 0 <= low <= high, got \(2.0, 1.0\)"):
        synthetic_item(0, 0, blur=(2.0, 1.0))


def test_synthetic_shapes_and_3d():
    image, mask = synthetic_item(1, 0, shape=(20, 24, 16))
    assert image.shape == mask.shape == (20, 24, 16)
    assert FRACTION_RANGE[0] <= mask.mean() <= FRACTION_RANGE[1]
    assert synthetic_data(3, shape=(64, 64)).images.shape == (3, 1, 64, 64)
    volumes = synthetic_data(3, shape=(12, 16, 10), seed=2)
    assert volumes.images.shape == (3, 1, 12, 16, 10)
    np.testing.assert_array_equal(volumes.sizes, [reference_size(m) for m in volumes.masks])
    with pytest.raises(ValueError, match="shape"):
        synthetic_item(0, 0, shape=(4, 4))


def test_item_matches_batch_contract():
    data = synthetic_data(12, seed=0)
    ds = SegmentationDataset(data, masked=4, seed=1)
    item = ds[0]
    assert set(item) == {"image", "mask", "has_mask", "size", "bounds", "size_bounds", "weak", "id"}
    assert item["image"].dtype == torch.float32 and item["image"].shape == (1, 48, 32)
    assert item["mask"].shape == (1, 48, 32) and item["weak"].dtype == torch.int64
    assert item["bounds"].shape == (2,) and torch.isnan(item["bounds"]).all()
    batch = next(iter(DataLoader(ds, batch_size=5)))  # default collate
    assert batch["image"].shape == (5, 1, 48, 32) and batch["has_mask"].dtype == torch.bool
    assert batch["size"].shape == (5,) and batch["weak"].shape == (5, 48, 32) and len(batch["id"]) == 5
    explicit = collate_batch([ds[i] for i in range(5)])
    for key in ("image", "mask", "has_mask", "weak"):
        assert torch.equal(explicit[key], batch[key])
    assert explicit["id"] == batch["id"]


def test_masked_subset_and_sizes():
    data = synthetic_data(20, seed=0)
    ds = SegmentationDataset(data, masked=6, sizes="unmasked", seed=2)
    has = np.array([bool(ds[i]["has_mask"]) for i in range(20)])
    assert has.sum() == 6
    for i in range(20):
        item = ds[i]
        if has[i]:
            assert torch.isnan(item["size"]) and torch.equal(item["mask"][0], torch.from_numpy(data.masks[i]).float())
        else:
            assert item["size"] == data.sizes[i] and not item["mask"].any()
    small, large = choose_masked(data.has_mask, 3, seed=2), choose_masked(data.has_mask, 6, seed=2)
    assert (small <= large).all()  # nested
    with pytest.raises(ValueError, match="m must be"):
        SegmentationDataset(data, masked=21)
    with pytest.raises(ValueError, match="bounds must have shape"):
        SegmentationDataset(data, bounds=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="size_bounds must have shape"):
        SegmentationDataset(data, size_bounds=np.zeros((20, 3)))
    assert torch.isnan(ds[0]["size_bounds"]).all()  # none given
    both = SegmentationDataset(data, bounds=np.full((20, 2), 5.0), size_bounds=np.arange(40.0).reshape(20, 2))
    assert both[3]["size_bounds"].tolist() == [6.0, 7.0] and both[3]["bounds"].tolist() == [5.0, 5.0]
    with pytest.raises(ValueError, match="augment"):
        SegmentationDataset(data, augment="rotate")
    with pytest.raises(TypeError, match="PreparedData"):
        SegmentationDataset(data.images)


def test_flip_augmentation_keeps_correspondence():
    data = synthetic_data(4, seed=0)
    data.images[:, 0] = data.masks * 3.0 + 1.0  # image encodes the mask
    weak = np.where(data.masks > 0, 1, -1)
    ds = SegmentationDataset(data, augment="flip", weak=weak)
    torch.manual_seed(0)
    flipped = 0
    for _ in range(6):
        for i in range(4):
            item = ds[i]
            m = item["mask"][0]
            assert torch.equal(item["image"][0], m * 3 + 1)
            assert torch.equal(item["weak"], torch.where(m > 0, 1, -1))
            assert item["size"] == data.sizes[i]
            flipped += not torch.equal(m, torch.from_numpy(data.masks[i]).float())
    assert flipped > 0


def test_affine_augmentation():
    data = synthetic_data(3, shape=(32, 32), seed=0)
    weak = np.where(data.masks > 0, 1, 0)
    ds = SegmentationDataset(data, augment="affine", weak=weak, bounds=np.tile([[5.0, 100.0]], (3, 1)))
    torch.manual_seed(1)
    item = ds[0]
    assert set(torch.unique(item["weak"]).tolist()) <= {-1, 0, 1}
    assert set(torch.unique(item["mask"]).tolist()) <= {0.0, 1.0}
    assert torch.equal(item["bounds"], torch.tensor([5.0, 100.0]))
    # where the mask is foreground the weak label (derived from the same mask) agrees
    assert (item["weak"][item["mask"][0] > 0] == 1).all()


def test_dihedral_augmentation_gives_the_eight_symmetries_and_keeps_correspondence():
    data = synthetic_data(1, shape=(16, 16), seed=0)
    data.images[:, 0] = np.arange(256, dtype=np.float32).reshape(16, 16)  # every pixel distinct
    data.masks[0] = (data.images[0, 0] % 7 == 0)
    weak = np.where(data.masks > 0, 1, -1)
    ds = SegmentationDataset(data, augment="dihedral", weak=weak)
    torch.manual_seed(0)
    seen = set()
    for _ in range(200):
        item = ds[0]
        image = item["image"][0]
        assert torch.equal(item["mask"][0], (image % 7 == 0).float())
        assert torch.equal(item["weak"], torch.where(item["mask"][0] > 0, 1, -1))
        seen.add(tuple(image[0, :2].tolist()) + tuple(image[:2, 0].tolist()))
    base = torch.from_numpy(data.images[0, 0])
    expected = set()
    for t in (base, base.T):
        for k in range(4):
            r = torch.rot90(t, k)
            expected.add(tuple(r[0, :2].tolist()) + tuple(r[:2, 0].tolist()))
    assert seen == expected and len(expected) == 8
