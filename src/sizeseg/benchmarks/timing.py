"""Small timing and memory helpers for the benchmarks."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable


def time_call(fn: Callable[[], object], repeats: int, sync: Callable[[], None] | None = None,
              warmup: int = 1) -> float:
    """Median wall time in seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` calls."""
    sync = sync or (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_extra_memory_mb(fn: Callable[[], object]) -> float | None:
    """Peak resident memory that ``fn()`` adds above the current level, in MB (Linux).

    Resets the process's peak RSS (``echo 5 > /proc/self/clear_refs``), runs ``fn`` and reads the
    new peak (VmHWM). Counts every allocator (numpy, numba's runtime, torch). None where the
    kernel does not allow it.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    base = _status_kib("VmRSS")
    result = fn()
    peak = _status_kib("VmHWM")
    del result
    if base is None or peak is None:
        return None
    return max(peak - base, 0) / 1024.0
