"""The training modes end to end: pre-training on masks, size fine-tuning, mixed; loading, evaluation.

These functions join data, model, loss terms and Trainer; the CLI and the experiments call them.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from sizeseg.data.size_lists import n_classes
from sizeseg.metrics.object_size_error import score_batch
from sizeseg.models import build_model
from sizeseg.training.checkpoints import read_checkpoint
from sizeseg.training.config import RECOMMENDED_AREA_WEIGHT, RECOMMENDED_SIZE_WEIGHT, TrainConfig
from sizeseg.training.data import SegmentationDataModule, eval_dataset, mode_dataset
from sizeseg.training.loss_terms import AreaBoundTerm, BCETerm, ObjectSizeTerm, SizeMatchedTerm, SizeTerm, unit_scale
from sizeseg.training.module import SegmentationModule
from sizeseg.training.run_record import check_resume, run_settings, write_run_settings
from sizeseg.training.trainer import best_checkpoint, fit, last_checkpoint, make_trainer

#: mode -> the metric monitored unless ``TrainConfig.monitor`` names another. Size modes fall back to
#: the validation size error when validation has too few masks (``selection.choose_monitor``); the
#: paper picked by validation E throughout (``--monitor val/E``).
MONITOR = {"pretrain": "val/IoU", "finetune": "val/IoU", "mixed": "val/IoU"}
#: metrics ``TrainConfig.monitor`` may name, with their direction
from sizeseg.training.selection import MONITORABLE  # noqa: E402


@dataclass
class TrainResult:
    """A finished run: its files, and how its best epoch compares with its start.

    ``monitor`` is the metric that picked ``best``; ``start_score`` its value for the ``init``
    network on validation (None without ``init``), ``best_score`` the best epoch's; ``start_kept``
    says that no epoch beat the start, so ``best`` holds the start's weights; ``start_iou`` and
    ``best_iou`` are the validation IoU of the start and of ``best`` when a size metric picked it
    and validation has masks (None otherwise); ``messages`` are the notes and warnings the run gave.
    """

    out_dir: Path
    best: Path | None
    last: Path | None
    metrics_csv: Path
    seconds: float
    monitor: str = ""
    start_score: float | None = None
    best_score: float | None = None
    start_kept: bool = False
    start_iou: float | None = None
    best_iou: float | None = None
    messages: list[str] = field(default_factory=list)


def loss_terms_for(mode: str, cfg: TrainConfig, area_ratio: tuple[float, float] | None = None) -> list:
    """Loss terms of a mode: BCE (pretrain), SizeLoss (finetune; ObjectSizeLoss with
    ``cfg.size_loss="objects"``), both (mixed); the size-matched
    pseudo-label BCE joins the size modes when ``cfg.size_matched_weight`` > 0, and the area bounds
    (:class:`~sizeseg.training.loss_terms.AreaBoundTerm`, with ``area_ratio`` = (lo, hi) of area /
    size^2) when ``cfg.area_weight`` > 0."""
    terms = []
    if mode in ("pretrain", "mixed"):
        terms.append(BCETerm(weight=cfg.bce_weight))
    if mode in ("finetune", "mixed"):
        size_term = ObjectSizeTerm if cfg.size_loss == "objects" else SizeTerm
        terms.append(size_term(n_samples=cfg.n_samples, weight=cfg.size_weight, criterion=cfg.size_criterion,
                               noise_scale=cfg.noise_scale, units=cfg.size_units))
        if cfg.size_matched_weight > 0:
            terms.append(SizeMatchedTerm(weight=cfg.size_matched_weight))
        if cfg.area_weight > 0:
            if area_ratio is None:
                raise ValueError("area_weight > 0 needs the range of area / size^2 (area_ratio), measured on masked images")
            terms.append(AreaBoundTerm(area_ratio, weight=cfg.area_weight, noise_scale=cfg.noise_scale,
                                       per_object=cfg.size_loss == "objects", units=cfg.size_units))
    if not terms:
        raise ValueError(f"mode: expected one of {tuple(MONITOR)}, got {mode!r}")
    return terms


def masked_area_ratio(train, cfg: TrainConfig, classes: int) -> tuple[float, float]:
    """The range of area / size^2 over the masked training images that ``cfg`` trains with (the
    ``cfg.m`` of :func:`~sizeseg.data.datasets.choose_masked`), widened by ``cfg.area_margin``.

    With the per-object loss (``cfg.size_loss="objects"``) and lists of object sizes the ratio is
    the image's area over ``sum_k s_k^2``, the statistic :class:`~sizeseg.training.loss_terms.AreaBoundTerm` bounds (on the
    synthetic multi-object set its range is 2-3 times narrower than that of area / s_max^2,
    which the single-object loss has to use)."""
    from sizeseg.data.bounds import area_ratio_range
    from sizeseg.data.datasets import choose_masked

    if classes != 1:
        raise ValueError(f"area_weight: the area bounds take one class, and this data has {classes}; set area_weight 0")
    masked = np.flatnonzero(choose_masked(train.has_mask, cfg.m, cfg.seed))
    every = np.asarray(train.sizes, np.float64)
    if cfg.size_loss == "objects" and "object_sizes" in train.extra:  # sqrt(sum_k s_k^2): one size per image
        lists = np.asarray(train.extra["object_sizes"], np.float64).reshape(len(every), -1)
        known = ~np.isnan(lists).all(-1)
        every = np.where(known, np.sqrt(np.nansum(np.square(lists), -1)), np.nan)
    sizes = every[masked]
    masked = masked[np.isfinite(sizes) & (sizes > 0)]
    if len(masked) == 0:
        raise ValueError("area_weight: the area bounds need masked training images with an object, to measure "
                         "area / size^2; prepare the data with some masks or set area_weight 0")
    areas = np.asarray(train.masks[masked] > 0).reshape(len(masked), -1).sum(1)
    return area_ratio_range(areas, every[masked], cfg.area_margin)


def pixel_units_note(mode: str, cfg: TrainConfig, spatial: tuple[int, ...]) -> str | None:
    r"""A note for the user when per-pixel weights are far from the balance the defaults strike.

    In pixel units the squared size error grows as :math:`N^{2/d}` (N pixels or voxels of one
    image, d dimensions) and the area penalty as N, while BCE, a mean over pixels, does not change.
    A per-pixel weight w therefore weighs as :math:`w N^{2/d}` (size) or :math:`w N` (area) would in
    image units (:func:`~sizeseg.training.loss_terms.unit_scale`). The note says so when two or more
    terms are weighted against each other (``mixed``, or the size and area terms together), the
    units are ``pixels``, and either equivalent is more than 2x from the balance of the defaults
    (README step 4's weights, :data:`~sizeseg.training.config.RECOMMENDED_SIZE_WEIGHT` for the
    squared error and :data:`~sizeseg.training.config.RECOMMENDED_AREA_WEIGHT`).

    Example:
        >>> pixel_units_note("mixed", TrainConfig(), (64, 64)) is None
        True
        >>> pixel_units_note("mixed", TrainConfig(), (256, 256))[:44]
        "note: size_units 'pixels' makes the weights "
    """
    from sizeseg.losses.size_criteria import get_criterion

    if mode == "pretrain" or cfg.size_units != "pixels":
        return None
    if (mode == "mixed") + (cfg.size_weight > 0) + (cfg.area_weight > 0) < 2:
        return None
    shape = torch.empty((1, 1, *spatial), device="meta")
    degree = get_criterion(cfg.size_criterion).degree
    weighed = []  # (key, per-pixel weight, the README's image-unit weight, the term's size-degree)
    if cfg.size_weight > 0 and degree == 2:  # the recommended weight is for the squared error
        weighed.append(("size_weight", cfg.size_weight, RECOMMENDED_SIZE_WEIGHT, degree))
    if cfg.area_weight > 0:  # an area has size-degree d
        weighed.append(("area_weight", cfg.area_weight, RECOMMENDED_AREA_WEIGHT, len(spatial)))
    parts, balanced, off = [], [], False
    for key, weight, recommended, term_degree in weighed:
        scale = unit_scale(shape, "image", term_degree)  # image-unit loss = scale * per-pixel loss
        ratio = weight / scale / recommended
        parts.append(f"{key} {weight / scale:.3g} (~{ratio:.2g}x the README's {recommended:g})")
        balanced.append(f"{key} {recommended * scale:.2g}")
        off |= not 0.5 <= ratio <= 2
    if not off:
        return None
    return (f"note: size_units 'pixels' makes the weights per pixel; at {'x'.join(map(str, spatial))} they weigh "
            f"against BCE as {' and '.join(parts)} would in image units (--size-units image, as README step 4), "
            f"which keep one balance at any shape; that balance per pixel here: {', '.join(balanced)}")


def load_model(checkpoint: str | Path) -> nn.Module:
    """The network stored in a checkpoint written by a sizeseg training run (in eval mode).

    The file is read with :func:`~sizeseg.training.checkpoints.read_checkpoint` (nothing in it is
    run); a file that is no sizeseg checkpoint, whose weights do not fit its network, or whose
    weights are not finite (a diverged run) is a ValueError naming it.
    """
    return _model_and_spec(checkpoint)[0].eval()


def _model_and_spec(checkpoint: str | Path) -> tuple[nn.Module, dict]:
    checkpoint = Path(checkpoint)
    state = read_checkpoint(checkpoint)
    hparams = state.get("hyper_parameters")
    spec = hparams.get("model_spec") if isinstance(hparams, dict) else None
    if not isinstance(spec, dict) or not spec:
        raise ValueError(f"{checkpoint}: not a sizeseg checkpoint (no model_spec in its hyper-parameters)")
    try:
        model = build_model(**spec)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{checkpoint}: its model_spec {spec!r} builds no network ({err})") from None
    weights = {k[len("model."):]: v for k, v in state["state_dict"].items() if k.startswith("model.")}
    if not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise ValueError(f"{checkpoint}: not a sizeseg checkpoint (its state_dict holds values other than tensors)")
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise ValueError(f"{checkpoint}: its weights do not fit its network {spec.get('name')!r} "
                         f"({str(err).splitlines()[0]})") from None
    bad = [name for name, value in weights.items() if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if bad:
        raise ValueError(f"{checkpoint}: {len(bad)} of the network's weight tensors are not finite (first: {bad[0]}); "
                         "the run that wrote it diverged")
    return model, spec


def train(mode: str, data, out_dir: str | Path, cfg: TrainConfig, init: str | Path | None = None,
          resume: bool = True, progress_bar: bool | str | None = True,
          say: Callable[[str], None] | None = None) -> TrainResult:
    """Train in ``mode`` on prepared ``data`` (with train and val splits), writing to ``out_dir``.

    Args:
        mode: ``pretrain`` (BCE on ``cfg.m`` masked images, flips), ``finetune`` (SizeLoss on
            every training size, no masks, no augmentation) or ``mixed`` (both, masks on ``cfg.m``).
        data: a ``PreparedData`` with ``train`` and ``val`` splits.
        out_dir: the run folder (checkpoints/, logs/metrics.csv).
        cfg: the run's settings.
        init: a checkpoint whose weights start the run (e.g. the pre-trained network). The start is
            scored on validation first; when no epoch beats it, ``best.ckpt`` holds the start.
        resume: continue from ``out_dir/checkpoints/last.ckpt`` when it exists.
        progress_bar: ``True``/``"bar"`` a progress bar, ``"lines"`` one line per epoch, ``False``/
            ``"none"`` nothing, ``"auto"``/None a bar on a terminal and lines otherwise.
        say: called with each note or warning for the user (the monitor chosen, too few validation
            masks, the start kept); they are also in ``TrainResult.messages``.

    The metric that picks ``best.ckpt`` is ``cfg.monitor`` or, by default, validation IoU. Validation
    E takes its place when validation has sizes and no mask, and, in the size modes, when fewer than
    ``MIN_VAL_MASKS`` validation images have masks (:func:`~sizeseg.training.selection.choose_monitor`).
    """
    import lightning.pytorch as pl

    from sizeseg.training.progress import EpochLines, resolve_progress
    from sizeseg.training.selection import beats, choose_monitor, former_default, overlap_warning, start_scores

    if mode not in MONITOR:
        raise ValueError(f"mode: expected one of {tuple(MONITOR)}, got {mode!r}")
    if cfg.monitor and cfg.monitor not in MONITORABLE:
        raise ValueError(f"monitor: expected one of {', '.join(MONITORABLE)} or empty (the mode's default), got {cfg.monitor!r}")
    data.check_values()  # NaN images or impossible sizes would train a NaN network
    cfg.check_hardware()
    say = say or (lambda message: None)
    progress = resolve_progress(progress_bar)
    val = data.split("val")
    classes = n_classes(data)
    if cfg.size_loss == "objects" and mode != "pretrain" and "object_sizes" not in data.extra:
        raise ValueError("size_loss: 'objects' needs lists of object sizes, and this data has one size per image; "
                         "give them (finetune --sizes CSV) or use size_loss 'object'")
    fallback = None if mode == "pretrain" else "val/E_obj" if cfg.size_loss == "objects" else "val/E"
    monitor, messages = choose_monitor(MONITOR[mode], cfg.monitor, val, fallback)
    for message in messages:
        say(message)
    train_set = mode_dataset(data.split("train"), mode, m=cfg.m, seed=cfg.seed, flips=cfg.flips,
                             mixed_flips=cfg.mixed_flips)
    note = pixel_units_note(mode, cfg, tuple(int(n) for n in data.images.shape[2:]))
    if note:
        say(note)
    area_ratio = None
    if cfg.area_weight > 0 and mode != "pretrain":
        area_ratio = masked_area_ratio(data.split("train"), cfg, classes)
        say(f"area bounds: area / size^2 in [{area_ratio[0]:.3g}, {area_ratio[1]:.3g}] (the masked training "
            f"images' range, widened by {cfg.area_margin:g})")
    val_set = eval_dataset(val)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    spec = {"name": cfg.model, "in_channels": int(data.images.shape[1]), "out_channels": classes,
            "spatial_dims": int(data.images.ndim - 2)}
    model, spec = _model_and_spec(init) if init is not None else (build_model(**spec), spec)
    if int(spec.get("out_channels", 1)) != classes:
        raise ValueError(f"--init: {init} holds a network with {spec.get('out_channels', 1)} output channel(s), but the "
                         f"data has {classes} class(es); start from a checkpoint trained on these classes")
    # with --init, its network; the metric that picks best.ckpt as resolved, since a resumed run restores
    # the checkpoint callback's best score and must compare like with like
    settings = {**run_settings(mode, cfg, init), "model": spec["name"], "monitor": monitor}
    if resume and last_checkpoint(out_dir) is not None:
        # runs recorded an empty monitor before it was resolved here; in pre-training it resolves as it did
        meant = {"monitor": {"": former_default(mode, cfg.size_loss) or monitor}}
        check_resume(out_dir, settings, TrainConfig().to_dict(),
                     "resume with the same settings, start afresh with --no-resume (resume=False) or use another --out",
                     meant)
    write_run_settings(out_dir, settings)
    start, start_iou, start_weights = None, None, None
    if init is not None:
        # with a size metric, also the start's overlap, to compare best.ckpt with: E cannot see a mask drift
        start, start_iou = start_scores(model, val, monitor)
        start_weights = copy.deepcopy(model.state_dict())
        say(f"start ({Path(init).name}): {monitor} {start:.4g} on validation")
    terms = loss_terms_for(mode, cfg, area_ratio)
    if mode == "mixed" and sum(t.weight > 0 for t in terms) >= 2 and any(t.name == "bce" for t in terms):
        from sizeseg.training.balance import balance_note, gradient_balance, probe_batch

        # the terms' pull on this network at its start: a weight means nothing without it
        batch = probe_batch(train_set, min(cfg.batch_size, 16), cfg.mask_fraction, cfg.seed)
        say(balance_note(gradient_balance(model, terms, batch)))
    module = SegmentationModule(
        model.train(), terms, lr=cfg.lr, lr_step=cfg.lr_step, lr_gamma=cfg.lr_gamma,
        model_spec=spec, class_names=data.params.get("classes") if classes > 1 else None,
    )
    datamodule = SegmentationDataModule(
        train_set, val_set, batch_size=cfg.batch_size, num_workers=cfg.num_workers, seed=cfg.seed,
        mask_fraction=cfg.mask_fraction if mode == "mixed" else None, epoch_items=cfg.epoch_items,
    )
    # Lightning's banners and its advertisement for a logging service go to INFO; keep warnings
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    trainer = make_trainer(
        out_dir, max_epochs=cfg.max_epochs, monitor=monitor, mode=MONITORABLE[monitor], patience=cfg.patience or None,
        accelerator=cfg.accelerator, devices=cfg.devices, strategy=cfg.strategy, progress_bar=progress == "bar",
        limit_train_batches=cfg.limit_train_batches, val_every=cfg.val_every, min_epochs=cfg.min_epochs_for(mode),
    )
    if progress == "lines":
        trainer.callbacks.append(EpochLines())
    began = time.perf_counter()
    fit(trainer, module, datamodule, resume=resume)
    best_score = _best_score(trainer)
    kept = start is not None and not beats(best_score, start, monitor)
    if kept:
        # no epoch beat the start on the metric that picks best.ckpt: best.ckpt is the start
        module.model.load_state_dict(start_weights)
        trainer.save_checkpoint(Path(out_dir) / "checkpoints" / "best.ckpt", weights_only=True)
        messages.append(f"fine-tuning never beat its start on validation ({monitor} start {start:.4g}, best epoch "
                        f"{_fmt(best_score)}): best.ckpt holds the start's weights")
        say(messages[-1])
    best_iou = None
    if start_iou is not None:
        best_iou = start_iou if kept else float(evaluate_model(load_model(best_checkpoint(out_dir)), val)["IoU"])
        warning = overlap_warning(start_iou, best_iou, monitor, int(np.asarray(val.has_mask, bool).sum()), init)
        if warning:
            messages.append(warning)
            say(warning)
    return TrainResult(Path(out_dir), best_checkpoint(out_dir), last_checkpoint(out_dir),
                       Path(out_dir) / "metrics.csv", time.perf_counter() - began, monitor=monitor,
                       start_score=start, best_score=best_score, start_kept=kept, start_iou=start_iou,
                       best_iou=best_iou, messages=messages)


def _best_score(trainer) -> float | None:
    """The best monitored score of the run (the "best" checkpoint callback's), or None."""
    for callback in trainer.checkpoint_callbacks:
        if getattr(callback, "monitor", None) and callback.best_model_score is not None:
            return float(callback.best_model_score)
    return None


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"


@torch.no_grad()
def predict_logits(model: nn.Module, images: np.ndarray | torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Logits (N, 1, *spatial) of ``model`` in eval mode for images (N, C, *spatial)."""
    images = torch.as_tensor(images, dtype=torch.float32)
    model.eval()
    out = [model(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros((0, 1) + tuple(images.shape[2:]))


def evaluate_model(model: nn.Module, data, batch_size: int = 64) -> dict[str, Any]:
    """Mean E (images with a size), IoU and Dice (images with a mask) of ``model`` on ``data``.

    Returns a dict with the means, ``n`` (images), ``n_masks`` (images with a mask: IoU and Dice
    are their means), ``n_sizes`` (images with a size: E is their mean), the per-image arrays
    ``E_per_image`` (N,; NaN without a size), ``IoU_per_image`` and ``Dice_per_image`` (one per
    masked image, in order) and ``predicted_size`` (N,).
    """
    return evaluate_logits(predict_logits(model, data.images, batch_size), data)


def evaluate_logits(logits: torch.Tensor, data) -> dict[str, Any]:
    """:func:`evaluate_model`'s scores of logits (N, C, *spatial) for the items of ``data`` (mask: logits > 0).

    With C > 1 classes IoU, Dice and E are means over the classes and ``IoU_<class>`` the
    per-class means; with size lists (``extra["object_sizes"]``) ``E_obj`` and ``AE_obj`` are
    the per-object size errors (:mod:`sizeseg.metrics.object_size_error`), also per image.
    """
    from sizeseg.data.size_lists import size_lists

    masks = torch.from_numpy(np.asarray(data.masks))
    classes = logits.shape[1]
    batch = {"mask": (masks[:, None] > 0) if classes == 1 else torch.stack([masks == c + 1 for c in range(classes)], 1),
             "has_mask": torch.from_numpy(np.asarray(data.has_mask, bool)),
             "size": torch.from_numpy(np.asarray(data.sizes, np.float32))}
    lists = size_lists(data)
    if lists is not None:
        batch["object_sizes"] = torch.from_numpy(lists)
    scores = score_batch(logits, batch)
    sizes = batch["size"]

    def mean(x: torch.Tensor) -> float:
        ok = ~torch.isnan(x)
        return float(x[ok].mean()) if bool(ok.any()) else float("nan")

    out = {
        "E": mean(scores["E"]), "IoU": mean(scores["IoU"]), "Dice": mean(scores["Dice"]),
        "n": int(len(data)), "n_masks": int(batch["has_mask"].sum()), "n_sizes": int((~torch.isnan(sizes)).sum()),
        "E_per_image": scores["E"].numpy(), "IoU_per_image": scores["IoU"].numpy(),
        "Dice_per_image": scores["Dice"].numpy(),
        "predicted_size": scores["predicted_size"][:, 0].numpy() if logits.shape[1] == 1
        else scores["predicted_size"].numpy(),
    }
    for k, name in enumerate(data.params.get("classes") or [] if logits.shape[1] > 1 else []):
        out[f"IoU_{name}"] = mean(scores["IoU_class"][:, k])
    for name in ("E_obj", "AE_obj"):
        if name in scores:
            out[name] = mean(scores[name])
            out[f"{name}_per_image"] = scores[name].numpy()
    return out
