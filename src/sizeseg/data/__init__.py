"""Data: readers (MSD/Decathlon, ACDC, image and NIfTI folders), preparation (slicing, cropping,
splits, cached manifests), weak labels and size bounds, the synthetic set and torch Datasets.

Readers and preparations produce :class:`PreparedData` (numpy, cached on disk); the torch side
(:class:`SegmentationDataset`, :func:`collate_batch`) turns it into the batch dictionary of
docs/ARCHITECTURE.md and is imported lazily.
"""

from sizeseg.data.acdc import prepare_acdc, read_acdc
from sizeseg.data.bounds import (area_ratio_range, make_bounds, precise_bounds, size_area_bounds, subject_bounds,
                                 with_tags)
from sizeseg.data.decathlon import read_decathlon
from sizeseg.data.errors import DataError
from sizeseg.data.folder import prepare_folder
from sizeseg.data.hippocampus import prepare_hippocampus
from sizeseg.data.prepared import PreparedData, load_prepared
from sizeseg.data.size_lists import SizeTable, attach_size_table, check_size_table, n_classes, read_size_table
from sizeseg.data.synthetic import synthetic_data
from sizeseg.data.weak import IGNORE_INDEX, centroid_labels, erosion_labels, random_point_labels, scribble_labels

_LAZY = {"SegmentationDataset": "sizeseg.data.datasets", "collate_batch": "sizeseg.data.datasets",
         "choose_masked": "sizeseg.data.datasets"}

__all__ = [
    "DataError", "IGNORE_INDEX", "PreparedData", "load_prepared",
    "read_decathlon", "prepare_hippocampus", "read_acdc", "prepare_acdc", "prepare_folder", "synthetic_data",
    "erosion_labels", "random_point_labels", "centroid_labels", "scribble_labels",
    "subject_bounds", "make_bounds", "precise_bounds", "with_tags", "area_ratio_range", "size_area_bounds",
    "SizeTable", "read_size_table", "check_size_table", "attach_size_table", "n_classes", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sizeseg.data' has no attribute {name!r}")
