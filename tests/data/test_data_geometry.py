"""fitted_affine: the fitted array's voxels lie where nibabel's resampling of the source puts them."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from nibabel.processing import resample_from_to

from sizeseg.data.geometry import center_crop_or_pad, fitted_affine, resize


def _oblique_affine(rng) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    affine = np.eye(4)
    affine[:3, :3] = q @ np.diag(rng.uniform(0.5, 2.0, 3))
    affine[:3, 3] = rng.uniform(-50, 50, 3)
    return affine


@pytest.mark.parametrize("seed", range(3))
def test_pad_and_crop_affine_matches_nibabel_resampling(seed):
    rng = np.random.default_rng(seed)
    source = rng.normal(size=(9, 12, 7)).astype(np.float32)
    affine = _oblique_affine(rng)
    shape = (12, 8, 7)  # pad the first axis, crop the second, keep the third
    fitted = center_crop_or_pad(source, shape, fill=-5.0)
    # "grid-constant": a voxel centre a rounding error outside the source still reads the source
    expected = resample_from_to(nib.Nifti1Image(source, affine), (shape, fitted_affine(affine, source.shape, shape, "pad")),
                                order=0, mode="grid-constant", cval=-5.0).get_fdata()
    np.testing.assert_allclose(fitted, expected, atol=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_resize_affine_matches_nibabel_resampling(seed):
    rng = np.random.default_rng(seed)
    source = rng.normal(size=(10, 14, 6)).astype(np.float32)
    affine = _oblique_affine(rng)
    shape = (7, 21, 6)
    fitted = resize(source, shape, order=1)
    expected = resample_from_to(nib.Nifti1Image(source, affine), (shape, fitted_affine(affine, source.shape, shape, "resize")),
                                order=1, mode="nearest").get_fdata()
    np.testing.assert_allclose(fitted, expected, atol=1e-4)


def test_fitted_affine_rejects_bad_input():
    with pytest.raises(ValueError, match="fit: expected 'pad' or 'resize'"):
        fitted_affine(np.eye(4), (2, 2, 2), (2, 2, 2), "stretch")
    with pytest.raises(ValueError, match="fitted_affine: expected a 4x4 affine"):
        fitted_affine(np.eye(3), (2, 2, 2), (2, 2, 2), "pad")
