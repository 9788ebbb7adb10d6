"""Checkpoints are read without running anything from them; a bad one is one line, exit code 2."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from sizeseg.cli import main
from sizeseg.data.prepared import save_prepared
from sizeseg.training import load_model
from sizeseg.training.checkpoints import read_checkpoint
from tests.training.helpers import tiny_data

TINY = ["--model", "unet-tiny", "--epochs", "1", "--batch-size", "4", "--patience", "0"]


class WritesAFile:
    """A pickle payload: unpickling it calls ``open(path, "w")``, creating the file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A prepared tiny data set and a finished one-epoch pre-training run."""
    root = tmp_path_factory.mktemp("ckpt")
    save_prepared(tiny_data(16), root / "prep")
    assert main(["pretrain", "--data", str(root / "prep"), "--out", str(root / "run"), *TINY]) == 0
    return root


def _crafted(path, marker):
    """A file shaped like a sizeseg checkpoint whose hyper-parameters carry the payload."""
    torch.save({"state_dict": {}, "hyper_parameters": {"model_spec": WritesAFile(marker)}}, path)
    return path


def _corrupt(kind, path, good):
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return path


def _argv(command, root, ckpt, out):
    data = str(root / "prep")
    if command == "evaluate":
        return ["evaluate", "--checkpoint", str(ckpt), "--data", data]
    if command == "predict":
        return ["predict", "--checkpoint", str(ckpt), "--data", data, "--out", str(out)]
    if command == "init":
        return ["finetune", "--init", str(ckpt), "--data", data, "--out", str(out), *TINY]
    # resume: the bad file is the run folder's last.ckpt
    (out / "checkpoints").mkdir(parents=True)
    shutil.copy(ckpt, out / "checkpoints" / "last.ckpt")
    return ["pretrain", "--data", data, "--out", str(out), *TINY]


def test_the_payload_runs_when_unpickled_without_weights_only(tmp_path):
    # the crafted file is live: a plain unpickler creates the marker, so the refusals below mean something
    marker = tmp_path / "ran"
    torch.load(_crafted(tmp_path / "evil.ckpt", marker), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("command", ["evaluate", "predict", "init", "resume"])
def test_a_crafted_checkpoint_runs_nothing(command, workdir, tmp_path, capsys):
    marker = tmp_path / "ran"
    evil = _crafted(tmp_path / "evil.ckpt", marker)
    code = main(_argv(command, workdir, evil, tmp_path / "out"))
    err = capsys.readouterr().err
    assert code == 2 and not marker.exists()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{evil.name if command != 'resume' else 'last.ckpt'}: refused to load" in err
    assert "nothing from it was run" in err
    if command in ("predict", "init"):
        assert not (tmp_path / "out").exists()


def test_load_model_and_read_checkpoint_refuse_the_payload(tmp_path):
    marker = tmp_path / "ran"
    evil = _crafted(tmp_path / "evil.ckpt", marker)
    for load in (load_model, read_checkpoint):
        with pytest.raises(ValueError, match="evil.ckpt: refused to load: it asks for the Python object io.open, "):
            load(evil)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["empty", "random", "truncated"])
@pytest.mark.parametrize("command", ["evaluate", "predict", "init", "resume"])
def test_a_corrupt_checkpoint_is_one_line(command, kind, workdir, tmp_path, capsys):
    bad = _corrupt(kind, tmp_path / "bad.ckpt", workdir / "run" / "checkpoints" / "best.ckpt")
    code = main(_argv(command, workdir, bad, tmp_path / "out"))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    expected = {"empty": "empty file, not a checkpoint", "random": "not a checkpoint (no torch.save data in it)",
                "truncated": "corrupt or truncated checkpoint"}[kind]
    assert expected in err
    assert ("--no-resume" in err) == (command == "resume")


def test_a_good_checkpoint_still_loads(workdir):
    best = workdir / "run" / "checkpoints" / "best.ckpt"
    state = read_checkpoint(best)
    assert state["hyper_parameters"]["model_spec"]["name"] == "unet-tiny"
    model = load_model(best)
    assert not model.training
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 32, 32)


def test_non_finite_weights_are_refused(workdir, tmp_path, capsys):
    state = read_checkpoint(workdir / "run" / "checkpoints" / "best.ckpt")
    name = next(k for k, v in state["state_dict"].items() if k.startswith("model.") and v.is_floating_point())
    state["state_dict"][name] = torch.full_like(state["state_dict"][name], float("nan"))
    torch.save(state, tmp_path / "nan.ckpt")
    code = main(["evaluate", "--checkpoint", str(tmp_path / "nan.ckpt"), "--data", str(workdir / "prep")])
    err = capsys.readouterr().err
    assert code == 2 and "nan.ckpt: 1 of the network's weight tensors are not finite" in err
    assert name[len("model."):] in err


def test_weights_of_another_network_are_one_line(workdir, tmp_path):
    state = read_checkpoint(workdir / "run" / "checkpoints" / "best.ckpt")
    state["hyper_parameters"]["model_spec"]["name"] = "unet-small"
    torch.save(state, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match=r"other.ckpt: its weights do not fit its network 'unet-small' \(") as err:
        load_model(tmp_path / "other.ckpt")
    assert "\n" not in str(err.value)


def test_best_holds_weights_only_and_last_the_full_state(workdir):
    best = read_checkpoint(workdir / "run" / "checkpoints" / "best.ckpt")
    last = read_checkpoint(workdir / "run" / "checkpoints" / "last.ckpt")
    assert "optimizer_states" not in best and "callbacks" not in best
    assert last["optimizer_states"] and last["callbacks"]
    assert best["hyper_parameters"] == last["hyper_parameters"]
    assert best["state_dict"].keys() == last["state_dict"].keys()
