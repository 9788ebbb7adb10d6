"""The profiles of the hippocampus experiments, their fine-tuning stages and the paper's figures."""

from __future__ import annotations

from dataclasses import dataclass

from sizeseg.training.config import RECOMMENDED_AREA_WEIGHT, RECOMMENDED_SIZE_WEIGHT

ALL = None  # m = all training images


@dataclass(frozen=True)
class Profile:
    """Settings of one experiment profile (see :mod:`sizeseg.experiments.hippocampus`)."""

    name: str
    model: str
    batch_size: int
    lr: float
    pretrain_steps: int  # optimisation steps of pre-training (early stopping may end it sooner)
    pretrain_val_steps: int  # validate about every this many steps
    pretrain_patience: int  # validations without a better pretrain_monitor before stopping
    finetune_epochs: int
    finetune_batches: int | None  # batches per fine-tuning epoch (None: the whole training split)
    finetune_patience: int  # epochs without a better val E before stopping
    n_values: tuple[int, ...]
    m_values: tuple[int | None, ...]
    seeds: tuple[int, ...]
    samples_m: int = 85
    samples_epochs: int = 6
    mask_fraction: float = 0.5
    finetune_lr: float = 1e-4  # 1e-3 (the pre-training rate) wrecked the IoU within one epoch on hippocampus
    # names of FINETUNE_STAGES (and the cheap ORACLE_STAGE), run after pre-training; --stages
    stages: tuple[str, ...] = ("size fine-tuned", "mixed", "true-size oracle")
    keep_checkpoints: bool = False
    # the validation metric that picks the pre-trained network: val/IoU uses the validation masks;
    # val/E only the validation sizes, what a user with m masks and sizes for the rest can do
    pretrain_monitor: str = "val/IoU"


PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", "unet-small", 32, 1e-3, pretrain_steps=60, pretrain_val_steps=20, pretrain_patience=3,
                     finetune_epochs=2, finetune_batches=8, finetune_patience=2, n_values=(1, 2),
                     m_values=(10, 85, ALL), seeds=(0,), samples_epochs=3),
    # Pre-training runs to convergence (IoU plateau); the 200-step pre-training this profile once had
    # left networks that size fine-tuning made worse. A fine-tuning "epoch" is 29 batches (~1/4 pass).
    "cpu": Profile("cpu", "unet-small", 32, 1e-3, pretrain_steps=1500, pretrain_val_steps=50, pretrain_patience=6,
                   finetune_epochs=12, finetune_batches=29, finetune_patience=4, n_values=(1, 2, 4, 8),
                   m_values=(10, 20, 40, 85, 170, 340, ALL), seeds=(0, 1), samples_epochs=12),
    "full": Profile("full", "unet", 32, 1e-3, pretrain_steps=20000, pretrain_val_steps=100, pretrain_patience=10,
                    finetune_epochs=100, finetune_batches=None, finetune_patience=5, n_values=(1, 2, 4, 8),
                    m_values=(10, 20, 40, 85, 170, 340, ALL), seeds=(0, 1, 2, 3, 4), samples_epochs=50),
}

# The paper's figures ("Learning segmentation from object sizes", Sec. 4), as its text states them.
PAPER_SAMPLES = "paper (Fig. 5, RTX 2080 Ti): a size epoch at n = 1 took ≈10× a supervised epoch, growing roughly exponentially with n"
PAPER_PRETRAINING = "paper (Fig. 7): fine-tuning on sizes raised test IoU by ≈5 % for m < 100; negligible for larger m"

#: README step 4's size term: image units, weight 4 (1e-3 per pixel at 64x64)
IMAGE_UNITS = {"size_units": "image", "size_weight": RECOMMENDED_SIZE_WEIGHT}

#: the mask-only control, which the report compares the mixed stages with
CONTROL_STAGE = "masks only (control)"
#: the same control with best.ckpt picked by validation IoU, which the IoU-selected mixed stage is compared with
IOU_CONTROL_STAGE = "control (IoU selection)"
#: Fine-tuning variants of Exp. 2: stage name -> (run folder, training mode, TrainConfig changes).
FINETUNE_STAGES: dict[str, tuple[str, str, dict]] = {
    "size fine-tuned": ("finetune", "finetune", {}),
    "mixed": ("mixed", "mixed", {}),
    # SizeLoss plus BCE to the prediction moved onto the annotated size (sizeseg.ops.size_match).
    "size-matched": ("size_matched", "finetune", {"size_matched_weight": 1.0}),
    # the library's size loss instead of the paper's (noise scale 0.25, squared error, weight 1e-3 per pixel;
    # see sizeseg.training.config): do the defaults chosen on ACDC LV leave these small objects no worse off?
    "size (defaults)": ("finetune_defaults", "finetune", {"defaults": True}),
    "mixed (defaults)": ("mixed_defaults", "mixed", {"defaults": True}),
    # the same in image units with README step 4's weight (4, i.e. 2.6e-3 per pixel on these 48x32 slices):
    # measured as a candidate default, which it did not become (results/hippocampus/, image-units-default/)
    "size (image units)": ("finetune_image", "finetune", {"defaults": True, **IMAGE_UNITS}),
    "mixed (image units)": ("mixed_image", "mixed", {"defaults": True, **IMAGE_UNITS}),
    # and with the area bounds the sizes imply (README step 4: finetune --mixed --size-units image
    # --size-weight 4 --area-weight 40), which beat the mask-only control on ACDC LV
    # (results/sizes-acdc/): do they on objects of 2-10 px?
    "mixed (area bounds)": ("mixed_area", "mixed", {"defaults": True, **IMAGE_UNITS, "area_weight": RECOMMENDED_AREA_WEIGHT}),
    # the mask-only control of the mixed stages: their schedule, batches and selection with the size term
    # off, so that mixed minus control is what the sizes added and control minus pre-trained what more
    # training on the m masks did
    CONTROL_STAGE: ("control", "mixed", {"defaults": True, "size_weight": 0.0}),
    # the defaults' stages and the control with best.ckpt picked (and training stopped) by validation IoU
    # instead of validation E: validation E picked networks that had lost overlap in 35 of 60 runs
    # (results/hippocampus/selection-check.md)
    "size (IoU selection)": ("finetune_iou", "finetune", {"defaults": True, "monitor": "val/IoU"}),
    "mixed (IoU selection)": ("mixed_iou", "mixed", {"defaults": True, "monitor": "val/IoU"}),
    IOU_CONTROL_STAGE: ("control_iou", "mixed", {"defaults": True, "size_weight": 0.0, "monitor": "val/IoU"}),
}
#: Not a training stage: the pre-trained network's test predictions moved onto the *true* test
#: sizes (``size_matched_mask``), i.e. what knowing every size exactly would buy at test time.
ORACLE_STAGE = "true-size oracle"
STAGE_NAMES = tuple(FINETUNE_STAGES) + (ORACLE_STAGE,)


def m_label(m: int | None) -> str:
    return "all" if m is None else str(m)
