"""``TrainConfig``: every setting of a training run, from flags or a YAML file (unknown keys are errors)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from sizeseg.losses.size_loss import DEFAULT_NOISE_SCALE
from sizeseg.models.registry import MODELS

#: SizeLoss criteria a run may use (names of :mod:`sizeseg.losses.size_criteria`)
SIZE_CRITERIA = ("squared", "relative", "absolute", "symmetric")
#: size losses a run may use: the single-object SizeLoss (each class's largest size) or the
#: per-object ObjectSizeLoss (each class's list of object sizes)
SIZE_LOSSES = ("object", "objects")
#: units of the size and area terms (sizeseg.training.loss_terms.unit_scale): pixels (the papers'), or
#: fractions of the image, in which one weight holds at any working resolution
SIZE_UNITS = ("pixels", "image")
#: SizeLoss's criterion in training runs. The paper's squared error: on ACDC LV (results/sizes-acdc/) and on
#: synthetic objects of 4-80 px (results/sizes-noise/, part B) it lowered the size error where the relative
#: one, (t - s)^2 / t^2, raised it and lost the most IoU: the relative error weighs the 1-2 px quantisation
#: errors of the smallest objects most, and hardly moves the large ones.
DEFAULT_SIZE_CRITERION = "squared"
#: units of the size and area terms: pixels, the papers'. Image units (sizes in image sides, areas in images)
#: keep one weight's balance against BCE at any working shape, and README step 4 uses them; as the default
#: they were measured and not taken: on the hippocampus's 48x32 slices the image-unit weight (4, i.e. 2.6e-3
#: per pixel) lost more test IoU in size fine-tuning than 1e-3 per pixel in 9 of 12 cells (mean 0.017, one
#: fine-tuning seed each), within the spread of ten fine-tuning seeds of one cell, where neither unit was
#: better; mixed training was no worse (results/hippocampus/, image-units-default/, size-weight-adam/). Per
#: pixel the weight is balanced at 64x64 only; training prints a note with the balanced per-pixel weights
#: when per-pixel weights are far from that balance.
DEFAULT_SIZE_UNITS = "pixels"
#: weight of the size term, per pixel (4 in image units at 64x64, where it was chosen). There the size term's
#: gradient on a pre-trained network is within a few times BCE's for objects of ~5-30 px (results/sizes-acdc/,
#: column grad size/BCE), so --mixed trains on both; at 1 the sizes drown the masks. Size-only fine-tuning
#: seemed to depend on it under Adam (demo: 0.494 at 1e-3, 0.530 at 2.6e-3 per pixel), but on the hippocampus
#: ten fine-tuning seeds per weight did not separate the two (results/hippocampus/size-weight-adam/).
DEFAULT_SIZE_WEIGHT = 1e-3
#: README step 4's weights, in image units: the default size weight (1e-3) and the area weight 0.01 per pixel at
#: 64x64, where they were chosen on ACDC LV (results/sizes-acdc/)
RECOMMENDED_SIZE_WEIGHT = 4.0
RECOMMENDED_AREA_WEIGHT = 40.0
#: epochs before early stopping may end pre-training (``min_epochs`` null). On the README's user path
#: (results/user-folder/, 49 masks, unet-small, epochs of 64 steps) validation IoU fell to 0 after epoch 1,
#: the network predicting no object while its training loss kept falling, and came back at epoch 7
#: (IoU 0.66, then 0.75 at epoch 10): patience 5 had stopped the run at epoch 6 with an IoU-0.37 network.
PRETRAIN_MIN_EPOCHS = 10
#: items per epoch a smaller training set is repeated to. Without it, 49 masks at batch 32 made epochs of 2
#: steps: patience 5 stopped pre-training after 12 steps with the network still at its initial IoU (a user
#: folder of ACDC slices, results/user-folder/). A fresh U-Net's validation IoU stays flat for its first
#: ~200-300 steps (it predicts nearly everything as the object), so at 512 items (16 steps) patience still
#: stopped it there; at 2048 an epoch is 64 steps of 32 and patience 5 epochs is 320 steps.
EPOCH_ITEMS = 2048
#: what a new TrainConfig's ``epoch_items`` is, read at construction (the test suite sets None: one pass over
#: its tiny sets)
DEFAULT_EPOCH_ITEMS: int | None = EPOCH_ITEMS


def _default_epoch_items() -> int | None:
    return DEFAULT_EPOCH_ITEMS
#: what runs recorded before a key existed were trained with (for reusing cached runs)
PREDATING = {"min_epochs": 0, "noise_scale": 1.0, "size_criterion": "squared", "size_loss": "object",
             "area_weight": 0.0, "area_margin": 0.1, "size_units": "pixels"}
#: one line per key, for ``--help`` and ``--print-config``
HELP = {
    "model": "network name: " + ", ".join(MODELS) + " (unet-plain, 0.2 M parameters, trains in minutes on a CPU)",
    "lr": "Adam learning rate (about 1e-4 suits size fine-tuning)",
    "lr_step": "multiply the learning rate by lr_gamma every this many epochs (0: constant)",
    "lr_gamma": "the step schedule's factor",
    "batch_size": "images per batch (a last partial batch is kept; one of a single image is merged)",
    "max_epochs": "maximum epochs",
    "patience": "early-stopping patience in validations (0: off)",
    "min_epochs": f"epochs before early stopping may end a run (null: {PRETRAIN_MIN_EPOCHS} for pretrain, whose fresh "
                  "network can predict no object for several epochs first; 0 for finetune, which starts from a "
                  "scored network)",
    "monitor": "validation metric picking best.ckpt and stopping early: val/IoU, val/Dice or val/E "
               "(empty: val/IoU; val/E when validation has no mask, or, when fine-tuning, fewer than 5; the paper's "
               "fine-tuning picked by val/E)",
    "n_samples": "SizeLoss gradient samples n",
    "noise_scale": "scale tau of SizeLoss's logistic noise, p = sigmoid(a / tau); 1 is the paper's",
    "size_criterion": "SizeLoss's loss on sizes: squared (the paper's, px^2), relative ((t - s)^2 / t^2), absolute "
                      "or symmetric ((t - s)^2 / max(t, s)^2: a spurious or missed object costs 1)",
    "size_loss": "object (SizeLoss on each class's largest size) or objects (ObjectSizeLoss on each class's "
                 "list of object sizes; needs size lists)",
    "size_units": "pixels (sizes in px, areas in px^2: the papers', and what the default weight is for) or "
                  "image (sizes in image sides, areas in images: one weight balances the terms at any working "
                  "shape; size_weight 4 and area_weight 40 in image units equal 1e-3 and 0.01 per pixel at 64x64)",
    "bce_weight": "weight of the BCE term on masks",
    "size_weight": "weight of the size term; the default balances the squared size error (px^2) against BCE "
                   "in mixed training at 64x64 (training prints the balanced weight at other shapes); about 4 "
                   "with size_units image",
    "size_matched_weight": "weight of BCE to the prediction moved onto each annotated size (0: off)",
    "area_weight": "weight of the area bounds the sizes imply, [lo s^2, hi s^2] on the soft area (paper 2's "
                   "penalty; lo, hi measured on the masked training images; 0: off)",
    "area_margin": "widening of the masked images' range of area / size^2 for the area bounds",
    "flips": "random flips in pre-training",
    "m": "masked training images kept for pre-training / mixed training (null: all)",
    "mask_fraction": "mixed mode: expected fraction of masked images per epoch",
    "mixed_flips": "mixed mode: random flips of its images too, as in pre-training (off: the recorded mixed runs "
                   "had none; more training on a few unflipped masks can lower validation IoU, "
                   "results/hippocampus/mixed-collapse/)",
    "seed": "seed of the masked subset, initialisation and batch order",
    "limit_train_batches": "batches per epoch (null: all)",
    "val_every": "validate and checkpoint every this many epochs",
    "epoch_items": "repeat a small training set to about this many items per epoch, so that patience and "
                   "max_epochs mean enough steps (null: one pass)",
    "num_workers": "data-loader worker processes",
    "accelerator": "cpu, gpu or auto",
    "devices": "processes / devices (with strategy ddp)",
    "strategy": "Lightning strategy: auto or ddp",
}


@dataclass
class TrainConfig:
    """Settings shared by pre-training, size fine-tuning and mixed training.

    Attributes:
        model: a ``build_model`` name.
        lr, lr_step, lr_gamma: Adam learning rate and optional step schedule (0: constant).
        batch_size: images per batch.
        max_epochs: upper bound on epochs.
        patience: early-stopping patience in epochs on the monitored metric (0: off).
        min_epochs: epochs before early stopping may end the run; None: :data:`PRETRAIN_MIN_EPOCHS` for
            pre-training, 0 for the size modes (see :meth:`min_epochs_for`).
        monitor: the validation metric that picks the best checkpoint and stops early: ``val/IoU``
            or ``val/Dice`` (needs validation masks), ``val/E`` (needs validation sizes only), or
            empty for the default: ``val/IoU``, or ``val/E`` when validation has no mask or, in the size
            modes, fewer than ``MIN_VAL_MASKS``.
        n_samples: SizeLoss gradient samples n.
        noise_scale: scale tau of SizeLoss's logistic noise, p = sigmoid(a / tau) (1: the paper's).
        size_criterion: SizeLoss's loss on sizes: ``squared`` (the paper's, in pixels^2; the default,
            see :data:`DEFAULT_SIZE_CRITERION`), ``relative`` ((t - s)^2 / t^2) or ``absolute``.
        size_loss: ``object`` (SizeLoss: each class's largest object) or ``objects``
            (ObjectSizeLoss: each class's list of object sizes, ``extra["object_sizes"]``).
        size_units: ``pixels`` (the papers', the default: :data:`DEFAULT_SIZE_UNITS`) or ``image``: the
            unit of the size and area terms (:func:`sizeseg.training.loss_terms.unit_scale`); in image
            units a weight does not depend on the working resolution.
        bce_weight, size_weight: weights of the BCE (eq. 6) and size-loss terms (see
            :data:`DEFAULT_SIZE_WEIGHT`).
        size_matched_weight: weight of the size-matched pseudo-label BCE in size fine-tuning and
            mixed training (0: off; see :class:`~sizeseg.training.loss_terms.SizeMatchedTerm`).
        area_weight, area_margin: weight of the area bounds that the sizes imply in size fine-tuning
            and mixed training (0: off; see :class:`~sizeseg.training.loss_terms.AreaBoundTerm`), and
            the widening of the masked images' area / size^2 range that gives those bounds.
        flips: random flips in supervised pre-training (the size paper's augmentation).
        m: masked training images for pre-training / mixed training (None: all).
        mask_fraction: expected fraction of masked images in each mixed-training epoch.
        mixed_flips: random flips of mixed training's images too (off by default: the recorded mixed
            runs had none, as the paper's fine-tuning has no augmentation).
        seed: seed of the subset choice, the weights' initialisation and the batch order.
        limit_train_batches: train batches per epoch (None: all); for quick runs.
        val_every: validate (and checkpoint) every this many epochs.
        epoch_items: repeat a smaller training set to about this many items per epoch (None: one pass);
            see :data:`DEFAULT_EPOCH_ITEMS`.
        num_workers, accelerator, devices, strategy: loader and hardware settings.
    """

    model: str = "unet"
    lr: float = 1e-3
    lr_step: int = 0
    lr_gamma: float = 0.5
    batch_size: int = 32
    max_epochs: int = 50
    patience: int = 5
    min_epochs: int | None = None
    monitor: str = ""
    n_samples: int = 1
    noise_scale: float = DEFAULT_NOISE_SCALE
    size_criterion: str = DEFAULT_SIZE_CRITERION
    size_loss: str = "object"
    size_units: str = DEFAULT_SIZE_UNITS
    bce_weight: float = 1.0
    size_weight: float = DEFAULT_SIZE_WEIGHT
    size_matched_weight: float = 0.0
    area_weight: float = 0.0
    area_margin: float = 0.1
    flips: bool = True
    m: int | None = None
    mask_fraction: float = 0.5
    mixed_flips: bool = False
    seed: int = 0
    limit_train_batches: int | None = None
    val_every: int = 1
    epoch_items: int | None = field(default_factory=_default_epoch_items)
    num_workers: int = 0
    accelerator: str = "cpu"
    devices: int = 1
    strategy: str = "auto"

    def __post_init__(self) -> None:
        # direct construction is checked as a mapping is: TrainConfig(size_weight=inf) is an error
        for f in fields(self):
            default = f.default_factory() if f.default is MISSING else f.default
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name), default, f.name))

    def min_epochs_for(self, mode: str) -> int:
        """``min_epochs``, or its default for ``mode`` when None.

        Example:
            >>> TrainConfig().min_epochs_for("pretrain"), TrainConfig().min_epochs_for("mixed")
            (10, 0)
        """
        if self.min_epochs is not None:
            return self.min_epochs
        return PRETRAIN_MIN_EPOCHS if mode == "pretrain" else 0

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def record_defaults(cls) -> dict[str, Any]:
        """The value of each key for a run recorded before that key existed (see :data:`PREDATING`)."""
        return {**cls().to_dict(), **PREDATING}

    def to_yaml(self) -> str:
        """Every key with its value and a comment saying what it does: a ``--config`` template.

        Example:
            >>> print(TrainConfig().to_yaml().splitlines()[0])
            model: unet  # network name: unet, ..., enet (...)
        """
        import json

        def value(v: Any) -> str:
            return "null" if v is None else str(v).lower() if isinstance(v, bool) else \
                json.dumps(v) if isinstance(v, str) and (not v or ":" in v or "/" in v) else str(v)

        return "".join(f"{key}: {value(v)}  # {HELP.get(key, '')}\n" for key, v in self.to_dict().items())

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config",
                     labels: Mapping[str, str] | None = None) -> "TrainConfig":
        """Build from a mapping; an unknown key or a bad value is a ValueError naming it.

        A value is bad when it has the wrong type, is not finite (float keys), or is out of its
        key's range (e.g. ``lr`` > 0, ``devices`` >= 1). Float keys accept numeric strings, as YAML
        reads ``1e-3`` (no dot) as a string. Errors name ``source: key 'k'``, or ``labels[k]``
        where given (e.g. the flag that set it).

        Example:
            >>> TrainConfig.from_mapping({"lr": 0.01}).lr
            0.01
            >>> TrainConfig.from_mapping({"learning_rate": 0.01})
            Traceback (most recent call last):
            ...
            ValueError: config: unknown key 'learning_rate'; known keys: model, lr, lr_step, lr_gamma, batch_size, max_epochs, patience, min_epochs, monitor, n_samples, noise_scale, size_criterion, size_loss, size_units, bce_weight, size_weight, size_matched_weight, area_weight, area_margin, flips, m, mask_fraction, mixed_flips, seed, limit_train_batches, val_every, epoch_items, num_workers, accelerator, devices, strategy
        """
        if not isinstance(values, Mapping):
            raise ValueError(f"{source}: expected a mapping of settings, got {type(values).__name__}")
        known = cls.keys()
        for key in values:
            if key not in known:
                raise ValueError(f"{source}: unknown key {key!r}; known keys: {', '.join(known)}")
        defaults = cls()
        clean: dict[str, Any] = {}
        for key, value in values.items():
            default = getattr(defaults, key)
            name = (labels or {}).get(key) or f"{source}: key {key!r}"
            clean[key] = _coerce(key, value, default, name)
        return dataclasses.replace(defaults, **clean)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Mapping[str, Any] | None = None,
                  labels: Mapping[str, str] | None = None) -> "TrainConfig":
        """Read a YAML mapping of settings from ``path``; ``overrides`` (e.g. flags) win.

        ``labels`` name the overrides in errors (e.g. ``{"lr": "--lr"}``); a bad value read from the
        file is named ``path: key 'k'``.
        """
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: config file not found")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({err})") from err
        if not isinstance(values, Mapping):
            raise ValueError(f"{path}: expected a mapping of settings, got {type(values).__name__}")
        overrides = dict(overrides or {})
        return cls.from_mapping({**values, **overrides}, source=str(path),
                                labels={k: v for k, v in (labels or {}).items() if k in overrides})

    def check_hardware(self) -> None:
        """Raise a ValueError when ``accelerator`` / ``devices`` ask for devices this machine lacks."""
        import torch

        if self.accelerator in ("gpu", "cuda"):
            found = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if found < self.devices:
                raise ValueError(f"accelerator: {self.accelerator!r} with {self.devices} device(s) asked for, but torch "
                                 f"sees {found} GPU(s) here; use accelerator cpu (--accelerator cpu)")
        if self.accelerator == "mps" and not torch.backends.mps.is_available():
            raise ValueError("accelerator: 'mps' asked for, but torch sees no MPS device here; use accelerator cpu")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: int keys that must be >= 1 (the rest must be >= 0)
POSITIVE_INTS = frozenset({"batch_size", "max_epochs", "n_samples", "val_every", "devices", "limit_train_batches",
                           "epoch_items"})
#: float keys that must be > 0 (weights must be >= 0, mask_fraction in [0, 1])
POSITIVE_FLOATS = frozenset({"lr", "lr_gamma", "noise_scale"})
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")


def _coerce(key: str, value: Any, default: Any, name: str) -> Any:
    if value is None:
        if key in ("m", "limit_train_batches", "epoch_items", "min_epochs"):
            return None
        raise ValueError(f"{name} needs a value, got null")
    expected = type(default) if default is not None else int
    if expected is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} expects true/false, got {value!r}")
        return value
    if expected is float and isinstance(value, str):
        # YAML 1.1 reads 1e-3 (no dot) as a string; accept any numeric string for a float key
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{name} expects a number, got {value!r}") from None
    if expected is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name} expects a finite number, got {value!r}")
        if key.endswith("_weight") and not value >= 0:
            raise ValueError(f"{name} expects a weight >= 0, got {value!r}")
        if key in POSITIVE_FLOATS and not value > 0:
            raise ValueError(f"{name} expects a number > 0, got {value!r}")
        if key == "area_margin" and not value >= 0:
            raise ValueError(f"{name} expects a number >= 0, got {value!r}")
        if key == "mask_fraction" and not 0 <= value <= 1:
            raise ValueError(f"{name} expects a fraction in [0, 1], got {value!r}")
        return value
    if expected is int and isinstance(value, int) and not isinstance(value, bool):
        least = 1 if key in POSITIVE_INTS else 0
        if value < least:
            raise ValueError(f"{name} expects an int >= {least}, got {value!r}")
        return value
    if expected is str and isinstance(value, str):
        if key == "accelerator" and value not in ACCELERATORS:
            raise ValueError(f"{name} expects one of {', '.join(ACCELERATORS)}, got {value!r}")
        if key == "size_criterion" and value not in SIZE_CRITERIA:
            raise ValueError(f"{name} expects one of {', '.join(SIZE_CRITERIA)}, got {value!r}")
        if key == "size_loss" and value not in SIZE_LOSSES:
            raise ValueError(f"{name} expects one of {', '.join(SIZE_LOSSES)}, got {value!r}")
        if key == "size_units" and value not in SIZE_UNITS:
            raise ValueError(f"{name} expects one of {', '.join(SIZE_UNITS)}, got {value!r}")
        return value
    raise ValueError(f"{name} expects {expected.__name__}, got {value!r}")
