"""``sizeseg demo``: the whole pipeline on the built-in synthetic set, in minutes on a CPU.

Pre-train a U-Net on a few masked images, fine-tune it on the object sizes of every training
image with SizeLoss, and print the test IoU and E before and after; writes plots and a report.
With --objects N the images hold 1 to N separate objects and fine-tuning uses the list of
every object's size (ObjectSizeLoss); the per-object size errors are printed too.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="the whole pipeline on synthetic data: pre-train on a few masks, fine-tune on sizes",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    parser.add_argument("--out", default="sizeseg-demo", help="output folder (default ./sizeseg-demo)")
    parser.add_argument("--images", type=int, help="synthetic images, split 70/10/20 (default 400; 200 with --objects)")
    parser.add_argument("--masks", type=int, default=20, help="masked images for pre-training (default 20)")
    parser.add_argument("--pretrain-steps", type=int, help="pre-training steps (default 120; 60 with --objects)")
    parser.add_argument("--finetune-epochs", type=int, help="size fine-tuning epochs (default 6; 3 with --objects)")
    parser.add_argument("--n-samples", type=int, default=1, help="SizeLoss gradient samples n (default 1)")
    parser.add_argument("--mixed", action="store_true", help="keep BCE on the masked images while fine-tuning")
    parser.add_argument("--area-weight", type=float, default=0.0,
                        help="weight of the area bounds the sizes imply (finetune --area-weight, per pixel; default 0: "
                             "off)")
    parser.add_argument("--objects", type=int, default=0,
                        help="1 to N separate objects per image (48x48), fine-tuned on the list of every object's size "
                             "with ObjectSizeLoss (default 0: one object per 48x32 image, SizeLoss)")
    parser.add_argument("--model", default="unet-small", help="network (default unet-small)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.set_defaults(func=run)


#: defaults of (--images, --pretrain-steps, --finetune-epochs): one object per image, several objects
DEFAULTS = {False: (400, 120, 6), True: (200, 60, 3)}


def _check(args: argparse.Namespace) -> None:
    for name, default in zip(("images", "pretrain_steps", "finetune_epochs"), DEFAULTS[bool(args.objects)]):
        if getattr(args, name) is None:
            setattr(args, name, default)
    for name in ("images", "masks", "pretrain_steps", "finetune_epochs", "n_samples"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: expected a positive int, got {getattr(args, name)}")
    if args.images < 10:
        raise ValueError(f"--images: expected at least 10 (train, val and test need items), got {args.images}")
    if not 0 <= args.objects <= 12:
        raise ValueError(f"--objects: expected an int in [0, 12] (0: one object per image), got {args.objects}")
    if not (args.area_weight >= 0 and args.area_weight < float("inf")):
        raise ValueError(f"--area-weight: expected a finite number >= 0, got {args.area_weight}")
    if args.masks > int(0.7 * args.images):
        raise ValueError(f"--masks: expected at most the ~70% training images ({int(0.7 * args.images)}), got {args.masks}")


def _examples(path: Path, test, before, after, count: int = 5) -> None:
    import numpy as np

    from sizeseg.experiments.report import new_figure, save_figure

    idx = np.linspace(0, len(test) - 1, min(count, len(test))).astype(int)
    fig, axes = new_figure(len(idx), width=1.9, height=7.2)
    for ax, i in zip(axes, idx):
        img = test.images[i, 0]
        panel = np.concatenate([img, test.masks[i] * 2.0 - 1, before[i] * 2.0 - 1, after[i] * 2.0 - 1], axis=0)
        ax.imshow(panel, cmap="gray")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"size {test.sizes[i]:g}", fontsize=8)
    axes[0].set_ylabel("image / truth / before / after", fontsize=8)
    save_figure(fig, path)


def _curves(path: Path, rows: list[dict], start: dict) -> None:
    from sizeseg.experiments.report import new_figure, save_figure

    fig, (ax_e, ax_iou) = new_figure(2)
    epochs = [0] + [r["epoch"] for r in rows if "val_E" in r]
    ax_e.plot(epochs, [start["E"]] + [r["val_E"] for r in rows if "val_E" in r], marker="o")
    ax_iou.plot(epochs, [start["IoU"]] + [r["val_IoU"] for r in rows if "val_E" in r], marker="o")
    ax_e.set(xlabel="fine-tuning epoch", ylabel="validation E")
    ax_iou.set(xlabel="fine-tuning epoch", ylabel="validation IoU")
    save_figure(fig, path)


#: image shape of the multi-object demo
OBJECTS_SHAPE = (48, 48)


def _description(args: argparse.Namespace, n: int, n_train: int, n_test: int) -> str:
    if args.objects:
        return (f"Synthetic set: {n} images of {OBJECTS_SHAPE[0]}x{OBJECTS_SHAPE[1]} with 1 to {args.objects} separate "
                f"objects each (train {n_train}, test {n_test}). A {args.model} network is pre-trained with BCE on "
                f"{args.masks} masked images, then fine-tuned with ObjectSizeLoss (n = {args.n_samples}) on the list "
                "of every object's size of all training images (objects: 8-connected components; lists matched in "
                "sorted order, a missing object counting as size 0), keeping the epoch with the best validation "
                "per-object size error.")
    return (f"Synthetic set: {n} images of 48x32 with one object each (train {n_train}, test {n_test}). "
            f"A {args.model} network is pre-trained with BCE on {args.masks} masked images, then fine-tuned with "
            f"SizeLoss (n = {args.n_samples}) on the object sizes of all training images, keeping the epoch with the "
            "best validation E.")


def run(args: argparse.Namespace) -> int:
    _check(args)
    import logging

    from sizeseg.data.synthetic import synthetic_data
    from sizeseg.experiments.hippocampus import read_epochs
    from sizeseg.experiments.report import markdown_table
    from sizeseg.io_utils import write_csv
    from sizeseg.io_utils import atomic_write_text
    from sizeseg.training import TrainConfig, evaluate_model, load_model, predict_logits, train

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    out = Path(args.out)
    if args.objects:
        from sizeseg.data.synthetic_objects import synthetic_objects_data

        data = synthetic_objects_data(args.images, shape=OBJECTS_SHAPE, seed=args.seed, objects=(1, args.objects))
    else:
        data = synthetic_data(args.images, seed=args.seed)
    test = data.split("test")
    n_train = int((data.splits == "train").sum())
    # Pre-training epochs of 10 batches (the few masked images repeated), validated after each.
    pre_cfg = TrainConfig(model=args.model, batch_size=32, lr=1e-3, m=args.masks, seed=args.seed, patience=0,
                          max_epochs=max(1, -(-args.pretrain_steps // 10)), epoch_items=320)
    print(f"demo: {len(data)} synthetic images ({n_train} train); pre-training on {args.masks} masks ...", flush=True)
    pre = train("pretrain", data, out / "pretrain", pre_cfg, resume=False, progress_bar=args.progress)
    before_model = load_model(pre.best)
    before = evaluate_model(before_model, test)
    start_val = evaluate_model(before_model, data.split("val"))
    mode = "mixed" if args.mixed else "finetune"
    print(f"demo: fine-tuning on the sizes of {n_train} images ({mode}, n = {args.n_samples}) ...", flush=True)
    # the demo shows what the size loss does, so validation E (the paper's rule) picks its epoch; the library's
    # default, validation IoU, would pick by the validation masks instead
    fine_cfg = TrainConfig(model=args.model, batch_size=32, lr=1e-4, m=args.masks, seed=args.seed, patience=0,
                           monitor="val/E_obj" if args.objects else "val/E",
                           max_epochs=args.finetune_epochs, n_samples=args.n_samples,
                           size_loss="objects" if args.objects else "object", area_weight=args.area_weight)
    fine = train(mode, data, out / "finetune", fine_cfg, init=pre.best, resume=False, progress_bar=args.progress)
    after_model = load_model(fine.best)
    after = evaluate_model(after_model, test)
    rows = [{"stage": f"pre-trained on {args.masks} masks", **before},
            {"stage": f"after size fine-tuning ({mode})", **after}]
    keys, heads = ["stage", "IoU", "Dice", "E"], ["stage", "test IoU", "test Dice", "test E"]
    if args.objects:  # per-object size errors: squared (pixels^2) and absolute (pixels) per annotated object
        keys, heads = keys + ["E_obj", "AE_obj"], heads + ["test E per object", "test |error| per object (px)"]
    table = markdown_table(rows, keys, heads)
    print(table)
    curve = read_epochs(fine.metrics_csv)
    write_csv(out / "results.csv", rows, keys + ["n"])
    write_csv(out / "finetune_curve.csv", curve, ["epoch", "val_E", "val_IoU", "epoch_time"])
    _curves(out / "finetune_curve.png", curve, start_val)
    masks_before = (predict_logits(before_model, test.images)[:, 0] > 0).numpy()
    masks_after = (predict_logits(after_model, test.images)[:, 0] > 0).numpy()
    _examples(out / "examples.png", test, masks_before, masks_after)
    seconds = time.perf_counter() - t0
    command = (f"sizeseg demo --out {args.out} --images {args.images} --masks {args.masks} --pretrain-steps "
               f"{args.pretrain_steps} --finetune-epochs {args.finetune_epochs} --n-samples {args.n_samples}"
               f"{' --mixed' if args.mixed else ''}{f' --area-weight {args.area_weight:g}' if args.area_weight else ''}"
               f"{f' --objects {args.objects}' if args.objects else ''} --model {args.model} "
               f"--seed {args.seed}")
    atomic_write_text(out / "report.md", "\n".join([
        "# sizeseg demo", "", f"Command: `{command}` ({seconds:.0f} s)", "",
        _description(args, len(data), n_train, len(test)), "", table, "",
        "![validation E and IoU over fine-tuning](finetune_curve.png)", "",
        "![test images: image, truth, before, after](examples.png)", "",
    ]) + "\n")
    print(f"demo: done in {seconds:.0f} s; report {out / 'report.md'}")
    return 0
