import csv

import numpy as np
import pytest
import torch

from sizeseg.training import (
    SegmentationDataModule, TrainConfig, evaluate_model, load_model, mode_dataset, train,
)
from tests.training.helpers import tiny_data

CFG = dict(model="unet-tiny", batch_size=4, lr=1e-3, patience=0)


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_mode_datasets_expose_what_each_mode_may_see():
    data = tiny_data(24).split("train")
    pre = mode_dataset(data, "pretrain", m=3, seed=1)
    fine = mode_dataset(data, "finetune")
    mixed = mode_dataset(data, "mixed", m=3, seed=1)
    assert len(pre) == 3 and bool(pre.has_mask.all())
    assert len(fine) == len(data) and not bool(fine.has_mask.any())
    assert int(mixed.has_mask.sum()) == 3
    assert {pre[i]["id"] for i in range(3)} == {mixed[i]["id"] for i in range(len(mixed)) if mixed[i]["has_mask"]}
    assert not np.isnan([float(fine[i]["size"]) for i in range(len(fine))]).any()
    with pytest.raises(ValueError, match="m: expected an int in"):
        mode_dataset(data, "pretrain", m=100)


def test_mixed_flips_only_when_asked_and_only_in_mixed_mode():
    train = tiny_data(40).split("train")
    assert mode_dataset(train, "mixed", m=2).augment == "none"  # the recorded mixed runs had no flips
    assert mode_dataset(train, "mixed", m=2, mixed_flips=True).augment == "flip"
    assert mode_dataset(train, "finetune", mixed_flips=True).augment == "none"  # size-only: as in the paper
    assert mode_dataset(train, "pretrain", m=2, flips=False, mixed_flips=True).augment == "none"
    flipped = mode_dataset(train, "mixed", m=2, seed=0, mixed_flips=True)
    torch.manual_seed(0)
    items = [flipped[i] for i in range(len(flipped)) for _ in range(4)]
    plain = mode_dataset(train, "mixed", m=2, seed=0)
    assert any(not torch.equal(torch.as_tensor(a["image"]), torch.as_tensor(plain[i // 4]["image"]))
               for i, a in enumerate(items))
    assert all(float(a["size"]) == float(plain[i // 4]["size"]) or math.isnan(float(a["size"]))
               for i, a in enumerate(items))  # a flip keeps the object's size


def test_mixed_sampler_draws_the_requested_mask_fraction():
    ds = mode_dataset(tiny_data(40).split("train"), "mixed", m=2)
    dm = SegmentationDataModule(ds, batch_size=5, mask_fraction=0.5, seed=3)
    drawn = torch.cat([b["has_mask"] for _ in range(20) for b in dm.train_dataloader()])
    assert 0.4 < drawn.float().mean().item() < 0.6  # 2 of 20 items masked, but half the draws


def test_pretrain_resume_continues_the_epoch_counter(tmp_path):
    data = tiny_data(24)
    first = train("pretrain", data, tmp_path / "run", TrainConfig(**CFG, max_epochs=1, m=8), progress_bar=False)
    assert first.best.is_file() and first.last.is_file()
    assert torch.load(first.last, weights_only=False)["epoch"] == 0
    # The evaluation helper reproduces the logged validation metrics of the last epoch.
    scores = evaluate_model(load_model(first.last), data.split("val"))
    logged = [r for r in _rows(first.metrics_csv) if r.get("val/IoU")][-1]
    assert scores["IoU"] == pytest.approx(float(logged["val/IoU"]), abs=1e-5)
    assert scores["E"] == pytest.approx(float(logged["val/E"]), rel=1e-5)
    # A later call with more epochs resumes from last.ckpt: the counter continues at epoch 1.
    second = train("pretrain", data, tmp_path / "run", TrainConfig(**CFG, max_epochs=2, m=8), progress_bar=False)
    assert torch.load(second.last, weights_only=False)["epoch"] == 1
    epochs = sorted({int(r["epoch"]) for r in _rows(second.metrics_csv) if r.get("val/IoU")})
    assert epochs == [0, 1]  # the merged log keeps the first run's epoch


@pytest.mark.slow
def test_pretrain_then_finetune_and_mixed_two_epochs(tmp_path):
    data = tiny_data(24)
    pre = train("pretrain", data, tmp_path / "pre", TrainConfig(**CFG, max_epochs=1, m=6), progress_bar=False)
    for mode, matched in (("finetune", 0.0), ("mixed", 0.0), ("finetune", 1.0)):
        cfg = TrainConfig(**CFG, max_epochs=2, m=6, limit_train_batches=2, size_matched_weight=matched)
        run = train(mode, data, tmp_path / f"{mode}{matched}", cfg, init=pre.best, progress_bar=False)
        rows = _rows(run.metrics_csv)
        assert any(r.get("train/size") for r in rows)
        assert (matched > 0) == any(r.get("train/size_matched") for r in rows)
        assert (mode == "mixed") == any(r.get("train/bce") for r in rows)
        assert max(int(r["epoch"]) for r in rows) == 1
        assert float([r for r in rows if r.get("epoch_time")][-1]["epoch_time"]) > 0
        assert np.isfinite(evaluate_model(load_model(run.best), data.split("test"))["E"])


def test_a_monitor_that_is_no_validation_metric_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="monitor: expected one of val/IoU, val/Dice, val/E"):
        train("pretrain", tiny_data(8), tmp_path / "run", TrainConfig(**CFG, monitor="val/loss"), progress_bar=False)
    assert not (tmp_path / "run").exists()


def test_small_training_sets_are_repeated_to_epoch_items():
    ds = mode_dataset(tiny_data(40).split("train"), "pretrain", m=5)
    dm = SegmentationDataModule(ds, batch_size=4, epoch_items=18)
    ids = [i for b in dm.train_dataloader() for i in b["id"]]
    assert len(ids) == 20  # 4 passes of 5 items, in batches of 4 (drop_last)
    assert all(ids.count(i) == 4 for i in set(ids)) and len(set(ids)) == 5
    assert all(len(set(ids[k:k + 5])) == 5 for k in range(0, 20, 5))  # whole permutations, one after another
    with pytest.raises(ValueError, match="epoch_items"):
        SegmentationDataModule(ds, epoch_items=0)


def test_mixed_epochs_of_a_small_set_draw_epoch_items_and_keep_the_mask_fraction():
    ds = mode_dataset(tiny_data(40).split("train"), "mixed", m=5)
    has = np.asarray(ds.has_mask, bool)
    assert 0 < has.sum() < len(ds) < 400
    for items, expected in ((None, len(ds)), (400, 400)):
        dm = SegmentationDataModule(ds, batch_size=8, mask_fraction=0.5, epoch_items=items)
        ids = [i for b in dm.train_dataloader() for i in b["id"]]
        assert len(ids) == expected
    masked = {str(i) for i, h in zip(ds.ids, has) if h}
    assert abs(sum(i in masked for i in ids) / len(ids) - 0.5) < 0.1  # 400 draws: the fraction holds


def test_default_epoch_items_gives_a_few_masks_epochs_of_several_steps(monkeypatch):
    from sizeseg.training import config

    assert config.DEFAULT_EPOCH_ITEMS is None  # tests/conftest.py: one pass over the tests' tiny sets
    monkeypatch.setattr(config, "DEFAULT_EPOCH_ITEMS", config.EPOCH_ITEMS)
    cfg = TrainConfig()
    assert cfg.epoch_items == config.EPOCH_ITEMS and cfg.epoch_items // cfg.batch_size >= 60


@pytest.mark.slow
def test_true_size_oracle_never_raises_the_size_error(tmp_path):
    from sizeseg.experiments.hippocampus import true_size_scores

    data = tiny_data(24)
    pre = train("pretrain", data, tmp_path / "pre", TrainConfig(**CFG, max_epochs=2, m=12), progress_bar=False)
    test = data.split("test")
    before = evaluate_model(load_model(pre.best), test)
    after = true_size_scores(pre.best, test)
    # each image's mask moves to the reachable size nearest its true size, so no image's error grows
    assert before["E"] > 0 and after["E"] <= before["E"] + 1e-6
    assert 0.0 <= after["IoU"] <= 1.0 and 0.0 <= after["Dice"] <= 1.0


def test_area_bounds_join_size_training_with_the_masked_images_ratio(tmp_path):
    from sizeseg.data.bounds import area_ratio_range
    from sizeseg.data.datasets import choose_masked
    from sizeseg.training.pipeline import loss_terms_for, masked_area_ratio

    data = tiny_data(24)
    # per-pixel weights: 1e-3 and 0.1 at 32x32 weigh as 1.02 and 102 in image units
    cfg = TrainConfig(**CFG, max_epochs=1, m=6, limit_train_batches=2, area_weight=0.1, size_units="pixels",
                      size_weight=1e-3)
    train_split = data.split("train")
    masked = np.flatnonzero(choose_masked(train_split.has_mask, 6, 0))
    direct = area_ratio_range(train_split.masks[masked].sum((1, 2)), train_split.sizes[masked], 0.1)
    assert masked_area_ratio(train_split, cfg, 1) == pytest.approx(direct)
    assert [t.name for t in loss_terms_for("mixed", cfg, direct)] == ["bce", "size", "area_bound"]
    assert [t.name for t in loss_terms_for("pretrain", cfg, direct)] == ["bce"]
    said = []
    run = train("finetune", data, tmp_path / "ft", cfg, progress_bar=False, say=said.append)
    assert any(r.get("train/area_bound") for r in _rows(run.metrics_csv))
    assert any(m.startswith("area bounds: area / size^2 in [") for m in said)
    # 32x32 is a quarter of the size 1e-3 per pixel suits: the user is told, with the way out
    assert any(m.startswith("note: size_units 'pixels' makes the weights per pixel; at 32x32") and
               "size_weight 1.02 (~0.26x the README's 4)" in m and "area_weight 102 (~2.6x the README's 40)" in m
               for m in said)
    with pytest.raises(ValueError, match="area_weight > 0 needs the range"):
        loss_terms_for("finetune", cfg)
    with pytest.raises(ValueError, match="area_weight: the area bounds take one class"):
        masked_area_ratio(train_split, cfg, 3)
    no_masks = data.split("train")
    no_masks.has_mask[:] = False
    with pytest.raises(ValueError, match="area_weight: the area bounds need masked training images"):
        masked_area_ratio(no_masks, TrainConfig(**CFG, area_weight=0.1), 1)


def test_area_bounds_of_object_lists_use_the_sum_of_squared_sizes():
    from sizeseg.data.bounds import area_ratio_range
    from sizeseg.data.datasets import choose_masked
    from sizeseg.data.synthetic_objects import synthetic_objects_data
    from sizeseg.training.pipeline import loss_terms_for, masked_area_ratio

    train_split = synthetic_objects_data(30, shape=(32, 32), seed=0, objects=(2, 4)).split("train")
    masked = np.flatnonzero(choose_masked(train_split.has_mask, 8, 0))
    areas = train_split.masks[masked].reshape(len(masked), -1).sum(1)
    lists = train_split.extra["object_sizes"][masked]
    objects = TrainConfig(**CFG, m=8, area_weight=1.0, size_loss="objects")
    single = TrainConfig(**CFG, m=8, area_weight=1.0, size_loss="object")
    assert masked_area_ratio(train_split, objects, 1) == pytest.approx(
        area_ratio_range(areas, np.sqrt(np.nansum(lists.astype(float) ** 2, -1)), 0.1))
    assert masked_area_ratio(train_split, single, 1) == pytest.approx(
        area_ratio_range(areas, train_split.sizes[masked], 0.1))
    # the lists pin the area down better than the largest size does
    lo, hi = masked_area_ratio(train_split, objects, 1)
    lo1, hi1 = masked_area_ratio(train_split, single, 1)
    assert hi / lo < hi1 / lo1
    assert [t.per_object for t in loss_terms_for("finetune", objects, (lo, hi))[1:]] == [True]
    assert [t.per_object for t in loss_terms_for("finetune", single, (lo1, hi1))[1:]] == [False]


PER_PIXEL = {"size_units": "pixels", "size_weight": 1e-3}


@pytest.mark.parametrize("mode, changes, spatial, ratio", [
    ("mixed", PER_PIXEL, (256, 256), 16.384),     # 1e-3 x 256^2 = 65.5 in image units, 16x the default 4
    ("mixed", PER_PIXEL, (32, 32), 0.256),
    ("mixed", PER_PIXEL, (64, 96), None),         # within 2x of the balance
    ("mixed", {}, (256, 256), 16.384),            # the per-pixel default at 16x the pixels of 64x64
    ("mixed", {"size_units": "image", "size_weight": 4.0}, (256, 256), None),  # image units: any shape
    ("mixed", {"size_weight": 4.0}, (64, 64), 4096.0),  # the image-unit weight read per pixel
    ("mixed", {**PER_PIXEL, "size_weight": 0.0}, (256, 256), None),  # the mask-only control: one term
    ("finetune", PER_PIXEL, (256, 256), None),    # the size term alone: no other term to balance it against
    ("finetune", {**PER_PIXEL, "area_weight": 0.01}, (256, 256), 16.384),
    ("mixed", {**PER_PIXEL, "size_criterion": "relative"}, (256, 256), None),  # no unit: nothing to scale
    ("pretrain", PER_PIXEL, (256, 256), None),
    ("mixed", PER_PIXEL, (16, 16, 16), 0.064),    # 3D: 1e-3 x (16^3)^(2/3) = 0.256
])
def test_pixel_units_note_when_per_pixel_weights_are_far_from_the_balance(mode, changes, spatial, ratio):
    from sizeseg.training.pipeline import pixel_units_note

    note = pixel_units_note(mode, TrainConfig(**changes), spatial)
    assert (note is None) == (ratio is None)
    if ratio is not None:
        assert f"(~{ratio:.2g}x the README's 4)" in note and "image units (--size-units image" in note
        n = np.prod(spatial) ** (2 / len(spatial))  # the per-pixel weight that equals 4 in image units
        assert note.split("that balance per pixel here: ")[1].startswith(f"size_weight {4 / n:.2g}")


def test_pixel_units_note_scales_the_area_weight_by_the_pixel_count():
    # the area penalty in pixels, (A - b)^2 / N, grows as N at a finer grid: 0.01 per pixel at 128x128
    # weighs as 0.01 x 16384 = 164 in image units, ~4.1x the README's 40
    from sizeseg.training.pipeline import pixel_units_note

    note = pixel_units_note("finetune", TrainConfig(size_units="pixels", size_weight=0.0, area_weight=0.01,
                                                    ), (128, 128))
    assert note is None  # one weighted term: nothing to balance against
    note = pixel_units_note("mixed", TrainConfig(size_units="pixels", size_weight=0.0, area_weight=0.01), (128, 128))
    assert "area_weight 164 (~4.1x the README's 40)" in note and "size_weight" not in note
    assert note.endswith("that balance per pixel here: area_weight 0.0024")  # 40 / 128^2


@pytest.mark.parametrize("mode, min_epochs, epochs", [("pretrain", None, 5), ("pretrain", 0, 2), ("pretrain", 3, 3),
                                                      ("finetune", None, 2)])
def test_early_stopping_waits_for_min_epochs_and_pretraining_waits_by_default(tmp_path, mode, min_epochs, epochs):
    # lr 1e-12 on a network without running statistics: validation never improves, so patience 1
    # would stop every run after its second epoch
    data = tiny_data(24)
    init = None
    if mode == "finetune":
        init = train("pretrain", data, tmp_path / "pre", TrainConfig(**{**CFG, "model": "unet-plain-instancenorm"},
                                                                     max_epochs=1, m=6), progress_bar=False).best
    cfg = TrainConfig(**{**CFG, "model": "unet-plain-instancenorm", "lr": 1e-12, "patience": 1}, max_epochs=5, m=6,
                      min_epochs=min_epochs)
    run = train(mode, data, tmp_path / "run", cfg, init=init, progress_bar=False)
    assert sorted({int(r["epoch"]) for r in _rows(run.metrics_csv) if r.get("val/E")}) == list(range(epochs))


@pytest.mark.parametrize("on_train_epoch_end", [True, False])
def test_early_stopping_after_min_epochs_runs_on_when_the_metric_improved_late(on_train_epoch_end):
    # Lightning's Trainer(min_epochs) keeps a stop decided earlier and ends the run at min_epochs even
    # after the metric improved; EarlyStoppingAfter counts from the best epoch as usual. Lightning
    # decides in one of two public hooks, so both are driven here as a fit would call them.
    from types import SimpleNamespace

    from lightning.pytorch.trainer.states import TrainerFn

    from sizeseg.training.trainer import EarlyStoppingAfter

    def run(scores, min_epochs, patience=2):
        stopper = EarlyStoppingAfter(min_epochs, monitor="val/IoU", mode="max", patience=patience, check_finite=False,
                                     check_on_train_epoch_end=on_train_epoch_end)
        trainer = SimpleNamespace(should_stop=False, current_epoch=0, callback_metrics={}, fast_dev_run=False,
                                  sanity_checking=False, state=SimpleNamespace(fn=TrainerFn.FITTING),
                                  strategy=SimpleNamespace(reduce_boolean_decision=lambda d, all=False: d))
        for epoch, score in enumerate(scores):
            trainer.current_epoch = epoch
            trainer.callback_metrics = {"val/IoU": torch.tensor(score)}
            stopper.on_validation_end(trainer, None)
            stopper.on_train_epoch_end(trainer, None)
            if trainer.should_stop:
                return epoch + 1  # epochs run
        return len(scores)

    late = [0.4, 0.0, 0.0, 0.0, 0.0, 0.6, 0.7, 0.75, 0.74, 0.73, 0.72, 0.71, 0.70]
    assert run(late, 0) == 3  # patience 2 alone ends it in the flat phase
    assert run(late, 4) == 4  # still flat at its 4th epoch: stops there
    assert run(late, 6) == 10  # improved at its 6th and up to its 8th epoch: two more, then it stops
    assert run([0.5] * 12, 6) == 6  # no improvement ever: stops right at min_epochs
