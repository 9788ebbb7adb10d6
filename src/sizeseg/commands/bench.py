"""``sizeseg bench core`` / ``objects``: speed and memory of the core ops as ratios against anchors.

Times distance_transform against OpenCV and scipy, flip_sizes against brute force, its peak
memory, and SizeLoss against one training step of a ResNet-18 U-Net, all measured side by side
in one run; prints a table and optionally writes it as JSON.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks: speed and memory against anchors",
                                   description=__doc__.split("\n\n")[1].replace("\n", " "))
    groups = parser.add_subparsers(dest="bench", metavar="SUITE")
    core = groups.add_parser("core", help="distance transform, flip sizes and SizeLoss vs anchors")
    core.add_argument("--repeats", type=int, default=7, help="timed calls per case; medians (default 7)")
    core.add_argument("--quick", action="store_true",
                      help="fewer cases and a brute-force anchor timed on 4 images and scaled")
    core.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                      help="where the pure-torch path and the GPU SizeLoss run (default: cuda if available)")
    core.add_argument("--torch-threads", type=int, default=None,
                      help="torch intra-op threads for SizeLoss and the U-Net step (default: torch's)")
    core.add_argument("--json", default=None, help="also write the rows and environment to this JSON file")
    core.set_defaults(func=run_core_command)
    objects = groups.add_parser("objects", help="per-object flip sizes vs brute force, ObjectSizeLoss cost")
    objects.add_argument("--repeats", type=int, default=5, help="timed calls per case; medians (default 5)")
    objects.add_argument("--quick", action="store_true",
                         help="brute force timed on 1024 pixels (default: one whole image) and scaled")
    objects.add_argument("--json", default=None, help="also write the rows and environment to this JSON file")
    objects.set_defaults(func=run_objects_command)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_core_command(args: argparse.Namespace) -> int:
    if args.repeats < 1:
        raise ValueError(f"--repeats: expected an int >= 1, got {args.repeats}")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is available here")
    if args.torch_threads is not None:
        if args.torch_threads < 1:
            raise ValueError(f"--torch-threads: expected an int >= 1, got {args.torch_threads}")
        import torch

        torch.set_num_threads(args.torch_threads)
    from sizeseg.benchmarks.core import run_core

    return _report(run_core(repeats=args.repeats, quick=args.quick, device=args.device), args.json)


def _report(result: dict, json_path: str | None) -> int:
    """Print a suite's table and environment; write them as JSON too when asked."""
    from sizeseg.benchmarks.core import format_rows
    from sizeseg.io_utils import atomic_write_text

    print(format_rows(result["rows"]))
    env = result["environment"]
    print("environment: " + ", ".join(f"{k}={v}" for k, v in env.items()))
    if json_path:
        atomic_write_text(json_path, json.dumps(result, indent=2, default=str) + "\n")
        print(f"wrote {json_path}")
    return 0


def run_objects_command(args: argparse.Namespace) -> int:
    if args.repeats < 1:
        raise ValueError(f"--repeats: expected an int >= 1, got {args.repeats}")
    from sizeseg.benchmarks.objects import run_objects

    return _report(run_objects(repeats=args.repeats, quick=args.quick), args.json)
