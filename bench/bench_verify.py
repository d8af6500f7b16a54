"""`ramnet verify` against its floor, BLAKE3 of A, B and C on every core, in one run.

Usage: python bench/bench_verify.py [--cases int8:2048,int8:4096,int32:2048] [--runs 7] [--json]

For each case (square n x n operands of a dtype, seeded random, C = A·B with a signed trace and a
sum-check proof written once to a temporary folder), medians of --runs:

- the floor: BLAKE3 of A's, B's and C's bytes, each array hashed as one message by the blake3
  package on every core (``blake3.blake3(max_threads=blake3.blake3.AUTO)``), arrays in memory.
  This is plain hashing, not the Merkle commitment verify must recompute (64 KiB and 128 KiB
  leaves, each with its header, and a tree): that is reported beside it (``merkle_abc_s``, the
  commitment code path verify uses, ``commit_matrices`` with the trace's tiles);
- ``verify_trace`` in process with the arrays in memory (every check: format, signature, proof
  rounds, the three commitments, the proof's three evaluations, Freivalds). Goal: at most 1.3x
  the floor;
- ``ramnet verify t.bin --a A.npy --b B.npy --c C.npy`` as a process, and a baseline process that
  only starts Python, imports numpy and loads the three files. Goal: verify - baseline at most
  1.3x the floor + 150 ms (``process_over_budget`` at most 1). Beside them, a process that calls
  ``verify_trace`` on the same files without the command line;
- on one core (best CPU time of --runs): the plain BLAKE3 of the three arrays, their Merkle
  commitments, and their weighted sums against three weight vectors (what verify's fused pass
  adds to the hashing).

The processes keep compiled bytecode in a folder of their own, as an installed copy does (see
bench_trace.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import blake3
import numpy as np
from _common import emit

import ramnet
from ramnet.orchid._io import random_operands
from ramnet.valkyrie import NodeKey, TraceRecorder, read_trace_bytes, verify_trace, write_trace
from ramnet.valkyrie._checks import freivalds_vectors
from ramnet.valkyrie._merkle import commit_matrices
from ramnet.valkyrie._trace import decode
from ramnet.valkyrie.field import RowSums

_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
VERIFY_GOAL = 1.3  # verify_trace / floor
PROCESS_GOAL_S = 0.150  # verify process - baseline process <= VERIFY_GOAL * floor + this


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=_ENV)
    return time.perf_counter() - t0


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cpu_time(fn: Callable[[], object]) -> float:
    t0 = time.thread_time()
    fn()
    return time.thread_time() - t0


def blake3_floor(arrays: list[np.ndarray]) -> list[bytes]:
    """BLAKE3 of each array's bytes, every core on each."""
    return [
        blake3.blake3(
            np.ascontiguousarray(x).reshape(-1).view(np.uint8), max_threads=blake3.blake3.AUTO
        ).digest()
        for x in arrays
    ]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def measure(dtype: str, n: int, runs: int, folder: Path, exe: str) -> dict[str, object]:
    a, b = random_operands(n, n, n, dtype, seed=5)
    recorder = TraceRecorder()
    c = ramnet.matmul(a, b, hooks=[recorder])
    key = NodeKey.generate()
    trace_path = folder / f"t-{dtype}-{n}.bin"
    write_trace(trace_path, recorder.build(key, prove=True), key)
    files = [folder / f"{name}-{dtype}-{n}.npy" for name in "ABC"]
    for path, x in zip(files, (a, b, c), strict=True):
        np.save(path, x)
    verdict = verify_trace(trace_path, a, b, c)
    assert verdict.valid, verdict.failed
    trace = decode(read_trace_bytes(trace_path))
    tiles = [trace.a.tile, trace.b.tile, trace.c.tile]

    # Interleaved, so that the load of a shared machine hits floor and verify alike; the ratio is
    # the median of each run's own ratio.
    floors, merkles, verifies = [], [], []
    pairs = list(zip((a, b, c), tiles, strict=True))
    for _ in range(runs + 1):
        floors.append(timed(lambda: blake3_floor([a, b, c])))
        merkles.append(timed(lambda: commit_matrices(pairs)))
        verifies.append(timed(lambda: verify_trace(trace_path, a, b, c)))
    del floors[0], merkles[0], verifies[0]  # the first run starts the thread pools
    med = statistics.median
    floor, merkle, in_process = med(floors), med(merkles), med(verifies)
    ratio = med(v / f for v, f in zip(verifies, floors, strict=True))
    # Where verify's time goes, on one core (CPU time of this thread, which a shared machine's
    # other processes disturb less than wall time): the plain hash, the Merkle leaves and tree,
    # and the weighted sums (three weight vectors, as verify reduces each matrix against).
    weights = RowSums(np.vstack([freivalds_vectors(n, 40)] * 3))
    one_core = {
        "blake3": lambda: [blake3.blake3(x.reshape(-1).view(np.uint8)).digest() for x in (a, b, c)],
        "merkle": lambda: commit_matrices(pairs, threads=1),
        "rowsums_nw3": lambda: [weights(x) for x in (a, b, c)],
    }
    cpu = {name: min(cpu_time(fn) for _ in range(runs)) for name, fn in one_core.items()}

    verify = [exe, "verify", str(trace_path)]
    for flag, path in zip(("--a", "--b", "--c"), files, strict=True):
        verify += [flag, str(path)]
    baseline = [
        sys.executable,
        "-c",
        "import sys, numpy; [numpy.load(f) for f in sys.argv[1:]]",
        *map(str, files),
    ]
    # The same verification without the command line: what the CLI's own start-up adds.
    library = [
        sys.executable,
        "-c",
        "import sys; from ramnet.valkyrie import verify_trace; "
        "sys.exit(0 if verify_trace(*sys.argv[1:]).valid else 1)",
        str(trace_path),
        *map(str, files),
    ]
    wall(verify), wall(library), wall(baseline)  # warm the page cache and the bytecode cache
    p_verify, p_library, p_base = [], [], []
    for _ in range(runs):  # interleaved, so drift hits all alike
        p_verify.append(wall(verify))
        p_library.append(wall(library))
        p_base.append(wall(baseline))
    process_own = med(p_verify) - med(p_base)
    budget = VERIFY_GOAL * floor + PROCESS_GOAL_S
    return {
        "bytes_abc": a.nbytes + b.nbytes + c.nbytes,
        "floor_blake3_abc_s": round(floor, 4),
        "merkle_abc_s": round(merkle, 4),
        "verify_in_process_s": round(in_process, 4),
        "verify_over_floor": round(ratio, 3),
        "verify_goal": f"verify_over_floor <= {VERIFY_GOAL}",
        "verify_goal_met": ratio <= VERIFY_GOAL,
        "process_verify_s": round(med(p_verify), 4),
        "process_baseline_s": round(med(p_base), 4),
        "process_verify_trace_s": round(med(p_library), 4),
        "process_minus_baseline_s": round(process_own, 4),
        "process_minus_baseline_minus_floor_s": round(process_own - floor, 4),
        "process_budget_s": round(budget, 4),
        "process_over_budget": round(process_own / budget, 3),
        "process_goal": f"process_over_budget <= 1 ({VERIFY_GOAL} x floor + 150 ms)",
        "process_goal_met": process_own <= budget,
        "one_core_s": {name: round(t, 4) for name, t in cpu.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--cases", default="int8:2048,int8:4096,int32:2048")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    script = Path(sys.executable).parent / "ramnet"
    exe = str(script) if script.exists() else "ramnet"
    result: dict[str, object] = {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "runs": args.runs,
    }
    with tempfile.TemporaryDirectory() as tmp:
        _ENV["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        for case in args.cases.split(","):
            dtype, size = case.split(":")
            result[f"{dtype} n={size}"] = measure(dtype, int(size), args.runs, Path(tmp), exe)
    emit(result, args.json)


if __name__ == "__main__":
    main()
