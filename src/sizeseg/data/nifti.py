"""NIfTI reading with errors that name the file and the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sizeseg.data.errors import DataError

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def nifti_stem(path: str | Path) -> str:
    """File name without ``.nii`` / ``.nii.gz``."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def list_nifti(folder: Path) -> list[Path]:
    """NIfTI files of ``folder`` (sorted; hidden files such as ``._x.nii.gz`` skipped)."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name.endswith(NIFTI_SUFFIXES)
    )


def nifti_shape(path: str | Path) -> tuple[int, ...]:
    """Shape from the header only (cheap); raises :class:`DataError` if unreadable."""
    import nibabel as nib

    try:
        return tuple(int(s) for s in nib.load(str(path)).shape)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except Exception as err:  # nibabel raises several types for corrupt files
        raise DataError(f"{path}: unreadable NIfTI file ({type(err).__name__}: {err})") from err


def read_nifti(path: str | Path, dtype=np.float32) -> np.ndarray:
    """Voxel array of ``path`` as ``dtype``; raises :class:`DataError` if unreadable."""
    import nibabel as nib

    try:
        return np.asarray(nib.load(str(path)).dataobj).astype(dtype, copy=False)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except Exception as err:
        raise DataError(f"{path}: unreadable NIfTI file ({type(err).__name__}: {err})") from err


def nifti_affine(path: str | Path) -> np.ndarray:
    """The voxel-to-world affine (4x4 float64) of ``path``, from its header; DataError if unreadable."""
    import nibabel as nib

    try:
        return np.asarray(nib.load(str(path)).affine, dtype=np.float64)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except Exception as err:
        raise DataError(f"{path}: unreadable NIfTI file ({type(err).__name__}: {err})") from err


def write_nifti(path: str | Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    """Write ``array`` as NIfTI (``.nii.gz`` compressed, ``.nii`` plain) with ``affine`` (None:
    identity), atomically; nibabel sets the voxel sizes of the header from the affine.

    >>> import tempfile
    >>> path = write_nifti(f"{tempfile.mkdtemp()}/m.nii.gz", np.ones((2, 3, 4), np.uint8), np.diag([2., 3., 4., 1.]))
    >>> import nibabel as nib; [float(z) for z in nib.load(path).header.get_zooms()]
    [2.0, 3.0, 4.0]
    """
    import nibabel as nib

    from sizeseg.io_utils import atomic_path

    path = Path(path)
    suffix = next((s for s in NIFTI_SUFFIXES if path.name.endswith(s)), None)
    if suffix is None:
        raise ValueError(f"path: expected a name ending in {' or '.join(NIFTI_SUFFIXES)}, got {path.name}")
    image = nib.Nifti1Image(np.asarray(array), np.eye(4) if affine is None else np.asarray(affine, np.float64))
    with atomic_path(path, suffix=".part" + suffix) as tmp:
        nib.save(image, str(tmp))
    return path


def read_label_nifti(path: str | Path) -> np.ndarray:
    """Integer label volume of ``path`` (int16); fails on non-integer or negative values."""
    raw = read_nifti(path, dtype=np.float64)
    return as_label_array(raw, path)


def as_label_array(raw: np.ndarray, path: str | Path) -> np.ndarray:
    """Check that ``raw`` holds non-negative integers and return it as int16."""
    if not np.all(np.isfinite(raw)):
        raise DataError(f"{path}: label values must be finite integers, found NaN or inf")
    frac = raw != np.round(raw)
    if frac.any():
        bad = np.unique(raw[frac])[:5].tolist()
        raise DataError(f"{path}: label values must be integers, found {bad}")
    if raw.size and (raw.min() < 0 or raw.max() > np.iinfo(np.int16).max):
        raise DataError(f"{path}: label values must be in [0, 32767], found [{raw.min():g}, {raw.max():g}]")
    return raw.astype(np.int16)
