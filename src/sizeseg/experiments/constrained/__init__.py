"""The Constrained-CNN losses experiment on ACDC (Kervadec et al., MIDL 2018): Tables 1 and 2, Fig. 3.

``sizeseg experiment constrained --data ACDC --out DIR [--quick | --profile cpu|full]``

Every method trains the same ENet (one sigmoid channel, i.e. two-class softmax; ``--model``
picks another network of :data:`sizeseg.models.MODELS`, e.g. ``unet-small``) on the same
2D slices of the left-ventricle cavity, with Adam, batch size 1, rotation/flip/scaling
augmentation, and the learning rate halved after 100 epochs (full profile). Weak labels come
from the paper's erosion strategy (about 0.1 % of the pixels, foreground only); bounds from one
training subject (``1.1 min`` and ``0.9 max`` of its LV areas; by default patient004, whose
areas give the paper's 98 and 1723 px, see :func:`sizeseg.data.bounds.choose_bounds_subject`)
with image tags (``b = 0`` where the LV is absent), as in §3.2 and §4.1.

The proposals rows train with the cross-entropy against Pathak's latent distribution alone (the
labelled pixels fixed in it, so each weighs 1/N like any pixel). Here they collapse to empty
predictions within ~100 steps: the KL projection of a diffuse output under an upper bound keeps
few pixels above 1/2, the tag slices (b = 0) push every pixel down, and nothing but the ~2
labelled pixels per slice pushes up (results/constrained/README.md, "proposals diagnosis").
With the loose bound they leave that state after ~50 epochs of the cpu profile (two seeds); with
the tight one, after ~40 epochs in one seed of two. The row ``proposals_loose_pce`` (ours, not in the paper) adds the
partial CE of the other weak rows.

The cpu profile trains two methods at once (``--workers``), each in a single-threaded process;
``--init METHOD`` starts the chosen methods from METHOD's best network; ``--seeds 0,1`` trains
every method once per seed, and Table 1 then holds the mean ± sd over seeds. The row
``size_two_bounds_discrete`` (ours) adds paper 1's discrete size, on its own bounds, to the
two-bound soft penalty.

The cpu profile departs from the paper's frame: it keeps the 128x128 native pixels around the
image centre (99.96 % of the LV pixels of ACDC; ``--field``, 256 is the paper's frame), so that
its 64x64 slices show the LV at half the native resolution instead of a quarter; the loose
bounds keep their native size and the penalty weight its balance (:func:`penalty_weight`).
``--weak scribbles|centroid|points`` replaces the paper's eroded masks by another weak source
(:data:`WEAK_SOURCES`); the ACDC scribbles also label background.

Learning rate: the paper's text says 5e-3 (with 200 epochs); the authors' public code
(``SizeLoss_WSS/main_MIDL.py``) uses 5e-4 with 1000 epochs and Adam betas (0.5, 0.999). We use
5e-3 with Adam's default betas: in a pilot on 12 patients at 64x64 (6 epochs of 182 slices) the
two-bound size loss reached a validation DSC of 0.47 at 5e-3 and 0.01 at 5e-4, and our profiles
have at most the paper's 200 epochs. ``--lr`` overrides it.

Outputs under ``--out``: ``prepared_r<res>/`` or ``prepared_f<field>_r<res>/`` (the sliced data), ``runs/<method>[-seed<k>]/`` (checkpoints,
``logs/metrics.csv``, ``result.json``), ``table1.csv`` (and ``table1_seeds.csv``), ``table2.csv``, ``report.md`` (our
numbers with the paper's beside them, labelled) and ``dsc_curves.png`` (Fig. 3).

The modules: :mod:`.profiles` (settings and what scales with them), :mod:`.methods` (Table 1's
rows as loss terms), :mod:`.labels` (weak labels and bounds), :mod:`.evaluation` (DSC),
:mod:`.runner` (training, timing, seeds), :mod:`.report` (tables, report, Fig. 3), :mod:`.cli`.
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
    PROFILE_SETTINGS, PROFILES, Profile, erosion_kernels, native_pixel_area, penalty_weight,
)
from sizeseg.experiments.constrained.report import SCORES, ordering_holds, plot_curves, write_report
from sizeseg.experiments.constrained.runner import (
    RESULT_DEFAULTS, check_seeds, combine_seeds, method_datasets, model_spec, run_experiment, time_methods,
    train_method,
)


__all__ = [
    "METHODS", "METHOD_KEYS", "Method", "PROFILES", "PROFILE_SETTINGS", "Profile", "RESULT_DEFAULTS", "SCORES",
    "TERM_NAMES", "WEAK_SOURCES", "add_arguments", "check_methods", "check_seeds", "combine_seeds", "erosion_kernels",
    "evaluate", "experiment_weak_labels", "load_acdc", "main", "method_bounds", "method_datasets", "method_terms",
    "model_spec", "native_pixel_area", "ordering_holds", "parse_term_weights", "penalty_weight", "plot_curves",
    "read_curve", "reference_bounds", "register", "run_command", "run_experiment", "time_methods", "train_method",
    "write_report",
]
