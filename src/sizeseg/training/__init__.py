"""Training: the LightningModule, loss-term adapters, data glue, the Trainer factory and the modes.

Names are imported on first use, so that ``sizeseg.training.config`` (what ``--help`` reads its
defaults from) loads without Lightning.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "TrainConfig": "config",
    "gradient_balance": "balance", "probe_batch": "balance",
    "SegmentationDataModule": "data", "eval_dataset": "data", "mode_dataset": "data",
    "BCETerm": "loss_terms", "LossTerm": "loss_terms", "ObjectSizeTerm": "loss_terms", "SizeMatchedTerm": "loss_terms",
    "AreaBoundTerm": "loss_terms",
    "SizeTerm": "loss_terms",
    "zero_like_graph": "loss_terms",
    "SegmentationModule": "module",
    "TrainResult": "pipeline", "evaluate_model": "pipeline", "load_model": "pipeline", "predict_logits": "pipeline",
    "train": "pipeline",
    "best_checkpoint": "trainer", "fit": "trainer", "last_checkpoint": "trainer", "make_trainer": "trainer",
    "merge_metrics": "trainer",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
