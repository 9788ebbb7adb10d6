"""``sizeseg experiment NAME``: the papers' experiments, one sub-command each.

Each module in :data:`EXPERIMENT_MODULES` exposes ``register(experiment_subparsers)`` and adds its
sub-command(s); add an experiment with one line here.
"""

from __future__ import annotations

import importlib

EXPERIMENT_MODULES: tuple[str, ...] = (
    # one line per experiment module; keep sorted
    "sizeseg.experiments.constrained",  # Constrained-CNN losses on ACDC (Tables 1-2)
    "sizeseg.experiments.hippocampus",  # samples, pretraining
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "experiment", help="reproduce the papers' experiments (CSV, PNG plots and a markdown report)",
        description="Reproduce the papers' experiments. Each writes a CSV, PNG plots and a markdown table to --out; "
                    "--quick runs in minutes on a CPU.",
    )
    sub = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name in EXPERIMENT_MODULES:
        importlib.import_module(name).register(sub)
