"""``sizeseg prepare hippocampus|folder|acdc``: prepare a data set once, cached in an output folder."""

from __future__ import annotations

import argparse

from sizeseg.commands.help_format import DefaultsFormatter

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
                    "keep slices with >= 1% foreground, merge labels 1 and 2, compute sizes, split 70/10/20.",
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
                    "of masks with the same stems for some of them and a CSV 'image,size' for others. Images are "
                    "resized to one working shape (CSV sizes rescaled with them). Masked and size-only images are "
                    "split separately, so validation and test hold their share of the masks.",
        formatter_class=DefaultsFormatter,
    )
    fol.add_argument("--images", required=True, help="folder of images or NIfTI volumes")
    fol.add_argument("--masks", help="folder of masks (same stem as their image; non-zero = object)")
    fol.add_argument("--sizes", help="CSV with rows 'image,size' for images without masks (sizes measured on "
                                     "the original images; rescaled with them). A size is the object's "
                                     "Chebyshev size in pixels; for NIfTI volumes its 3D Chebyshev size in "
                                     "voxels, twice the largest 3D chessboard distance to the background")
    fol.add_argument("--out", required=True, help="output folder")
    fol.add_argument("--shape", type=int, nargs="+", metavar="N",
                     help="working shape, rows first: H W for images, D H W for volumes (default: the largest "
                          "extent per axis, its longest side capped at --max-side under --fit resize)")
    fol.add_argument("--fit", choices=("resize", "pad"), default="resize",
                     help="resize every image to the working shape, or centre crop/pad it (pad keeps pixel sizes "
                          "but cuts whatever lies outside the shape)")
    fol.add_argument("--max-side", type=int, default=256,
                     help="longest side of the default working shape under --fit resize (0: no cap)")
    fol.add_argument("--fractions", type=float, nargs="+", metavar="F",
                     help="split fractions: TRAIN VAL TEST, or TRAIN VAL with --no-test (default 0.7 0.1 0.2; "
                          "0.8 0.2 with --no-test)")
    fol.add_argument("--no-test", action="store_true", help="no test split (score on a set of your own)")
    fol.add_argument("--val-list", metavar="FILE",
                     help="text file of image names (or stems), one a line, that go to validation (default: a random share)")
    fol.add_argument("--seed", type=int, default=0, help="split seed")
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
    acdc.add_argument("--classes", metavar="NAMES",
                      help="comma-separated structures among LV, RV, MYO (e.g. LV,RV,MYO): label-map masks "
                           "(c = the c-th name) and one size per class, for training with --classes; the "
                           "myocardium's size is its thickest wall (default: the LV cavity alone, binary)")
    acdc.set_defaults(func=_run_acdc)


def _summary(data, out, reused: bool) -> None:
    import numpy as np

    names, counts = np.unique(data.splits, return_counts=True)
    splits = ", ".join(f"{n} {c}" for n, c in zip(names, counts))
    state = "reused cached" if reused else "prepared"
    print(f"{state} {len(data)} items of shape {data.images.shape[1:]} in {out} ({splits}); "
          f"{int(data.has_mask.sum())} with masks, {int(np.isfinite(data.sizes).sum())} with sizes")
    for line in split_lines(data):
        print(line)


def split_lines(data) -> list[str]:
    """Per split: images, how many have masks and how many sizes only; a warning when validation
    holds fewer than :data:`~sizeseg.data.splits.MIN_VAL_MASKS` masks."""
    import numpy as np

    from sizeseg.data.splits import MIN_VAL_MASKS

    order = [n for n in ("train", "val", "test") if n in set(data.splits.tolist())]
    lines = []
    for name in order:
        keep = data.splits == name
        masked = int(data.has_mask[keep].sum())
        sized = int((np.isfinite(data.sizes[keep]) & ~data.has_mask[keep]).sum())
        lines.append(f"  {name}: {int(keep.sum())} images, {masked} with masks, {sized} with sizes only")
    for name in ("train", "val"):  # an empty test split can be asked for (--no-test); these cannot be
        if name not in order:
            lines.append(f"warning: the {name} split is empty: training needs train and val items; add images "
                         "or change the split fractions")
    val_masks = int(data.has_mask[data.splits == "val"].sum())
    if val_masks < MIN_VAL_MASKS:
        lines.append(f"warning: validation holds {val_masks} masked image(s), fewer than {MIN_VAL_MASKS}: validation "
                     "IoU (which picks best.ckpt and stops pre-training) rests on them, and fine-tuning selects by validation "
                     "E instead; put more masks there with --fractions or --val-list"
                     + ("; with none, pre-training selects by validation E" if val_masks == 0 else ""))
    return lines


def folder_notes(data, shape_given: bool, fit: str, max_side: int | None) -> list[str]:
    """What a user should know about a prepared folder: the working shape chosen, the sizes' rescaling."""
    import numpy as np

    shape = "x".join(str(n) for n in data.spatial_shape)
    lines = []
    if not shape_given:
        cap = f", longest side capped at {max_side} (--max-side)" if fit == "resize" and max_side else ""
        lines.append(f"note: working shape {shape} (rows x columns): the largest image extent{cap}; "
                     "--shape H W chooses another")
    scale = data.extra.get("size_scale")
    csv_sized = np.isfinite(data.sizes) & ~data.has_mask
    if scale is not None and csv_sized.any() and not np.allclose(scale[csv_sized], 1.0):
        s = scale[csv_sized]
        lines.append(f"note: CSV sizes rescaled to the working shape by x{float(np.median(s)):.3g} "
                     f"(per image x{float(s.min()):.3g} to x{float(s.max()):.3g}); sizes of masked images are "
                     "measured on their resized masks")
    return lines


def _run_hippocampus(args: argparse.Namespace) -> int:
    from sizeseg.data.hippocampus import prepare_hippocampus

    data, reused = prepare_hippocampus(args.data, args.out, shape=tuple(args.shape), axis=args.axis,
                                       min_foreground=args.min_foreground, split_by=args.split_by, seed=args.seed)
    _summary(data, args.out, reused)
    return 0


def _run_folder(args: argparse.Namespace) -> int:
    from sizeseg.data.folder import prepare_folder

    splits = ("train", "val") if args.no_test else ("train", "val", "test")
    fractions = args.fractions or ((0.8, 0.2) if args.no_test else (0.7, 0.1, 0.2))
    if len(fractions) != len(splits) or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"--fractions: expected {len(splits)} numbers >= 0 summing to 1 "
                         f"({' '.join(s.upper() for s in splits)}{', with --no-test' if args.no_test else ''}), "
                         f"got {' '.join(f'{f:g}' for f in fractions)}")
    if args.max_side < 0:
        raise ValueError(f"--max-side: expected an int >= 0 (0: no cap), got {args.max_side}")
    max_side = args.max_side or None
    data, reused = prepare_folder(args.images, args.out, masks=args.masks, sizes=args.sizes,
                                  shape=None if args.shape is None else tuple(args.shape), fit=args.fit, seed=args.seed,
                                  fractions=fractions, splits=splits, val_list=args.val_list, max_side=max_side)
    for line in folder_notes(data, args.shape is not None, args.fit, max_side):
        print(line)
    _summary(data, args.out, reused)
    return 0


def _run_acdc(args: argparse.Namespace) -> int:
    from sizeseg.data.acdc import check_acdc_classes, prepare_acdc

    classes = None
    if args.classes is not None:
        classes = [c.strip() for c in args.classes.split(",")]
        try:
            check_acdc_classes(classes)
        except ValueError as err:
            raise ValueError(f"--classes: {str(err).split(': ', 1)[1]}") from None
    data, reused = prepare_acdc(args.data, args.out, size=args.size, resolution=args.resolution, seed=args.seed,
                                classes=classes)
    _summary(data, args.out, reused)
    if classes:
        print(f"  classes {','.join(classes)}: masks are label maps 1..{len(classes)}; train with --classes "
              f"{','.join(classes)}")
    return 0
