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
