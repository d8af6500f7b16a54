"""VALKYRIE's costs against the plain sovereign run, in one run.

Usage: python bench/bench_trace.py [--sizes 2048,4096] [--runs 5] [--json]

For each n (square int8, seeded random inputs saved once to a temporary folder), medians of --runs:
- whole processes: `ramnet run --mode sovereign --a A.npy --b B.npy --out C.npy` without and with
  `--trace t.bin --prove` (overhead = ratio - 1; goal <= 20%);
- in one process: the GEMM (`ramnet.matmul`), the commitments of A, B and C (with the trace's
  tiles), and the proof alone (`prove_matmul`), the proof as a fraction of the GEMM (goal <= 5%);
- `ramnet verify t.bin --a A.npy --b B.npy --c C.npy` as a whole process, against a baseline
  process that starts Python, imports numpy and loads the three files (`python -c "import numpy;
  numpy.load(...)"`): verify's own work = verify - baseline (goal <= 10% of the GEMM); plus
  verify_trace in process with the arrays already in memory;
- the proof's size in bytes.

The processes run with compiled bytecode kept in a temporary folder (see ``_ENV``), as an installed
copy runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import emit

import ramnet
from ramnet import orchid
from ramnet.valkyrie import NodeKey, commit_matrix, prove_matmul, save_key, verify_trace
from ramnet.valkyrie._merkle import row_strip_tile

# The processes keep compiled bytecode (in a folder of their own, not the source tree), as an
# installed package does: pip compiles it at install time. Without this, under
# PYTHONDONTWRITEBYTECODE every run would compile RAMNET's sources again (about 15 ms of a traced
# run's imports on the reference machine), which no installed copy pays.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=_ENV)
    return time.perf_counter() - t0


def median_of(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(n: int, runs: int, folder: Path, exe: str) -> dict[str, object]:
    a, b = orchid.random_operands(n, n, n, "int8", seed=3)
    np.save(folder / "A.npy", a)
    np.save(folder / "B.npy", b)
    key_file = folder / "node.key"
    if not key_file.exists():
        save_key(NodeKey.generate(), key_file)
    base = [
        exe,
        "run",
        "--mode",
        "sovereign",
        "--a",
        str(folder / "A.npy"),
        "--b",
        str(folder / "B.npy"),
    ]
    plain = [*base, "--out", str(folder / "C0.npy")]
    traced = [
        *base,
        "--out",
        str(folder / "C.npy"),
        "--trace",
        str(folder / "t.bin"),
        "--prove",
        "--key-file",
        str(key_file),
    ]
    verify = [
        exe,
        "verify",
        str(folder / "t.bin"),
        "--a",
        str(folder / "A.npy"),
        "--b",
        str(folder / "B.npy"),
        "--c",
        str(folder / "C.npy"),
    ]
    files = [folder / x for x in ("A.npy", "B.npy", "C.npy")]
    # What any process that checks these files pays before its own work: Python, numpy, the reads.
    baseline = [
        sys.executable,
        "-c",
        "import sys, numpy; [numpy.load(f) for f in sys.argv[1:]]",
        *map(str, files),
    ]
    wall(plain), wall(traced), wall(verify), wall(baseline)  # warm the page cache
    p_plain, p_traced, p_verify, p_base = [], [], [], []
    for _ in range(runs):  # interleaved, so drift hits all alike
        p_plain.append(wall(plain))
        p_traced.append(wall(traced))
        p_verify.append(wall(verify))
        p_base.append(wall(baseline))
    load = median_of(lambda: [np.load(f) for f in files], runs)
    c = ramnet.matmul(a, b)
    gemm = median_of(lambda: ramnet.matmul(a, b), runs)
    # With the trace's tiles: whole rows for A and C, 64 KiB squares for B.
    tiles = (row_strip_tile(a.dtype, a.shape), None, row_strip_tile(c.dtype, c.shape))
    pairs = list(zip((a, b, c), tiles, strict=True))
    commit = median_of(lambda: [commit_matrix(x, tile=t) for x, t in pairs], runs)
    proof = prove_matmul(a, b, b"bench-seed")
    prove = median_of(lambda: prove_matmul(a, b, b"bench-seed"), runs)
    inproc_verify = median_of(lambda: verify_trace(folder / "t.bin", a, b, c), runs)
    med = statistics.median
    verify_work = med(p_verify) - med(p_base)
    return {
        "process_plain_s": round(med(p_plain), 4),
        "process_traced_proved_s": round(med(p_traced), 4),
        "trace_overhead": round(med(p_traced) / med(p_plain) - 1, 3),
        "gemm_s": round(gemm, 4),
        "commit_abc_s": round(commit, 4),
        "prove_s": round(prove, 4),
        "prove_over_gemm": round(prove / gemm, 3),
        "process_verify_s": round(med(p_verify), 4),
        "process_baseline_s": round(med(p_base), 4),
        "process_verify_work_s": round(verify_work, 4),
        "process_verify_work_over_gemm": round(verify_work / gemm, 3),
        "load_abc_s": round(load, 4),
        "verify_in_process_s": round(inproc_verify, 4),
        "verify_in_process_over_gemm": round(inproc_verify / gemm, 3),
        "proof_bytes": proof.size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2048,4096")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    script = Path(sys.executable).parent / "ramnet"
    exe = str(script) if script.exists() else "ramnet"
    result: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        _ENV["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        for n in (int(x) for x in args.sizes.split(",")):
            result[f"n={n}"] = measure(n, args.runs, Path(tmp), exe)
    emit(result, args.json)


if __name__ == "__main__":
    main()
