"""``sizeseg experiment constrained``: options, checked before any work starts."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from sizeseg.experiments.constrained.labels import WEAK_SOURCES, load_acdc
from sizeseg.experiments.constrained.methods import METHOD_KEYS, TERM_NAMES, check_methods, parse_term_weights
from sizeseg.experiments.constrained.profiles import PROFILE_SETTINGS, PROFILES
from sizeseg.experiments.constrained.runner import check_seeds, run_experiment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``sizeseg experiment constrained``."""
    parser.add_argument("--data", required=True, help="the ACDC folder (with training/patientXXX/)")
    parser.add_argument("--out", required=True, help="output folder (prepared data, runs, tables, report)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="the quick profile (minutes)")
    group.add_argument("--profile", choices=PROFILES, default=None, help="quick, cpu (~2 h on 2 cores) or full (the paper's)")
    parser.add_argument("--methods", default=None, help=f"comma-separated subset of {','.join(METHOD_KEYS)}")
    parser.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    parser.add_argument("--lr", type=float, default=None, help="override the learning rate (default 5e-3, the paper's text; 5e-4 is the authors' code)")
    parser.add_argument("--model", default=None, help="network: enet (the paper's, default), unet-small, unet, ... "
                        "(a name of sizeseg.models.MODELS)")
    parser.add_argument("--field", type=int, default=None, metavar="PIXELS",
                        help="native pixels kept around the image centre before block-averaging to the profile's "
                        "resolution: 256 is the paper's frame (the full and quick profiles' default); the cpu profile "
                        "keeps 128, 99.96 %% of the LV pixels of ACDC, 4x larger on its 64x64 slices; a multiple of "
                        "the resolution")
    parser.add_argument("--weak", choices=tuple(WEAK_SOURCES), default=None,
                        help="labelled pixels of the weak rows: " + "; ".join(f"{k}: {v}" for k, v in WEAK_SOURCES.items())
                        + " (default erosion)")
    parser.add_argument("--bounds-subject", default=None,
                        help="training subject of the tight bounds (default: patient004, the paper's, if in the split)")
    parser.add_argument("--term-weight", action="append", default=None, metavar="NAME=WEIGHT",
                        help=f"override a loss term's weight in every method that uses it (repeatable); NAME one of {', '.join(TERM_NAMES)}")
    parser.add_argument("--workers", type=int, default=None,
                        help="methods trained at once, one single-threaded process each (default: the profile's, 2 for cpu)")
    parser.add_argument("--init", default=None, metavar="METHOD",
                        help="start every method from METHOD's best network (trained first into OUT/runs/METHOD "
                        "if missing); runs go to OUT/runs/<method>-from-METHOD")
    parser.add_argument("--no-timing", action="store_true", help="skip Table 2")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", default=None, help="comma-separated seeds: every method trains once per seed and "
                       "Table 1 shows mean ± sd (default 0; runs of seed k > 0 go to OUT/runs/<method>-seed<k>)")
    seeds.add_argument("--seed", type=int, default=None, help="one seed (the same as --seeds SEED)")


def run_command(args: argparse.Namespace) -> int:
    name = "quick" if args.quick else (args.profile or "cpu")
    profile = PROFILE_SETTINGS[name]
    if args.epochs is not None:
        if args.epochs < 1:
            raise ValueError(f"--epochs: expected a positive int, got {args.epochs}")
        profile = replace(profile, epochs=args.epochs)
    if args.lr is not None:
        if not args.lr > 0:
            raise ValueError(f"--lr: expected a positive learning rate, got {args.lr}")
        profile = replace(profile, lr=args.lr)
    if args.workers is not None:
        if args.workers < 1:
            raise ValueError(f"--workers: expected a positive int, got {args.workers}")
        profile = replace(profile, workers=args.workers)
    if args.model is not None:
        from sizeseg.models.registry import check_model_name

        profile = replace(profile, model=check_model_name(args.model, "--model"))
    if args.bounds_subject is not None:
        profile = replace(profile, bounds_subject=args.bounds_subject)
    if args.field is not None:
        if args.field < profile.resolution or args.field % profile.resolution:
            raise ValueError(f"--field: expected a multiple of the profile's resolution {profile.resolution}, "
                             f"got {args.field}")
        profile = replace(profile, field=args.field)
    if args.weak is not None:
        profile = replace(profile, weak=args.weak)
    term_weights = parse_term_weights(args.term_weight)
    if term_weights:
        profile = replace(profile, term_weights=term_weights)
    methods = None if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
    check_methods(methods)  # bad input fails before any work
    from sizeseg.experiments.options import int_list

    seeds = (check_seeds([args.seed], "--seed") if args.seed is not None
             else check_seeds(int_list(args.seeds or "0", "--seeds", minimum=0), "--seeds"))
    if args.init is not None:
        if args.init not in METHOD_KEYS:
            raise ValueError(f"--init: unknown method {args.init!r}; expected one of {list(METHOD_KEYS)}")
        if args.init in (methods or METHOD_KEYS):
            raise ValueError(f"--init: {args.init!r} starts the other methods, so it cannot be among --methods")
        profile = replace(profile, init=args.init)
    if not Path(args.data).is_dir():
        raise FileNotFoundError(f"--data: {args.data} is not a folder")
    out = Path(args.out)
    data = load_acdc(args.data, out, profile)
    command = f"sizeseg experiment constrained --data {args.data} --out {args.out} --profile {name}"
    command += "".join(f" {flag} {value}" for flag, value in (("--methods", args.methods), ("--epochs", args.epochs),
                                                                  ("--lr", args.lr), ("--model", args.model), ("--field", args.field), ("--weak", args.weak),
                                                                  ("--bounds-subject", args.bounds_subject),
                                                                  ("--workers", args.workers), ("--init", args.init),
                                                                  ("--seeds", ",".join(map(str, seeds)) if seeds != (0,) else None))
                       if value is not None) + "".join(f" --term-weight {n}={w:g}" for n, w in term_weights) \
        + (" --no-timing" if args.no_timing else "")
    run_experiment(data, out, profile, methods, command=command, seeds=seeds, timing=not args.no_timing)
    print((out / "report.md").read_text())
    return 0


def register(experiment_subparsers) -> argparse.ArgumentParser:
    """Add ``constrained`` to the ``sizeseg experiment`` sub-parsers."""
    import sizeseg.experiments.constrained as package

    parser = experiment_subparsers.add_parser(
        "constrained", help="Constrained-CNN losses on ACDC: Tables 1 and 2, Fig. 3",
        description=package.__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.set_defaults(func=run_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sizeseg.experiments.constrained")
    add_arguments(parser)
    return run_command(parser.parse_args(argv))

