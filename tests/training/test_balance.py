import math

import numpy as np

import pytest
import torch

from sizeseg.models import build_model
from sizeseg.training import BCETerm, SizeTerm, TrainConfig, mode_dataset, train
from sizeseg.training.balance import balance_note, gradient_balance, probe_batch
from tests.training.helpers import tiny_data


def _batch():
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(4, 1, 24, 24)
    mask[:, :, 6:16, 8:18] = 1
    return {"image": torch.randn(4, 1, 24, 24, generator=g), "mask": mask,
            "has_mask": torch.tensor([True, True, False, False]),
            "size": torch.tensor([float("nan"), float("nan"), 10.0, 6.0])}


class _Square:
    """A deterministic term: the weighted mean of the squared logits of the sized images."""
    name = "square"

    def __init__(self, weight):
        self.weight = weight

    def __call__(self, logits, batch):
        return logits[~torch.isnan(batch["size"])].pow(2).mean()


def _grad_norm(model, loss):
    model.zero_grad()
    loss.backward()
    return math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters() if p.grad is not None))


def test_gradient_balance_equals_each_terms_gradient_norm_over_bces_computed_apart():
    torch.manual_seed(0)
    model = build_model("unet-tiny")
    batch = _batch()
    terms = [BCETerm(weight=2.0), _Square(0.3)]
    ratios = gradient_balance(model, terms, batch)
    # the reference: a fresh forward pass for each term, on a copy in training mode
    import copy
    ref = copy.deepcopy(model).train()
    bce = _grad_norm(ref, 2.0 * terms[0](ref(batch["image"]), batch))
    ref = copy.deepcopy(model).train()
    square = _grad_norm(ref, 0.3 * terms[1](ref(batch["image"]), batch))
    assert list(ratios) == ["square"]
    assert ratios["square"] == pytest.approx(square / bce, rel=1e-5)
    # a weight scales its ratio by itself, the reference's weight by its inverse
    assert gradient_balance(model, [BCETerm(weight=2.0), _Square(0.6)], batch)["square"] == pytest.approx(
        2 * ratios["square"], rel=1e-5)
    assert gradient_balance(model, [BCETerm(weight=1.0), _Square(0.3)], batch)["square"] == pytest.approx(
        2 * ratios["square"], rel=1e-5)


def test_gradient_balance_leaves_the_network_and_the_random_state_as_they_were():
    torch.manual_seed(0)
    model = build_model("unet-tiny").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}  # batch-norm statistics included
    rng = torch.get_rng_state()
    ratios = gradient_balance(model, [BCETerm(), SizeTerm(weight=1e-3), _Square(0.0)], _batch())
    # a term of weight 0 is left out; SizeLoss draws its noise from torch's generator, which is restored
    assert list(ratios) == ["size"] and math.isfinite(ratios["size"])
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training and all(p.grad is None for p in model.parameters())


def test_gradient_balance_names_a_missing_reference_and_a_zero_reference_gives_nan():
    model = build_model("unet-tiny")
    with pytest.raises(ValueError, match="reference: expected one of the terms' names"):
        gradient_balance(model, [SizeTerm()], _batch())
    no_masks = {**_batch(), "has_mask": torch.zeros(4, dtype=torch.bool)}
    assert math.isnan(gradient_balance(model, [BCETerm(), _Square(1.0)], no_masks)["square"])
    assert "square 0.5x" in balance_note({"square": 0.5})


def test_probe_batch_holds_the_masked_share_and_sized_items():
    data = tiny_data(24).split("train")
    dataset = mode_dataset(data, "mixed", m=4, seed=0)
    batch = probe_batch(dataset, 6, 0.5, seed=1)
    assert batch["image"].shape[0] == 6 and int(batch["has_mask"].sum()) == 3
    assert not torch.isnan(batch["size"][~batch["has_mask"].bool()]).any()
    few = probe_batch(dataset, 16, 0.75, seed=1)  # only 4 masked items exist: the sized fill the rest
    n_sized = int((~np.asarray(dataset.has_mask, bool)).sum())
    assert int(few["has_mask"].sum()) == 4 and few["image"].shape[0] == 4 + min(12, n_sized)
    assert torch.equal(probe_batch(dataset, 6, 0.5, seed=1)["image"], batch["image"])


def test_mixed_training_says_how_strongly_each_term_pulls_at_its_start(tmp_path):
    data = tiny_data(24)
    cfg = TrainConfig(model="unet-tiny", batch_size=4, lr=1e-3, patience=0, max_epochs=1, m=6,
                      limit_train_batches=2, area_weight=0.1)
    said = []
    train("mixed", data, tmp_path / "mixed", cfg, progress_bar=False, say=said.append)
    notes = [m for m in said if m.startswith("gradient at the start, against bce's")]
    assert len(notes) == 1 and "size " in notes[0] and "area_bound " in notes[0]
    said = []
    train("mixed", data, tmp_path / "control", TrainConfig(**{**cfg.to_dict(), "size_weight": 0.0,
                                                                "area_weight": 0.0}),
          progress_bar=False, say=said.append)
    assert not any(m.startswith("gradient at the start") for m in said)  # BCE alone: nothing to balance
