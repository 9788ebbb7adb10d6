"""``sizeseg pretrain|finetune|evaluate|predict``: train and use a network on a prepared data set.

Settings come from ``--config FILE.yaml`` (keys of :class:`sizeseg.training.TrainConfig`; an
unknown key is an error naming it) and flags, flags winning.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# flag -> (TrainConfig key, type, help)
TRAIN_FLAGS = {
    "--model": ("model", str, "network name (unet, unet-resnet34, unet-small, ...)"),
    "--epochs": ("max_epochs", int, "maximum epochs"),
    "--lr": ("lr", float, "Adam learning rate (default 1e-3; about 1e-4 suits size fine-tuning)"),
    "--lr-step": ("lr_step", int, "multiply the learning rate by --lr-gamma every this many epochs (0: constant)"),
    "--lr-gamma": ("lr_gamma", float, "the step schedule's factor"),
    "--batch-size": ("batch_size", int, "images per batch"),
    "--patience": ("patience", int, "early-stopping patience in validations (0: off)"),
    "--monitor": ("monitor", str, "validation metric picking the best checkpoint and stopping early: val/IoU, "
                  "val/Dice or val/E (default: val/IoU for pretrain, val/E for finetune)"),
    "--seed": ("seed", int, "seed of the masked subset, initialisation and batch order"),
    "--limit-train-batches": ("limit_train_batches", int, "batches per epoch (default: all)"),
    "--devices": ("devices", int, "processes / devices (with --strategy ddp)"),
    "--strategy": ("strategy", str, "Lightning strategy: auto or ddp"),
    "--accelerator": ("accelerator", str, "cpu, gpu or auto"),
}
PRETRAIN_FLAGS = {"--m": ("m", int, "masked training images to pre-train on (default: all)")}
FINETUNE_FLAGS = {
    "--n-samples": ("n_samples", int, "SizeLoss gradient samples n"),
    "--m": ("m", int, "mixed mode: masked training images kept (default: all)"),
    "--mask-fraction": ("mask_fraction", float, "mixed mode: expected fraction of masked images per epoch"),
    "--size-matched-weight": ("size_matched_weight", float,
                              "weight of BCE to the prediction moved onto each annotated size (0: off, the default)"),
}


def _add_train_arguments(parser: argparse.ArgumentParser, extra: dict) -> None:
    parser.add_argument("--data", required=True, help="a prepared data folder (sizeseg prepare ...)")
    parser.add_argument("--out", required=True, help="run folder (checkpoints/, logs/, metrics.csv)")
    parser.add_argument("--config", help="YAML file of training settings (flags override it)")
    for flag, (key, kind, text) in {**TRAIN_FLAGS, **extra}.items():
        parser.add_argument(flag, dest=key, type=kind, default=None, help=text)
    parser.add_argument("--no-flips", dest="flips", action="store_false", default=None, help="no random flips in pre-training")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if OUT has a last checkpoint")
    parser.add_argument("--progress", action="store_true", help="show the progress bar")


def register(subparsers) -> None:
    pre = subparsers.add_parser("pretrain", help="supervised pre-training on (a subset of) the masks: BCE with flips",
                                description="Pre-train a network on M masked training images (BCE with logits, random flips); "
                                            "early stopping on validation IoU; checkpoints best.ckpt and last.ckpt.")
    _add_train_arguments(pre, PRETRAIN_FLAGS)
    pre.set_defaults(func=_run_train, mode="pretrain")

    fine = subparsers.add_parser("finetune", help="fine-tune on object sizes (SizeLoss), or mixed with masks",
                                 description="Fine-tune a network on the sizes of the training images with SizeLoss; "
                                             "--mixed adds BCE on M masked images in the same run. Early stopping on validation E.")
    _add_train_arguments(fine, FINETUNE_FLAGS)
    fine.add_argument("--init", help="checkpoint to start from (e.g. RUN/checkpoints/best.ckpt of pretrain)")
    fine.add_argument("--mixed", action="store_true", help="masks and sizes in the same run (BCE + SizeLoss)")
    fine.set_defaults(func=_run_train, mode="finetune")

    ev = subparsers.add_parser("evaluate", help="E, IoU and Dice of a checkpoint on a split",
                               description="Evaluate a checkpoint on a split of a prepared data set: mean E (eq. 22), IoU (eq. 23), Dice.")
    ev.add_argument("--checkpoint", required=True, help="a .ckpt written by pretrain / finetune")
    ev.add_argument("--data", required=True, help="a prepared data folder")
    ev.add_argument("--split", default="test", help="train, val, test or all (default test)")
    ev.add_argument("--out", help="write the scores (JSON) and per-image values (CSV) into this folder")
    ev.set_defaults(func=_run_evaluate)

    pr = subparsers.add_parser("predict", help="write predicted masks (PNG or NIfTI) and a CSV of predicted sizes",
                               description="Predict masks for the items of a prepared data set; writes OUT/masks/<id>.png "
                                           "(or .nii.gz) and OUT/sizes.csv (id, predicted size, annotated size), atomically.")
    pr.add_argument("--checkpoint", required=True, help="a .ckpt written by pretrain / finetune")
    pr.add_argument("--data", required=True, help="a prepared data folder")
    pr.add_argument("--split", default="all", help="train, val, test or all (default all)")
    pr.add_argument("--out", required=True, help="output folder")
    pr.add_argument("--format", choices=("png", "nifti"), default="png", help="mask file format (png only for 2D)")
    pr.set_defaults(func=_run_predict)


def _config(args: argparse.Namespace):
    from sizeseg.training import TrainConfig

    flags = {key: getattr(args, key) for key in TrainConfig.keys() if getattr(args, key, None) is not None}
    if args.config:
        return TrainConfig.from_yaml(args.config, overrides=flags)
    return TrainConfig.from_mapping(flags, source="flags")


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
    if mode == "finetune" and init is None:
        print("note: fine-tuning from a freshly initialised network (no --init given)")
    data = load_prepared(args.data)
    result = train(mode, data, args.out, cfg, init=init, resume=not args.no_resume, progress_bar=args.progress)
    print(f"{mode}: {result.seconds:.1f} s; best checkpoint {result.best}; log {result.metrics_csv}")
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from sizeseg.io_utils import write_csv, write_json
    from sizeseg.training import evaluate_model, load_model

    model = load_model(args.checkpoint)
    data = _load(args.data, args.split)
    scores = evaluate_model(model, data)
    print(f"{args.split}: {scores['n']} images; E {scores['E']:.4g}  IoU {scores['IoU']:.4f}  Dice {scores['Dice']:.4f}")
    if args.out:
        out = Path(args.out)
        write_json(out / "scores.json", {k: scores[k] for k in ("E", "IoU", "Dice", "n")} | {"checkpoint": args.checkpoint, "split": args.split})
        write_csv(out / "per_image.csv", [{"id": i, "E": float(e)} for i, e in zip(data.ids, scores["E_per_image"])])
    return 0


def _safe_name(item_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(item_id))


def _run_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from sizeseg.io_utils import atomic_path, atomic_write_bytes, write_csv
    from sizeseg.metrics import predicted_size
    from sizeseg.training import load_model, predict_logits

    model = load_model(args.checkpoint)
    data = _load(args.data, args.split)
    if args.format == "png" and len(data.spatial_shape) != 2:
        raise ValueError(f"--format png: needs 2D items, got spatial shape {data.spatial_shape}; use --format nifti")
    out = Path(args.out)
    rows = []
    for start in range(0, len(data), 256):
        logits = predict_logits(model, data.images[start:start + 256])
        sizes = predicted_size(logits).numpy()
        masks = (logits[:, 0] > 0).numpy().astype(np.uint8)
        for k, mask in enumerate(masks):
            i = start + k
            name = _safe_name(data.ids[i])
            if args.format == "png":
                from PIL import Image

                with atomic_path(out / "masks" / f"{name}.png") as tmp:
                    Image.fromarray(mask * 255).save(tmp, format="PNG")
            else:
                import gzip

                import nibabel as nib

                atomic_write_bytes(out / "masks" / f"{name}.nii.gz", gzip.compress(nib.Nifti1Image(mask, np.eye(4)).to_bytes()))
            annotated = float(data.sizes[i])
            rows.append({"id": str(data.ids[i]), "file": f"masks/{name}.{'png' if args.format == 'png' else 'nii.gz'}",
                         "predicted_size": float(sizes[k]), "annotated_size": "" if np.isnan(annotated) else annotated})
    write_csv(out / "sizes.csv", rows, ["id", "file", "predicted_size", "annotated_size"])
    print(f"wrote {len(rows)} masks to {out / 'masks'} and sizes to {out / 'sizes.csv'}")
    return 0
