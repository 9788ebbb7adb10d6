"""The experiment's profiles (quick, cpu, paper), its protocols (ours, the authors'), and what scales with the
profiles' field of view and resolution."""

from __future__ import annotations

from dataclasses import dataclass, replace

PROFILES = ("quick", "cpu", "paper")
#: ``--split``: the unit drawn into train / val (:data:`sizeseg.data.acdc.ACDC_SPLITS`).
SPLITS = ("patients", "frames")
#: ``--augment``: the training slices' augmentation (:data:`sizeseg.data.datasets.AUGMENTATIONS`).
AUGMENTS = ("none", "flip", "dihedral", "affine")
#: ``--monitor``: the validation score that picks each run's best epoch .
#: ``--slices``: every slice (tags where the LV is absent), or only those that hold the LV.
SLICES = ("all", "lv")
MONITORS = ("dsc_3d", "dsc_slice_lv", "dsc_slice", "dsc_pooled", "dsc_pooled_soft")


@dataclass(frozen=True)
class Profile:
    """Settings of one run of the experiment (see :data:`PROFILE_SETTINGS`)."""

    name: str
    resolution: int  # slices are cropped/padded to field x field, then block-averaged to this size
    epochs: int
    widths: tuple[int, int, int]  # ENet widths (16, 64, 128 in the paper)
    stage_repeats: int
    lr: float
    lr_step: int  # halve the learning rate every lr_step epochs (0: never)
    proposal_iterations: int
    train_batches: int | None  # training images per epoch (None: all)
    limit_patients: int | None  # first patients only (None: all 100)
    timing_steps: int  # timed training steps per method (Table 2)
    model: str = "enet"  # a name of sizeseg.models.MODELS (the paper's ENet, or a U-Net); --model
    bounds_subject: str | None = None  # the tight bounds' subject (None: the paper's patient004, see data.bounds)
    term_weights: tuple[tuple[str, float], ...] = ()  # (term name, weight) overrides; --term-weight
    workers: int = 1  # methods trained at once, one process each (one torch thread each); --workers
    init: str | None = None  # a method whose best network starts every other method's training; --init
    field: int = 256  # native pixels kept around the image centre (256: the paper's frame); --field
    weak: str = "erosion"  # the weak labels: a key of WEAK_SOURCES; --weak
    batch_size: int = 1  # slices per training step; the losses stay per image inside a batch; --batch-size
    temperature: float = 1.0  # the losses see softmax(logits / T); the authors' code uses 0.1; --temperature
    split: str = "patients"  # train / val drawn by patient or by frame; --split
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's; the authors' code uses (0.5, 0.999); --betas
    augment: str = "affine"  # the paper's text: rotation, flips, scaling; --augment
    lr_schedule: str = "step"  # "step" (halve every lr_step epochs) or "cosine" (to 0 over the epochs)
    weight_decay: float = 0.0  # AdamW's decoupled weight decay when > 0
    monitor: str = "dsc_3d"  # the validation score that picks the best epoch; --monitor
    protocol: str = "ours"  # the name of the protocol preset the settings came from (a report column)
    slices: str = "all"  # "lv": only slices holding the LV, in training and validation; --slices
    full_dice: bool = False  # full supervision adds a soft Dice to its CE (a standard recipe; the paper: CE only)
    tta: bool = False  # the reported scores average the best network over flips and 90-degree turns; --tta/--no-tta


PROFILE_SETTINGS: dict[str, Profile] = {
    # The paper's frame and ENet at batch size 1, for a GPU: 256x256 slices, 200 epochs, lr 5e-3 halved at 100.
    "paper": Profile("paper", 256, 200, (16, 64, 128), 2, 5e-3, 100, 500, None, None, 200),
    # 20-30 min for one seed of the 12 rows on 2 cores: the central 128x128 native pixels halved to 64x64, MONAI's
    # residual U-Net, batches of 16, AdamW 2e-3 with cosine decay over 30 epochs, flips and transposes, two methods
    # at once (one thread each); the reported scores average the 8 flips and turns of each slice (as nnU-Net mirrors).
    "cpu": Profile("cpu", 64, 30, (8, 32, 64), 2, 2e-3, 0, 100, None, None, 20, model="unet-plain", workers=2,
                   field=128, batch_size=16, augment="dihedral", lr_schedule="cosine", weight_decay=1e-4, full_dice=True, tta=True),
    "quick": Profile("quick", 64, 3, (8, 32, 64), 1, 2e-3, 0, 50, 12, 12, 10, model="unet-plain", field=128,
                     batch_size=8, augment="dihedral", lr_schedule="cosine", weight_decay=1e-4, full_dice=True),
}

#: ``--protocol``: a preset of settings applied over a profile.
#:  - ``ours``: patient split, Adam(W) with default betas, the profile's augmentation, the best epoch by 3D DSC;
#:  - ``authors``: what the authors' MIDL code (LIVIAETS/SizeLoss_WSS, main_MIDL.py) does and the paper's text
#:    does not say: softmax at temperature 0.1 for every loss, Adam betas (0.5, 0.999), no augmentation, and
#:    their validation DSC (pooled over all slices, on the soft T = 0.1 probabilities) picking the best epoch.
#:    Their MIDL split is by patient, as ours (``--split frames`` draws frames, as their later journal code does).
#:    Their scores are of the plain network: no test-time averaging.
PROTOCOLS: dict[str, dict] = {
    "ours": {"protocol": "ours"},
    "authors": {"protocol": "authors", "temperature": 0.1, "betas": (0.5, 0.999), "augment": "none",
                "monitor": "dsc_pooled_soft", "tta": False},
}


def with_protocol(profile: Profile, name: str) -> Profile:
    """``profile`` with the settings of protocol ``name`` (a key of :data:`PROTOCOLS`).

    >>> p = with_protocol(PROFILE_SETTINGS["cpu"], "authors")
    >>> p.temperature, p.betas, p.augment, p.monitor, p.batch_size, p.tta
    (0.1, (0.5, 0.999), 'none', 'dsc_pooled_soft', 16, False)
    """
    if name not in PROTOCOLS:
        raise ValueError(f"--protocol: expected one of {', '.join(PROTOCOLS)}, got {name!r}")
    return replace(profile, **PROTOCOLS[name])


def native_pixel_area(field: int, resolution: int) -> float:
    """Native pixels per pixel of slices of ``field`` native pixels block-averaged to ``resolution``.

    >>> native_pixel_area(128, 64), native_pixel_area(256, 64)
    (4.0, 16.0)
    """
    return (field / resolution) ** 2


def penalty_weight(p: Profile) -> float:
    """The paper's size-penalty weight 1e-2 on 256x256 slices, scaled to keep its strength on the profile's slices.

    On a centre crop of c x c native pixels block-averaged by f to r = c / f, sizes shrink by f^2
    and N = r^2, so the penalty (V - b)^2 / N becomes (V - b)^2 / (f c)^2 against (V - b)^2 / 256^2,
    while the partial CE does not change; the weight ``1e-2 (f c / 256)^2`` undoes that.

    >>> penalty_weight(PROFILE_SETTINGS["paper"]), penalty_weight(replace(PROFILE_SETTINGS["cpu"], field=256))
    (0.01, 0.16)
    >>> penalty_weight(PROFILE_SETTINGS["cpu"])  # the 128x128 centre halved: the paper's balance again
    0.01
    """
    return 1e-2 * (p.field ** 2 / (256 * p.resolution)) ** 2


def erosion_kernels(resolution: int, field: int = 256) -> tuple[int, ...]:
    """The paper's erosion kernels (10, 7, 5, 3, 2, 1 native pixels) on slices of ``field`` native pixels
    block-averaged to ``resolution``.

    >>> erosion_kernels(256), erosion_kernels(64), erosion_kernels(64, field=128)
    ((10, 7, 5, 3, 2, 1), (2, 1), (5, 4, 2, 1))
    """
    from sizeseg.data.weak import PAPER_KERNELS

    scaled = [max(1, round(k * resolution / field)) for k in PAPER_KERNELS]
    return tuple(sorted(set(scaled), reverse=True))
