"""Small data sets the tests write to tmp_path (Decathlon, ACDC layouts), and the reference object size."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from scipy import ndimage


def reference_size(mask: np.ndarray) -> float:
    """Object size by scipy: 2 * max chessboard distance to background, outside = background (2D or 3D)."""
    mask = np.asarray(mask) > 0
    if not mask.any():
        return 0.0
    return 2.0 * ndimage.distance_transform_cdt(np.pad(mask, 1), metric="chessboard").max()


def save_nifti(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array), np.eye(4) if affine is None else affine), str(path))


def ellipsoid(shape, centre, radii) -> np.ndarray:
    grid = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1.0


def make_decathlon(root: Path, n: int = 4, seed: int = 0) -> Path:
    """A Decathlon task with ``n`` volumes of about 8×50×36 voxels, labels 1 and 2 in one blob."""
    rng = np.random.default_rng(seed)
    entries = []
    for k in range(n):
        shape = (8, 50 + k % 3, 34 + 2 * (k % 2))
        label = np.zeros(shape, np.uint8)
        blob = ellipsoid(shape, (3.5, 25, 17), (3.5, 10 + k, 6))
        label[blob] = 1
        label[blob & (np.arange(shape[1])[None, :, None] > 25)] = 2
        image = (rng.normal(100, 20, shape) + 50 * (label > 0)).astype(np.float32)
        stem = f"toy_{k:03d}"
        save_nifti(root / "imagesTr" / f"{stem}.nii.gz", image)
        save_nifti(root / "labelsTr" / f"{stem}.nii.gz", label)
        entries.append({"image": f"./imagesTr/{stem}.nii.gz", "label": f"./labelsTr/{stem}.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({"name": "toy", "training": entries}))
    return root


def make_acdc(root: Path, patients: int = 4, shape=(20, 24, 3), seed: int = 0) -> Path:
    """ACDC layout: ``patients`` patients × 2 frames; LV (3) blob, RV (1), myo (2); scribbles."""
    rng = np.random.default_rng(seed)
    for p in range(1, patients + 1):
        for frame in (1, 12):
            gt = np.zeros(shape, np.uint8)
            for z in range(shape[2] - 1):  # last slice without LV
                lv = ellipsoid(shape[:2], (10, 12), (3 + p % 3 + z, 4))
                gt[..., z][ndimage.binary_dilation(lv, iterations=2)] = 2
                gt[..., z][lv] = 3
                gt[2:5, 2:6, z] = 1
            image = np.clip(rng.normal(60, 10, shape) + 60 * gt, 0, 255).astype(np.uint8)
            scribble = np.full(shape, 4, np.uint8)
            scribble[10, 10:14, :] = np.where(gt[10, 10:14, :] == 3, 3, 4)
            scribble[0, :, :] = 0
            scribble[3, 3, :] = 1
            folder = root / "training" / f"patient{p:03d}"
            stem = f"patient{p:03d}_frame{frame:02d}"
            save_nifti(folder / f"{stem}.nii.gz", image)
            save_nifti(folder / f"{stem}_gt.nii.gz", gt)
            save_nifti(folder / f"{stem}_scribble.nii.gz", scribble)
    return root



def make_photo_folder(root: Path, n: int = 12, masked: int = 6, shape=(60, 80)) -> Path:
    """A user's folder: ``n`` RGB photographs ``IMD000.png`` ... with one bright square each; the
    first ``masked`` have masks in ``masks/``, the others a size in ``sizes.csv`` (measured at full size)."""
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    rng = np.random.default_rng(0)
    rows = ["image,size"]
    for i in range(n):
        mask = np.zeros(shape, np.uint8)
        side = 12 + (i * 3) % (min(shape) // 2)
        mask[8:8 + side, 12:12 + side] = 1
        pixels = rng.integers(0, 60, shape + (3,)) + mask[..., None] * 150
        Image.fromarray(pixels.astype(np.uint8)).save(images / f"IMD{i:03d}.png")
        if i < masked:
            Image.fromarray(mask * 255).save(masks / f"IMD{i:03d}.png")
        else:
            rows.append(f"IMD{i:03d}.png,{reference_size(mask):g}")
    (root / "sizes.csv").write_text("\n".join(rows) + "\n")
    return root


def volume_affine(k: int) -> np.ndarray:
    """A voxel-to-world affine per volume ``k``: anisotropic spacing, a rotation about the third axis
    and a shifted origin, as scanners write them."""
    angle = 0.1 * (k + 1)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.75 + 0.05 * k, 0.9, 2.5])
    affine[:3, 3] = [-40.0 + k, 12.5, 30.0 - 2 * k]
    return affine


def make_volume_folder(root: Path, n: int = 8, masked: int = 6, shape=(9, 10, 7)) -> Path:
    """A user's folder of 3D NIfTI volumes ``vol0.nii.gz`` ... (shapes around ``shape``, each with its
    own :func:`volume_affine`), one bright ellipsoid each; the first ``masked`` have masks in
    ``masks/``, the others their 3D Chebyshev size in ``sizes.csv``."""
    rng = np.random.default_rng(0)
    rows = ["image,size"]
    for k in range(n):
        extent = (shape[0] + k % 2, shape[1], shape[2] - k % 2)
        mask = ellipsoid(extent, [e / 2 - 0.5 for e in extent], (3 + k % 2, 3, 2)).astype(np.uint8)
        image = (rng.normal(0, 0.3, extent) + 2.0 * mask).astype(np.float32)
        save_nifti(root / "images" / f"vol{k}.nii.gz", image, volume_affine(k))
        if k < masked:
            save_nifti(root / "masks" / f"vol{k}.nii.gz", mask, volume_affine(k))
        else:
            rows.append(f"vol{k}.nii.gz,{reference_size(mask):g}")
    (root / "sizes.csv").write_text("\n".join(rows) + "\n")
    return root
