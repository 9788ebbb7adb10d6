"""The multi-object synthetic set: separate objects, one size per object, deterministic."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from sizeseg.data.synthetic_objects import synthetic_objects_data, synthetic_objects_item
from sizeseg.ops.components import object_sizes


def test_items_hold_the_drawn_number_of_separate_objects():
    counts = []
    for i in range(12):
        image, mask, sizes = synthetic_objects_item(3, i)
        _, n = ndimage.label(mask, structure=np.ones((3, 3)))  # 8-connected objects
        assert n == len(sizes) and 1 <= n <= 5
        assert image.dtype == np.float32 and abs(float(image.mean())) < 1e-4
        assert (np.diff(sizes) <= 0).all() and (sizes >= 2).all()
        counts.append(n)
    assert len(set(counts)) >= 3  # the number of objects varies
    again = synthetic_objects_item(3, 5)
    np.testing.assert_array_equal(again[1], synthetic_objects_item(3, 5)[1])


def test_data_set_lists_and_largest_size():
    d = synthetic_objects_data(8, seed=2, objects=(2, 3))
    lists = d.extra["object_sizes"]
    assert lists.shape == (8, 3) and d.images.shape == (8, 1, 64, 64)
    for mask, row, largest in zip(d.masks, lists, d.sizes):
        found = np.sort(object_sizes(mask)[1])[::-1]
        np.testing.assert_array_equal(row[~np.isnan(row)], found)
        assert largest == found[0]
    assert set(d.splits) <= {"train", "val", "test"}


@pytest.mark.parametrize("kwargs,match", [
    (dict(shape=(8, 8)), "shape"),
    (dict(objects=(0, 3)), "objects"),
    (dict(objects=(4, 2)), "objects"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthetic_objects_item(0, 0, **kwargs)
