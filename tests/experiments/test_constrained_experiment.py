"""The constrained experiment: bounds, metrics, reports, and a two-epoch run of every method on tiny data."""

from __future__ import annotations

import argparse
import csv
from dataclasses import replace

import numpy as np
import pytest

from sizeseg.experiments import constrained as exp

NAN = float("nan")
#: The quick profile on the paper's frame with a narrow ENet and batches of two: fast on the tiny data below.
QUICK = replace(exp.PROFILE_SETTINGS["quick"], model="enet", field=256, batch_size=2, augment="affine")


def _tiny_data(n: int = 12):
    from sizeseg.data.synthetic import synthetic_data

    data = synthetic_data(n, shape=(32, 32), seed=0)
    data.extra["subjects"] = np.array([f"s{i // 4}" for i in range(n)])  # 4 slices per "patient"
    return data


def test_reference_and_method_bounds():
    data = _tiny_data().split("train")
    subject, a, b = exp.reference_bounds(data)
    subjects = data.extra["subjects"]
    areas = data.extra["areas"][subjects == subject]
    areas = areas[areas > 0]
    assert (a, b) == pytest.approx((1.1 * areas.min(), 0.9 * areas.max()))
    all_areas = np.array([0.0, 50.0, 400.0])
    loose = exp.method_bounds("upper-loose", all_areas, (a, b), pixel_area=16.0)
    assert loose.tolist() == [[0, 0], [0, 10000 / 16], [0, 10000 / 16]]  # tags, and 10000 scaled by (64/256)^2
    assert exp.method_bounds("proposals-loose", all_areas, (a, b), pixel_area=256**2 / 600)[1].tolist() == pytest.approx([0, 100])
    two = exp.method_bounds("subject", all_areas, (10.0, 90.0), pixel_area=1.0)
    assert two.tolist() == [[0, 0], [10, 90], [10, 90]]
    assert exp.method_bounds("subject-upper", all_areas, (10.0, 90.0), pixel_area=1.0)[2].tolist() == [0, 90]
    approx = exp.method_bounds("approx-size", all_areas, (a, b), pixel_area=1.0, seed=1)
    assert approx[0].tolist() == [0, 0] and np.all(np.abs(approx[1:, 0] / all_areas[1:] - 1) <= 0.1)
    assert np.isnan(exp.method_bounds("none", all_areas, (a, b), pixel_area=1.0)).all()
    discrete = exp.method_bounds("size-subject", all_areas, (a, b), pixel_area=1.0, size_ref=(3.0, 9.0))
    assert discrete.tolist() == [[0, 0], [3, 9], [3, 9]]
    with pytest.raises(ValueError, match="size_ref"):
        exp.method_bounds("size-subject", all_areas, (a, b), pixel_area=1.0)
    assert exp.erosion_kernels(128) == (5, 4, 2, 1) == exp.erosion_kernels(64, field=128)
    # a 128-pixel field block-averaged to 64: one pixel is 4 native ones; the loose bounds keep their native size
    assert exp.method_bounds("upper-loose", all_areas, (a, b), pixel_area=4.0)[1].tolist() == [0, 2500]
    assert exp.method_bounds("proposals-loose", all_areas, (a, b), pixel_area=4.0)[1, 1] == pytest.approx(256**2 / 24)


def test_penalty_with_discrete_size_carries_both_kinds_of_bounds():
    import torch

    data = _tiny_data()
    train = data.split("train")
    weak = np.full(train.masks.shape, -1, np.int8)
    method = next(m for m in exp.METHODS if m.key == "size_two_bounds_discrete")
    _, a, b = exp.reference_bounds(train)
    _, sa, sb = exp.reference_bounds(train, train.sizes)
    train_set, _ = exp.method_datasets(train, data.split("val"), method, QUICK, weak, (a, b), 0)
    present = train.extra["areas"] > 0
    assert np.allclose(train_set.bounds[present].numpy(), [a, b]) and np.allclose(train_set.bounds[~present].numpy(), 0)
    assert np.allclose(train_set.size_bounds[present].numpy(), [sa, sb]) and np.allclose(train_set.size_bounds[~present].numpy(), 0)
    names = [t.name for t in exp.method_terms(method, exp.PROFILE_SETTINGS["cpu"])]
    assert names == ["partial_ce", "size_penalty", "discrete_size"]
    plain = next(m for m in exp.METHODS if m.key == "size_two_bounds")
    assert torch.isnan(exp.method_datasets(train, train, plain, QUICK, weak, (a, b), 0)[0].size_bounds).all()


def test_reference_bounds_prefer_the_papers_subject():
    data = _tiny_data().split("train")
    subjects = np.asarray(data.extra["subjects"]).astype(str)
    later = sorted(set(subjects.tolist()))[-1]
    data.extra["subjects"] = np.where(subjects == later, "patient004", subjects)
    assert exp.reference_bounds(data)[0] == "patient004"  # the paper's, though not first by name
    first = sorted(set(subjects.tolist()))[0]
    assert exp.reference_bounds(data, subject=first)[0] == first


def test_penalty_weight_keeps_the_papers_balance_on_downsampled_slices():
    """weight * penalty on 256x256 equals the scaled weight * penalty on the block-averaged 64x64 slice."""
    import torch

    from sizeseg.training.constrained_terms import SizePenaltyTerm

    rng = np.random.default_rng(0)
    probs = torch.from_numpy(rng.random((1, 1, 256, 256)) ** 4).float()
    small = torch.nn.functional.avg_pool2d(probs, 4)  # the cpu profile's block averaging
    logit = lambda p: torch.log(p) - torch.log1p(-p)  # noqa: E731  (the term takes logits)
    bounds = torch.tensor([[500.0, 1723.0]])
    full, cpu = exp.PROFILE_SETTINGS["paper"], replace(exp.PROFILE_SETTINGS["cpu"], field=256)
    at_256 = exp.penalty_weight(full) * SizePenaltyTerm()(logit(probs.clamp(1e-6, 1 - 1e-6)), {"bounds": bounds})
    at_64 = exp.penalty_weight(cpu) * SizePenaltyTerm()(logit(small.clamp(1e-6, 1 - 1e-6)), {"bounds": bounds / 16})
    assert float(at_256) > 0
    assert float(at_64) == pytest.approx(float(at_256), rel=1e-3)
    weights = {t.weight for t in exp.METHODS[[m.key for m in exp.METHODS].index("size_two_bounds")].terms(cpu)}
    assert exp.penalty_weight(cpu) in weights
    assert exp.PROFILE_SETTINGS["cpu"].field == 128 and exp.PROFILE_SETTINGS["paper"].field == 256
    # a 128x128 centre crop (all the mass inside it) halved to 64x64 keeps the balance as well
    centred = torch.zeros_like(probs)
    centred[..., 64:192, 64:192] = probs[..., 64:192, 64:192]
    at_256 = exp.penalty_weight(full) * SizePenaltyTerm()(logit(centred.clamp(1e-6, 1 - 1e-6)), {"bounds": bounds})
    crop = torch.nn.functional.avg_pool2d(centred[..., 64:192, 64:192], 2)
    cropped = replace(cpu, field=128)
    at_crop = exp.penalty_weight(cropped) * SizePenaltyTerm()(logit(crop.clamp(1e-6, 1 - 1e-6)),
                                                              {"bounds": bounds / exp.native_pixel_area(cropped.field, cropped.resolution)})
    assert float(at_256) > 0
    assert float(at_crop) == pytest.approx(float(at_256), rel=1e-3)


def test_ordering_check():
    rows = [{"method": k, "dsc_slice": v} for k, v in
            [("partial_ce", 0.1), ("proposals_loose", 0.6), ("size_upper_loose", 0.7), ("size_upper_tight", 0.8),
             ("size_two_bounds", 0.85), ("full", 0.8)]]
    checks = exp.ordering_holds(rows)
    assert checks["partial_ce < proposals_loose"] and not checks["size_two_bounds < full"]
    assert checks["size_upper_tight <= size_two_bounds"]
    tied = exp.ordering_holds([dict(r, dsc_slice=0.8) if r["method"] == "size_two_bounds" else r for r in rows])
    assert tied["size_upper_tight <= size_two_bounds"]  # an inactive lower bound gives the one-bound network
    below = exp.ordering_holds([dict(r, dsc_slice=0.79) if r["method"] == "size_two_bounds" else r for r in rows])
    assert not below["size_upper_tight <= size_two_bounds"]
    started = [dict(r, init="size_two_bounds") for r in rows]  # rows of --init runs are not the paper's rows
    assert exp.ordering_holds(started) == {}
    assert exp.ordering_holds(rows[:1] + started[1:]) == {}


def test_two_epochs_of_every_method(tmp_path):
    profile = replace(QUICK, epochs=2, widths=(4, 8, 16), stage_repeats=1,
                      train_batches=None, timing_steps=2, proposal_iterations=10)
    table1, table2 = exp.run_experiment(_tiny_data(), tmp_path, profile, command="pytest")
    assert [r["method"] for r in table1] == list(exp.METHOD_KEYS)
    for row in table1:
        assert len(row["curve"]) == 2
        assert 0.0 <= row["dsc_slice"] <= 1.0 and 0.0 <= row["dsc_3d"] <= 1.0
    ratios = {r["method"]: r["ratio_to_ce"] for r in table2}
    assert ratios["partial_ce"] == 1.0 and all(v > 0 for v in ratios.values())
    for name in ("table1.csv", "table2.csv", "report.md", "dsc_curves.png"):
        assert (tmp_path / name).is_file()
    with open(tmp_path / "table1.csv") as fh:
        assert len(list(csv.DictReader(fh))) == len(exp.METHODS)
    report = (tmp_path / "report.md").read_text()
    assert "0.8415" in report and "paper" in report  # the paper's number, labelled
    # finished methods are reused, not retrained
    again, _ = exp.run_experiment(_tiny_data(), tmp_path, profile, methods=["full"], timing=False)
    assert again[0]["dsc_slice"] == table1[-1]["dsc_slice"]


def test_methods_trained_in_two_worker_processes_match_one_process(tmp_path):
    profile = replace(QUICK, epochs=2, widths=(4, 8, 16), stage_repeats=1,
                      train_batches=6, timing_steps=1, proposal_iterations=5)
    methods = ["partial_ce", "size_two_bounds", "full"]
    serial, _ = exp.run_experiment(_tiny_data(), tmp_path / "one", profile, methods=methods, timing=False)
    parallel, _ = exp.run_experiment(_tiny_data(), tmp_path / "two", replace(profile, workers=2), methods=methods,
                                     timing=False)
    assert [r["method"] for r in parallel] == methods  # the table keeps the order asked for
    for a, b in zip(serial, parallel):
        assert a["curve"] == b["curve"] and a["dsc_3d"] == b["dsc_3d"]
    with open(tmp_path / "two" / "table1.csv") as fh:
        assert [r["method"] for r in csv.DictReader(fh)] == methods


def test_a_failing_method_in_a_worker_process_fails_the_run(tmp_path):
    profile = replace(QUICK, epochs=1, widths=(4, 8, 16), stage_repeats=1,
                      train_batches=2, timing_steps=1, proposal_iterations=5, workers=2)
    (tmp_path / "runs" / "partial_ce").mkdir(parents=True)
    (tmp_path / "runs" / "partial_ce" / "result.json").write_text('{"model": "unet-tiny"}')  # refused: other model
    with pytest.raises(ValueError, match="unet-tiny"):
        exp.run_experiment(_tiny_data(), tmp_path, profile, methods=["partial_ce", "full"], timing=False)


def test_several_seeds_give_mean_and_sd_of_each_methods_runs(tmp_path):
    profile = replace(QUICK, epochs=2, widths=(4, 8, 16), stage_repeats=1,
                      train_batches=4, timing_steps=1, proposal_iterations=5)
    methods = ["partial_ce", "size_two_bounds"]
    one, _ = exp.run_experiment(_tiny_data(), tmp_path / "one", replace(profile, workers=1), methods=methods, timing=False,
                                seeds=(3,))
    assert (tmp_path / "one" / "runs" / "partial_ce-seed3" / "result.json").is_file() and one[0]["seeds"] == [3]
    table1, _ = exp.run_experiment(_tiny_data(), tmp_path, profile, methods=methods, timing=False, seeds=(0, 3))
    assert [r["method"] for r in table1] == methods
    per_seed = {(r["method"], int(r["seed"])): r for r in csv.DictReader(open(tmp_path / "table1_seeds.csv"))}
    assert set(per_seed) == {(m, s) for m in methods for s in (0, 3)}
    for row, alone in zip(table1, one):
        runs = [per_seed[row["method"], s] for s in (0, 3)]
        values = [float(r["dsc_3d"]) for r in runs]
        assert row["seeds"] == [0, 3] and row["dsc_3d"] == pytest.approx(np.mean(values), abs=1e-4)
        assert row["dsc_3d_sd"] == pytest.approx(np.std(values, ddof=1), abs=1e-4)
        assert float(runs[1]["dsc_3d"]) == pytest.approx(alone["dsc_3d"], abs=1e-4)  # seed 3 run = the one above
        assert len(row["curve"]) == 2 and row["best_epoch"] == int(np.argmax(row["curve"])) + 1
    report = (tmp_path / "report.md").read_text()
    assert "mean ± sd over seeds 0, 3" in report and " of 2 seeds)" in report
    assert "dsc_3d_sd" in (tmp_path / "table1.csv").read_text()
    import json  # a row cached before seeds were recorded counts as seed 0, in worker processes too

    cached = tmp_path / "runs" / "full" / "result.json"
    exp.run_experiment(_tiny_data(), tmp_path, profile, methods=["full"], timing=False)
    cached.write_text(json.dumps({k: v for k, v in json.loads(cached.read_text()).items() if k != "seed"}))
    again, _ = exp.run_experiment(_tiny_data(), tmp_path, replace(profile, workers=2), methods=["full", "partial_ce"],
                                  timing=False, seeds=(0, 3))
    assert again[1]["dsc_3d"] == table1[0]["dsc_3d"] and again[0]["seeds"] == [0, 3]
    with pytest.raises(ValueError, match="seed=0, not 5"):  # a cached run of another seed is not reused
        exp.train_method(exp.METHODS[0], None, None, profile, tmp_path / "runs" / "partial_ce", None, (1, 2), seed=5)
    for bad in ((), (0, 0), (-1,)):
        with pytest.raises(ValueError, match="seeds"):
            exp.run_experiment(_tiny_data(), tmp_path / "bad", profile, methods=methods, timing=False, seeds=bad)


def test_combine_seeds_of_a_single_run_keeps_it():
    row = {"method": "full", "seed": 2, "dsc_3d": 0.5, "curve": [0.1, 0.3]}
    assert exp.combine_seeds([row]) == {**row, "seeds": [2]}
    two = exp.combine_seeds([{**row, **{k: 0.5 for k in exp.SCORES}, "train_seconds": 1.0, "curve": [0.1, 0.3, 0.2]},
                             {**row, **{k: 0.7 for k in exp.SCORES}, "train_seconds": 3.0, "seed": 4, "curve": [0.5, 0.1]}])
    assert two["curve"] == pytest.approx([0.3, 0.2]) and two["best_epoch"] == 1 and two["epochs"] == 2
    assert two["dsc_slice"] == pytest.approx(0.6) and two["dsc_slice_sd"] == pytest.approx(0.1414, abs=1e-4)
    assert two["seeds"] == [2, 4] and two["train_seconds"] == 2.0 and "seed" not in two


def test_init_starts_a_method_from_another_methods_best_network(tmp_path):
    import torch

    profile = replace(QUICK, epochs=1, widths=(4, 8, 16), stage_repeats=1,
                      train_batches=3, timing_steps=1, proposal_iterations=5)
    # the init method is trained first when it is missing
    table1, _ = exp.run_experiment(_tiny_data(), tmp_path / "other", replace(profile, init="size_two_bounds"),
                                   methods=["discrete_size"], timing=False)
    assert (tmp_path / "other" / "runs" / "size_two_bounds" / "result.json").is_file()
    assert table1[0]["init"] == "size_two_bounds" and "size_two_bounds network" in table1[0]["label"]
    exp.run_experiment(_tiny_data(), tmp_path, profile, methods=["size_two_bounds"], timing=False)
    # lr 1e-12: Adam's steps are ~lr, so the parameters stay where they started, the init network's
    # (the init run, trained at the profile's lr, is reused: copy its result under the tiny lr's settings)
    import json

    record = tmp_path / "runs" / "size_two_bounds" / "result.json"
    trained = json.loads(record.read_text())
    record.write_text(json.dumps({**trained, "lr": 1e-12}))
    exp.run_experiment(_tiny_data(), tmp_path, replace(profile, init="size_two_bounds", lr=1e-12),
                       methods=["discrete_size"], timing=False)
    record.write_text(json.dumps(trained))

    def parameters(run):
        state = torch.load(tmp_path / "runs" / run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        return {k: v for k, v in state["state_dict"].items() if "running" not in k and "num_batches" not in k}

    started, init = parameters("discrete_size-from-size_two_bounds"), parameters("size_two_bounds")
    assert started.keys() == init.keys() and all(torch.allclose(started[k], init[k], atol=1e-9) for k in init)
    fresh, _ = exp.run_experiment(_tiny_data(), tmp_path, replace(profile, lr=1e-12), methods=["discrete_size"], timing=False)
    assert not all(torch.allclose(parameters("discrete_size")[k], init[k], atol=1e-9) for k in init)
    # the init run is a finished run like any other: one of another learning rate is not reused
    assert fresh[0]["init"] is None
    with pytest.raises(ValueError, match="cannot be one of them"):
        exp.run_experiment(_tiny_data(), tmp_path, replace(profile, init="full"), methods=["full"], timing=False)


def test_model_option_trains_another_network(tmp_path):
    import torch

    profile = replace(QUICK, epochs=1, train_batches=4, timing_steps=1,
                      proposal_iterations=5, model="unet-tiny")
    table1, table2 = exp.run_experiment(_tiny_data(), tmp_path, profile, methods=["partial_ce", "size_two_bounds"])
    assert [r["model"] for r in table1] == ["unet-tiny", "unet-tiny"] and len(table2) == 2
    state = torch.load(tmp_path / "runs" / "partial_ce" / "checkpoints" / "last.ckpt", map_location="cpu",
                       weights_only=False)
    assert state["hyper_parameters"]["model_spec"]["name"] == "unet-tiny"
    assert "model=unet-tiny" in (tmp_path / "report.md").read_text()
    with pytest.raises(ValueError, match="unet-tiny"):  # a finished run of another model is not reused
        exp.run_experiment(_tiny_data(), tmp_path, replace(profile, model="enet"), methods=["partial_ce"], timing=False)
    assert exp.model_spec(replace(profile, model="unet-small"))["name"] == "unet-small"
    assert exp.model_spec(replace(profile, model="enet"))["widths"] == profile.widths
    with pytest.raises(ValueError, match="model"):
        exp.model_spec(replace(profile, model="nonsense"))


def test_cli_rejects_bad_input_before_work(tmp_path):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    exp.register(sub)
    args = parser.parse_args(["constrained", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--quick",
                              "--methods", "partial_ce,nonsense"])
    with pytest.raises(ValueError, match="unknown \\['nonsense'\\]"):
        args.func(args)
    args = parser.parse_args(["constrained", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    with pytest.raises(FileNotFoundError, match="--data"):
        args.func(args)
    args = parser.parse_args(["constrained", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--model", "resnet"])
    with pytest.raises(ValueError, match="--model"):
        args.func(args)
    args = parser.parse_args(["constrained", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--workers", "0"])
    with pytest.raises(ValueError, match="--workers"):
        args.func(args)
    for seeds, match in (("0,x", "--seeds: expected"), ("1,1", "--seeds: a seed is repeated"), ("-2", "--seeds: expected values")):
        args = parser.parse_args(["constrained", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--seeds", seeds])
        with pytest.raises(ValueError, match=match):
            args.func(args)
    for init, match in (("nonsense", "unknown method"), ("partial_ce", "among --methods")):
        args = parser.parse_args(["constrained", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--init", init,
                                  "--methods", "partial_ce,full"])
        with pytest.raises(ValueError, match=f"--init: .*{match}"):
            args.func(args)
    for field in ("100", "32"):
        args = parser.parse_args(["constrained", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--field", field])
        with pytest.raises(ValueError, match="--field: expected a multiple of the profile's resolution 64"):
            args.func(args)
    for bad in ("discrete=1", "discrete_size", "kl_size=x", "kl_size=-1"):
        args = parser.parse_args(["constrained", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--term-weight", bad])
        with pytest.raises(ValueError, match="--term-weight"):
            args.func(args)
    assert not (tmp_path / "o").exists()


def test_term_weight_overrides_reach_every_method_using_the_term():
    profile = replace(exp.PROFILE_SETTINGS["cpu"], term_weights=exp.parse_term_weights(["discrete_size=2.5", "partial_ce=0.5"]))
    used = set()
    for method in exp.METHODS:
        default = {t.name: t.weight for t in method.terms(exp.PROFILE_SETTINGS["cpu"])}
        got = {t.name: t.weight for t in exp.method_terms(method, profile)}
        used |= set(got)
        assert got == {**default, **{k: v for k, v in profile.term_weights if k in default}}
    assert used <= set(exp.TERM_NAMES)  # every name a user may need is accepted
    assert {t.name: t.weight for t in exp.method_terms(exp.METHODS[-2], profile)}["discrete_size"] == 2.5


def test_a_finished_run_with_other_term_weights_is_not_reused(tmp_path):
    profile = replace(QUICK, epochs=1, train_batches=2, timing_steps=1, proposal_iterations=5,
                      widths=(4, 8, 16), stage_repeats=1)
    exp.run_experiment(_tiny_data(), tmp_path, profile, methods=["partial_ce"], timing=False)
    with pytest.raises(ValueError, match="term_weights="):
        exp.run_experiment(_tiny_data(), tmp_path, replace(profile, term_weights=(("partial_ce", 2.0),)),
                           methods=["partial_ce"], timing=False)
    with pytest.raises(ValueError, match="field=256, not 128"):
        exp.run_experiment(_tiny_data(), tmp_path, replace(profile, field=128), methods=["partial_ce"], timing=False)
    row, = exp.run_experiment(_tiny_data(), tmp_path, profile, methods=["partial_ce"], timing=False)[0]
    assert row["field"] == 256


def test_a_finished_run_asked_with_tta_is_scored_again_not_retrained(tmp_path):
    from sizeseg.training import best_checkpoint, load_model

    profile = replace(QUICK, epochs=1, train_batches=2, widths=(4, 8, 16), stage_repeats=1)
    data = _tiny_data()
    plain, = exp.run_experiment(data, tmp_path, profile, methods=["partial_ce"], timing=False)[0]
    averaged, = exp.run_experiment(data, tmp_path, replace(profile, tta=True), methods=["partial_ce"], timing=False)[0]
    assert (plain["tta"], averaged["tta"]) == (False, True)
    assert averaged["train_seconds"] == plain["train_seconds"] and averaged["curve"] == plain["curve"]
    model = load_model(best_checkpoint(tmp_path / "runs" / "partial_ce"))
    expected = exp.evaluate(model, data.split("val"), tta=True)
    assert averaged["dsc_pooled_soft"] == pytest.approx(expected["dsc_pooled_soft"])
    assert averaged["dsc_pooled_soft"] != pytest.approx(plain["dsc_pooled_soft"], abs=1e-9)
    with pytest.raises(ValueError, match="epochs="):  # a training setting still refuses the cached run
        exp.run_experiment(data, tmp_path, replace(profile, tta=True, epochs=2), methods=["partial_ce"], timing=False)


def test_weak_sources_reach_the_training_slices(tmp_path):
    from sizeseg.data.weak import centroid_labels, random_point_labels

    data = _tiny_data()
    rng = np.random.default_rng(1)
    data.extra["scribbles"] = rng.integers(-1, 2, size=data.masks.shape).astype(np.int8)
    train = data.split("train")
    quick = QUICK
    scribbles = exp.experiment_weak_labels(train, replace(quick, weak="scribbles"))
    np.testing.assert_array_equal(scribbles, train.extra["scribbles"])
    np.testing.assert_array_equal(exp.experiment_weak_labels(train, replace(quick, weak="centroid")),
                                  centroid_labels(train.masks))
    np.testing.assert_array_equal(exp.experiment_weak_labels(train, replace(quick, weak="points")),
                                  random_point_labels(train.masks, seed=0))
    eroded = exp.experiment_weak_labels(train, quick)
    assert set(np.unique(eroded)) == {-1, 1} and np.all(train.masks[eroded == 1])
    without = _tiny_data().split("train")
    with pytest.raises(ValueError, match="weak='scribbles': the data has no scribbles"):
        exp.experiment_weak_labels(without, replace(quick, weak="scribbles"))
    with pytest.raises(ValueError, match="weak: expected one of"):
        exp.experiment_weak_labels(train, replace(quick, weak="boxes"))
    # the partial CE of a scribble row sees the scribbles' background labels
    method = next(m for m in exp.METHODS if m.key == "partial_ce")
    train_set, _ = exp.method_datasets(train, train, method, quick, scribbles, (1.0, 2.0), 0)
    np.testing.assert_array_equal(train_set.weak.numpy(), scribbles)
    profile = replace(quick, epochs=1, train_batches=2, widths=(4, 8, 16), stage_repeats=1, weak="scribbles")
    row, = exp.run_experiment(data, tmp_path, profile, methods=["partial_ce"], timing=False)[0]
    report = (tmp_path / "report.md").read_text()
    assert row["weak"] == "scribbles" and "weak_foreground_recall_%" in report
    assert "| 0.0721 |" not in report  # the paper's number used its eroded masks, not scribbles
    assert "0.0721" not in (tmp_path / "table1.csv").read_text()
    with pytest.raises(ValueError, match="weak='scribbles', not 'erosion'"):
        exp.run_experiment(data, tmp_path, replace(profile, weak="erosion"), methods=["partial_ce"], timing=False)


def test_erosion_sources_label_nested_cores_of_each_mask():
    from sizeseg.data.weak import PAPER_KERNELS, erosion_labels

    data = synthetic_data_for_erosion()
    train = data.split("train")
    profile = replace(QUICK, field=128)  # 64 px from 128 native: the paper's kernels become (5, 4, 2, 1)
    repeated, once, budget = (exp.experiment_weak_labels(train, replace(profile, weak=w))
                              for w in ("erosion", "erosion-once", "erosion-budget"))
    np.testing.assert_array_equal(once, erosion_labels(train.masks, kernels=(5, 4, 2, 1)))
    np.testing.assert_array_equal(budget, erosion_labels(train.masks, kernels=PAPER_KERNELS))
    for weak in (repeated, once, budget):
        assert set(np.unique(weak)) <= {-1, 1} and np.all(train.masks[weak == 1])
        assert np.all((weak == 1).any(axis=(1, 2)) == train.masks.any(axis=(1, 2)))  # every object keeps a core
    assert np.all(once[repeated == 1] == 1)  # the repeated erosion shrinks the first one further
    assert (repeated == 1).sum() < (budget == 1).sum() < (once == 1).sum()


def synthetic_data_for_erosion():
    from sizeseg.data.synthetic import synthetic_data

    return synthetic_data(12, shape=(64, 64), seed=0, radius_range=(0.15, 0.3), fraction_range=(0.05, 0.5))


def test_registered_in_the_sizeseg_cli():
    from sizeseg.cli import build_parser

    args = build_parser().parse_args(["experiment", "constrained", "--data", "d", "--out", "o", "--profile", "cpu",
                                      "--methods", "full", "--epochs", "2", "--model", "unet-small",
                                      "--bounds-subject", "patient004", "--weak", "scribbles", "--field", "128"])
    assert args.func is exp.run_command and args.profile == "cpu" and args.epochs == 2
    assert args.model == "unet-small" and args.bounds_subject == "patient004"
    assert args.weak == "scribbles" and args.field == 128


@pytest.mark.parametrize("flags, match", [
    (["--batch-size", "0"], "--batch-size: expected a positive int"),
    (["--temperature", "0"], "--temperature: expected a positive finite number"),
    (["--temperature", "-1"], "--temperature"),
    (["--protocol", "mine"], "--protocol: expected one of ours, authors"),
    (["--profile", "full"], "--profile: expected one of quick, cpu, paper"),
    (["--split", "slices"], "--split: expected one of patients, frames"),
    (["--betas", "0.5"], r"--betas: expected two numbers in \[0, 1\)"),
    (["--betas", "0.5,x"], "--betas"),
    (["--augment", "rotate"], "--augment: expected one of"),
    (["--monitor", "dsc"], "--monitor: expected one of"),
    (["--slices", "some"], "--slices: expected one of all, lv"),
])
def test_cli_rejects_bad_protocol_settings_naming_the_flag(tmp_path, flags, match):
    parser = argparse.ArgumentParser()
    exp.register(parser.add_subparsers())
    args = parser.parse_args(["constrained", "--data", str(tmp_path), "--out", str(tmp_path / "o")] + flags)
    with pytest.raises(ValueError, match=match):
        args.func(args)
    assert not (tmp_path / "o").exists()


def test_authors_protocol_and_lv_slices_reach_the_runs(tmp_path):
    data = _tiny_data(16)
    data.masks[::4] = 0  # slices without the object: left out by --slices lv
    data.extra["areas"] = data.masks.reshape(len(data.masks), -1).sum(1).astype(np.float64)
    profile = replace(exp.with_protocol(QUICK, "authors"), epochs=1, train_batches=2, slices="lv")
    row, = exp.run_experiment(data, tmp_path, profile, methods=["size_two_bounds"], timing=False)[0]
    assert (row["temperature"], row["betas"], row["augment"], row["monitor"]) == (0.1, [0.5, 0.999], "none", "dsc_pooled_soft")
    assert row["protocol"] == "authors" and row["slices"] == "lv"
    assert row["n_val_slices"] == int((data.split("val").extra["areas"] > 0).sum())
    table = list(csv.DictReader(open(tmp_path / "table1.csv")))
    assert table[0]["protocol"] == "authors" and {"dsc_3d", "dsc_pooled", "dsc_pooled_soft", "seeds"} <= set(table[0])
    assert "best epoch by `dsc_pooled_soft`" in (tmp_path / "report.md").read_text()
    for change, match in (({"temperature": 1.0}, "temperature=0.1, not 1.0"), ({"epochs": 2}, "epochs=1, not 2"),
                          ({"lr": 1e-3}, "lr=0.002, not 0.001")):  # a cached run of other settings is refused
        with pytest.raises(ValueError, match=match):
            exp.run_experiment(data, tmp_path, replace(profile, **change), methods=["size_two_bounds"], timing=False)
