"""ACDC reader and preparation on fixtures written to tmp_path, plus real-data smoke tests."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from sizeseg.data.acdc import build_acdc, prepare_acdc, read_acdc, subject_areas
from sizeseg.data.bounds import subject_bounds
from sizeseg.data.errors import DataError
from sizeseg.data.hippocampus import build_hippocampus
from sizeseg.data.weak import erosion_labels
from tests.builders import reference_size, save_nifti


def test_reader(acdc):
    volumes = read_acdc(acdc)
    assert len(volumes) == 8 and volumes[0].key == "patient001_frame01"
    assert read_acdc(acdc / "training")[0] == volumes[0]
    assert all(v.scribble is not None for v in volumes)


def test_preparation_against_direct_computation(acdc):
    data = build_acdc(acdc, size=32, seed=0)
    assert data.images.shape == (8 * 3, 1, 32, 32)
    gt = nib.load(str(acdc / "training/patient002/patient002_frame12_gt.nii.gz")).get_fdata()
    img = nib.load(str(acdc / "training/patient002/patient002_frame12.nii.gz")).get_fdata()
    rows = np.flatnonzero(data.volumes == "patient002_frame12")
    for z, i in enumerate(rows):
        expected = np.pad(gt[..., z] == 3, ((6, 6), (4, 4)))
        np.testing.assert_array_equal(data.masks[i], expected)
        assert data.sizes[i] == reference_size(expected) and data.extra["areas"][i] == expected.sum()
        norm = (img[..., z] - img.min()) / (img.max() - img.min())
        np.testing.assert_allclose(data.images[i, 0, 6:26, 4:28], norm, atol=1e-6)
    assert data.extra["areas"][rows[-1]] == 0  # a slice without LV is kept (for tags)
    scribbles = data.extra["scribbles"][rows[0]]
    assert scribbles[6 + 0, 4 + 5] == 0 and scribbles[6 + 3, 4 + 3] == 0  # bg and RV scribbles → 0
    assert (scribbles[6 + 10, 4 + 10:4 + 14] == 1).any() and scribbles[0, 0] == -1
    for subject in np.unique(data.extra["subjects"]):  # split by patient
        assert len(set(data.splits[data.extra["subjects"] == subject])) == 1
    assert sorted(set(data.splits)) == ["train", "val"]
    a, b = subject_bounds(subject_areas(data, "patient001"))
    areas = data.extra["areas"][data.extra["subjects"] == "patient001"]
    assert (a, b) == pytest.approx((1.1 * areas[areas > 0].min(), 0.9 * areas.max()))


def test_downsampling_and_cache(acdc, tmp_path):
    full = build_acdc(acdc, size=32)
    half, reused = prepare_acdc(acdc, tmp_path / "out", size=32, resolution=16)
    assert not reused and half.images.shape[2:] == (16, 16)
    np.testing.assert_allclose(half.images[:, 0], full.images[:, 0].reshape(-1, 16, 2, 16, 2).mean(axis=(2, 4)), atol=1e-6)
    assert set(np.unique(half.extra["scribbles"])) <= {-1, 0, 1}
    assert prepare_acdc(acdc, tmp_path / "out", size=32, resolution=16)[1]
    with pytest.raises(ValueError, match="resolution"):
        build_acdc(acdc, size=32, resolution=12)


def test_a_smaller_field_of_view_is_the_centre_of_the_full_frame(acdc):
    full, centre = build_acdc(acdc, size=32), build_acdc(acdc, size=8)
    np.testing.assert_array_equal(centre.images, full.images[..., 12:20, 12:20])
    np.testing.assert_array_equal(centre.masks, full.masks[..., 12:20, 12:20])
    assert centre.extra["areas"].sum() < full.extra["areas"].sum()  # the fixture's objects reach beyond the centre


def test_missing_gt(acdc):
    (acdc / "training/patient003/patient003_frame12_gt.nii.gz").unlink()
    with pytest.raises(DataError, match="patient003_frame12.nii.gz: no ground truth"):
        read_acdc(acdc)


def test_shape_mismatch(acdc):
    save_nifti(acdc / "training/patient001/patient001_frame01_gt.nii.gz", np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(DataError, match="does not match image shape"):
        read_acdc(acdc)


def test_non_integer_labels(acdc):
    save_nifti(acdc / "training/patient004/patient004_frame01_gt.nii.gz", np.full((20, 24, 3), 1.5, np.float32))
    with pytest.raises(DataError, match="label values must be integers"):
        build_acdc(acdc, size=32)


def test_no_patients(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no patientXXX"):
        read_acdc(tmp_path / "empty")


@pytest.mark.realdata
def test_real_acdc_smoke(shared_data):
    data = build_acdc(shared_data / "ACDC", size=256, resolution=128, limit=2)
    assert data.images.shape[1:] == (1, 128, 128) and len(set(data.extra["subjects"])) == 2
    assert 0 <= data.images.min() and data.images.max() <= 1
    weak = erosion_labels(data.masks)
    assert ((weak == 1) <= (data.masks > 0)).all()
    assert ((weak == 1).reshape(len(data), -1).any(axis=1) == (data.extra["areas"] > 0)).all()


@pytest.mark.realdata
def test_real_hippocampus_smoke(shared_data):
    data = build_hippocampus(shared_data / "Task04_Hippocampus", limit=5)
    assert data.images.shape[1:] == (1, 48, 32) and len(set(data.volumes)) == 5
    assert (data.masks.reshape(len(data), -1).mean(axis=1) >= 0.01).all()
    np.testing.assert_array_equal(data.sizes, [reference_size(m) for m in data.masks])


def test_split_by_frames_draws_frames_and_can_separate_a_patients_two_frames(acdc):
    straddles = 0
    for seed in range(6):
        data = build_acdc(acdc, size=16, seed=seed, split="frames")
        for volume in np.unique(data.volumes):  # a frame's slices stay together
            assert len(set(data.splits[data.volumes == volume])) == 1
        val_frames = set(data.volumes[data.splits == "val"])
        assert len(val_frames) == 2  # 25 % of the fixture's 8 frames
        for subject in np.unique(data.extra["subjects"]):
            straddles += len(set(data.splits[data.extra["subjects"] == subject])) == 2
    assert straddles > 0
    with pytest.raises(ValueError, match="split: expected one of"):
        build_acdc(acdc, size=16, split="slices")


def test_three_classes_are_label_maps_with_one_size_per_class(acdc, tmp_path):
    data = build_acdc(acdc, size=32, seed=0, classes=("LV", "RV", "MYO"))
    binary = build_acdc(acdc, size=32, seed=0)
    gt = nib.load(str(acdc / "training/patient003/patient003_frame01_gt.nii.gz")).get_fdata()
    rows = np.flatnonzero(data.volumes == "patient003_frame01")
    for z, i in enumerate(rows):
        labels = np.pad(gt[..., z], ((6, 6), (4, 4)))
        for c, acdc_label in enumerate((3, 1, 2)):  # LV, RV, MYO
            np.testing.assert_array_equal(data.masks[i] == c + 1, labels == acdc_label)
            assert data.extra["object_sizes"][i, c, 0] == reference_size(labels == acdc_label)
            assert data.extra["class_areas"][i, c] == (labels == acdc_label).sum()
        assert data.sizes[i] == data.extra["object_sizes"][i].max()
    ring = data.extra["object_sizes"][rows[0], 2, 0]
    assert 0 < ring < data.extra["object_sizes"][rows[0], 0, 0] + 4  # the wall (2 px dilation), not the extent
    np.testing.assert_array_equal(data.splits, binary.splits)
    np.testing.assert_array_equal(data.masks == 1, binary.masks == 1)  # LV first: the binary task's mask
    assert data.params["classes"] == ["LV", "RV", "MYO"] and "scribbles" not in data.extra
    other = build_acdc(acdc, size=32, classes=("MYO", "LV"))
    np.testing.assert_array_equal(other.masks == 2, data.masks == 1)
    np.testing.assert_array_equal(other.extra["object_sizes"][:, 0], data.extra["object_sizes"][:, 2])
    with pytest.raises(ValueError, match="'PA' is not an ACDC class"):
        build_acdc(acdc, size=32, classes=("LV", "PA"))
    with pytest.raises(ValueError, match="distinct names"):
        build_acdc(acdc, size=32, classes=("LV", "LV"))


def test_downsampled_label_maps_give_each_block_its_majority_class(acdc):
    full = build_acdc(acdc, size=32, classes=("LV", "RV", "MYO"))
    half = build_acdc(acdc, size=32, resolution=16, classes=("LV", "RV", "MYO"))
    shares = np.stack([(full.masks == c).reshape(-1, 16, 2, 16, 2).mean(axis=(2, 4)) for c in (1, 2, 3)])
    expected = np.where(shares.max(0) >= 0.5, shares.argmax(0) + 1, 0)
    np.testing.assert_array_equal(half.masks, expected)


def test_binary_preparation_keeps_its_cache_key(acdc, tmp_path):
    _, reused = prepare_acdc(acdc, tmp_path / "lv", size=32, resolution=16)
    three, reused3 = prepare_acdc(acdc, tmp_path / "lv", size=32, resolution=16, classes=("LV", "RV", "MYO"))
    assert not reused3 and three.masks.max() == 3  # other classes: rebuilt
    assert prepare_acdc(acdc, tmp_path / "lv", size=32, resolution=16, classes=("LV", "RV", "MYO"))[1]
    again, reused = prepare_acdc(acdc, tmp_path / "lv", size=32, resolution=16)
    assert not reused and "classes" not in again.params and again.masks.max() == 1
