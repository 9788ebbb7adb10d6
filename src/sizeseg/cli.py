"""The ``sizeseg`` command line.

Each command lives in its own module under :mod:`sizeseg.commands`; a module exposes
``register(subparsers)`` which adds its parser(s) and sets ``func`` to the handler.
Handlers import heavy dependencies (torch, lightning) lazily so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

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
        if getattr(args, "out", None) is not None:
            check_output_folder(args.out)  # before any work: not after an hour of training
        return int(args.func(args) or 0)
    except (UsageError, ValueError, TypeError, OSError) as err:
        # Bad input, and files or folders the system refuses (read-only, full disk), are reported
        # in one line; anything else is a bug and keeps its traceback.
        print(f"sizeseg {args.command}: error: {' '.join(str(err).split()) or type(err).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # outputs are written atomically, so an interrupted command leaves no half-written file
        print(f"sizeseg {args.command}: interrupted", file=sys.stderr)
        return 130


def check_output_folder(path: str | os.PathLike, argument: str = "--out") -> Path:
    """``path`` if it is a folder this process can write in, or one it can create; else a ValueError.

    >>> check_output_folder("/proc/version/out")
    Traceback (most recent call last):
    ...
    ValueError: --out: /proc/version is a file, so the folder /proc/version/out cannot be created
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{argument}: {path} is a file, expected a folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{argument}: {existing} is a file, so the folder {path} cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{argument}: {existing}: folder not writable by this user")
    return path


if __name__ == "__main__":
    sys.exit(main())
