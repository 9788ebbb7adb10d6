"""The weak labels, the tight bounds' subject and each method's bounds, on the prepared ACDC slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sizeseg.experiments.constrained.profiles import Profile, erosion_kernels

#: ``--weak``: where the labelled pixels of the weak rows come from.
WEAK_SOURCES = {
    "erosion": "the paper's: repeated erosion of the mask, a few foreground pixels per slice, no background",
    "erosion-once": "the paper's text read literally: one erosion by its 10x10 native-pixel kernel (scaled to the "
                    "working resolution), a smaller kernel only where it empties the mask; no background",
    "erosion-budget": "one erosion by a 10x10 kernel at the working resolution (smaller where it empties the mask): "
                      "about the paper's stated 0.1 % of a 256x256 frame's pixels; no background",
    "scribbles": "the ACDC scribbles: LV strokes as foreground, strokes of the other classes and of the "
                 "background as background",
    "centroid": "one foreground pixel per slice, the object pixel nearest the centre of mass",
    "points": "one foreground pixel per slice, drawn at random (seed 0)",
}


def experiment_weak_labels(train, profile: Profile) -> np.ndarray:
    """The weak labels (1 foreground, 0 background, -1 unlabelled) of ``profile.weak`` for the training slices."""
    from sizeseg.data.weak import PAPER_KERNELS, centroid_labels, erosion_labels, random_point_labels

    if profile.weak == "erosion":
        kernels = erosion_kernels(train.spatial_shape[-1], profile.field)
        return erosion_labels(train.masks, kernels=kernels, repeat=True)
    if profile.weak == "erosion-once":
        return erosion_labels(train.masks, kernels=erosion_kernels(train.spatial_shape[-1], profile.field))
    if profile.weak == "erosion-budget":
        return erosion_labels(train.masks, kernels=PAPER_KERNELS)
    if profile.weak == "scribbles":
        if "scribbles" not in train.extra:
            raise ValueError("weak='scribbles': the data has no scribbles (extra['scribbles']); "
                             "prepare the ACDC folder with its *_scribble.nii.gz files")
        return np.asarray(train.extra["scribbles"], np.int64)
    if profile.weak == "centroid":
        return centroid_labels(train.masks)
    if profile.weak == "points":
        return random_point_labels(train.masks, n_points=1, seed=0)
    raise ValueError(f"weak: expected one of {', '.join(WEAK_SOURCES)}, got {profile.weak!r}")


def reference_bounds(train, values: np.ndarray | None = None, subject: str | None = None) -> tuple[str, float, float]:
    """Bounds from one training subject: :func:`sizeseg.data.bounds.choose_bounds_subject`.

    Uses ``extra["subjects"]`` (ACDC) or ``volumes``; ``a = 1.1 min``, ``b = 0.9 max`` of the
    subject's LV areas (or of ``values``, e.g. the discrete sizes) over its slices containing the
    LV (paper §3.2). The subject is ``subject`` if given, else the paper's (patient004) when it is
    in the training split, else the first by name.
    """
    from sizeseg.data.bounds import choose_bounds_subject

    subjects = np.asarray(train.extra.get("subjects", train.volumes)).astype(str)
    areas = np.asarray(train.extra["areas"] if values is None else values, np.float64)
    return choose_bounds_subject(subjects, areas, subject)


def method_bounds(kind: str, areas: np.ndarray, ref: tuple[float, float], pixel_area: float, seed: int = 0,
                  size_ref: tuple[float, float] | None = None) -> np.ndarray:
    """Bounds (N, 2) of a method's training images, with tags (``[0, 0]`` where the LV is absent).

    ``ref`` holds the subject's bounds on the area; ``size_ref`` those on the discrete size of
    paper 1 (kind ``size-subject``). ``pixel_area``: native pixels per pixel of the slices
    (:func:`native_pixel_area`); the paper's loose bounds, stated in pixels of its 256x256 frame,
    keep their physical size, also on a smaller field of view.
    """
    from sizeseg.data.bounds import PAPER_LOOSE_UPPER, make_bounds, with_tags

    n = len(areas)
    if kind == "none":
        return np.full((n, 2), np.nan, np.float32)
    if kind == "proposals-loose":  # §4.2: one sixth of the 256x256 image
        return make_bounds("upper", areas, upper=256**2 / 6.0 / pixel_area)
    if kind == "upper-loose":  # §4.2: 10000 pixels at 256x256
        return make_bounds("upper", areas, upper=PAPER_LOOSE_UPPER / pixel_area)
    if kind in ("subject", "subject-upper"):
        return make_bounds(kind, areas, subject=ref)
    if kind == "size-subject":
        if size_ref is None:
            raise ValueError("kind='size-subject' needs size_ref, the subject's bounds on the discrete size")
        return make_bounds("subject", areas, subject=size_ref)
    if kind == "approx-size":  # the true area times a factor drawn in [0.9, 1.1]
        factor = np.random.default_rng(seed).uniform(0.9, 1.1, size=n)
        approx = np.asarray(areas, np.float64) * factor
        return with_tags(np.stack([approx, approx], 1).astype(np.float32), areas)
    raise ValueError(f"bounds kind {kind!r} unknown")


def load_acdc(data_dir: str | Path, out: Path, profile: Profile):
    """Prepare (or reuse) the ACDC slices of the profile under ``out/prepared_r<res>`` (``prepared_f<field>_r<res>``
    for a field of view other than 256; ``_frames`` appended for the split by frame)."""
    from sizeseg.data.acdc import prepare_acdc

    name = f"prepared_r{profile.resolution}" if profile.field == 256 else f"prepared_f{profile.field}_r{profile.resolution}"
    name += "_frames" if profile.split == "frames" else ""
    data, _ = prepare_acdc(data_dir, out / name, size=profile.field, resolution=profile.resolution,
                           limit=profile.limit_patients, split=profile.split)
    return data
