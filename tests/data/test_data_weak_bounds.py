"""Weak labels (erosion, points, centroid, scribbles) and size bounds against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from sizeseg.data.bounds import (
    PAPER_BOUNDS_SUBJECT, choose_bounds_subject, constant_bounds, make_bounds, precise_bounds, subject_bounds, with_tags,
)
from sizeseg.data.weak import (
    centroid_labels, erosion_labels, labelled_fraction, random_point_labels, scribble_labels, weak_labels,
)


def _shapes():
    out = []
    big = np.zeros((40, 40), bool); big[5:35, 8:30] = True  # survives 10x10
    mid = np.zeros((40, 40), bool); mid[10:18, 10:18] = True  # 8x8: 10x10 empties it, 7x7 not
    thin = np.zeros((40, 40), bool); thin[20, 5:30] = True  # a line: only k = 1 keeps it
    dot = np.zeros((40, 40), bool); dot[3, 3] = True
    yy, xx = np.mgrid[:40, :40]
    ring = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 15 ** 2) & ((yy - 20) ** 2 + (xx - 20) ** 2 >= 10 ** 2)
    return [big, mid, thin, dot, ring]


def test_erosion_is_nonempty_and_inside():
    masks = np.stack(_shapes())
    weak = erosion_labels(masks)
    for m, w in zip(masks, weak):
        assert (w == 1).any(), "the weak region must not vanish"
        assert m[w == 1].all(), "the weak region lies inside the object"
        assert set(np.unique(w)) <= {-1, 1}  # background is not annotated (paper's setting)


def test_erosion_uses_first_surviving_kernel():
    masks = np.stack(_shapes())
    weak = erosion_labels(masks)
    for m, w in zip(masks, weak):
        for k in (10, 7, 5, 3, 2, 1):
            direct = m if k == 1 else ndimage.binary_erosion(m, structure=np.ones((k, k), bool))
            if direct.any():
                np.testing.assert_array_equal(w == 1, direct)
                break
    assert (weak[1] == 1).sum() == 4  # 8x8 square eroded by 7x7 leaves 2x2


def test_erosion_empty_mask_is_unlabelled():
    assert (erosion_labels(np.zeros((5, 6))) == -1).all()


def test_random_points_and_centroid():
    masks = np.stack(_shapes())
    pts = random_point_labels(masks, n_points=3, background_points=2, seed=4)
    for m, w in zip(masks, pts):
        assert (w == 1).sum() == min(3, m.sum()) and m[w == 1].all()
        assert (w == 0).sum() == 2 and not m[w == 0].any()
    np.testing.assert_array_equal(pts, random_point_labels(masks, 3, 2, seed=4))
    cen = centroid_labels(masks)
    for m, w in zip(masks, cen):
        assert (w == 1).sum() == 1 and m[w == 1].all()  # inside, even for the ring
    np.testing.assert_array_equal(weak_labels(masks, "centroid"), cen)
    with pytest.raises(ValueError, match="strategy"):
        weak_labels(masks, "boxes")


def test_scribbles_and_fraction():
    s = np.array([[0, 1, 2], [3, 4, 3]])
    np.testing.assert_array_equal(scribble_labels(s), [[0, 0, 0], [1, -1, 1]])
    weak = np.array([[1, -1], [-1, -1]])
    mask = np.array([[1, 1], [0, 0]])
    assert labelled_fraction(weak, mask) == {"of_pixels": 0.25, "foreground_of_pixels": 0.25, "background_of_pixels": 0.0,
                                             "of_foreground": 0.5, "foreground_recall": 0.5}
    weak = np.array([[1, 0], [0, -1]])  # background labels count as labelled, not as foreground recall
    assert labelled_fraction(weak, mask) == {"of_pixels": 0.75, "foreground_of_pixels": 0.25, "background_of_pixels": 0.5,
                                             "of_foreground": 1.5, "foreground_recall": 0.5}


def test_subject_bounds_equal_direct_computation():
    rng = np.random.default_rng(0)
    areas = rng.integers(0, 2000, size=30).astype(float)
    areas[:3] = 0
    a, b = subject_bounds(areas)
    present = areas[areas > 0]
    assert a == pytest.approx(1.1 * present.min()) and b == pytest.approx(0.9 * present.max())
    with pytest.raises(ValueError, match="no slice"):
        subject_bounds(np.zeros(4))
    with pytest.raises(ValueError, match="cross"):
        subject_bounds(np.array([100.0, 105.0]))


def test_bounds_subject_is_the_papers_when_present_else_first_by_name():
    subjects = np.array(["patient001"] * 3 + ["patient004"] * 3 + ["patient002"] * 2)
    areas = np.array([0, 300, 1700, 90, 0, 1900, 5, 6.0])  # patient002's bounds cross (5.5 > 5.4)
    name, a, b = choose_bounds_subject(subjects, areas)
    assert name == PAPER_BOUNDS_SUBJECT == "patient004"
    assert (a, b) == pytest.approx((1.1 * 90, 0.9 * 1900))
    assert choose_bounds_subject(subjects, areas, default=None)[0] == "patient001"  # first by name
    assert choose_bounds_subject(subjects[:3], areas[:3])[0] == "patient001"  # the paper's absent
    assert choose_bounds_subject(subjects, areas, subject="patient001")[1:] == pytest.approx((330, 1530))
    without_first = subjects != "patient001"
    assert choose_bounds_subject(subjects[without_first], areas[without_first], default=None)[0] == "patient004"
    with pytest.raises(ValueError, match="patient009"):
        choose_bounds_subject(subjects, areas, subject="patient009")
    with pytest.raises(ValueError, match="cross"):
        choose_bounds_subject(subjects, areas, subject="patient002")
    with pytest.raises(ValueError, match="same shape"):
        choose_bounds_subject(subjects[:2], areas)


def test_papers_bounds_subject_gives_the_papers_bounds_on_real_acdc(shared_data):
    """patient004's LV-cavity areas in native pixels give 97.9 / 1722.6 (the authors' code; paper: 98 / 1723)."""
    from sizeseg.data.nifti import read_label_nifti

    folder = shared_data / "ACDC" / "training" / PAPER_BOUNDS_SUBJECT
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    areas = np.concatenate([(np.asarray(read_label_nifti(gt)) == 3).sum(axis=(0, 1))
                            for gt in sorted(folder.glob("*_gt.nii*"))])
    assert subject_bounds(areas) == pytest.approx((97.9, 1722.6))


def test_bound_kinds_and_tags():
    areas = np.array([0.0, 50.0, 300.0])
    np.testing.assert_array_equal(make_bounds("loose", areas), [[0, 0], [1, 65000], [1, 65000]])
    np.testing.assert_array_equal(make_bounds("loose", areas, tags=False), constant_bounds(3, 1, 65000))
    np.testing.assert_array_equal(make_bounds("upper", areas, upper=10000), [[0, 0], [0, 10000], [0, 10000]])
    np.testing.assert_array_equal(make_bounds("subject", areas, subject=(98, 1723)), [[0, 0], [98, 1723], [98, 1723]])
    np.testing.assert_array_equal(make_bounds("subject-upper", areas, subject=(98, 1723))[2], [0, 1723])
    np.testing.assert_allclose(precise_bounds(areas, 0.2), [[0, 0], [40, 60], [240, 360]])
    np.testing.assert_allclose(precise_bounds(areas, 10, absolute=True), [[0, 10], [40, 60], [290, 310]])
    np.testing.assert_array_equal(with_tags(precise_bounds(areas, 10, absolute=True), areas)[0], [0, 0])
    with pytest.raises(ValueError, match="subject"):
        make_bounds("subject", areas)
    with pytest.raises(ValueError, match="lower <= upper"):
        constant_bounds(2, 5, 1)


def test_repeated_erosion_leaves_a_small_core():
    masks = np.stack(_shapes())
    once, core = erosion_labels(masks), erosion_labels(masks, repeat=True)
    for m, w1, w in zip(masks, once, core):
        region = w == 1
        assert region.any() and m[region].all() and (region <= (w1 == 1)).all()
        for k in (10, 7, 5, 3, 2):  # no kernel can erode the core further without emptying it
            assert not ndimage.binary_erosion(region, structure=np.ones((k, k), bool)).any()
    assert (core[0] == 1).sum() < (once[0] == 1).sum()


def test_area_bounds_from_sizes_hold_every_calibration_object():
    from hypothesis import given, settings, strategies as st

    from sizeseg import object_size
    from sizeseg.data.bounds import area_ratio_range, size_area_bounds

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 10), st.integers(0, 10), st.integers(1, 12), st.integers(1, 12)),
                    min_size=1, max_size=6))
    def check(rects):
        masks = np.zeros((len(rects), 24, 24), bool)
        for i, (y, x, h, w) in enumerate(rects):
            masks[i, y:y + h, x:x + w] = True
        areas = masks.sum((1, 2)).astype(float)
        sizes = np.array([float(object_size(m)) for m in masks])
        lo, hi = area_ratio_range(areas, sizes, margin=0.0)
        direct = areas / sizes ** 2
        assert (lo, hi) == pytest.approx((direct.min(), direct.max()))
        bounds = size_area_bounds(sizes, area_ratio_range(areas, sizes, margin=0.05))
        assert np.all(bounds[:, 0] <= areas + 1e-4) and np.all(areas <= bounds[:, 1] + 1e-4)

    check()


def test_area_bounds_from_sizes_reject_bad_input():
    from sizeseg.data.bounds import area_ratio_range, size_area_bounds

    with pytest.raises(ValueError, match="at least one image with an object"):
        area_ratio_range(np.array([0.0]), np.array([0.0]))
    with pytest.raises(ValueError, match="same shape"):
        area_ratio_range(np.array([4.0, 9.0]), np.array([2.0]))
    with pytest.raises(ValueError, match="margin"):
        area_ratio_range(np.array([4.0]), np.array([2.0]), margin=-1)
    with pytest.raises(ValueError, match="ratio_range"):
        size_area_bounds(np.array([3.0]), (2.0, 1.0))
    assert size_area_bounds(np.array([0.0, 2.0]), (1.0, 1.5)).tolist() == [[0.0, 0.0], [4.0, 6.0]]
