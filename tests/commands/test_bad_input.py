"""Bad input and faults, as a new user meets them: each ends in one clear line and exit code 2, or is handled.

Every case is built here from small files the fixtures write; none needs the real data. A case
checks the exit code, that stderr is one line naming the argument or file, that no traceback
shows, and that nothing half-written is left behind.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from sizeseg.cli import main
from sizeseg.data.prepared import DATA_FILE, load_prepared, save_prepared
from tests.training.helpers import tiny_data

TINY = ["--model", "unet-tiny", "--epochs", "1", "--batch-size", "4", "--patience", "0"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A prepared tiny set, a finished one-epoch run, a plain file, and broken prepared folders."""
    root = tmp_path_factory.mktemp("bad")
    save_prepared(tiny_data(16), root / "prep")
    assert main(["pretrain", "--data", str(root / "prep"), "--out", str(root / "run"), *TINY]) == 0
    (root / "afile").write_text("not a folder")
    raw = dict(np.load(root / "prep" / DATA_FILE))

    def broken(name, arrays=None, data_bytes=None):
        folder = root / name
        shutil.copytree(root / "prep", folder)
        if arrays is not None:
            np.savez(folder / DATA_FILE, **{**raw, **arrays})  # written by hand: save_prepared would refuse
        if data_bytes is not None:
            (folder / DATA_FILE).write_bytes(data_bytes)

    whole = (root / "prep" / DATA_FILE).read_bytes()
    broken("truncated", data_bytes=whole[: len(whole) // 2])
    broken("empty", data_bytes=b"")
    broken("random", data_bytes=np.random.default_rng(0).bytes(2048))
    nan_images = raw["images"].copy()
    nan_images[3, 0, 5, 5] = np.nan
    broken("nan", arrays={"images": nan_images})
    inf_images = raw["images"].copy()
    inf_images[2, 0, 0, 0] = np.inf
    broken("inf", arrays={"images": inf_images})
    for name, value in (("huge", 1e30), ("negative", -2.0), ("infsize", np.inf)):
        sizes = raw["sizes"].copy()
        sizes[1] = value
        broken(name, arrays={"sizes": sizes})
    shutil.copytree(root / "prep", root / "noparams")
    (root / "noparams" / "params.json").unlink()
    return root


def _config(env, text):
    path = env / f"cfg{abs(hash(text))}.yaml"
    path.write_text(text)
    return str(path)


def _pretrain(env, tmp, *extra):
    return ["pretrain", "--data", str(env / "prep"), "--out", str(tmp / "out"), *TINY, *extra]


#: id -> (argv builder (env, tmp) -> argv, text the one-line error must contain)
CLI_CASES = {
    # settings: impossible values are refused before any data is read
    "devices-0": (lambda e, t: _pretrain(e, t, "--devices", "0"), "--devices expects an int >= 1, got 0"),
    "gpu-without-gpu": (lambda e, t: _pretrain(e, t, "--accelerator", "gpu"), "accelerator: 'gpu' with 1 device(s) asked for"),
    "accelerator-unknown": (lambda e, t: _pretrain(e, t, "--accelerator", "tpu"), "--accelerator expects one of cpu"),
    "lr-gamma-negative": (lambda e, t: _pretrain(e, t, "--lr-gamma", "-3"), "--lr-gamma expects a number > 0, got -3.0"),
    "limit-train-batches-0": (lambda e, t: _pretrain(e, t, "--limit-train-batches", "0"),
                              "--limit-train-batches expects an int >= 1, got 0"),
    "lr-nan": (lambda e, t: _pretrain(e, t, "--lr", "nan"), "--lr expects a finite number, got nan"),
    "lr-inf": (lambda e, t: _pretrain(e, t, "--lr", "inf"), "--lr expects a finite number, got inf"),
    "lr-zero": (lambda e, t: _pretrain(e, t, "--lr", "0"), "--lr expects a number > 0, got 0.0"),
    "batch-size-0": (lambda e, t: _pretrain(e, t, "--batch-size", "0"), "--batch-size expects an int >= 1, got 0"),
    "epochs-0": (lambda e, t: _pretrain(e, t, "--epochs", "0"), "--epochs expects an int >= 1, got 0"),
    "min-epochs-neg": (lambda e, t: _pretrain(e, t, "--min-epochs", "-1"), "--min-epochs expects an int >= 0, got -1"),
    "mask-fraction-2": (lambda e, t: ["finetune", "--mixed", "--data", str(e / "prep"), "--out", str(t / "out"),
                                      "--mask-fraction", "2"], "--mask-fraction expects a fraction in [0, 1], got 2.0"),
    "config-size-weight-inf": (lambda e, t: _pretrain(e, t, "--config", _config(e, "size_weight: .inf\n")),
                               "key 'size_weight' expects a finite number, got inf"),
    "config-lr-nan": (lambda e, t: _pretrain(e, t, "--config", _config(e, "lr: .nan\n")), "key 'lr' expects a finite number"),
    "config-lr-text": (lambda e, t: _pretrain(e, t, "--config", _config(e, "lr: fast\n")), "key 'lr' expects a number, got 'fast'"),
    "config-list": (lambda e, t: _pretrain(e, t, "--config", _config(e, "- lr\n- 0.1\n")), "expected a mapping of settings, got list"),
    "config-bad-yaml": (lambda e, t: _pretrain(e, t, "--config", _config(e, "lr: [1,\n")), "not valid YAML"),
    "config-missing": (lambda e, t: _pretrain(e, t, "--config", str(t / "none.yaml")), "none.yaml: config file not found"),
    "config-unknown-key": (lambda e, t: _pretrain(e, t, "--config", _config(e, "learning_rate: 0.1\n")), "unknown key 'learning_rate'"),
    "config-then-flag": (lambda e, t: _pretrain(e, t, "--config", _config(e, "lr: 0.1\n"), "--lr", "0"),
                         "--lr expects a number > 0, got 0.0"),
    "config-weight-negative": (lambda e, t: _pretrain(e, t, "--config", _config(e, "bce_weight: -1\n")),
                               "key 'bce_weight' expects a weight >= 0, got -1.0"),
    # --out that cannot be a folder, for every command that writes one
    "pretrain-out-file": (lambda e, t: ["pretrain", "--data", str(e / "prep"), "--out", str(e / "afile"), *TINY],
                          "--out: " + "{env}/afile is a file, expected a folder"),
    "finetune-out-file": (lambda e, t: ["finetune", "--data", str(e / "prep"), "--out", str(e / "afile")],
                          "--out: {env}/afile is a file, expected a folder"),
    "evaluate-out-file": (lambda e, t: ["evaluate", "--checkpoint", str(e / "run/checkpoints/best.ckpt"), "--data",
                                        str(e / "prep"), "--out", str(e / "afile")], "--out: {env}/afile is a file"),
    "predict-out-file": (lambda e, t: ["predict", "--checkpoint", str(e / "run/checkpoints/best.ckpt"), "--data",
                                       str(e / "prep"), "--out", str(e / "afile")], "--out: {env}/afile is a file"),
    "prepare-out-file": (lambda e, t: ["prepare", "folder", "--images", str(t), "--out", str(e / "afile")],
                         "--out: {env}/afile is a file"),
    "demo-out-file": (lambda e, t: ["demo", "--out", str(e / "afile")], "--out: {env}/afile is a file"),
    "out-below-a-file": (lambda e, t: ["pretrain", "--data", str(e / "prep"), "--out", str(e / "afile" / "run")],
                         "--out: {env}/afile is a file, so the folder {env}/afile/run cannot be created"),
    # prepared data folders that cannot be used
    "data-missing": (lambda e, t: _pretrain(e, t)[:2] + [str(t / "nope")] + _pretrain(e, t)[3:], "not a prepared data folder"),
    "data-no-params": (lambda e, t: ["evaluate", "--checkpoint", str(e / "run/checkpoints/best.ckpt"), "--data",
                                     str(e / "noparams")], "params.json missing"),
    "data-truncated": (lambda e, t: ["evaluate", "--checkpoint", str(e / "run/checkpoints/best.ckpt"), "--data",
                                     str(e / "truncated")], "data.npz is corrupt or truncated"),
    "data-empty": (lambda e, t: ["evaluate", "--checkpoint", str(e / "run/checkpoints/best.ckpt"), "--data",
                                 str(e / "empty")], "data.npz is corrupt or truncated"),
    "data-random": (lambda e, t: ["evaluate", "--checkpoint", str(e / "run/checkpoints/best.ckpt"), "--data",
                                  str(e / "random")], "data.npz is corrupt or truncated"),
    "data-truncated-train": (lambda e, t: ["pretrain", "--data", str(e / "truncated"), "--out", str(t / "out"), *TINY],
                             "data.npz is corrupt or truncated"),
    "data-nan-image": (lambda e, t: ["pretrain", "--data", str(e / "nan"), "--out", str(t / "out"), *TINY],
                       "image of item 'tiny:3' holds 1 NaN or infinite value(s)"),
    "data-inf-image": (lambda e, t: ["predict", "--checkpoint", str(e / "run/checkpoints/best.ckpt"), "--data",
                                     str(e / "inf"), "--out", str(t / "out")], "image of item 'tiny:2' holds 1 NaN"),
    "data-huge-size": (lambda e, t: ["finetune", "--data", str(e / "huge"), "--out", str(t / "out"), *TINY],
                       "size 1e+30 of item 'tiny:1'; an image of shape (32, 32) holds objects of size <= 33"),
    "data-negative-size": (lambda e, t: ["finetune", "--data", str(e / "negative"), "--out", str(t / "out")],
                           "size -2 of item 'tiny:1'"),
    "data-inf-size": (lambda e, t: ["finetune", "--data", str(e / "infsize"), "--out", str(t / "out")],
                      "size inf of item 'tiny:1'"),
    "evaluate-unknown-split": (lambda e, t: ["evaluate", "--checkpoint", str(e / "run/checkpoints/best.ckpt"), "--data",
                                             str(e / "prep"), "--split", "tset"], "split 'tset'"),
    "evaluate-missing-checkpoint": (lambda e, t: ["evaluate", "--checkpoint", str(t / "no.ckpt"), "--data", str(e / "prep")],
                                    "no.ckpt: checkpoint not found"),
    "evaluate-checkpoint-folder": (lambda e, t: ["evaluate", "--checkpoint", str(t), "--data", str(e / "prep")],
                                   "checkpoint not found"),
    "predict-checkpoint-is-data": (lambda e, t: ["predict", "--checkpoint", str(e / "prep" / DATA_FILE), "--data",
                                                 str(e / "prep"), "--out", str(t / "out")], "corrupt or truncated checkpoint"),
    "finetune-init-missing": (lambda e, t: ["finetune", "--data", str(e / "prep"), "--out", str(t / "out"),
                                            "--init", str(t / "x.ckpt")], "--init"),
    "init-with-another-model": (lambda e, t: ["finetune", "--data", str(e / "prep"), "--out", str(t / "out"), "--init",
                                              str(e / "run/checkpoints/best.ckpt"), "--model", "unet-small"],
                                "--model: 'unet-small', but the --init checkpoint"),
    "init-with-another-model-in-config": (lambda e, t: ["finetune", "--data", str(e / "prep"), "--out", str(t / "out"),
                                                        "--init", str(e / "run/checkpoints/best.ckpt"), "--config",
                                                        _config(e, "model: enet\n")], "--model: 'enet', but the --init"),
    "finetune-init-yaml": (lambda e, t: ["finetune", "--data", str(e / "prep"), "--out", str(t / "out"),
                                         "--init", _config(e, "lr: 1\n"), *TINY], "not a checkpoint"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_bad_cli_input_is_one_line(case, env, tmp_path, capsys):
    build, expected = CLI_CASES[case]
    code = main(build(env, tmp_path))
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("sizeseg ") and "Traceback" not in err, err
    assert expected.format(env=env) in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.part"))
    if case.startswith(("data-", "config-", "devices", "gpu", "lr", "batch", "epochs", "limit", "accelerator")):
        assert not (tmp_path / "out").exists()  # refused before any output


def test_a_read_only_out_folder_is_refused_before_work(env, tmp_path, monkeypatch, capsys):
    import os

    # root may write into a mode-0555 folder, so the refusal is simulated where the check asks
    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real(p, mode))
    argv = ["evaluate", "--checkpoint", str(env / "run/checkpoints/best.ckpt"), "--data", str(env / "prep"),
            "--out", str(locked / "scores")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"--out: {locked}: folder not writable by this user" in err and err.count("\n") == 1
    assert list(locked.iterdir()) == []


def test_a_permission_error_mid_run_is_one_line(env, tmp_path, monkeypatch, capsys):
    import sizeseg.io_utils as io_utils

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "out"))

    monkeypatch.setattr(io_utils.tempfile, "mkstemp", refuse)
    code = main(["predict", "--checkpoint", str(env / "run/checkpoints/best.ckpt"), "--data", str(env / "prep"),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "[Errno 13] Permission denied" in err and err.count("\n") == 1


def test_ctrl_c_is_one_line_with_exit_130(env, tmp_path, monkeypatch, capsys):
    import sizeseg.training.pipeline as pipeline

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "evaluate_logits", interrupt)
    code = main(["evaluate", "--checkpoint", str(env / "run/checkpoints/best.ckpt"), "--data", str(env / "prep"),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 130 and err == "sizeseg evaluate: interrupted\n"
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ resume with other settings
@pytest.mark.parametrize("change, named", [
    (["--lr", "0.01"], "lr=0.001, not 0.01"),
    (["--model", "unet-small"], "model='unet-tiny', not 'unet-small'"),
    (["--seed", "3"], "seed=0, not 3"),
    (["--batch-size", "2"], "batch_size=4, not 2"),
])
def test_resume_with_other_settings_names_each_key(change, named, env, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(env / "run", run)
    before = (run / "checkpoints" / "last.ckpt").read_bytes()
    argv = ["pretrain", "--data", str(env / "prep"), "--out", str(run), *TINY, *change]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{run}: the run in this folder was started with other settings ({named})" in err
    assert "--no-resume" in err and err.count("\n") == 1
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == before


def test_resume_into_a_folder_of_another_mode_is_refused(env, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(env / "run", run)
    assert main(["finetune", "--data", str(env / "prep"), "--out", str(run), *TINY]) == 2
    assert "mode='pretrain', not 'finetune'" in capsys.readouterr().err


def test_resume_with_more_epochs_is_allowed(env, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(env / "run", run)
    argv = ["pretrain", "--data", str(env / "prep"), "--out", str(run), *TINY]
    argv[argv.index("--epochs") + 1] = "2"
    assert main(argv) == 0
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1


def test_a_run_recorded_before_run_json_is_compared_by_its_checkpoint(env, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(env / "run", run)
    (run / "run.json").unlink()
    assert main(["pretrain", "--data", str(env / "prep"), "--out", str(run), *TINY, "--lr", "0.5"]) == 2
    assert "lr=0.001, not 0.5" in capsys.readouterr().err


def test_a_fine_tuning_run_recorded_with_an_empty_monitor_resumes_as_validation_e(env, tmp_path, capsys):
    # run.json records the metric that picks best.ckpt as resolved; before, it held "" and fine-tuning's
    # default was val/E: a resume restores the best score, so it must keep comparing the same metric
    run = tmp_path / "ft"
    argv = ["finetune", "--data", str(env / "prep"), "--out", str(run), "--init",
            str(env / "run" / "checkpoints" / "best.ckpt"), *TINY, "--progress", "none"]
    assert main(argv) == 0  # 4 masked validation images: validation E picks
    record = json.loads((run / "run.json").read_text())
    assert record["monitor"] == "val/E"
    record["monitor"] = ""
    (run / "run.json").write_text(json.dumps(record))
    capsys.readouterr()
    assert main(argv + ["--monitor", "val/IoU"]) == 2
    assert "monitor='val/E', not 'val/IoU'" in capsys.readouterr().err
    more = list(argv)
    more[more.index("--epochs") + 1] = "2"
    assert main(more) == 0
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1


def test_no_resume_starts_afresh_with_new_settings(env, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(env / "run", run)
    assert main(["pretrain", "--data", str(env / "prep"), "--out", str(run), *TINY, "--lr", "0.01", "--no-resume"]) == 0
    assert json.loads((run / "run.json").read_text())["lr"] == 0.01


def test_a_corrupt_run_json_is_one_line(env, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(env / "run", run)
    (run / "run.json").write_text("{not json")
    assert main(["pretrain", "--data", str(env / "prep"), "--out", str(run), *TINY]) == 2
    err = capsys.readouterr().err
    assert "run.json: not valid JSON" in err and "--no-resume" in err


# ------------------------------------------------------------------ API
def test_train_config_refuses_what_cannot_train():
    from sizeseg.training import TrainConfig

    for bad, text in (({"size_weight": float("inf")}, "size_weight expects a finite number"),
                      ({"lr": -1.0}, "lr expects a number > 0"), ({"devices": 0}, "devices expects an int >= 1"),
                      ({"n_samples": 0}, "n_samples expects an int >= 1"),
                      ({"accelerator": "quantum"}, "accelerator expects one of")):
        with pytest.raises(ValueError, match=text):
            TrainConfig(**bad)
    assert TrainConfig(lr="1e-3").lr == 0.001  # YAML reads 1e-3 as a string


def test_yaml_scientific_notation_is_a_number(tmp_path):
    from sizeseg.training import TrainConfig

    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-3\nsize_weight: 2E1\n")
    cfg = TrainConfig.from_yaml(path)
    assert (cfg.lr, cfg.size_weight) == (0.001, 20.0)


def test_check_values_names_the_first_bad_item():
    from sizeseg.data.errors import DataError

    data = tiny_data(8)
    data.check_values()
    data.images[5, 0, 1, 1] = np.nan
    with pytest.raises(DataError, match=r"^tiny:5: image of item 'tiny:5' holds 1 NaN"):
        data.check_values()
    data = tiny_data(8)
    data.sizes[2] = 34.0  # one more than a 32 x 32 image can hold
    with pytest.raises(DataError, match=r"size 34 of item 'tiny:2'; an image of shape \(32, 32\) holds objects of size <= 33"):
        data.check_values()
    data.sizes[2] = np.nan  # unknown is fine
    data.check_values()


def test_save_prepared_writes_nothing_for_bad_data(tmp_path):
    from sizeseg.data.errors import DataError

    data = tiny_data(8)
    data.images[0, 0, 0, 0] = np.inf
    with pytest.raises(DataError, match="holds 1 NaN or infinite"):
        save_prepared(data, tmp_path / "prep")
    assert not (tmp_path / "prep").exists()


def test_load_prepared_reads_a_good_folder(env):
    data = load_prepared(env / "prep")
    assert len(data) == 16 and np.isfinite(data.images).all()


def test_training_stops_at_the_first_non_finite_loss(tmp_path):
    from sizeseg.models import build_model
    from sizeseg.training import SegmentationDataModule, SegmentationModule, eval_dataset, fit, make_trainer, mode_dataset
    from sizeseg.training.checkpoints import read_checkpoint
    from sizeseg.training.trainer import NonFiniteLossError

    class NaNAtCall5:  # 12 training items in batches of 4: the 5th call is epoch 1's second batch
        name, weight, calls = "nan_at_5", 1.0, 0

        def __call__(self, logits, batch):
            NaNAtCall5.calls += 1
            return logits.mean() * (float("nan") if NaNAtCall5.calls == 5 else 1.0)

    data = tiny_data(24)
    module = SegmentationModule(build_model("unet-tiny"), [NaNAtCall5()], model_spec={"name": "unet-tiny"})
    dm = SegmentationDataModule(mode_dataset(data.split("train"), "pretrain"), eval_dataset(data.split("val")), batch_size=4)
    trainer = make_trainer(tmp_path, max_epochs=3, monitor="val/E", patience=None, progress_bar=False)
    with pytest.raises(NonFiniteLossError, match=r"the loss is nan at epoch 1, step 4 \(batch of items tiny:\d+, ") as err:
        fit(trainer, module, dm)
    assert "\n" not in str(err.value)
    assert all(bool(torch.isfinite(p).all()) for p in module.parameters())  # stopped before the backward pass
    state = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert state["epoch"] == 0 and all(bool(torch.isfinite(v).all()) for v in state["state_dict"].values()
                                       if v.is_floating_point())


def test_size_penalty_refuses_nan_probabilities_and_inf_lower_bounds():
    from sizeseg.losses.size_penalty import SizePenalty

    bounds = torch.tensor([[0.0, 16.0], [1.0, 5.0]])
    with pytest.raises(ValueError, match=r"probs: expected finite probabilities, got 32 NaN or infinite value\(s\) in shape \(1, 2, 4, 4\)"):
        SizePenalty()(torch.full((1, 2, 4, 4), float("nan")), bounds)
    with pytest.raises(ValueError, match="bounds: expected finite lower bounds"):
        SizePenalty()(torch.full((1, 2, 4, 4), 0.5), torch.tensor([[0.0, 16.0], [float("inf"), float("inf")]]))
    # an upper bound of inf is no bound
    assert SizePenalty()(torch.full((1, 2, 4, 4), 0.5), torch.tensor([[0.0, float("inf")], [0.0, float("inf")]])) == 0


def test_size_penalty_of_an_empty_batch_is_zero_in_the_graph():
    from sizeseg.losses.size_penalty import SizePenalty

    logits = torch.randn(0, 2, 4, 4, requires_grad=True)
    loss = SizePenalty()(torch.softmax(logits, 1), torch.tensor([[0.0, 16.0], [1.0, 5.0]]))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad.shape == logits.shape


# ------------------------------------------------------------------ prepare folder: non-finite pixels, BOM, crops
def _png_folder(root, n=6, shape=(16, 16)):
    from PIL import Image

    images = root / "images"
    images.mkdir(parents=True)
    for i in range(n):
        Image.fromarray((np.arange(np.prod(shape)).reshape(shape) * (i + 1) % 255).astype(np.uint8)).save(images / f"im{i}.png")
    return images


@pytest.mark.parametrize("kind, value", [("tiff", np.nan), ("tiff", np.inf), ("nifti", np.nan), ("nifti", -np.inf)])
def test_prepare_refuses_a_non_finite_pixel_naming_the_file(kind, value, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(6):
        arr = np.random.default_rng(i).random((12, 10)).astype(np.float32)
        if i == 2:
            arr[3, 4] = value
        if kind == "tiff":
            import tifffile

            tifffile.imwrite(images / f"im{i}.tif", arr)
        else:
            import nibabel as nib

            nib.save(nib.Nifti1Image(np.repeat(arr[..., None], 3, axis=2), np.eye(4)), images / f"im{i}.nii.gz")
    sizes = tmp_path / "sizes.csv"
    ext = "tif" if kind == "tiff" else "nii.gz"
    sizes.write_text("image,size\n" + "".join(f"im{i}.{ext},4\n" for i in range(6)))
    code = main(["prepare", "folder", "--images", str(images), "--sizes", str(sizes), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"im2.{ext}" in err and "NaN or infinite" in err
    assert not (tmp_path / "out" / "data.npz").exists() and not (tmp_path / "out" / "params.json").exists()


def test_a_sizes_csv_with_a_byte_order_mark_is_read(tmp_path):
    images = _png_folder(tmp_path)
    sizes = tmp_path / "sizes.csv"
    sizes.write_bytes("\ufeffimage,size\n".encode() + "".join(f"im{i}.png,6\n" for i in range(6)).encode())
    assert main(["prepare", "folder", "--images", str(images), "--sizes", str(sizes), "--out", str(tmp_path / "out")]) == 0
    assert (load_prepared(tmp_path / "out").sizes == 6).all()


def test_a_crop_below_a_csv_size_is_refused(tmp_path, capsys):
    images = _png_folder(tmp_path)
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("image,size\n" + "".join(f"im{i}.png,14\n" for i in range(6)))
    code = main(["prepare", "folder", "--images", str(images), "--sizes", str(sizes), "--shape", "8", "8",
                 "--fit", "pad", "--out", str(tmp_path / "out")])  # a crop keeps the sizes as they are
    err = capsys.readouterr().err
    assert code == 2 and "size 14 of item" in err and "an image of shape (8, 8) holds objects of size <= 9" in err
    assert not (tmp_path / "out" / "params.json").exists()


def test_help_shows_percent_signs_once(capsys):
    with pytest.raises(SystemExit):
        main(["prepare", "hippocampus", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert ">= 1% foreground" in out and "%%" not in out


def test_an_empty_split_is_warned_about():
    from sizeseg.commands.prepare import split_lines

    data = tiny_data(8, splits=np.array(["train"] * 6 + ["test"] * 2))
    assert "warning: the val split is empty: training needs train and val items" in "\n".join(split_lines(data))
    assert not any("split is empty" in line for line in split_lines(tiny_data(8)))


def test_size_loss_refuses_sizes_no_image_can_hold_and_unknown_backends():
    import sizeseg

    logits = torch.randn(2, 1, 16, 16, requires_grad=True)
    for criterion in ("squared", "relative"):
        with pytest.raises(ValueError, match=r"sizes: expected sizes an image of spatial shape \(16, 16\) can hold "
                                             r"\(<= 32\), got 1e\+20"):
            sizeseg.SizeLoss(criterion=criterion)(logits, torch.tensor([1e20, 4.0]))
    loss = sizeseg.SizeLoss(criterion="squared")(logits, torch.tensor([32.0, float("nan")]))  # the largest allowed
    loss.backward()
    assert bool(torch.isfinite(loss)) and bool(torch.isfinite(logits.grad).all())
    with pytest.raises(ValueError, match="backend: expected one of"):
        sizeseg.SizeLoss(backend="bogus")  # at construction, not at the first forward


def test_flip_sizes_of_a_fortran_ordered_array_matches_c_order():
    import sizeseg

    mask = np.zeros((2, 9, 7), bool)
    mask[0, 2:6, 1:5] = True
    mask[1, 4:9, 0:3] = True
    got = sizeseg.flip_sizes(np.asfortranarray(mask))  # nibabel returns such arrays
    assert np.array_equal(np.asarray(got), np.asarray(sizeseg.flip_sizes(np.ascontiguousarray(mask))))


def test_predict_keeps_items_whose_names_collide_apart(env, tmp_path):
    import csv

    from PIL import Image

    from sizeseg.training import load_model, predict_logits

    data = tiny_data(16)
    data.ids[12:15] = data.sources[12:15] = ["a b", "a+b", "a_b"]  # one safe file name for all three
    data.images[13] = -data.images[13]  # a prediction unlike its neighbours'
    save_prepared(data, tmp_path / "prep")
    assert main(["predict", "--checkpoint", str(env / "run/checkpoints/best.ckpt"), "--data", str(tmp_path / "prep"),
                 "--out", str(tmp_path / "pred")]) == 0
    with open(tmp_path / "pred" / "sizes.csv") as fh:
        rows = {row["id"]: row for row in csv.DictReader(fh)}
    assert len(rows) == 16 and len({row["file"] for row in rows.values()}) == 16
    assert len(list((tmp_path / "pred" / "masks").iterdir())) == 16
    expected = (predict_logits(load_model(env / "run/checkpoints/best.ckpt"), data.images[13:14])[0, 0] > 0).numpy()
    written = np.asarray(Image.open(tmp_path / "pred" / rows["a+b"]["file"])) > 0
    assert np.array_equal(written, expected)
