"""Load: many consumers submitting at once to one coordinator with a few workers.

Usage: python bench/bench_load.py [--consumers 20] [--workers 6] [--n 512] [--dtype int8]
       [--nodes 3] [--runs 3] [--json]

A coordinator and ``--workers`` workers run as ``ramnet`` processes on 127.0.0.1 (default
settings). In each run, ``--consumers`` consumers (threads of this process, one key each) submit
one n x n x n job each at the same moment, wait for it, download C and check it (Freivalds, then
exactly against numpy's A @ B here). One job first, untimed, warms the mesh up.

Reports, medians over ``--runs``: jobs per minute (jobs / the wall time from the first submission
to the last C checked by its consumer's Freivalds; the exact comparison comes after the
clock stops), the median and worst job time, the coordinator's CPU seconds during the
run and its share of one core, and the workers' CPU seconds. ``all_exact`` says whether every C
of every run equalled A @ B. Exits 1 if not.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, emit

sys.path.insert(0, str(ROOT))

from tests.chaos_harness import ChaosMesh


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--consumers", type=int, default=20)
    p.add_argument("--workers", type=int, default=6)
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--dtype", default="int8", choices=["int8", "int16"])
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds a job may take")
    p.add_argument("--json", action="store_true")
    return p.parse_args()


def _cpu(pid: int) -> float:
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


def _job(
    url: str, a: np.ndarray, b: np.ndarray, nodes: int, timeout: float, out: dict[str, Any]
) -> None:
    from ramnet.mesh import MeshClient
    from ramnet.mesh.nodes import consumer
    from ramnet.valkyrie import NodeKey

    with MeshClient(url, NodeKey.generate(), retries=None, retry_for=120) as client:
        start = time.perf_counter()
        try:
            job_id = consumer.submit(client, a, b, nodes)
            out["c"], _ = consumer.fetch_checked(client, job_id, a, b, timeout=timeout)
        except Exception as exc:  # reported, not raised in a thread
            out["error"] = f"{type(exc).__name__}: {exc}"
        out["seconds"] = time.perf_counter() - start


def _operands(rng: np.random.Generator, n: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, (n, n), dtype=dtype, endpoint=True)
    b = rng.integers(info.min, info.max, (n, n), dtype=dtype, endpoint=True)
    return a, b


def _wave(
    mesh: ChaosMesh, args: argparse.Namespace, count: int, rng: np.random.Generator
) -> dict[str, Any]:
    operands = [_operands(rng, args.n, args.dtype) for _ in range(count)]
    outs: list[dict[str, Any]] = [{} for _ in range(count)]
    threads = [
        threading.Thread(
            target=_job, args=(mesh.url, a, b, args.nodes, args.timeout, out), daemon=True
        )
        for (a, b), out in zip(operands, outs, strict=True)
    ]
    coord = mesh.procs["coord"].pid
    workers = [p.pid for name, p in mesh.procs.items() if name != "coord"]
    cpu0, wcpu0 = _cpu(coord), sum(_cpu(pid) for pid in workers)
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.timeout + 60)
    wall = time.perf_counter() - start
    cpu = _cpu(coord) - cpu0
    workers_cpu = sum(_cpu(pid) for pid in workers) - wcpu0
    # The exact check after the clock stopped: numpy's integer product has no BLAS, and 20 of
    # them in this process would be most of the wall time measured.
    exact = sum(
        1
        for (a, b), out in zip(operands, outs, strict=True)
        if "c" in out and np.array_equal(np.asarray(out["c"]), a.astype(np.int64) @ b)
    )
    seconds = [out["seconds"] for out in outs if "seconds" in out]
    return {
        "wall_s": wall,
        "jobs_per_min": 60 * count / wall,
        "job_s_median": statistics.median(seconds) if seconds else None,
        "job_s_max": max(seconds, default=None),
        "coordinator_cpu_s": cpu,
        "coordinator_cpu_share": cpu / wall,
        "workers_cpu_s": workers_cpu,
        "exact": exact,
        "errors": [out["error"] for out in outs if "error" in out],
    }


def main() -> int:
    args = _parse()
    rng = np.random.default_rng(17)
    with tempfile.TemporaryDirectory(prefix="ramnet-load-") as tmp:
        mesh = ChaosMesh(Path(tmp), ())
        try:
            mesh.start_coordinator()
            for w in range(args.workers):
                mesh.start(f"w{w}", "worker", "start", "--key-file", f"w{w}.key")
            for w in range(args.workers):
                mesh.wait_logged(f"w{w}", "registered", 120)
            _wave(mesh, args, 1, rng)  # warm-up, untimed
            waves = [_wave(mesh, args, args.consumers, rng) for _ in range(args.runs)]
        finally:
            mesh.stop()

    def med(key: str) -> float:
        return round(statistics.median(w[key] for w in waves), 3)

    all_exact = all(w["exact"] == args.consumers for w in waves)
    emit(
        {
            "consumers": args.consumers,
            "workers": args.workers,
            "n": args.n,
            "dtype": args.dtype,
            "nodes": args.nodes,
            "runs": args.runs,
            "jobs_per_min": med("jobs_per_min"),
            "jobs_per_min_runs": [round(w["jobs_per_min"], 1) for w in waves],
            "wall_s": med("wall_s"),
            "job_s_median": med("job_s_median"),
            "job_s_max": med("job_s_max"),
            "coordinator_cpu_s": med("coordinator_cpu_s"),
            "coordinator_cpu_share": med("coordinator_cpu_share"),
            "workers_cpu_s": med("workers_cpu_s"),
            "all_exact": all_exact,
            "errors": [e for w in waves for e in w["errors"]][:5],
        },
        args.json,
    )
    return 0 if all_exact else 1


if __name__ == "__main__":
    sys.exit(main())
