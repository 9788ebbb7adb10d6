"""``sizeseg experiment constrained``: options, checked before any work starts."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from sizeseg.experiments.constrained.labels import WEAK_SOURCES, load_acdc
from sizeseg.experiments.constrained.methods import METHOD_KEYS, TERM_NAMES, check_methods, parse_term_weights
from sizeseg.experiments.constrained.profiles import (
    AUGMENTS, MONITORS, PROFILE_SETTINGS, PROFILES, SLICES, SPLITS, with_protocol,
)
from sizeseg.experiments.constrained.runner import check_seeds, run_experiment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``sizeseg experiment constrained``."""
    parser.add_argument("--data", required=True, help="the ACDC folder (with training/patientXXX/)")
    parser.add_argument("--out", required=True, help="output folder (prepared data, runs, tables, report)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="the quick profile (minutes)")
    group.add_argument("--profile", default=None, metavar="NAME",
                       help="quick (a minute), cpu (default: 20-30 min for one seed of the 12 rows on 2 cores) or "
                       "paper (the paper's 256x256 ENet at batch size 1, 200 epochs: for a GPU)")
    parser.add_argument("--protocol", default="ours", metavar="NAME",
                        help="ours (default: patient split, 3D DSC per volume picks the best epoch) or authors (their "
                        "MIDL code: softmax at T = 0.1, Adam betas 0.5/0.999, no augmentation, pooled soft DSC picks the "
                        "best epoch); the flags below override single settings")
    parser.add_argument("--batch-size", type=int, default=None, help="slices per training step (default: the profile's, 16 for cpu)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="the losses see softmax(logits / T) (default 1; the authors' code: 0.1)")
    parser.add_argument("--split", default=None, metavar="UNIT",
                        help="draw the 25 %% validation by patients (default, the paper's and the authors' MIDL code) "
                        "or frames (the authors' later code: a patient's two frames can fall on both sides)")
    parser.add_argument("--betas", default=None, metavar="B1,B2", help="Adam's betas (default 0.9,0.999; the authors' 0.5,0.999)")
    parser.add_argument("--augment", default=None, metavar="KIND",
                        help=f"training augmentation: one of {', '.join(AUGMENTS)} (default: the profile's, dihedral for cpu)")
    parser.add_argument("--slices", default=None, metavar="WHICH",
                        help="all (default: every slice, with tags where the LV is absent) or lv (only slices that hold "
                        "the LV, in training and validation, as the authors' MIDL data appear to be)")
    parser.add_argument("--monitor", default=None, metavar="SCORE",
                        help=f"the validation score that picks the best epoch: one of {', '.join(MONITORS)}")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                        help="score the best network averaged over each slice's 8 flips and 90-degree turns (default: "
                        "on for the cpu profile's protocol ours; off for quick, paper and --protocol authors); a finished "
                        "run is scored again, not retrained, when only this changes")
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
    parser.add_argument("--resolution", type=int, default=None, metavar="PIXELS",
                        help="the slices' side after block-averaging the field (default: the profile's, 64 for cpu; "
                        "128 with --field 128 keeps the native pixels)")
    parser.add_argument("--weak", choices=tuple(WEAK_SOURCES), default=None,
                        help="labelled pixels of the weak rows: "
                        + "; ".join(f"{k}: {v}" for k, v in WEAK_SOURCES.items()).replace("%", "%%")
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
    if name not in PROFILES:
        raise ValueError(f"--profile: expected one of {', '.join(PROFILES)}, got {name!r}")
    profile = with_protocol(PROFILE_SETTINGS[name], args.protocol)
    profile = _protocol_overrides(profile, args)
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
    if args.resolution is not None:
        if args.resolution < 8:
            raise ValueError(f"--resolution: expected an int >= 8, got {args.resolution}")
        profile = replace(profile, resolution=args.resolution)
    if args.field is not None or args.resolution is not None:
        if args.field is None:
            args.field = profile.field
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
    command += "".join(f" {flag} {value}".rstrip() for flag, value in (
                           ("--protocol", args.protocol if args.protocol != "ours" else None),
                           ("--batch-size", args.batch_size), ("--temperature", args.temperature), ("--split", args.split),
                           ("--betas", args.betas), ("--augment", args.augment), ("--monitor", args.monitor),
                           ("--slices", args.slices),
                           ("--tta" if args.tta else "--no-tta", "" if args.tta is not None else None),
                           ("--methods", args.methods), ("--epochs", args.epochs),
                                                                  ("--lr", args.lr), ("--model", args.model),
                                                                  ("--resolution", args.resolution), ("--field", args.field), ("--weak", args.weak),
                                                                  ("--bounds-subject", args.bounds_subject),
                                                                  ("--workers", args.workers), ("--init", args.init),
                                                                  ("--seeds", ",".join(map(str, seeds)) if seeds != (0,) else None))
                       if value is not None) + "".join(f" --term-weight {n}={w:g}" for n, w in term_weights) \
        + (" --no-timing" if args.no_timing else "")
    run_experiment(data, out, profile, methods, command=command, seeds=seeds, timing=not args.no_timing)
    print((out / "report.md").read_text())
    return 0


def _protocol_overrides(profile, args: argparse.Namespace):
    """``profile`` with the single settings given by flags (after the ``--protocol`` preset); errors name the flag."""
    if args.batch_size is not None:
        if args.batch_size < 1:
            raise ValueError(f"--batch-size: expected a positive int, got {args.batch_size}")
        profile = replace(profile, batch_size=args.batch_size)
    if args.temperature is not None:
        if not 0 < args.temperature < float("inf"):
            raise ValueError(f"--temperature: expected a positive finite number, got {args.temperature}")
        profile = replace(profile, temperature=args.temperature)
    if args.betas is not None:
        try:
            betas = tuple(float(b) for b in args.betas.split(","))
        except ValueError:
            betas = ()
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"--betas: expected two numbers in [0, 1) as B1,B2, got {args.betas!r}")
        profile = replace(profile, betas=betas)
    if args.tta is not None:
        profile = replace(profile, tta=args.tta)
    for key, choices in (("split", SPLITS), ("augment", AUGMENTS), ("monitor", MONITORS), ("slices", SLICES)):
        value = getattr(args, key)
        if value is not None:
            if value not in choices:
                raise ValueError(f"--{key}: expected one of {', '.join(choices)}, got {value!r}")
            profile = replace(profile, **{key: value})
    return profile


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

