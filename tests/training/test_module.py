"""SegmentationModule's optimiser settings and the losses' temperature."""

from __future__ import annotations

import pytest
import torch

from sizeseg.models import build_model
from sizeseg.training import BCETerm, SegmentationModule


class _Recorder:
    name, weight = "recorder", 1.0

    def __init__(self) -> None:
        self.seen = None

    def __call__(self, logits, batch):
        self.seen = logits.detach().clone()
        return logits.mean()


def test_the_losses_see_logits_over_the_temperature_and_predictions_do_not():
    torch.manual_seed(0)
    net = build_model("unet-tiny")
    plain, hot = _Recorder(), _Recorder()
    batch = {"image": torch.randn(2, 1, 32, 32)}
    SegmentationModule(net, [plain]).training_step(batch, 0)
    SegmentationModule(net, [hot], temperature=0.1).training_step(batch, 0)
    torch.testing.assert_close(hot.seen, plain.seen / 0.1)
    assert torch.equal(SegmentationModule(net, [plain], temperature=0.1)(batch["image"]), net(batch["image"]))


def test_optimiser_betas_weight_decay_and_cosine_schedule():
    import lightning.pytorch as pl

    module = SegmentationModule(build_model("unet-tiny"), [BCETerm()], lr=1e-2, betas=(0.5, 0.999))
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["betas"] == (0.5, 0.999)
    module = SegmentationModule(build_model("unet-tiny"), [BCETerm()], lr=1e-2, weight_decay=1e-4, lr_schedule="cosine")
    module.trainer = pl.Trainer(max_epochs=4, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    config = module.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.AdamW) and config["optimizer"].param_groups[0]["weight_decay"] == 1e-4
    scheduler = config["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(4):
        lrs.append(config["optimizer"].param_groups[0]["lr"])
        config["optimizer"].step()
        scheduler.step()
    assert lrs == pytest.approx([1e-2 * (1 + torch.cos(torch.tensor(torch.pi * k / 4)).item()) / 2 for k in range(4)])


@pytest.mark.parametrize("kwargs, match", [
    ({"temperature": 0.0}, "temperature: expected a positive finite number"),
    ({"temperature": float("inf")}, "temperature"),
    ({"betas": (0.5, 1.0)}, r"betas: expected two numbers in \[0, 1\)"),
    ({"betas": (0.5,)}, "betas"),
    ({"weight_decay": -1.0}, "weight_decay"),
    ({"lr_schedule": "linear"}, "lr_schedule: expected one of"),
])
def test_bad_settings_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SegmentationModule(build_model("unet-tiny"), [BCETerm()], **kwargs)
