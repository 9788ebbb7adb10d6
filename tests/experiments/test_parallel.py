import math

import pytest

from sizeseg.experiments.parallel import run_jobs


def test_jobs_in_worker_processes_give_every_result():
    jobs = [(float(x),) for x in range(6)]
    assert sorted(run_jobs(math.sqrt, jobs, workers=2)) == [math.sqrt(x) for x in range(6)]
    assert list(run_jobs(math.sqrt, jobs)) == [math.sqrt(x) for x in range(6)]  # here, in order


def test_a_failing_job_in_a_worker_process_raises_its_error():
    with pytest.raises(ValueError, match="math domain error"):
        list(run_jobs(math.sqrt, [(4.0,), (-1.0,), (9.0,)], workers=2))


def test_workers_must_be_positive():
    with pytest.raises(ValueError, match="workers: expected a positive int, got 0"):
        list(run_jobs(math.sqrt, [(1.0,)], workers=0))


def test_jobs_run_here_leave_this_process_threads_alone():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert list(run_jobs(math.sqrt, [(4.0,)], workers=2, threads=1)) == [2.0]  # one job: run here
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def _children(parent: int) -> list[int]:
    from pathlib import Path

    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def test_workers_end_when_the_experiment_process_is_killed():
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    if not Path("/proc/self/stat").is_file():
        pytest.skip("needs /proc to find the worker processes")
    script = "import time; from sizeseg.experiments.parallel import run_jobs; list(run_jobs(time.sleep, [(120,), (120,)], workers=2))"
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(_children(parent.pid)) < 3:  # two workers and the resource tracker
            time.sleep(0.2)
        workers = _children(parent.pid)
        assert len(workers) >= 2
        time.sleep(1.0)  # the workers have started their jobs
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.time() + 20
    alive = workers
    while alive and time.time() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in workers if Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]]
    for pid in alive:  # do not leave them behind when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived the killed experiment process"


def _touch_then_sleep(path: str, seconds: float) -> None:
    import time
    from pathlib import Path

    Path(path).touch()
    time.sleep(seconds)


def test_an_error_of_the_caller_drops_the_jobs_not_started(tmp_path):
    jobs = [(str(tmp_path / f"job{i}"), 0.0 if i == 0 else 1.0) for i in range(21)]
    with pytest.raises(KeyError):
        for _ in run_jobs(_touch_then_sleep, jobs, workers=2):
            raise KeyError("the caller fails on the first result")
    # run_jobs has returned, so every job it started has finished and left its file. Started:
    # the first job, the one beside it, and at most the 3 the pool had already queued to its
    # workers (2 workers + 1); the other jobs never start.
    started = sorted(p.name for p in tmp_path.iterdir())
    assert "job0" in started and len(started) <= 6, started
