"""``sizeseg experiment samples`` and ``sizeseg experiment pretraining``: options, checked before any work starts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sizeseg.experiments.hippocampus.profiles import PROFILES, STAGE_NAMES
from sizeseg.experiments.hippocampus.runs import load_hippocampus, run_experiment


def stage_list(text: str | None) -> list[str] | None:
    """``--stages``: comma-separated names of :data:`STAGE_NAMES` (None: the profile's), or a ValueError."""
    if text is None:
        return None
    stages = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [s for s in stages if s not in STAGE_NAMES]
    if unknown or not stages:
        raise ValueError(f"--stages: expected comma-separated names of {', '.join(STAGE_NAMES)}, got {text!r}")
    return stages


def add_arguments(parser, which: str) -> None:
    parser.add_argument("--data", required=True,
                        help="the Task04_Hippocampus folder (prepared into OUT/prepared) or a prepared folder")
    parser.add_argument("--out", required=True, help="output folder (runs/, CSV, PNG, markdown report)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="the quick profile (minutes on a CPU)")
    group.add_argument("--profile", choices=tuple(PROFILES), help="quick, cpu (pre-training to convergence; about 10-15 minutes per m and seed on one core) or full (the paper's protocol; default)")
    if which == "samples":
        parser.add_argument("--n", help="comma-separated gradient-sample counts (default: the profile's)")
    else:
        parser.add_argument("--m", help="comma-separated masked pre-training sizes, 'all' for every image (default: the profile's)")
        parser.add_argument("--seeds", help="comma-separated seeds (default: the profile's)")
        parser.add_argument("--stages", help=f"comma-separated fine-tuning variants after pre-training, of {', '.join(STAGE_NAMES)} "
                            "(default: the profile's, 'size fine-tuned,mixed,true-size oracle')")
        parser.add_argument("--pretrain-monitor", choices=("val/IoU", "val/E"), default=None,
                            help="what picks the pre-trained network and stops pre-training: val/IoU (the validation "
                            "masks; default) or val/E (the validation sizes only, as a user with m masks would)")
        parser.add_argument("--workers", type=int, default=1,
                            help="(m, seed) items trained at once, one process each sharing the torch threads (default 1)")
    parser.add_argument("--progress", action="store_true", help="show Lightning progress bars")


def run_command(args) -> int:
    which = args.experiment
    name = "quick" if args.quick else (args.profile or "full")
    profile = PROFILES[name]
    from sizeseg.experiments.options import int_list

    n_values = int_list(getattr(args, "n", None), "--n")
    m_values = int_list(getattr(args, "m", None), "--m", allow_all=True)
    seeds = int_list(getattr(args, "seeds", None), "--seeds", minimum=0)
    stages = stage_list(getattr(args, "stages", None))
    workers = getattr(args, "workers", 1)
    if workers < 1:
        raise ValueError(f"--workers: expected a positive int, got {workers}")
    if getattr(args, "pretrain_monitor", None):
        profile = replace(profile, pretrain_monitor=args.pretrain_monitor)
    out = Path(args.out)
    data = load_hippocampus(args.data, out)  # bad data fails here, before any training
    command = f"sizeseg experiment {which} --data {args.data} --out {args.out} --profile {name}"
    for flag, value in (("--n", getattr(args, "n", None)), ("--m", getattr(args, "m", None)), ("--seeds", getattr(args, "seeds", None)),
                        ("--stages", f"'{args.stages}'" if getattr(args, "stages", None) else None),
                        ("--workers", workers if workers != 1 else None),
                        ("--pretrain-monitor", getattr(args, "pretrain_monitor", None))):
        if value is not None:
            command += f" {flag} {value}"
    print(run_experiment(which, data, out, profile, command, seeds=seeds, m_values=m_values, n_values=n_values,
                         progress_bar=args.progress, stages=stages, workers=workers))
    return 0


def register(experiment_subparsers) -> None:
    """Add ``samples`` and ``pretraining`` to the ``sizeseg experiment`` sub-parsers."""
    helps = {
        "samples": ("Experiment 1 on hippocampus: gradient samples n, epoch duration and val E/IoU (paper Figs. 5, 6)",),
        "pretraining": ("Experiment 2 on hippocampus: test IoU vs pre-training size m, before/after size and mixed fine-tuning (paper Fig. 7)",),
    }
    import sizeseg.experiments.hippocampus as package

    profiles_text = package.__doc__.split("\n\n")[2].replace("\n", " ")
    for which, (text,) in helps.items():
        parser = experiment_subparsers.add_parser(which, help=text, description=text + ". " + profiles_text)
        add_arguments(parser, which)
        parser.set_defaults(func=run_command, experiment=which)
