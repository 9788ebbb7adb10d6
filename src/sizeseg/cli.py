"""The ``sizeseg`` command line.

Each command lives in its own module under :mod:`sizeseg.commands`; a module exposes
``register(subparsers)`` which adds its parser(s) and sets ``func`` to the handler.
Handlers import heavy dependencies (torch, lightning) lazily so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES: tuple[str, ...] = (
    # one line per command module; keep sorted
    "sizeseg.commands.bench",
    "sizeseg.commands.demo",
    "sizeseg.commands.experiment",
    "sizeseg.commands.oracle",
    "sizeseg.commands.prepare",
    "sizeseg.commands.train",  # pretrain, finetune, evaluate, predict
)


class UsageError(Exception):
    """A command was given arguments it cannot work with; the message says which and why."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sizeseg",
        description="Train segmentation networks from object sizes and size bounds instead of pixel masks.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UsageError, ValueError, TypeError, FileNotFoundError) as err:
        # Bad input is reported plainly; anything else is a bug and keeps its traceback.
        print(f"sizeseg {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
