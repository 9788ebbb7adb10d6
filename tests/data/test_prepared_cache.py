"""The prepared-data cache: rebuilt when its source folder changes; a killed preparation leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from sizeseg.data.prepared import DATA_FILE, INPUTS_FILE, PARAMS_FILE, cached, load_prepared
from tests.training.helpers import tiny_data


def _counting_build(calls):
    def build():
        calls.append(1)
        return tiny_data(8)
    return build


def test_cases_added_to_the_source_folder_rebuild_the_cache(tmp_path):
    source = tmp_path / "Task"
    (source / "imagesTr").mkdir(parents=True)
    (source / "imagesTr" / "a.nii.gz").write_bytes(b"a")
    calls: list = []
    params = {"dataset": "test", "data": str(source)}
    assert cached(tmp_path / "out", params, _counting_build(calls))[1] is False
    assert cached(tmp_path / "out", params, _counting_build(calls))[1] is True  # unchanged: reused
    (source / "imagesTr" / "b.nii.gz").write_bytes(b"b")  # a case added
    assert cached(tmp_path / "out", params, _counting_build(calls))[1] is False
    (source / "imagesTr" / "b.nii.gz").write_bytes(b"bb")  # a case edited
    assert cached(tmp_path / "out", params, _counting_build(calls))[1] is False
    assert len(calls) == 3
    stamp = json.loads((tmp_path / "out" / INPUTS_FILE).read_text())
    assert [entry[:2] for entry in stamp] == [["imagesTr/a.nii.gz", 1], ["imagesTr/b.nii.gz", 2]]


def test_a_cache_prepared_before_stamps_is_trusted_once(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "x").write_text("x")
    calls: list = []
    params = {"dataset": "test", "data": str(source)}
    cached(tmp_path / "out", params, _counting_build(calls))
    (tmp_path / "out" / INPUTS_FILE).unlink()  # as an older sizeseg left it
    assert cached(tmp_path / "out", params, _counting_build(calls))[1] is True
    assert (tmp_path / "out" / INPUTS_FILE).is_file() and len(calls) == 1


KILL_DURING_SAVE = """
import os, signal, sys
import numpy as np
from sizeseg.data.prepared import cached
from tests.training.helpers import tiny_data

def half(fh, **arrays):  # SIGKILL halfway through writing data.npz
    fh.write(b"PK half an archive")
    fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)

np.savez_compressed = half
cached(sys.argv[1], {"dataset": "test"}, lambda: tiny_data(8))
"""


def test_a_kill_during_prepare_leaves_no_temporary_file_after_the_next_run(tmp_path):
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "out"
    child = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, str(out)], cwd=root,
                           env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert list(out.glob(f".{DATA_FILE}.*.part")) and not (out / PARAMS_FILE).exists()
    data, reused = cached(out, {"dataset": "test"}, lambda: tiny_data(8))
    assert not reused and not list(out.glob(".*.part"))
    assert len(load_prepared(out)) == len(data) == 8
