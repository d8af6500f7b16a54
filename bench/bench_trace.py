"""VALKYRIE's costs against the plain sovereign run, in one run.

Usage: python bench/bench_trace.py [--sizes 2048,4096] [--runs 5] [--json]

For each n (square int8, seeded random inputs saved once to a temporary folder), medians of --runs:
- whole processes: `ramnet run --mode sovereign --a A.npy --b B.npy --out C.npy` without and with
  `--trace t.bin --prove` (overhead = ratio - 1; goal <= 20%);
- in one process: the GEMM (`ramnet.matmul`), the commitments of A, B and C, and the proof alone
  (`prove_matmul`), the proof as a fraction of the GEMM (goal <= 5%);
- `ramnet verify t.bin --a A.npy --b B.npy --c C.npy` as a whole process, and the time to load the
  three files (np.load, read fully) and to start the interpreter (`ramnet --version`), so that
  verify's own work = verify - load - start-up (goal <= 10% of the GEMM); plus verify_trace in
  process with the arrays already in memory;
- the proof's size in bytes.
"""

from __future__ import annotations

import argparse
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


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
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
    wall(plain), wall(traced)  # warm the page cache and numba-free paths
    p_plain, p_traced, p_verify, p_start = [], [], [], []
    for _ in range(runs):  # interleaved, so drift hits all alike
        p_plain.append(wall(plain))
        p_traced.append(wall(traced))
        p_verify.append(wall(verify))
        p_start.append(wall([exe, "--version"]))
    files = [folder / x for x in ("A.npy", "B.npy", "C.npy")]
    load = median_of(lambda: [np.load(f) for f in files], runs)
    c = ramnet.matmul(a, b)
    gemm = median_of(lambda: ramnet.matmul(a, b), runs)
    commit = median_of(lambda: [commit_matrix(x) for x in (a, b, c)], runs)
    proof = prove_matmul(a, b, b"bench-seed")
    prove = median_of(lambda: prove_matmul(a, b, b"bench-seed"), runs)
    inproc_verify = median_of(lambda: verify_trace(folder / "t.bin", a, b, c), runs)
    med = statistics.median
    verify_work = med(p_verify) - load - med(p_start)
    return {
        "process_plain_s": round(med(p_plain), 4),
        "process_traced_proved_s": round(med(p_traced), 4),
        "trace_overhead": round(med(p_traced) / med(p_plain) - 1, 3),
        "gemm_s": round(gemm, 4),
        "commit_abc_s": round(commit, 4),
        "prove_s": round(prove, 4),
        "prove_over_gemm": round(prove / gemm, 3),
        "process_verify_s": round(med(p_verify), 4),
        "load_abc_s": round(load, 4),
        "process_startup_s": round(med(p_start), 4),
        "verify_work_over_gemm": round(verify_work / gemm, 3),
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
        for n in (int(x) for x in args.sizes.split(",")):
            result[f"n={n}"] = measure(n, args.runs, Path(tmp), exe)
    emit(result, args.json)


if __name__ == "__main__":
    main()
