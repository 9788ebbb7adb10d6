"""Reader for the Medical Segmentation Decathlon layout (any task).

A Decathlon task folder holds ``dataset.json``, ``imagesTr/<stem>.nii.gz`` and
``labelsTr/<stem>.nii.gz`` with the same stems. :func:`read_decathlon` lists the cases and checks
the layout and every header up front (missing files or folders, images without labels, labels
without images, unreadable files, image/label shape mismatch), so bad input fails before any work.
:func:`load_case` reads one case's arrays (label values must be non-negative integers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sizeseg.data.errors import DataError
from sizeseg.data.nifti import list_nifti, nifti_shape, nifti_stem, read_label_nifti, read_nifti


@dataclass(frozen=True)
class DecathlonCase:
    """One training case: ``stem`` (e.g. ``hippocampus_001``), image and label paths, shape."""

    stem: str
    image: Path
    label: Path
    shape: tuple[int, ...]


def read_decathlon(root: str | Path) -> list[DecathlonCase]:
    """List and check the training cases of a Decathlon task folder ``root``.

    The cases are the ``training`` entries of ``dataset.json`` when present, else the files of
    ``imagesTr``; either way every image must have a label with the same stem and vice versa.
    Images may be 4D (several modalities last); their first three axes must equal the label's.

    Example (not run as a test: it needs the real data set at ../shared/data):

    >>> cases = read_decathlon("../shared/data/Task04_Hippocampus")  # doctest: +SKIP
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: Decathlon folder not found")
    meta_file = root / "dataset.json"
    if not meta_file.is_file():
        raise DataError(f"{meta_file}: missing (a Decathlon task folder needs dataset.json)")
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{meta_file}: unreadable JSON ({err})") from err
    images_dir, labels_dir = root / "imagesTr", root / "labelsTr"
    for folder in (images_dir, labels_dir):
        if not folder.is_dir():
            raise DataError(f"{folder}: folder missing (a Decathlon task folder needs imagesTr/ and labelsTr/)")
    image_files = {nifti_stem(p): p for p in list_nifti(images_dir)}
    label_files = {nifti_stem(p): p for p in list_nifti(labels_dir)}
    if not image_files:
        raise DataError(f"{images_dir}: no NIfTI images (.nii / .nii.gz)")
    without_label = sorted(set(image_files) - set(label_files))
    if without_label:
        raise DataError(f"{images_dir}: {len(without_label)} image(s) without a label in labelsTr/: {without_label[:5]}")
    without_image = sorted(set(label_files) - set(image_files))
    if without_image:
        raise DataError(f"{labels_dir}: {len(without_image)} label(s) without an image in imagesTr/: {without_image[:5]}")
    entries = meta.get("training") if isinstance(meta, dict) else None
    if entries:
        stems = []
        for k, entry in enumerate(entries):
            if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
                raise DataError(f"{meta_file}: training entry {k} must have 'image' and 'label', got {entry!r}")
            for key in ("image", "label"):
                path = (root / entry[key]).resolve()
                if not path.is_file():
                    raise DataError(f"{meta_file}: training entry {k} names {entry[key]!r}, which does not exist")
            stems.append(nifti_stem(entry["image"]))
    else:
        stems = sorted(image_files)
    cases = []
    for stem in stems:
        image_shape = nifti_shape(image_files[stem])
        label_shape = nifti_shape(label_files[stem])
        if len(label_shape) != 3 or image_shape[:3] != label_shape:
            raise DataError(
                f"{image_files[stem]}: image shape {image_shape} does not match label shape "
                f"{label_shape} of {label_files[stem]}"
            )
        cases.append(DecathlonCase(stem, image_files[stem], label_files[stem], label_shape))
    return cases


def load_case(case: DecathlonCase) -> tuple[np.ndarray, np.ndarray]:
    """``(image, label)``: image float32 (X, Y, Z[, C]) and label int16 (X, Y, Z)."""
    image = read_nifti(case.image)
    label = read_label_nifti(case.label)
    if image.shape[:3] != label.shape:
        raise DataError(f"{case.image}: image shape {image.shape} does not match label shape {label.shape}")
    return image, label
