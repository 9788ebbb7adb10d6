"""``TrainConfig``: every setting of a training run, from flags or a YAML file (unknown keys are errors)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from sizeseg.losses.size_loss import DEFAULT_NOISE_SCALE

#: SizeLoss criteria a run may use (names of :mod:`sizeseg.losses.size_criteria`)
SIZE_CRITERIA = ("relative", "squared", "absolute")
DEFAULT_SIZE_CRITERION = "relative"
#: what runs recorded before a key existed were trained with (for reusing cached runs)
PREDATING = {"noise_scale": 1.0, "size_criterion": "squared"}
#: one line per key, for ``--help`` and ``--print-config``
HELP = {
    "model": "network name (unet, unet-small, unet-resnet34, unet-tiny, enet)",
    "lr": "Adam learning rate (about 1e-4 suits size fine-tuning)",
    "lr_step": "multiply the learning rate by lr_gamma every this many epochs (0: constant)",
    "lr_gamma": "the step schedule's factor",
    "batch_size": "images per batch (a last partial batch is kept; one of a single image is merged)",
    "max_epochs": "maximum epochs",
    "patience": "early-stopping patience in validations (0: off)",
    "monitor": "validation metric picking best.ckpt and stopping early: val/IoU, val/Dice or val/E "
               "(empty: val/IoU for pretrain, val/E for finetune, or val/E when validation has no mask)",
    "n_samples": "SizeLoss gradient samples n",
    "noise_scale": "scale tau of SizeLoss's logistic noise, p = sigmoid(a / tau); 1 is the paper's",
    "size_criterion": "SizeLoss's loss on sizes: relative ((t - s)^2 / t^2), squared (the paper's) or absolute",
    "bce_weight": "weight of the BCE term on masks",
    "size_weight": "weight of the size term (with the relative criterion one weight suits any object size)",
    "size_matched_weight": "weight of BCE to the prediction moved onto each annotated size (0: off)",
    "flips": "random flips in pre-training",
    "m": "masked training images kept for pre-training / mixed training (null: all)",
    "mask_fraction": "mixed mode: expected fraction of masked images per epoch",
    "seed": "seed of the masked subset, initialisation and batch order",
    "limit_train_batches": "batches per epoch (null: all)",
    "val_every": "validate and checkpoint every this many epochs",
    "epoch_items": "repeat a small training set to about this many items per epoch (null: one pass)",
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
        monitor: the validation metric that picks the best checkpoint and stops early: ``val/IoU``
            or ``val/Dice`` (needs validation masks), ``val/E`` (needs validation sizes only), or
            empty for the mode's default (``val/IoU`` for pre-training, ``val/E`` for the size modes).
        n_samples: SizeLoss gradient samples n.
        noise_scale: scale tau of SizeLoss's logistic noise, p = sigmoid(a / tau) (1: the paper's).
        size_criterion: SizeLoss's loss on sizes: ``relative`` ((t - s)^2 / t^2, one weight suits
            objects of any size), ``squared`` (the paper's, in pixels^2) or ``absolute``.
        bce_weight, size_weight: weights of the BCE (eq. 6) and size-loss terms.
        size_matched_weight: weight of the size-matched pseudo-label BCE in size fine-tuning and
            mixed training (0: off; see :class:`~sizeseg.training.loss_terms.SizeMatchedTerm`).
        flips: random flips in supervised pre-training (the size paper's augmentation).
        m: masked training images for pre-training / mixed training (None: all).
        mask_fraction: expected fraction of masked images in each mixed-training epoch.
        seed: seed of the subset choice, the weights' initialisation and the batch order.
        limit_train_batches: train batches per epoch (None: all); for quick runs.
        val_every: validate (and checkpoint) every this many epochs.
        epoch_items: repeat a smaller training set to about this many items per epoch (None: one pass).
        num_workers, accelerator, devices, strategy: loader and hardware settings.
    """

    model: str = "unet"
    lr: float = 1e-3
    lr_step: int = 0
    lr_gamma: float = 0.5
    batch_size: int = 32
    max_epochs: int = 50
    patience: int = 5
    monitor: str = ""
    n_samples: int = 1
    noise_scale: float = DEFAULT_NOISE_SCALE
    size_criterion: str = DEFAULT_SIZE_CRITERION
    bce_weight: float = 1.0
    size_weight: float = 1.0
    size_matched_weight: float = 0.0
    flips: bool = True
    m: int | None = None
    mask_fraction: float = 0.5
    seed: int = 0
    limit_train_batches: int | None = None
    val_every: int = 1
    epoch_items: int | None = None
    num_workers: int = 0
    accelerator: str = "cpu"
    devices: int = 1
    strategy: str = "auto"

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
            model: unet  # network name (unet, unet-small, unet-resnet34, unet-tiny, enet)
        """
        import json

        def value(v: Any) -> str:
            return "null" if v is None else str(v).lower() if isinstance(v, bool) else \
                json.dumps(v) if isinstance(v, str) and (not v or ":" in v or "/" in v) else str(v)

        return "".join(f"{key}: {value(v)}  # {HELP.get(key, '')}\n" for key, v in self.to_dict().items())

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config") -> "TrainConfig":
        """Build from a mapping; an unknown key or a value of the wrong type is a ValueError naming it.

        Example:
            >>> TrainConfig.from_mapping({"lr": 0.01}).lr
            0.01
            >>> TrainConfig.from_mapping({"learning_rate": 0.01})
            Traceback (most recent call last):
            ...
            ValueError: config: unknown key 'learning_rate'; known keys: model, lr, lr_step, lr_gamma, batch_size, max_epochs, patience, monitor, n_samples, noise_scale, size_criterion, bce_weight, size_weight, size_matched_weight, flips, m, mask_fraction, seed, limit_train_batches, val_every, epoch_items, num_workers, accelerator, devices, strategy
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
            clean[key] = _coerce(key, value, default, source)
        if "noise_scale" in clean and not clean["noise_scale"] > 0:
            raise ValueError(f"{source}: key 'noise_scale' expects a number > 0, got {clean['noise_scale']!r}")
        if "size_criterion" in clean and clean["size_criterion"] not in SIZE_CRITERIA:
            raise ValueError(f"{source}: key 'size_criterion' expects one of {', '.join(SIZE_CRITERIA)}, "
                             f"got {clean['size_criterion']!r}")
        return dataclasses.replace(defaults, **clean)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Mapping[str, Any] | None = None) -> "TrainConfig":
        """Read a YAML mapping of settings from ``path``; ``overrides`` (e.g. flags) win."""
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
        return cls.from_mapping({**values, **(overrides or {})}, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(key: str, value: Any, default: Any, source: str) -> Any:
    if value is None:
        if key in ("m", "limit_train_batches", "epoch_items"):
            return None
        raise ValueError(f"{source}: key {key!r} needs a value, got null")
    expected = type(default) if default is not None else int
    if expected is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{source}: key {key!r} expects true/false, got {value!r}")
        return value
    if expected is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if key.endswith("_weight") and not value >= 0:
            raise ValueError(f"{source}: key {key!r} expects a weight >= 0, got {value!r}")
        return float(value)
    if expected is int and isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{source}: key {key!r} expects an int >= 0, got {value!r}")
        return value
    if expected is str and isinstance(value, str):
        return value
    raise ValueError(f"{source}: key {key!r} expects {expected.__name__}, got {value!r}")
