"""STREAM triad: RAMNET's C kernel against numpy and McCalpin's reference STREAM, in one run.

Usage: python bench/bench_stream.py [--n 33554432] [--rounds 5] [--json]

Each round measures, on 2^25 float64 elements by default: McCalpin's triad (bench/stream_ref.c built
with -O3 -march=native -fopenmp) on 1 and 2 threads, RAMNET's triad on 1 and 2 threads, and numpy's
best in-place form (np.multiply(c, s, out=a); a += b). Each figure is STREAM's "best rate" over 10
runs (3 * 8 * n bytes / minimum time); the rounds are interleaved and their medians reported, since
this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from _common import best_and_median, emit

from ramnet import orchid

HERE = Path(__file__).resolve().parent


def build_reference(n: int) -> Path | None:
    if shutil.which("gcc") is None:
        return None
    exe = Path(tempfile.mkdtemp()) / "stream_ref"
    subprocess.run(
        [
            "gcc",
            "-O3",
            "-march=native",
            "-fopenmp",
            f"-DSTREAM_ARRAY_SIZE={n}L",
            str(HERE / "stream_ref.c"),
            "-o",
            str(exe),
        ],
        check=True,
    )
    return exe


def reference(exe: Path, threads: int) -> float:
    env = {"OMP_NUM_THREADS": str(threads), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([str(exe)], capture_output=True, text=True, env=env, check=True)
    return float(json.loads(out.stdout)["triad_best_gbs"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1 << 25)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n = args.n
    a, b, c = np.zeros(n), np.full(n, 2.0), np.full(n, 0.5)
    s = 3.0
    nbytes = 3 * 8 * n

    def numpy_triad() -> None:
        np.multiply(c, s, out=a)
        np.add(a, b, out=a)

    exe = build_reference(n)
    series: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        gbs = {
            "ramnet_1t": lambda: orchid.triad(a, b, c, s, threads=1),
            "ramnet_2t": lambda: orchid.triad(a, b, c, s, threads=2),
            "numpy": numpy_triad,
        }
        for key, fn in gbs.items():
            fn()
            series.setdefault(key, []).append(nbytes / best_and_median(fn, 10)[0] / 1e9)
        if exe is not None:
            series.setdefault("mccalpin_1t", []).append(reference(exe, 1))
            series.setdefault("mccalpin_2t", []).append(reference(exe, 2))
    med = {key: round(statistics.median(v), 2) for key, v in series.items()}
    result: dict[str, object] = {"n": n, "rounds": args.rounds, "triad_best_gbs_median": med}
    result["ramnet_2t_over_numpy"] = round(med["ramnet_2t"] / med["numpy"], 2)
    result["ramnet_1t_over_numpy"] = round(med["ramnet_1t"] / med["numpy"], 2)
    if exe is not None:
        result["ramnet_1t_over_mccalpin_1t"] = round(med["ramnet_1t"] / med["mccalpin_1t"], 2)
        result["ramnet_2t_over_mccalpin_2t"] = round(med["ramnet_2t"] / med["mccalpin_2t"], 2)
    emit(result, args.json)


if __name__ == "__main__":
    main()
