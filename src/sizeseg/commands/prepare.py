"""``sizeseg prepare hippocampus|folder|acdc``: prepare a data set once, cached in an output folder."""

from __future__ import annotations

import argparse

SPLIT_HELP = "split by 'volume' (default: no volume in two splits) or by 'slice' (as the paper did)"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "prepare", help="prepare a data set (slices, masks, sizes, splits) into a cached folder",
        description="Prepare a data set into OUT (data.npz, manifest.csv, params.json). Re-running with "
                    "the same parameters reuses OUT; other parameters rebuild it.",
    )
    sub = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)

    hip = sub.add_parser(
        "hippocampus", help="MSD Task04 hippocampus as 48x32 slices (the object-size paper)",
        description="Slice the MSD hippocampus volumes along axis 0 into 48x32 slices (centre crop/pad), "
                    "keep slices with >= 1%% foreground, merge labels 1 and 2, compute sizes, split 70/10/20.",
    )
    hip.add_argument("--data", required=True, help="the Task04_Hippocampus folder (dataset.json, imagesTr/, labelsTr/)")
    hip.add_argument("--out", required=True, help="output folder")
    hip.add_argument("--split-by", choices=("volume", "slice"), default="volume", help=SPLIT_HELP)
    hip.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    hip.add_argument("--shape", type=int, nargs=2, default=(48, 32), metavar=("H", "W"), help="slice shape (default 48 32)")
    hip.add_argument("--axis", type=int, choices=(0, 1, 2), default=0, help="slicing axis (default 0)")
    hip.add_argument("--min-foreground", type=float, default=0.01, help="minimum foreground fraction (default 0.01)")
    hip.set_defaults(func=_run_hippocampus)

    fol = sub.add_parser(
        "folder", help="your own images (PNG/TIFF/BMP or NIfTI) with masks for some and sizes for others",
        description="Prepare a folder of 2D images (PNG, TIFF, BMP; grey or RGB) or 3D NIfTI volumes, a folder "
                    "of masks with the same stems for some of them and a CSV 'image,size' for others.",
    )
    fol.add_argument("--images", required=True, help="folder of images or NIfTI volumes")
    fol.add_argument("--masks", help="folder of masks (same stem as their image; non-zero = object)")
    fol.add_argument("--sizes", help="CSV with rows 'image,size' for images without masks")
    fol.add_argument("--out", required=True, help="output folder")
    fol.add_argument("--shape", type=int, nargs="+", metavar="N",
                     help="output shape (2 ints for images, 3 for volumes; default: the largest extent per axis)")
    fol.add_argument("--fit", choices=("pad", "resize"), default="pad", help="centre crop/pad (default) or resize")
    fol.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    fol.set_defaults(func=_run_folder)

    acdc = sub.add_parser(
        "acdc", help="ACDC as 2D slices, left-ventricle cavity (the constrained-CNN paper)",
        description="Slice every ACDC volume into SIZExSIZE slices (centre crop/pad), optionally downsampled to "
                    "RESOLUTION, binary target = LV cavity (label 3), scribbles kept, split 75/25 by patient.",
    )
    acdc.add_argument("--data", required=True, help="the ACDC folder (with training/patientXXX/)")
    acdc.add_argument("--out", required=True, help="output folder")
    acdc.add_argument("--size", type=int, default=256, help="crop/pad size (default 256, the paper's)")
    acdc.add_argument("--resolution", type=int, help="downsample to this size, e.g. 128 for the CPU profile")
    acdc.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    acdc.set_defaults(func=_run_acdc)


def _summary(data, out, reused: bool) -> None:
    import numpy as np

    names, counts = np.unique(data.splits, return_counts=True)
    splits = ", ".join(f"{n} {c}" for n, c in zip(names, counts))
    state = "reused cached" if reused else "prepared"
    print(f"{state} {len(data)} items of shape {data.images.shape[1:]} in {out} ({splits}); "
          f"{int(data.has_mask.sum())} with masks, {int(np.isfinite(data.sizes).sum())} with sizes")


def _run_hippocampus(args: argparse.Namespace) -> int:
    from sizeseg.data.hippocampus import prepare_hippocampus

    data, reused = prepare_hippocampus(args.data, args.out, shape=tuple(args.shape), axis=args.axis,
                                       min_foreground=args.min_foreground, split_by=args.split_by, seed=args.seed)
    _summary(data, args.out, reused)
    return 0


def _run_folder(args: argparse.Namespace) -> int:
    from sizeseg.data.folder import prepare_folder

    data, reused = prepare_folder(args.images, args.out, masks=args.masks, sizes=args.sizes,
                                  shape=None if args.shape is None else tuple(args.shape), fit=args.fit, seed=args.seed)
    _summary(data, args.out, reused)
    return 0


def _run_acdc(args: argparse.Namespace) -> int:
    from sizeseg.data.acdc import prepare_acdc

    data, reused = prepare_acdc(args.data, args.out, size=args.size, resolution=args.resolution, seed=args.seed)
    _summary(data, args.out, reused)
    return 0
