"""bench/_common.py's statistics and process counters (the benchmarks' figures rest on them)."""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

_COMMON = Path(__file__).resolve().parents[2] / "bench" / "_common.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_common", _COMMON)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


common = _load()


def test_the_paired_mean_interval_holds_the_mean_and_is_seeded() -> None:
    differences = [0.010, -0.004, 0.021, 0.003, 0.000, 0.015, -0.012, 0.008, 0.030, 0.001]
    mean, low, high = common.paired_mean_interval(differences)
    assert mean == pytest.approx(statistics.fmean(differences))
    assert min(differences) <= low < mean < high <= max(differences)
    assert common.paired_mean_interval(differences) == (mean, low, high)  # same seed, same
    # Wider for fewer pairs of the same spread.
    _, low4, high4 = common.paired_mean_interval(differences[:4])
    assert high4 - low4 > high - low
    assert common.paired_mean_interval([0.5] * 6) == (0.5, 0.5, 0.5)
    assert common.paired_mean_interval([0.25]) == (0.25, 0.25, 0.25)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_process_faults_count_memory_touched_afresh() -> None:
    before, system_before = common.process_faults(os.getpid())
    touched = np.ones(64 << 20, np.uint8)  # 64 MiB written: faulted in page by page
    after, system_after = common.process_faults(os.getpid())
    assert int(touched[-1]) == 1
    assert after > before and system_after >= system_before
    assert common.process_faults(2**22 + 12345) == (0, 0.0)  # no such process
