"""Helpers shared by the benchmarks in bench/: timing, medians, peaks, printing."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_TOOLS = ROOT.parent / "shared" / "tools"


def best_and_median(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Run ``fn`` ``repeat`` times; return (min, median) wall seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def peak(threads: int | None = None) -> dict[str, float] | None:
    """Run ../shared/tools/peak.sh (register peaks); None when it is not there."""
    script = SHARED_TOOLS / "peak.sh"
    if not script.exists():
        return None
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    out = subprocess.run([str(script)], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def process_cpu_s(pid: int) -> float:
    """A process's CPU seconds (every thread, live or ended, user and system) to the nanosecond.

    Linux's per-process CPU clock (``clock_getcpuclockid``), read from outside the process: what
    ``/proc`` and psutil give is counted in 10 ms ticks, as much as a small difference measured.
    Elsewhere, psutil's figure.

    Args:
        pid: The process.

    Returns:
        Its CPU seconds so far.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        clock = ctypes.c_int()
        if libc.clock_getcpuclockid(pid, ctypes.byref(clock)) == 0:
            return time.clock_gettime(clock.value)
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def process_faults(pid: int) -> tuple[int, float]:
    """A process's minor page faults and its system (kernel) CPU seconds so far, from
    ``/proc/PID/stat`` (Linux; (0, 0.0) elsewhere). The system seconds are counted in clock
    ticks (10 ms): meant for sums over many events, not for one small one.

    Args:
        pid: The process.

    Returns:
        (minor faults, system seconds).
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0, 0.0
    # After the name: state, ppid, pgrp, session, tty, tpgid, flags, minflt (the 8th), ...
    # utime, stime (the 12th and 13th).
    return int(fields[7]), int(fields[12]) / os.sysconf("SC_CLK_TCK")


def paired_mean_interval(
    differences: list[float], draws: int = 4000, seed: int = 1
) -> tuple[float, float, float]:
    """The mean of paired differences and its 95% bootstrap interval (percentile method,
    seeded: the same differences give the same interval).

    Args:
        differences: One difference per pair.
        draws: Bootstrap resamples.
        seed: The resampling's seed.

    Returns:
        (mean, low, high).
    """
    import random

    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return mean, mean, mean
    pick = random.Random(seed).choices
    means = sorted(statistics.fmean(pick(differences, k=len(differences))) for _ in range(draws))
    return mean, means[int(0.025 * draws)], means[int(0.975 * draws) - 1]


def emit(result: dict[str, object], as_json: bool) -> None:
    """Print a result as JSON (``--json``) or as aligned text."""
    if as_json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>32}: {value}")
    sys.stdout.flush()
