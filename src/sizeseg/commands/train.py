"""``sizeseg pretrain|finetune|evaluate|predict``: train and use a network on a prepared data set.

Settings come from ``--config FILE.yaml`` (keys of :class:`sizeseg.training.TrainConfig`; an
unknown key is an error naming it) and flags, flags winning.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# flag -> (TrainConfig key, type, help)
TRAIN_FLAGS = {
    "--model": ("model", str, None),  # the config's help: every registered network
    "--epochs": ("max_epochs", int, "maximum epochs"),
    "--lr": ("lr", float, "Adam learning rate (about 1e-4 suits size fine-tuning)"),
    "--lr-step": ("lr_step", int, "multiply the learning rate by --lr-gamma every this many epochs (0: constant)"),
    "--lr-gamma": ("lr_gamma", float, "the step schedule's factor"),
    "--batch-size": ("batch_size", int, "images per batch"),
    "--patience": ("patience", int, "early-stopping patience in validations (0: off)"),
    "--min-epochs": ("min_epochs", int, "epochs before early stopping may end the run (default: 10 for pretrain, "
                     "whose fresh network can predict no object for several epochs first; 0 for finetune)"),
    "--monitor": ("monitor", str, "validation metric picking the best checkpoint and stopping early: val/IoU, "
                  "val/Dice or val/E (the paper's for fine-tuning); empty: val/IoU, or val/E when validation has "
                  "no mask or, when fine-tuning, fewer than 5"),
    "--seed": ("seed", int, "seed of the masked subset, initialisation and batch order"),
    "--limit-train-batches": ("limit_train_batches", int, "batches per epoch"),
    "--devices": ("devices", int, "processes / devices (with --strategy ddp)"),
    "--strategy": ("strategy", str, "Lightning strategy: auto or ddp"),
    "--accelerator": ("accelerator", str, "cpu, gpu or auto"),
}
PRETRAIN_FLAGS = {"--m": ("m", int, "masked training images to pre-train on")}
FINETUNE_FLAGS = {
    "--n-samples": ("n_samples", int, "SizeLoss gradient samples n"),
    "--size-weight": ("size_weight", float, "weight of the size term (mixed: against BCE's weight --bce-weight); "
                      "the default balances the squared size error (px^2) against BCE at 64x64, and training "
                      "prints the balanced weight at other shapes (about 4 with --size-units image)"),
    "--bce-weight": ("bce_weight", float, "mixed mode: weight of the BCE term on the masks"),
    "--size-criterion": ("size_criterion", str, "SizeLoss's loss on sizes: squared (the paper's), "
                         "relative ((t - s)^2 / t^2), absolute or symmetric ((t - s)^2 / max(t, s)^2: with "
                         "--size-loss objects a spurious or missed object costs 1)"),
    "--noise-scale": ("noise_scale", float, "scale tau of SizeLoss's logistic noise, p = sigmoid(a / tau); "
                      "1 is the paper's, smaller keeps large objects' sampled sizes near their thresholded ones"),
    "--m": ("m", int, "mixed mode: masked training images kept"),
    "--mask-fraction": ("mask_fraction", float, "mixed mode: expected fraction of masked images per epoch"),
    "--size-loss": ("size_loss", str, "object: SizeLoss on each class's largest object (one size per class); objects: "
                    "ObjectSizeLoss on each class's list of object sizes (--sizes with lists, or data with size lists)"),
    "--size-matched-weight": ("size_matched_weight", float,
                              "weight of BCE to the prediction moved onto each annotated size (0: off)"),
    "--area-weight": ("area_weight", float, "weight of the area bounds the sizes imply, [lo s^2, hi s^2] on the soft "
                      "area, lo and hi measured on the masked training images (0: off; one class; README step "
                      "4: 40 with --size-units image)"),
    "--size-units": ("size_units", str, "pixels: sizes in px and areas in px^2 (the papers'; the default weight "
                     "is for these) or image: sizes in image sides and areas in images, so that a weight holds "
                     "at any --shape (--size-weight 4 --area-weight 40 equal 1e-3 and 0.01 per pixel at 64x64)"),
    "--area-margin": ("area_margin", float, "widening of the masked images' area / size^2 range for --area-weight"),
}


class _PrintConfig(argparse.Action):
    """``--print-config``: print every training setting with its default and what it does, then exit."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from sizeseg.training.config import TrainConfig

        print(f"# every setting of `{parser.prog}` with its default; save as a YAML file for --config "
              "(flags override it)")
        print(TrainConfig().to_yaml(), end="")
        parser.exit(0)


def _default_text(key: str) -> str:
    from sizeseg.training.config import TrainConfig

    value = getattr(TrainConfig(), key)
    return "all" if value is None else repr(value) if value == "" else str(value)


def _add_train_arguments(parser: argparse.ArgumentParser, extra: dict) -> None:
    parser.add_argument("--data", required=True, help="a prepared data folder (sizeseg prepare ...)")
    parser.add_argument("--out", required=True, help="run folder (checkpoints/, logs/, metrics.csv)")
    parser.add_argument("--config", help="YAML file of training settings, keys as --print-config lists them "
                                         "(flags override it; an unknown key is an error)")
    parser.add_argument("--print-config", action=_PrintConfig,
                        help="print every setting (config key) with its default, then exit")
    for flag, (key, kind, text) in {**TRAIN_FLAGS, **extra}.items():
        # flags default to None so that a YAML value is only overridden by a flag given
        if text is None:
            from sizeseg.training.config import HELP

            text = HELP[key]
        parser.add_argument(flag, dest=key, type=kind, default=None, help=f"{text} (default: {_default_text(key)})")
    parser.add_argument("--no-flips", dest="flips", action="store_false", default=None,
                        help="no random flips in pre-training (default: flips)")
    if extra is FINETUNE_FLAGS:  # mixed training is a finetune mode
        parser.add_argument("--mixed-flips", dest="mixed_flips", action="store_true", default=None,
                            help="mixed mode: random flips of its images too, as in pre-training (default: none)")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if OUT has a last checkpoint "
                                                                 "(default: resume from OUT/checkpoints/last.ckpt)")
    parser.add_argument("--progress", nargs="?", const="bar", default="auto", choices=("auto", "bar", "lines", "none"),
                        help="progress output: a bar, one line per epoch, or none (default: auto, a bar when the "
                             "output is a terminal and lines otherwise; --progress alone: bar)")


def register(subparsers) -> None:
    pre = subparsers.add_parser("pretrain", help="supervised pre-training on (a subset of) the masks: BCE with flips",
                                description="Pre-train a network on M masked training images (BCE with logits, random flips); "
                                            "early stopping on validation IoU; checkpoints best.ckpt and last.ckpt.")
    _add_train_arguments(pre, PRETRAIN_FLAGS)
    pre.set_defaults(func=_run_train, mode="pretrain")

    fine = subparsers.add_parser("finetune", help="fine-tune on object sizes (SizeLoss), or mixed with masks",
                                 description="Fine-tune a network on the sizes of the training images with SizeLoss; "
                                             "--mixed adds BCE on M masked images in the same run. best.ckpt and early stopping: "
                                             "validation IoU, or validation E when fewer than 5 validation images have "
                                             "masks (--monitor).")
    _add_train_arguments(fine, FINETUNE_FLAGS)
    fine.add_argument("--init", help="checkpoint to start from (e.g. RUN/checkpoints/best.ckpt of pretrain)")
    fine.add_argument("--mixed", action="store_true", help="masks and sizes in the same run (BCE + SizeLoss)")
    fine.add_argument("--sizes", help="CSV of sizes for the prepared items, replacing theirs: 'image,size', "
                                      "'image,LV,RV,MYO' (one column per class; a cell may list objects 'a;b'), "
                                      "'image,sizes' ('a;b;c' per image) or 'image,object_size' (one row per object); "
                                      "image = item id, source file or its stem")
    for sub in (pre, fine):
        sub.add_argument("--classes", help="comma-separated class names: the network gets one output channel (one "
                                           "sigmoid) per class; masks hold labels 1..C; with --sizes, the CSV's class "
                                           "columns to read (default: one class, or every column of a class CSV)")
    fine.set_defaults(func=_run_train, mode="finetune")

    ev = subparsers.add_parser("evaluate", help="E, IoU and Dice of a checkpoint on a split",
                               description="Evaluate a checkpoint on a split of a prepared data set: mean E (eq. 22) over "
                                           "the images with a size, IoU (eq. 23) and Dice over the images with a mask.")
    ev.add_argument("--checkpoint", required=True, help="a .ckpt written by pretrain / finetune")
    ev.add_argument("--data", required=True, help="a prepared data folder")
    ev.add_argument("--split", default="test", help="train, val, test or all (default test)")
    ev.add_argument("--out", help="write the scores (scores.json) and per-image E, IoU and Dice (per_image.csv) "
                                  "into this folder (default: print only)")
    ev.set_defaults(func=_run_evaluate)

    pr = subparsers.add_parser("predict", help="write predicted masks (PNG or NIfTI) and a CSV of predicted sizes",
                               description="Predict masks for the items of a prepared data set; writes OUT/masks/<id>.png "
                                           "(or .nii.gz) and OUT/sizes.csv (id, predicted size, annotated size), atomically. "
                                           "A NIfTI mask keeps its source volume's affine (voxel spacing, orientation): "
                                           "the source's with --original-size, else moved onto the prepared grid. Sizes "
                                           "are object sizes in pixels; for volumes, 3D Chebyshev sizes in voxels.")
    pr.add_argument("--checkpoint", required=True, help="a .ckpt written by pretrain / finetune")
    pr.add_argument("--data", required=True, help="a prepared data folder")
    pr.add_argument("--split", default="all", help="train, val, test or all (default all)")
    pr.add_argument("--out", required=True, help="output folder")
    pr.add_argument("--format", choices=("png", "nifti"), default="png",
                    help="mask file format (png only for 2D; default png)")
    pr.add_argument("--original-size", action="store_true",
                    help="write each mask at its source image's size (resized back, or un-padded), named like the "
                         "source (data from `sizeseg prepare folder`); default: the prepared size")
    pr.set_defaults(func=_run_predict)


def _config(args: argparse.Namespace):
    from sizeseg.training import TrainConfig

    flags = {key: getattr(args, key) for key in TrainConfig.keys() if getattr(args, key, None) is not None}
    # errors name the flag the user typed, not the config key behind it
    labels = {key: flag for flag, (key, _, _) in {**TRAIN_FLAGS, **PRETRAIN_FLAGS, **FINETUNE_FLAGS}.items()}
    labels["flips"] = "--no-flips"
    labels["mixed_flips"] = "--mixed-flips"
    if args.config:
        return TrainConfig.from_yaml(args.config, overrides=flags, labels=labels)
    return TrainConfig.from_mapping(flags, source="flags", labels=labels)


def _given_model(args: argparse.Namespace) -> str | None:
    """The network the user named (``--model``, else the config file's ``model``), or None."""
    if args.model is not None or not args.config:
        return args.model
    import yaml

    values = yaml.safe_load(Path(args.config).read_text()) or {}  # _config has already checked the file
    return values.get("model")


def _check_init_model(init: str, given: str | None) -> None:
    """With ``--init`` the network is the checkpoint's; a ``--model`` naming another one is an error."""
    from sizeseg.training.checkpoints import read_checkpoint

    if given is None:
        return
    spec = (read_checkpoint(init).get("hyper_parameters") or {}).get("model_spec") or {}
    if spec.get("name") != given:
        raise ValueError(f"--model: {given!r}, but the --init checkpoint {init} holds a {spec.get('name')!r} network; "
                         "leave --model out (the network comes from --init) or start from another checkpoint")


def _load(folder: str, split: str):
    from sizeseg.data.prepared import load_prepared

    data = load_prepared(folder)
    return data if split == "all" else data.split(split)


def _run_train(args: argparse.Namespace) -> int:
    from sizeseg.data.prepared import load_prepared
    from sizeseg.training import train

    cfg = _config(args)  # bad settings fail before anything is loaded
    mode = "mixed" if getattr(args, "mixed", False) else args.mode
    init = getattr(args, "init", None)
    if init is not None and not Path(init).is_file():
        raise FileNotFoundError(f"--init: {init}: checkpoint not found")
    if init is not None:
        _check_init_model(init, _given_model(args))
    if mode == "finetune" and init is None:
        print("note: fine-tuning from a freshly initialised network (no --init given)")
    data = with_classes_and_sizes(load_prepared(args.data), args, cfg)
    result = train(mode, data, args.out, cfg, init=init, resume=not args.no_resume, progress_bar=args.progress,
                   say=print)
    for line in train_summary(mode, result):
        print(line)
    return 0


def with_classes_and_sizes(data, args: argparse.Namespace, cfg):
    """``data`` with the classes of ``--classes`` and the sizes of ``--sizes`` (checked before any training)."""
    import dataclasses

    import numpy as np

    from sizeseg.data.errors import DataError
    from sizeseg.data.size_lists import attach_size_table, read_size_table

    classes = None
    if getattr(args, "classes", None):
        classes = [c.strip() for c in args.classes.split(",")]
        if not all(classes) or len(set(classes)) != len(classes):
            raise ValueError(f"--classes: expected distinct comma-separated names, got {args.classes!r}")
    prepared = data.params.get("classes")
    if prepared and classes is not None and classes != list(prepared):
        raise DataError(f"{args.data}: prepared with classes {','.join(prepared)} (label c = the c-th): --classes "
                        f"{args.classes} names them otherwise; pass --classes {','.join(prepared)} or leave it out")
    classes = list(prepared) if prepared and classes is None else classes
    if classes and len(classes) > 1:
        top = int(np.asarray(data.masks).max()) if len(data) else 0
        if top > len(classes):
            raise DataError(f"{args.data}: masks hold label {top}, more than the {len(classes)} classes of --classes "
                            f"{args.classes}")
        data = dataclasses.replace(data, params={**data.params, "classes": classes})
    if getattr(args, "sizes", None):
        table = read_size_table(args.sizes, classes if classes and len(classes) > 1 else None)
        # SizeLoss sees one size per class: a list would silently stand for its largest object
        data = attach_size_table(data, table, length=1 if cfg.size_loss == "object" else None)
        if len(table.classes) > 1 and not classes:
            classes = table.classes
    return data


def train_summary(mode: str, result) -> list[str]:
    """What a run did, for the user: time, files and how its best epoch compares with its start."""
    lines = [f"{mode}: {result.seconds:.1f} s; best checkpoint {result.best}; log {result.metrics_csv}"]
    if result.start_score is not None:
        best = "none" if result.best_score is None else f"{result.best_score:.4g}"
        lines.append(f"validation {result.monitor}: start {result.start_score:.4g}, best epoch {best}"
                     + (" (never better than the start: best.ckpt is the start)" if result.start_kept else ""))
    if result.start_iou is not None and not result.start_kept:
        lines.append(f"validation IoU: start {result.start_iou:.4f}, best.ckpt {result.best_iou:.4f}")
    return lines


def _run_evaluate(args: argparse.Namespace) -> int:
    from sizeseg.io_utils import write_csv, write_json
    from sizeseg.training import evaluate_model, load_model

    model = load_model(args.checkpoint)
    data = _load(args.data, args.split)
    scores = evaluate_model(model, data)
    print(evaluate_line(args.split, scores))
    if args.out:
        out = Path(args.out)
        keys = ("E", "IoU", "Dice", "n", "n_masks", "n_sizes")
        write_json(out / "scores.json", {k: scores[k] for k in keys} | {"checkpoint": args.checkpoint, "split": args.split})
        write_csv(out / "per_image.csv", per_image_rows(data, scores), ["id", "has_mask", "size", "predicted_size",
                                                                        "E", "IoU", "Dice"])
    return 0


def evaluate_line(split: str, scores: dict) -> str:
    """``test: 32 images; 6 with masks: IoU 0.8343, Dice 0.9012; 32 with sizes: E 12.3``."""
    masks = (f"{scores['n_masks']} with masks: IoU {scores['IoU']:.4f}, Dice {scores['Dice']:.4f}"
             if scores["n_masks"] else "none with a mask (no IoU, Dice)")
    sizes = f"{scores['n_sizes']} with sizes: E {scores['E']:.4g}" if scores["n_sizes"] else "none with a size (no E)"
    return f"{split}: {scores['n']} images; {masks}; {sizes}"


def per_image_rows(data, scores: dict) -> list[dict]:
    """One row per item: id, has_mask, size, predicted size, E, IoU and Dice (blank where not defined)."""
    import numpy as np

    has = np.asarray(data.has_mask, bool)
    iou = dict(zip(np.flatnonzero(has).tolist(), scores["IoU_per_image"].tolist()))
    dice = dict(zip(np.flatnonzero(has).tolist(), scores["Dice_per_image"].tolist()))
    rows = []
    for i, item in enumerate(data.ids):
        size, e = float(data.sizes[i]), float(scores["E_per_image"][i])
        rows.append({"id": str(item), "has_mask": int(has[i]), "size": "" if np.isnan(size) else size,
                     "predicted_size": _sizes_text(scores["predicted_size"][i]), "E": "" if np.isnan(e) else e,
                     "IoU": iou.get(i, ""), "Dice": dice.get(i, "")})
    return rows


def _sizes_text(value):
    """One predicted size as a float; several classes' as ``a;b;c`` (the size CSV's list form)."""
    import numpy as np

    value = np.atleast_1d(np.asarray(value, float))
    return float(value[0]) if value.size == 1 else ";".join(f"{v:g}" for v in value)


def mask_names(data, suffix: str) -> list[str]:
    """A file name per item, unique: the source's name for 2D sources (``IMD002.png``; the stem and
    ``suffix`` when the source is not a ``suffix`` file), with ``_<slice>`` for slices of volumes."""
    from sizeseg.data.nifti import nifti_stem

    names = []
    for source, index in zip(data.sources, data.slices):
        source = str(source)
        stem = nifti_stem(Path(source)) if source.lower().endswith((".nii", ".nii.gz")) else Path(source).stem
        base = _safe_name(stem) + ("" if int(index) < 0 else f"_{int(index)}")
        names.append(base + suffix)
    if len(set(names)) < len(names):  # two sources with one stem: fall back to the (unique) ids
        names = [_safe_name(str(i)) + suffix for i in data.ids]
    if len(set(names)) < len(names):
        names = [f"{k:06d}_{n}" for k, n in enumerate(names)]
    return names


def _safe_name(item_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(item_id))


def to_source_shape(logits, source_shape, fit: str):
    """One item's logits (*spatial) back at its source's shape: resized (``fit="resize"``) or
    un-padded / re-padded (``fit="pad"``; what the crop cut away is background)."""
    import numpy as np

    from sizeseg.data.geometry import center_crop_or_pad, resize

    logits = np.asarray(logits, np.float32)
    if fit == "resize":
        return resize(logits, tuple(int(n) for n in source_shape), order=1)
    return center_crop_or_pad(logits, tuple(int(n) for n in source_shape), fill=-1.0)


def _item_affine(data, index: int, original_size: bool):
    """The voxel-to-world affine of item ``index``'s predicted NIfTI: its source's (at the source's
    size) or the source's moved onto the prepared grid; None (identity) for data that records none."""
    key = "source_affine" if original_size else "affine"
    return data.extra[key][index] if key in data.extra else None


def _run_predict(args: argparse.Namespace) -> int:
    import numpy as np

    import torch

    from sizeseg.data.nifti import write_nifti
    from sizeseg.io_utils import atomic_path, write_csv
    from sizeseg.metrics import predicted_size
    from sizeseg.training import load_model, predict_logits

    model = load_model(args.checkpoint)
    data = _load(args.data, args.split)
    if args.format == "png" and len(data.spatial_shape) != 2:
        raise ValueError(f"--format png: needs 2D items, got spatial shape {data.spatial_shape}; use --format nifti")
    fit = data.params.get("fit", "pad")
    if args.original_size and ("source_shape" not in data.extra or fit not in ("resize", "pad")):
        raise ValueError(f"--original-size: {args.data} records no source shapes; it needs data prepared by "
                         "`sizeseg prepare folder` (prepare it again with this version)")
    out = Path(args.out)
    suffix = ".png" if args.format == "png" else ".nii.gz"
    names = mask_names(data, suffix)
    rows = []
    for start in range(0, len(data), 256):
        logits = predict_logits(model, data.images[start:start + 256])
        if args.original_size and logits.shape[1] > 1:  # before any file is written
            raise ValueError("--original-size: supported for one-class networks; this checkpoint has "
                             f"{logits.shape[1]} classes (their label maps are written at the prepared size without it)")
        sizes = torch.stack([predicted_size(logits[:, c:c + 1]) for c in range(logits.shape[1])], 1).numpy()
        for k in range(len(logits)):
            i = start + k
            item = logits[k].numpy()
            if len(item) > 1:  # several classes: a label map, each pixel the most likely class over 0 (1..C)
                mask = np.where(item.max(0) > 0, item.argmax(0) + 1, 0).astype(np.uint8)
            else:
                item = item[0]
                if args.original_size:
                    item = to_source_shape(item, data.extra["source_shape"][i], fit)
                mask = (item > 0).astype(np.uint8)
            if args.format == "png":
                from PIL import Image

                with atomic_path(out / "masks" / names[i]) as tmp:
                    Image.fromarray(mask * 255 if len(logits[k]) == 1 else mask).save(tmp, format="PNG")
            else:
                write_nifti(out / "masks" / names[i], mask, _item_affine(data, i, args.original_size))
            annotated = float(data.sizes[i])
            rows.append({"id": str(data.ids[i]), "file": f"masks/{names[i]}",
                         "predicted_size": _sizes_text(sizes[k]), "annotated_size": "" if np.isnan(annotated) else annotated})
    write_csv(out / "sizes.csv", rows, ["id", "file", "predicted_size", "annotated_size"])
    where = "at each source image's size" if args.original_size else f"at the prepared size {data.spatial_shape}"
    print(f"wrote {len(rows)} masks {where} to {out / 'masks'} and sizes (at the prepared size) to {out / 'sizes.csv'}")
    return 0
