"""Training: the LightningModule, loss-term adapters, data glue, the Trainer factory and the modes."""

from sizeseg.training.config import TrainConfig
from sizeseg.training.data import SegmentationDataModule, eval_dataset, mode_dataset
from sizeseg.training.loss_terms import BCETerm, LossTerm, SizeMatchedTerm, SizeTerm, zero_like_graph
from sizeseg.training.module import SegmentationModule
from sizeseg.training.pipeline import TrainResult, evaluate_model, load_model, predict_logits, train
from sizeseg.training.trainer import best_checkpoint, fit, last_checkpoint, make_trainer, merge_metrics

__all__ = [
    "BCETerm", "LossTerm", "SegmentationDataModule", "SegmentationModule", "SizeMatchedTerm", "SizeTerm",
    "TrainConfig", "TrainResult", "best_checkpoint", "evaluate_model", "fit", "last_checkpoint",
    "load_model", "make_trainer", "merge_metrics", "predict_logits", "train", "mode_dataset", "eval_dataset", "zero_like_graph",
]
