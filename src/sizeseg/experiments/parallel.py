"""Run independent training jobs of an experiment in parallel processes."""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Iterator, Sequence


def _exit_with_parent(parent: int, poll_seconds: float = 1.0) -> None:
    """Worker initializer: end this worker soon after ``parent`` dies.

    A killed experiment would otherwise leave its workers training on, orphaned, into the run
    folders that the resumed experiment then trains into as well.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _call_with_threads(threads: int | None, fn: Callable, args: tuple) -> Any:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return fn(*args)


def run_jobs(fn: Callable, jobs: Sequence[tuple], workers: int = 1, threads: int | None = None) -> Iterator[Any]:
    """Yield ``fn(*job)`` for each job in ``jobs``, in the order they finish.

    With ``workers`` > 1 (and more than one job) the jobs run in that many spawned processes
    (``fn`` and the jobs must be picklable), each with ``threads`` torch threads (None: torch's
    default); otherwise they run here, one after the other, in the order given, with this
    process's threads untouched. When a job fails, or the caller stops on an error of its own,
    the jobs not yet started are dropped, the running ones finish, and the error is raised.
    Workers end when this process dies.

    Example:
        >>> sorted(run_jobs(pow, [(2, 3), (3, 2)]))
        [8, 9]
    """
    if workers < 1:
        raise ValueError(f"workers: expected a positive int, got {workers}")
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            yield fn(*job)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")  # fork after torch/numba threads start can deadlock
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context,
                             initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(_call_with_threads, threads, fn, job) for job in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:  # a failed job, or the caller's own error or interrupt: start nothing more
            pool.shutdown(wait=False, cancel_futures=True)
            raise
