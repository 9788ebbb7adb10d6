"""MSD reader and the hippocampus slice preparation, on Decathlon fixtures written to tmp_path."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from sizeseg.data.decathlon import load_case, read_decathlon
from sizeseg.data.errors import DataError
from sizeseg.data.hippocampus import build_hippocampus, normalise_volume, prepare_hippocampus
from sizeseg.data.prepared import load_prepared
from tests.builders import reference_size, save_nifti


def test_reader_lists_cases(decathlon):
    cases = read_decathlon(decathlon)
    assert [c.stem for c in cases] == [f"toy_{k:03d}" for k in range(4)]
    image, label = load_case(cases[0])
    assert image.shape == label.shape == cases[0].shape and label.dtype == np.int16


def test_preparation_matches_brute_force(decathlon):
    data = build_hippocampus(decathlon, shape=(48, 32), axis=0, min_foreground=0.01)
    expected_images, expected_masks, expected_ids = [], [], []
    for case in read_decathlon(decathlon):
        image = nib.load(str(case.image)).get_fdata()
        label = nib.load(str(case.label)).get_fdata()
        norm = (image - image.mean()) / image.std()
        for s in range(image.shape[0]):
            m = label[s] > 0
            r0, c0 = (m.shape[0] - 48) // 2, (m.shape[1] - 32) // 2
            crop = m[r0:r0 + 48, c0:c0 + 32] if c0 >= 0 else None
            if crop is None:  # width 34 or 36 >= 32, always a crop here
                raise AssertionError
            if crop.mean() >= 0.01:
                expected_masks.append(crop)
                expected_images.append(norm[s][r0:r0 + 48, c0:c0 + 32])
                expected_ids.append(f"{case.image.name}:{s}")
    assert data.ids.tolist() == expected_ids
    np.testing.assert_array_equal(data.masks, np.array(expected_masks, np.uint8))
    np.testing.assert_allclose(data.images[:, 0], np.array(expected_images), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(data.sizes, [reference_size(m) for m in expected_masks])
    assert set(np.unique(data.masks)) == {0, 1}  # labels 1 and 2 merged


def test_padding_and_slice_filter(decathlon):
    data = build_hippocampus(decathlon, shape=(56, 40), min_foreground=0.05)
    assert data.images.shape[1:] == (1, 56, 40)
    assert (data.masks.reshape(len(data), -1).mean(axis=1) >= 0.05).all()


def test_normalise_volume_is_zscore():
    v = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    out = normalise_volume(v)
    assert abs(out.mean()) < 1e-6 and abs(out.std() - 1) < 1e-6
    assert not normalise_volume(np.ones((2, 2, 2))).any()


def test_split_by_volume_and_by_slice(decathlon):
    by_volume = build_hippocampus(decathlon, split_by="volume", seed=3, fractions=(0.5, 0.25, 0.25))
    for volume in np.unique(by_volume.volumes):
        assert len(set(by_volume.splits[by_volume.volumes == volume])) == 1
    assert sorted(set(by_volume.splits)) == ["test", "train", "val"]
    by_slice = build_hippocampus(decathlon, split_by="slice", seed=3)
    counts = {s: int((by_slice.splits == s).sum()) for s in ("train", "val", "test")}
    n = len(by_slice)
    assert counts == {"train": round(0.7 * n), "val": round(0.8 * n) - round(0.7 * n), "test": n - round(0.8 * n)}
    again = build_hippocampus(decathlon, split_by="slice", seed=3)
    np.testing.assert_array_equal(by_slice.splits, again.splits)


def test_cache_reuse_and_rebuild(decathlon, tmp_path):
    out = tmp_path / "prepared"
    first, reused = prepare_hippocampus(decathlon, out)
    assert not reused
    manifest = (out / "manifest.csv").read_text().splitlines()
    assert manifest[0].startswith("index,id,source,slice,volume,split,size,has_mask")
    assert len(manifest) == len(first) + 1
    params = json.loads((out / "params.json").read_text())
    assert params["slicing_axis"] == 0 and params["shape"] == [48, 32]
    second, reused = prepare_hippocampus(decathlon, out)
    assert reused
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.sizes, first.sizes)
    third, reused = prepare_hippocampus(decathlon, out, seed=1)
    assert not reused and json.loads((out / "params.json").read_text())["seed"] == 1
    assert not list(out.glob("*.part"))
    np.testing.assert_array_equal(load_prepared(out).splits, third.splits)


def test_missing_dataset_json(decathlon):
    (decathlon / "dataset.json").unlink()
    with pytest.raises(DataError, match="dataset.json"):
        read_decathlon(decathlon)


def test_missing_labels_folder(decathlon):
    for p in (decathlon / "labelsTr").iterdir():
        p.unlink()
    (decathlon / "labelsTr").rmdir()
    with pytest.raises(DataError, match="labelsTr"):
        read_decathlon(decathlon)


def test_stem_without_label(decathlon):
    (decathlon / "labelsTr" / "toy_002.nii.gz").unlink()
    with pytest.raises(DataError, match="toy_002"):
        read_decathlon(decathlon)


def test_unreadable_file(decathlon):
    (decathlon / "imagesTr" / "toy_001.nii.gz").write_bytes(b"not a nifti file")
    with pytest.raises(DataError, match="toy_001.nii.gz: unreadable"):
        read_decathlon(decathlon)


def test_shape_mismatch(decathlon):
    save_nifti(decathlon / "labelsTr" / "toy_003.nii.gz", np.zeros((8, 10, 10), np.uint8))
    with pytest.raises(DataError, match="does not match"):
        read_decathlon(decathlon)


def test_non_integer_labels(decathlon):
    path = decathlon / "labelsTr" / "toy_000.nii.gz"
    label = nib.load(str(path)).get_fdata().astype(np.float32)
    label[4, 25, 17] = 0.5
    save_nifti(path, label)
    with pytest.raises(DataError, match="toy_000.nii.gz: label values must be integers"):
        build_hippocampus(decathlon)
