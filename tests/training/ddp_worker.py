"""Run by test_ddp.py: 2-process CPU DDP (gloo) for a few steps; each rank writes what it saw.

Usage: python tests/training/ddp_worker.py OUT_DIR   (Lightning re-launches it for rank 1).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import lightning.pytorch as pl  # noqa: E402

from sizeseg.metrics import MeanOverImages  # noqa: E402
from sizeseg.models import build_model  # noqa: E402
from sizeseg.training import (  # noqa: E402
    BCETerm, SegmentationDataModule, SegmentationModule, SizeTerm, eval_dataset, fit, make_trainer, mode_dataset,
)
from tests.training.helpers import tiny_data  # noqa: E402


def main(out: Path) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0, verbose=False)
    data = tiny_data(24)
    spec = {"name": "unet-tiny", "in_channels": 1, "out_channels": 1, "spatial_dims": 2}
    terms = [BCETerm(), SizeTerm(n_samples=1)]
    module = SegmentationModule(build_model(**spec), terms, lr=1e-3, model_spec=spec)
    dm = SegmentationDataModule(mode_dataset(data.split("train"), "mixed", m=4), eval_dataset(data.split("val")),
                                batch_size=2, mask_fraction=0.5)
    trainer = make_trainer(out / "run", max_epochs=1, monitor=None, strategy="ddp", devices=2,
                           accelerator="cpu", progress_bar=False, limit_train_batches=2)
    fit(trainer, module, dm, resume=False)
    val = trainer.validate(module, datamodule=dm, verbose=False)[0]
    rank = trainer.global_rank
    # Uneven per-rank counts: rank 0 sees 1 value, rank 1 sees 3; the mean must be over all 4.
    mean = MeanOverImages()
    mean.update(torch.tensor([1.0]) if rank == 0 else torch.tensor([2.0, 3.0, 10.0]))
    report = {
        "rank": rank, "world_size": trainer.world_size,
        "val": {k: float(v) for k, v in val.items()}, "uneven_mean": float(mean.compute()),
        "param_sum": float(sum(p.double().sum() for p in module.model.parameters())),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
