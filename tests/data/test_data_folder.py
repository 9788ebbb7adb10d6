"""Image / NIfTI folder reader with masks and a size CSV, on fixtures written to tmp_path."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from sizeseg.data.errors import DataError
from sizeseg.data.folder import build_folder, prepare_folder
from tests.builders import reference_size, save_nifti


def _square(shape, r0, r1, c0, c1):
    m = np.zeros(shape, np.uint8)
    m[r0:r1, c0:c1] = 1
    return m


@pytest.fixture
def folder(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(); masks.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (30, 20), dtype=np.uint8)).save(images / "a.png")
    Image.fromarray(rng.integers(0, 255, (30, 20, 3), dtype=np.uint8)).save(images / "b.png")
    tifffile.imwrite(images / "c.tif", rng.normal(size=(26, 22)).astype(np.float32))
    Image.fromarray(rng.integers(0, 255, (30, 20), dtype=np.uint8)).save(images / "d.bmp")
    Image.fromarray(_square((30, 20), 5, 15, 4, 12) * 255).save(masks / "a.png")
    tifffile.imwrite(masks / "c.tif", _square((26, 22), 2, 8, 2, 9))
    (tmp_path / "sizes.csv").write_text("image,size\nb.png,6\nd,4.5\n")
    return tmp_path


def test_folder_preparation(folder):
    data = build_folder(folder / "images", folder / "masks", folder / "sizes.csv", shape=(32, 24), fit="pad")
    assert data.images.shape == (4, 3, 32, 24)  # RGB present: grey repeated to 3 channels
    assert data.sources.tolist() == ["a.png", "b.png", "c.tif", "d.bmp"]
    assert data.has_mask.tolist() == [True, False, True, False]
    expected_a = np.pad(_square((30, 20), 5, 15, 4, 12), ((1, 1), (2, 2)))
    np.testing.assert_array_equal(data.masks[0], expected_a)
    expected_c = np.pad(_square((26, 22), 2, 8, 2, 9), ((3, 3), (1, 1)))
    np.testing.assert_array_equal(data.masks[2], expected_c)
    assert data.sizes[0] == reference_size(expected_a) and data.sizes[2] == reference_size(expected_c)
    assert data.sizes[1] == 6 and data.sizes[3] == 4.5
    np.testing.assert_array_equal(data.images[0, 0], data.images[0, 1])


def test_default_shape_and_resize(folder):
    data = build_folder(folder / "images", folder / "masks", fit="pad")
    assert data.images.shape[2:] == (30, 22) and np.isnan(data.sizes[[1, 3]]).all()
    resized = build_folder(folder / "images", folder / "masks", folder / "sizes.csv", shape=(60, 40), fit="resize")
    assert resized.images.shape[2:] == (60, 40)
    assert resized.sizes[1] == pytest.approx(12.0)  # the CSV size scales with the zoom (x2)
    assert resized.masks[0].sum() == pytest.approx(4 * 80, rel=0.1)


def test_cache(folder, tmp_path):
    _, reused = prepare_folder(folder / "images", tmp_path / "out", masks=folder / "masks")
    assert not reused
    _, reused = prepare_folder(folder / "images", tmp_path / "out", masks=folder / "masks")
    assert reused


def test_nifti_volumes(tmp_path):
    images, masks = tmp_path / "vol", tmp_path / "volmask"
    mask = np.zeros((10, 12, 8), np.uint8); mask[2:8, 3:9, 2:6] = 1
    affine = np.diag([0.7, 0.8, 2.5, 1.0]); affine[:3, 3] = [-20, 5, 40]
    save_nifti(images / "v1.nii.gz", np.random.default_rng(0).normal(size=(10, 12, 8)).astype(np.float32), affine)
    save_nifti(images / "v2.nii.gz", np.ones((9, 12, 8), np.float32))
    save_nifti(masks / "v1.nii.gz", mask, affine)
    (tmp_path / "s.csv").write_text("v2.nii.gz,3\n")
    data = build_folder(images, masks, tmp_path / "s.csv", shape=(12, 12, 8), fit="pad")
    assert data.images.shape == (2, 1, 12, 12, 8)
    # 3D Chebyshev sizes, the one convention (outside the volume is background)
    assert data.sizes[0] == reference_size(mask) == 4 and data.sizes[1] == 3
    np.testing.assert_allclose(data.extra["source_affine"][0], affine, rtol=1e-6)  # the header holds float32
    np.testing.assert_array_equal(data.extra["source_affine"][1], np.eye(4))
    # padded by 1 voxel at the start of axis 0: the fitted origin is one voxel (0.7 mm) before the source's
    np.testing.assert_allclose(data.extra["affine"][0][:3, 3], [-20.7, 5, 40], rtol=1e-6)
    np.testing.assert_allclose(data.extra["affine"][1][:3, 3], [-1, 0, 0])


@pytest.mark.parametrize("case, match", [
    ("empty", "holds no image"),
    ("unreadable", "b.png: unreadable image"),
    ("mask_unknown", "z.png: mask without an image"),
    ("mask_shape", "a.png: mask shape"),
    ("mask_float", "c.tif: label values must be integers"),
    ("size_negative", "row 2, column 'size': size -3 of 'b.png' is negative"),
    ("size_text", "row 3, column 'size': size 'big' of 'd' is not a number"),
    ("size_nan", "row 2, column 'size': size 'nan' of 'b.png' is not a finite number"),
    ("size_unknown", "row 2: image 'x.png' is not in the images folder"),
    ("size_columns", "row 2: expected 2 columns"),
])
def test_bad_input(folder, tmp_path, case, match):
    images, masks, sizes = folder / "images", folder / "masks", folder / "sizes.csv"
    if case == "empty":
        images = tmp_path / "nothing"; images.mkdir()
    elif case == "unreadable":
        (images / "b.png").write_bytes(b"garbage")
    elif case == "mask_unknown":
        Image.fromarray(np.zeros((5, 5), np.uint8)).save(masks / "z.png")
    elif case == "mask_shape":
        Image.fromarray(np.zeros((31, 20), np.uint8)).save(masks / "a.png")
    elif case == "mask_float":
        tifffile.imwrite(masks / "c.tif", np.full((26, 22), 0.5, np.float32))
    else:
        text = {"size_negative": "image,size\nb.png,-3\n", "size_text": "image,size\nb.png,3\nd,big\n",
                "size_nan": "image,size\nb.png,nan\n", "size_unknown": "image,size\nx.png,3\n",
                "size_columns": "image,size\nb.png;3\n"}[case]
        sizes.write_text(text)
    with pytest.raises(DataError, match=match):
        build_folder(images, masks, sizes)
