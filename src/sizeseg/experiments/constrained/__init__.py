"""The Constrained-CNN losses experiment on ACDC (Kervadec et al., MIDL 2018): Tables 1 and 2, Fig. 3.

``sizeseg experiment constrained --data ACDC --out DIR [--quick | --profile cpu|paper] [--protocol ours|authors]``

Every method of Table 1 (:data:`METHODS`) trains the same network (one sigmoid channel, i.e. a
two-class softmax) on the same 2D slices of the left-ventricle cavity. Weak labels come from
the paper's erosion strategy (``--weak`` picks another source, :data:`WEAK_SOURCES`); bounds from
one training subject (``1.1 min`` and ``0.9 max`` of its LV areas; by default patient004, see
:func:`sizeseg.data.bounds.choose_bounds_subject`) with image tags (``b = 0`` where the LV is
absent), as in §3.2 and §4.1.

Profiles (:data:`PROFILE_SETTINGS`): ``paper`` is the paper's 256x256 ENet at batch size 1 (for a
GPU); ``cpu`` trains MONAI's residual U-Net on batches of 16 of the central 128x128 native pixels
halved to 64x64; ``quick`` checks the pipeline in about a minute. Protocols (:data:`PROTOCOLS`):
``ours`` picks each run's best epoch by the 3D DSC per volume; ``authors`` applies what the
authors' MIDL code does beyond the paper's text (softmax at T = 0.1, Adam betas (0.5, 0.999), no
augmentation, their pooled soft DSC picking the best epoch). Single flags override single
settings (``--batch-size``, ``--temperature``, ``--split``, ``--betas``, ``--augment``,
``--monitor``, ``--slices``, ``--field``, ``--model``, ``--epochs``, ``--lr``).

``--seeds 0,1,2`` trains every method once per seed (Table 1 then holds mean ± sd);
``--init METHOD`` starts the methods from METHOD's best network; ``--workers`` trains that many
methods at once, one single-threaded process each. Finished runs are reused when their recorded
settings match, and refused otherwise.

Outputs under ``--out``: the prepared slices (``prepared_*``), ``runs/<method>[-seed<k>]/``
(checkpoints, ``metrics.csv``, ``result.json``), ``table1.csv`` (and ``table1_seeds.csv``),
``table2.csv``, ``report.md`` (our numbers with the paper's beside them, labelled) and
``dsc_curves.png`` (Fig. 3). What the runs found is in ``results/constrained/README.md``.

The modules: :mod:`.profiles` (settings, protocols, what scales with the field of view),
:mod:`.methods` (Table 1's rows as loss terms), :mod:`.labels` (weak labels and bounds),
:mod:`.evaluation` (every validation DSC), :mod:`.runner` (training, timing, seeds),
:mod:`.report` (tables, report, Fig. 3), :mod:`.cli`.
"""

from sizeseg.experiments.constrained.cli import add_arguments, main, register, run_command
from sizeseg.experiments.constrained.evaluation import evaluate, read_curve
from sizeseg.experiments.constrained.labels import (
    WEAK_SOURCES, experiment_weak_labels, load_acdc, method_bounds, reference_bounds,
)
from sizeseg.experiments.constrained.methods import (
    METHOD_KEYS, METHODS, TERM_NAMES, Method, check_methods, method_terms, parse_term_weights,
)
from sizeseg.experiments.constrained.profiles import (
    PROFILE_SETTINGS, PROFILES, PROTOCOLS, Profile, erosion_kernels, native_pixel_area, penalty_weight, with_protocol,
)
from sizeseg.experiments.constrained.report import SCORES, ordering_holds, plot_curves, write_report
from sizeseg.experiments.constrained.runner import (
    RESULT_DEFAULTS, check_seeds, combine_seeds, method_datasets, model_spec, run_experiment, time_methods,
    train_method,
)


__all__ = [
    "METHODS", "METHOD_KEYS", "Method", "PROFILES", "PROFILE_SETTINGS", "PROTOCOLS", "Profile", "RESULT_DEFAULTS", "SCORES",
    "TERM_NAMES", "WEAK_SOURCES", "add_arguments", "check_methods", "check_seeds", "combine_seeds", "erosion_kernels",
    "evaluate", "experiment_weak_labels", "load_acdc", "main", "method_bounds", "method_datasets", "method_terms",
    "model_spec", "native_pixel_area", "ordering_holds", "parse_term_weights", "penalty_weight", "plot_curves",
    "read_curve", "reference_bounds", "register", "run_command", "run_experiment", "time_methods", "train_method",
    "with_protocol", "write_report",
]
