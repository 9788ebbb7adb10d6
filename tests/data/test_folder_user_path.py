"""Splits that respect masks, the working shape, the size rescale factor and source shapes of a folder."""

from __future__ import annotations

import numpy as np
import pytest

from sizeseg.data.errors import DataError
from sizeseg.data.folder import DEFAULT_MAX_SIDE, build_folder, working_shape
from sizeseg.data.splits import split_by_masks
from tests.builders import make_photo_folder


def test_every_split_holds_its_share_of_the_masks():
    has = np.array([True] * 30 + [False] * 130)
    for seed in range(5):
        splits = split_by_masks(has, (0.7, 0.1, 0.2), seed=seed)
        masked = {n: int((splits[has] == n).sum()) for n in ("train", "val", "test")}
        sized = {n: int((splits[~has] == n).sum()) for n in ("train", "val", "test")}
        assert masked == {"train": 21, "val": 3, "test": 6}  # a random split gave val 1 mask here
        assert sized == {"train": 91, "val": 13, "test": 26}


def test_fixed_items_keep_their_split_and_the_rest_is_renormalised():
    has = np.array([True] * 10 + [False] * 10)
    fixed = np.array(["val"] * 4 + [""] * 16)
    splits = split_by_masks(has, (0.7, 0.1, 0.2), seed=0, fixed=fixed)
    assert (splits[:4] == "val").all() and (splits[4:] != "val").all()
    assert int((splits[4:10] == "train").sum()) == round(6 * 0.7 / 0.9)
    two = split_by_masks(has, (0.8, 0.2), ("train", "val"), seed=0)
    assert set(two.tolist()) == {"train", "val"} and int((two[has] == "val").sum()) == 2
    with pytest.raises(ValueError, match="fixed: split names"):
        split_by_masks(has, fixed=np.array(["dev"] * 20))


def test_working_shape_is_capped_under_resize():
    assert working_shape([(572, 765), (600, 700)], "resize", 256) == (201, 256)
    assert working_shape([(572, 765)], "resize", None) == (572, 765)
    assert working_shape([(40, 30)], "resize", 256) == (40, 30)
    assert working_shape([(572, 765)], "pad", 256) == (572, 765)  # padding never rescales


@pytest.fixture
def photos(tmp_path):
    """12 RGB images of 60 x 80 with a square each; 6 with masks, 6 with sizes measured at full size."""
    return make_photo_folder(tmp_path)


def test_resize_is_the_default_and_sizes_scale_with_it(photos):
    data = build_folder(photos / "images", photos / "masks", photos / "sizes.csv", max_side=40)
    assert data.spatial_shape == (30, 40)  # 60 x 80 capped at a longest side of 40
    np.testing.assert_allclose(data.extra["size_scale"], 0.5)
    full_sizes = np.loadtxt(photos / "sizes.csv", delimiter=",", skiprows=1, usecols=1)
    np.testing.assert_allclose(data.sizes[6:], 0.5 * full_sizes)
    assert data.extra["source_shape"].tolist() == [[60, 80]] * 12
    assert DEFAULT_MAX_SIDE == 256
    full = build_folder(photos / "images", photos / "masks", photos / "sizes.csv")
    assert full.spatial_shape == (60, 80) and np.allclose(full.extra["size_scale"], 1.0)


def test_validation_list_fractions_and_no_test(photos):
    (photos / "val.txt").write_text("# validation\nIMD000.png\nIMD001\n\nIMD007.png\n")
    data = build_folder(photos / "images", photos / "masks", photos / "sizes.csv", fractions=(0.75, 0.25),
                        splits=("train", "val"), val_list=photos / "val.txt")
    assert set(data.splits.tolist()) == {"train", "val"}
    assert {"IMD000.png", "IMD001.png", "IMD007.png"} <= set(data.sources[data.splits == "val"].tolist())
    with pytest.raises(ValueError, match="fractions: expected 2 numbers"):
        build_folder(photos / "images", photos / "masks", fractions=(0.7, 0.1, 0.2), splits=("train", "val"))
    with pytest.raises(ValueError, match="fractions: expected numbers >= 0 summing to 1"):
        build_folder(photos / "images", photos / "masks", fractions=(0.7, 0.4, 0.2))
    (photos / "bad.txt").write_text("IMD000.png\nnope.png\n")
    with pytest.raises(DataError, match=r"bad.txt, line 2: image 'nope.png' is not in the images folder"):
        build_folder(photos / "images", photos / "masks", val_list=photos / "bad.txt")
    with pytest.raises(DataError, match="validation list not found"):
        build_folder(photos / "images", photos / "masks", val_list=photos / "missing.txt")
