"""The size paper's experiments on the MSD hippocampus slices (48x32): gradient samples n and pre-training size m.

1. ``samples``: from one network pre-trained on 85 masked images, fine-tune with SizeLoss for each
   n in the profile's ``n_values``; report the epoch duration relative to a supervised epoch over
   the same number of batches (paper Fig. 5) and the validation E and IoU over epochs (Fig. 6).
2. ``pretraining``: for each m and seed, pre-train on m masked images, then fine-tune on the sizes of
   the whole training split in each of the ``--stages`` (size-only; mixed: masks of the same m
   images plus all sizes; size-matched: SizeLoss plus BCE to the size-matched masks) and test the
   true-size oracle (no training: the pre-trained predictions moved onto the true test sizes);
   report test IoU after each stage, mean ± sd over seeds (Fig. 7).

Profiles: ``quick`` (minutes on a CPU), ``cpu`` (pre-training to convergence; about 10–15 minutes per m and seed on one core), ``full`` (the paper's
protocol: training until the validation metric stops improving). Every run folder keeps a
``result.json``; a re-run skips finished runs, so pieces may run in parallel processes (``--seeds``,
``--m``) into the same output folder and the report is rebuilt from all finished runs.

The modules: :mod:`.profiles` (settings, stages, the paper's figures), :mod:`.runs` (training and
caching the items), :mod:`.reports` (CSV, PNG, markdown), :mod:`.cli`.
"""

from sizeseg.experiments.hippocampus.cli import add_arguments, register, run_command, stage_list
from sizeseg.experiments.hippocampus.profiles import (
    ALL, CONTROL_STAGE, FINETUNE_STAGES, IOU_CONTROL_STAGE, ORACLE_STAGE, PAPER_PRETRAINING, PAPER_SAMPLES, PROFILES, STAGE_NAMES, Profile, m_label,
)
from sizeseg.experiments.hippocampus.reports import report_pretraining, report_samples
from sizeseg.experiments.hippocampus.runs import (
    finetune_config, load_hippocampus, pretrain_config, read_epochs, run_experiment, run_pretraining_item,
    run_samples_items, true_size_scores,
)

__all__ = [
    "ALL", "CONTROL_STAGE", "FINETUNE_STAGES", "IOU_CONTROL_STAGE", "ORACLE_STAGE", "PAPER_PRETRAINING", "PAPER_SAMPLES", "PROFILES", "STAGE_NAMES",
    "Profile", "add_arguments", "finetune_config", "load_hippocampus", "m_label", "pretrain_config", "read_epochs",
    "register", "report_pretraining", "report_samples", "run_command", "run_experiment", "run_pretraining_item",
    "run_samples_items", "stage_list", "true_size_scores",
]
