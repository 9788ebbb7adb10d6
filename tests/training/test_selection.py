"""The monitor a validation split supports, start comparison, no batch of one image, epoch lines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sizeseg.training.config import PREDATING, TrainConfig
from sizeseg.training.data import NoSingletonBatchSampler, SegmentationDataModule, mode_dataset
from sizeseg.training.progress import EpochLines, resolve_progress
from sizeseg.training.selection import IOU_DROP_TOLERANCE, MIN_VAL_MASKS, beats, choose_monitor, overlap_warning
from tests.training.helpers import tiny_data


def _val(masks: int, sizes: bool = True):
    val = tiny_data(24).split("test")
    val.has_mask[:] = np.arange(len(val)) < masks
    if not sizes:
        val.sizes[~val.has_mask] = np.nan
    return val


def test_choose_monitor_falls_back_to_e_and_warns_on_few_masks():
    assert choose_monitor("val/IoU", "", _val(MIN_VAL_MASKS)) == ("val/IoU", [])
    monitor, messages = choose_monitor("val/IoU", "", _val(2))
    assert monitor == "val/IoU" and "rests on 2 masked image(s), fewer than 5" in messages[0]
    monitor, messages = choose_monitor("val/IoU", "", _val(0))
    assert monitor == "val/E" and "sizes only" in messages[0]
    assert choose_monitor("val/E", "", _val(0)) == ("val/E", [])
    with pytest.raises(ValueError, match="monitor: val/Dice needs validation images with masks"):
        choose_monitor("val/IoU", "val/Dice", _val(0))
    with pytest.raises(ValueError, match="monitor: val/IoU needs validation images with masks; .* none \\(0 with"):
        choose_monitor("val/IoU", "", _val(0, sizes=False))
    with pytest.raises(ValueError, match="monitor: expected one of"):
        choose_monitor("val/IoU", "val/loss", _val(3))


def test_size_modes_pick_by_validation_iou_unless_few_masks():
    # fine-tuning's default: validation IoU on 5 or more masks, validation E (or E_obj) below, and says so
    assert choose_monitor("val/IoU", "", _val(MIN_VAL_MASKS), "val/E") == ("val/IoU", [])
    monitor, messages = choose_monitor("val/IoU", "", _val(MIN_VAL_MASKS - 1), "val/E")
    assert monitor == "val/E" and messages == [
        "note: 4 validation image(s) have masks, fewer than 5: best.ckpt is selected, and training stopped early, "
        "by validation E instead of validation IoU (--monitor val/IoU to use the masks anyway)"]
    assert choose_monitor("val/IoU", "", _val(2), "val/E_obj")[0] == "val/E_obj"
    monitor, messages = choose_monitor("val/IoU", "", _val(0), "val/E")
    assert monitor == "val/E" and messages == [
        "note: the validation split has sizes only (6 images, no mask): best.ckpt is selected, and training "
        "stopped early, by validation E instead of validation IoU"]
    # asked for, validation IoU stays, with the warning; with no size to fall back on, it stays too
    monitor, messages = choose_monitor("val/IoU", "val/IoU", _val(2), "val/E")
    assert monitor == "val/IoU" and "rests on 2 masked image(s)" in messages[0]
    no_sizes = _val(2)
    no_sizes.sizes[:] = np.nan
    assert choose_monitor("val/IoU", "", no_sizes, "val/E")[0] == "val/IoU"
    assert choose_monitor("val/IoU", "val/E", _val(MIN_VAL_MASKS), "val/E") == ("val/E", [])


def test_beats_respects_the_direction_and_nan():
    assert beats(0.5, 0.4, "val/Dice") and not beats(0.4, 0.4, "val/IoU")
    assert beats(1.0, 2.0, "val/E") and not beats(None, 2.0, "val/E")
    assert beats(1.0, float("nan"), "val/E") and not beats(float("nan"), float("nan"), "val/E")


@pytest.mark.parametrize("n,batch,expected", [(9, 4, [4, 5]), (10, 4, [4, 4, 2]), (8, 4, [4, 4]), (1, 4, [1]),
                                              (5, 4, [5]), (3, 8, [3])])
def test_no_batch_of_one_image_and_no_item_dropped(n, batch, expected):
    sampler = NoSingletonBatchSampler(range(n), batch_size=batch, drop_last=False)
    batches = list(sampler)
    assert [len(b) for b in batches] == expected and len(sampler) == len(expected)
    assert sorted(i for b in batches for i in b) == list(range(n))


def test_training_loader_sees_every_masked_image():
    train = mode_dataset(tiny_data(42).split("train"), "pretrain")  # 21 masked images
    loader = SegmentationDataModule(train, batch_size=8, seed=0).train_dataloader()
    sizes = [len(b["id"]) for b in loader]
    assert sum(sizes) == 21 and min(sizes) > 1 and len(loader) == len(sizes)
    loader = SegmentationDataModule(mode_dataset(tiny_data(34).split("train"), "pretrain"), batch_size=8).train_dataloader()
    assert [len(b["id"]) for b in loader] == [8, 9]  # 17 images: the lone last one joins the batch before


def test_progress_modes(monkeypatch):
    import sys

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert resolve_progress("auto") == "bar" and resolve_progress(None) == "bar"
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert resolve_progress("auto") == "lines" and resolve_progress(True) == "bar"
    with pytest.raises(ValueError, match="progress: expected one of"):
        resolve_progress("verbose")


def test_epoch_lines_format():
    class Trainer:
        is_global_zero, current_epoch, max_epochs, check_val_every_n_epoch = True, 2, 10, 1
        callback_metrics = {"val/E": torch.tensor(12.25), "val/IoU": torch.tensor(0.8), "val/Dice": torch.tensor(0.9)}

    written = []
    lines = EpochLines(written.append)
    lines.on_train_epoch_start(Trainer(), None)
    for loss in (1.0, 3.0):
        lines.on_train_batch_end(Trainer(), None, {"loss": torch.tensor(loss)}, None, 0)
    lines.on_train_epoch_end(Trainer(), None)
    assert written[0].startswith("epoch 3/10: loss 2; val E 12.25, IoU 0.8, Dice 0.9; ")


def test_new_size_keys_default_and_old_records_read_as_the_paper():
    cfg = TrainConfig()
    assert cfg.size_criterion in ("relative", "squared") and cfg.noise_scale > 0
    assert TrainConfig.record_defaults()["noise_scale"] == PREDATING["noise_scale"] == 1.0
    assert TrainConfig.record_defaults()["size_criterion"] == "squared"


def test_overlap_warning_only_beyond_the_tolerance_and_naming_the_start():
    assert overlap_warning(0.5, 0.5 - IOU_DROP_TOLERANCE, "val/E", 9, "pre.ckpt") is None
    assert overlap_warning(0.5, 0.7, "val/E", 9, "pre.ckpt") is None
    assert overlap_warning(0.5, float("nan"), "val/E", 9, "pre.ckpt") is None
    message = overlap_warning(0.583, 0.411, "val/E_obj", 9, "runs/pre/checkpoints/best.ckpt")
    assert message == ("warning: best.ckpt, picked by validation E_obj, has validation IoU 0.411 against its start's "
                       "0.583 (9 masked validation images). A size error cannot see a mask move off its object: "
                       "compare best.ckpt with the start (runs/pre/checkpoints/best.ckpt) on masks you trust "
                       "(sizeseg evaluate), or pick by the masks with --monitor val/IoU")
