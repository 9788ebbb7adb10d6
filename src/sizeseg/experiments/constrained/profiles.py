"""The experiment's profiles (quick, cpu, full) and what scales with their field of view and resolution."""

from __future__ import annotations

from dataclasses import dataclass

PROFILES = ("quick", "cpu", "full")


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


PROFILE_SETTINGS: dict[str, Profile] = {
    "full": Profile("full", 256, 200, (16, 64, 128), 2, 5e-3, 100, 500, None, None, 200),
    # ~1 h on 2 cores: the central 128x128 native pixels halved to 64x64, a narrower ENet, 400 random
    # slices per epoch, 60 epochs (lr halved after 30, the paper's halving at half-time), two methods at once.
    "cpu": Profile("cpu", 64, 60, (8, 32, 64), 2, 5e-3, 30, 100, 400, None, 100, workers=2, field=128),
    "quick": Profile("quick", 64, 3, (8, 32, 64), 1, 5e-3, 0, 50, 60, 12, 20),
}


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

    >>> from dataclasses import replace
    >>> penalty_weight(PROFILE_SETTINGS["full"]), penalty_weight(replace(PROFILE_SETTINGS["cpu"], field=256))
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
