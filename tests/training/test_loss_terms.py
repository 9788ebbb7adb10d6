import numpy as np
import pytest
import torch

from sizeseg import SizeLoss
from sizeseg.ops.size_match import size_matched_mask
from sizeseg.training import BCETerm, SizeMatchedTerm, SizeTerm, TrainConfig, zero_like_graph
from sizeseg.training.pipeline import loss_terms_for


def test_bce_term_is_eq6_on_masked_images():
    torch.manual_seed(0)
    logits = torch.randn(3, 1, 5, 4)
    mask = (torch.rand(3, 1, 5, 4) > 0.5).float()
    batch = {"mask": mask, "has_mask": torch.tensor([True, False, True])}
    a, y = logits[[0, 2]].double(), mask[[0, 2]].double()
    eq6 = (a * (1 - y) + torch.log1p(torch.exp(-a))).mean()
    assert BCETerm(weight=2.0)(logits, batch).item() == pytest.approx(eq6.item(), rel=1e-6)


def test_terms_without_their_images_give_a_connected_zero():
    logits = torch.randn(2, 1, 4, 4, requires_grad=True)
    batch = {"mask": torch.zeros(2, 1, 4, 4), "has_mask": torch.tensor([False, False]),
             "size": torch.tensor([float("nan")] * 2)}
    for term in (BCETerm(), SizeTerm(), SizeMatchedTerm()):
        value = term(logits, batch)
        assert value.item() == 0.0
        value.backward()
        assert logits.grad is not None and torch.count_nonzero(logits.grad) == 0
    assert zero_like_graph(logits).requires_grad


def test_terms_validate():
    with pytest.raises(ValueError, match="weight"):
        BCETerm(weight=-1)
    with pytest.raises(ValueError, match="n_samples"):
        SizeTerm(n_samples=0)
    with pytest.raises(ValueError, match=r"batch\['size'\]: expected shape \(2,\)"):
        SizeTerm()(torch.zeros(2, 1, 3, 3), {"size": torch.zeros(3)})
    with pytest.raises(ValueError, match=r"batch\['size'\]: expected shape \(2,\)"):
        SizeMatchedTerm()(torch.zeros(2, 1, 3, 3), {"size": torch.zeros(3), "has_mask": torch.zeros(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="logits and batch\\['mask'\\]"):
        BCETerm()(torch.zeros(2, 1, 3, 3), {"mask": torch.zeros(2, 1, 3, 4), "has_mask": torch.ones(2, dtype=torch.bool)})


def test_size_term_matches_size_loss_on_sized_images():
    torch.manual_seed(0)
    logits = torch.randn(3, 1, 8, 8)
    sizes = torch.tensor([4.0, float("nan"), 6.0])
    torch.manual_seed(1)
    got = SizeTerm(n_samples=2)(logits, {"size": sizes})
    torch.manual_seed(1)
    want = SizeLoss(n_samples=2)(logits[[0, 2]], sizes[[0, 2]])
    assert torch.allclose(got, want)


def test_config_rejects_unknown_keys_and_bad_types(tmp_path):
    with pytest.raises(ValueError, match="unknown key 'learnin_rate'"):
        TrainConfig.from_mapping({"learnin_rate": 1})
    with pytest.raises(ValueError, match="key 'batch_size' expects int, got 'big'"):
        TrainConfig.from_mapping({"batch_size": "big"})
    for key in ("bce_weight", "size_weight", "size_matched_weight"):  # not silently "off"
        with pytest.raises(ValueError, match=f"key '{key}' expects a weight >= 0, got -1"):
            TrainConfig.from_mapping({key: -1})
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.01\nepochs: 3\n")
    with pytest.raises(ValueError, match=f"{path}: unknown key 'epochs'"):
        TrainConfig.from_yaml(path)
    path.write_text("lr: 0.01\nmax_epochs: 3\n")
    cfg = TrainConfig.from_yaml(path, overrides={"max_epochs": 4})
    assert (cfg.lr, cfg.max_epochs) == (0.01, 4)
    with pytest.raises(FileNotFoundError):
        TrainConfig.from_yaml(tmp_path / "missing.yaml")


def test_size_matched_term_is_bce_to_the_matched_mask_of_unmasked_sized_images():
    torch.manual_seed(0)
    logits = torch.randn(4, 1, 9, 7, requires_grad=True)
    sizes = torch.tensor([2.0, 4.0, float("nan"), 6.0])
    batch = {"size": sizes, "has_mask": torch.tensor([False, False, False, True])}
    got = SizeMatchedTerm()(logits, batch)
    target = size_matched_mask(logits[:2, 0].detach(), sizes[:2]).float()
    want = torch.nn.functional.binary_cross_entropy_with_logits(logits[:2, 0], target)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    got.backward()
    assert torch.count_nonzero(logits.grad[2:]) == 0 and torch.count_nonzero(logits.grad[:2]) > 0


def test_size_matched_term_joins_the_size_modes_only_when_weighted():
    names = lambda mode, **kw: [t.name for t in loss_terms_for(mode, TrainConfig(**kw))]
    assert names("finetune") == ["size"] and names("mixed") == ["bce", "size"]
    assert names("finetune", size_matched_weight=0.5) == ["size", "size_matched"]
    assert names("mixed", size_matched_weight=1.0) == ["bce", "size", "size_matched"]
    assert names("pretrain", size_matched_weight=1.0) == ["bce"]


def test_area_bound_term_equals_the_penalty_computed_by_hand():
    from sizeseg.training.loss_terms import AreaBoundTerm

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 1, 9, 7, generator=gen) * 3
    sizes = torch.tensor([2.0, float("nan"), 4.0, 6.0, 0.0])
    term = AreaBoundTerm((1.2, 1.8), noise_scale=0.25)
    by_hand = []
    for a, s in zip(logits, sizes):
        if torch.isnan(s):
            continue
        area = torch.sigmoid(a / 0.25).sum()
        lo, hi = 1.2 * s ** 2, 1.8 * s ** 2
        by_hand.append((torch.relu(lo - area) ** 2 + torch.relu(area - hi) ** 2) / a.numel())
    assert torch.allclose(term(logits, {"size": sizes}), torch.stack(by_hand).mean(), rtol=1e-5)
    # lists of object sizes: the bounds are lo, hi times the sum of the squares
    lists = torch.tensor([[2.0, 1.0], [float("nan"), float("nan")], [4.0, float("nan")], [3.0, 5.0], [0.0, float("nan")]])
    squares = torch.tensor([5.0, 16.0, 34.0, 0.0])
    area = torch.sigmoid(logits[[0, 2, 3, 4]] / 0.25).sum((1, 2, 3))
    expect = ((torch.relu(1.2 * squares - area) ** 2 + torch.relu(area - 1.8 * squares) ** 2) / 63).mean()
    assert torch.allclose(term(logits, {"size": sizes, "object_sizes": lists[:, None]}), expect, rtol=1e-5)
    # the single-object loss's bounds come from its one size, even where the batch carries the lists
    single = AreaBoundTerm((1.2, 1.8), noise_scale=0.25, per_object=False)
    assert torch.allclose(single(logits, {"size": sizes, "object_sizes": lists[:, None]}),
                          torch.stack(by_hand).mean(), rtol=1e-5)


def test_area_bound_term_reaches_a_blob_that_the_size_cannot_see():
    from sizeseg import SizeLoss
    from sizeseg.training.loss_terms import AreaBoundTerm

    logits = torch.full((1, 1, 16, 16), -3.0)
    logits[..., 2:8, 2:8] = 3.0  # the object: size 6
    logits[..., 12:14, 12:14] = 1.0  # a small second blob, which does not change the size
    logits.requires_grad_(True)
    AreaBoundTerm((0.9, 1.0), noise_scale=0.25)(logits, {"size": torch.tensor([6.0])}).backward()
    assert float(logits.grad[..., 12:14, 12:14].min()) > 0  # pushed down: the area, about 40, exceeds 36
    logits.grad = None
    SizeLoss(n_samples=4, noise_scale=0.25, seed=0)(logits, torch.tensor([6.0])).backward()
    assert float(logits.grad[..., 12:14, 12:14].abs().max()) == 0.0


def test_area_bound_term_rejects_bad_settings():
    from sizeseg.training.loss_terms import AreaBoundTerm

    with pytest.raises(ValueError, match="ratio_range"):
        AreaBoundTerm((2.0, 1.0))
    with pytest.raises(ValueError, match="noise_scale"):
        AreaBoundTerm((1.0, 2.0), noise_scale=0)
    with pytest.raises(ValueError, match="one-class logits"):
        AreaBoundTerm((1.0, 2.0))(torch.zeros(1, 2, 4, 4), {"size": torch.tensor([2.0])})


def _square_logits(side: int, lo: int, hi: int, zoom: int) -> torch.Tensor:
    """Confident logits (+-20) of a square object, nearest-upsampled by ``zoom``."""
    logits = torch.full((1, 1, side, side), -20.0)
    logits[..., lo:hi, lo:hi] = 20.0
    return logits.repeat_interleave(zoom, 2).repeat_interleave(zoom, 3)


@pytest.mark.parametrize("criterion", ["squared", "absolute"])
def test_image_units_give_the_same_size_loss_at_twice_the_resolution(criterion):
    from sizeseg.training.loss_terms import SizeTerm

    # a 6x6 square (size 6) annotated as 10, and the same image at 2x (size 12 annotated as 20): tau 0.05
    # makes the sampled mask the thresholded one, so the loss is the criterion of the sizes themselves
    values = {}
    for units in ("pixels", "image"):
        for zoom in (1, 2):
            term = SizeTerm(units=units, criterion=criterion, noise_scale=0.05, seed=0)
            values[units, zoom] = term(_square_logits(16, 3, 9, zoom), {"size": torch.tensor([10.0 * zoom])}).item()
    degree = 2 if criterion == "squared" else 1
    assert values["pixels", 1] == pytest.approx(4.0 ** degree)  # (10 - 6)^2 or |10 - 6|
    assert values["pixels", 2] == pytest.approx(values["pixels", 1] * 2 ** degree)  # pixels: grows with resolution
    assert values["image", 1] == pytest.approx(values["pixels", 1] / 16 ** degree)  # sides of 16 px
    assert values["image", 2] == pytest.approx(values["image", 1])


def test_image_units_give_the_same_area_penalty_at_twice_the_resolution():
    from sizeseg.training.loss_terms import AreaBoundTerm

    values = {}
    for units in ("pixels", "image"):
        for zoom in (1, 2):
            term = AreaBoundTerm((0.5, 0.6), noise_scale=0.05, units=units)  # area 36 above 0.6 * 6^2 = 21.6
            values[units, zoom] = term(_square_logits(16, 3, 9, zoom), {"size": torch.tensor([6.0 * zoom])}).item()
    assert values["pixels", 1] == pytest.approx((36 - 21.6) ** 2 / 256, rel=1e-4)
    assert values["pixels", 2] == pytest.approx(4 * values["pixels", 1], rel=1e-4)
    assert values["image", 1] == pytest.approx(((36 - 21.6) / 256) ** 2, rel=1e-4)
    assert values["image", 2] == pytest.approx(values["image", 1], rel=1e-4)


def test_image_units_leave_relative_criteria_and_reject_unknown_units():
    from sizeseg.losses.size_criteria import SizeCriterion
    from sizeseg.training.loss_terms import AreaBoundTerm, ObjectSizeTerm, SizeTerm

    logits, batch = _square_logits(16, 3, 9, 1), {"size": torch.tensor([10.0])}
    pixels = SizeTerm(criterion="relative", noise_scale=0.05, seed=0)(logits, batch)
    image = SizeTerm(criterion="relative", noise_scale=0.05, seed=0, units="image")(logits, batch)
    assert image.item() == pytest.approx(pixels.item()) and pixels.item() == pytest.approx(0.16)
    lists = {"object_sizes": torch.tensor([[[10.0]]])}
    per_object = [ObjectSizeTerm(noise_scale=0.05, seed=0, units=u)(logits, lists).item() for u in ("pixels", "image")]
    assert per_object[1] == pytest.approx(per_object[0] / 256)
    for make in (lambda: SizeTerm(units="cm"), lambda: ObjectSizeTerm(units="cm"),
                 lambda: AreaBoundTerm((1.0, 2.0), units="cm")):
        with pytest.raises(ValueError, match="units: expected one of pixels, image, got 'cm'"):
            make()

    class Custom(SizeCriterion):
        def __call__(self, predicted, target):
            return (predicted - target).abs()

    SizeTerm(criterion=Custom())  # pixels: any criterion
    with pytest.raises(ValueError, match="units: 'image' needs a size criterion"):
        SizeTerm(criterion=Custom(), units="image")


def test_config_and_pipeline_pass_the_size_units():
    for units in ("image", "pixels"):
        cfg = TrainConfig(size_units=units, area_weight=40.0)
        terms = loss_terms_for("mixed", cfg, area_ratio=(1.0, 2.0))
        assert [t.units for t in terms if hasattr(t, "units")] == [units, units]
    # pixels by default (image units as the default lost IoU on the hippocampus's 48x32 slices)
    assert (TrainConfig().size_units, TrainConfig().size_weight) == ("pixels", 1e-3)
    with pytest.raises(ValueError, match="key 'size_units' expects one of pixels, image, got 'cm'"):
        TrainConfig.from_mapping({"size_units": "cm"})
