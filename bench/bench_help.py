"""How fast `ramnet --help` answers (target < 0.3 s), against a bare `python -c pass`, in one run.

Usage: python bench/bench_help.py [--runs 15] [--json]

Runs the installed `ramnet` entry point (the real script, not a pyenv shim) and reports the median
wall time of each, and whether numba or numpy were imported by `import ramnet.cli`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import emit


def median_wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    script = Path(sys.executable).parent / "ramnet"
    exe = str(script) if script.exists() else shutil.which("ramnet") or "ramnet"
    probe = (
        "import sys, ramnet.cli; print(int('numba' in sys.modules), int('numpy' in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    result = {
        "ramnet_help_median_s": round(median_wall([exe, "--help"], args.runs), 3),
        "python_pass_median_s": round(median_wall([sys.executable, "-c", "pass"], args.runs), 3),
        "numba_imported_by_cli": loaded[0] == "1",
        "numpy_imported_by_cli": loaded[1] == "1",
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
