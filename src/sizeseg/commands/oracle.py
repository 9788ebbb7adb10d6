"""``sizeseg oracle``: will sizes help on my data? The ceiling on what size annotations can add.

Given a pre-trained checkpoint and masked validation images, report IoU and E now, the IoU if
every prediction were moved onto its true size (:func:`sizeseg.training.oracle.size_oracle`), and
the share of sizes that are already exact: before anyone annotates thousands of sizes.
"""

from __future__ import annotations

import argparse

from sizeseg.commands.help_format import DefaultsFormatter
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "oracle", help="will sizes help? IoU now and with every prediction moved onto its true size",
        description="Score a (pre-trained) checkpoint on the masked images of a split: IoU, Dice and E now, the "
                    "same with each prediction moved onto its true object size (the most that size annotations "
                    "can add through the size), and the share of sizes already exact. Run it before annotating "
                    "sizes: a small gain means the size alone can add little (the area bounds sizes imply, finetune "
                    "--area-weight, are not measured by it).",
        formatter_class=DefaultsFormatter,
    )
    parser.add_argument("--checkpoint", required=True, help="a .ckpt written by pretrain (or finetune)")
    parser.add_argument("--data", required=True, help="a prepared data folder (sizeseg prepare ...)")
    parser.add_argument("--split", default="val", help="train, val, test or all; only its masked images count")
    parser.add_argument("--out", help="write oracle.json and per_image.csv into this folder (default: print only)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sizeseg.data.prepared import load_prepared
    from sizeseg.data.splits import MIN_VAL_MASKS
    from sizeseg.io_utils import write_csv, write_json
    from sizeseg.training import load_model, predict_logits
    from sizeseg.training.oracle import oracle_verdict, size_oracle

    if not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"--checkpoint: {args.checkpoint}: checkpoint not found")
    data = load_prepared(args.data)
    data = data if args.split == "all" else data.split(args.split)
    if not data.has_mask.any():
        raise ValueError(f"--split {args.split}: none of its {len(data)} images has a mask; the oracle needs masked "
                         "images (try --split all, or prepare with more masks in validation)")
    result = size_oracle(predict_logits(load_model(args.checkpoint), data.images), data)
    print(f"{args.split}: {result['n']} masked images")
    print(f"  now:                 IoU {result['IoU']:.4f}  Dice {result['Dice']:.4f}  E {result['E']:.4g}")
    print(f"  moved to true sizes: IoU {result['oracle_IoU']:.4f}  Dice {result['oracle_Dice']:.4f}  "
          f"E {result['oracle_E']:.4g}")
    print(f"  sizes already exact: {100 * result['exact']:.0f} % (within 2 px: {100 * result['within_2']:.0f} %)")
    print(oracle_verdict(result))
    if result["n"] < MIN_VAL_MASKS:
        print(f"warning: the oracle rests on {result['n']} masked image(s), fewer than {MIN_VAL_MASKS}: read its gain as "
              f"noise; score more masked images (--split all, or prepare with more masks in validation)")
    if args.out:
        out = Path(args.out)
        keys = ("n", "IoU", "Dice", "E", "oracle_IoU", "oracle_Dice", "oracle_E", "gain_IoU", "exact", "within_2")
        write_json(out / "oracle.json", {k: result[k] for k in keys} | {"checkpoint": args.checkpoint,
                                                                         "split": args.split})
        rows = [{"id": i, "size": float(s), "predicted_size": float(p), "IoU": float(a), "oracle_IoU": float(b)}
                for i, s, p, a, b in zip(result["ids"], result["size"], result["predicted_size"],
                                         result["IoU_per_image"], result["oracle_IoU_per_image"])]
        write_csv(out / "per_image.csv", rows, ["id", "size", "predicted_size", "IoU", "oracle_IoU"])
    return 0
