"""The mesh against the sovereign run and against Dask distributed, in one run.

Usage: python bench/bench_mesh.py [--n 4096] [--runs 3] [--json]
Needs the `bench` extra for Dask (`pip install -e ".[bench]"`).

All on this machine's loopback, square int8 jobs from `.npy` files:
- sovereign: `ramnet run --mode sovereign` as a process (wall, and CPU seconds of the process);
- mesh: a coordinator and 3 workers already running (like a cluster), then
  `ramnet run --mode mesh --nodes 3` as a process; wall of that process, and CPU seconds of every
  mesh process (coordinator + workers during the job, + the consumer process);
- Dask: a LocalCluster of 3 single-threaded worker processes already running; the same grid of
  block products (`grid_for`), each multiplied with `ramnet.matmul` (the same ORCHID kernel) on a
  worker, partials summed there, C gathered: wall time from scattering A and B to holding C;
- mesh in process, measured like Dask: the consumer's library calls (submit, wait, fetch and
  Freivalds-check C, wait until settled) from A and B in memory to C in memory, in this process;
  wall, and CPU seconds of this process plus the coordinator and workers;
- Dask as a process, measured like the mesh's process: a Python process that imports Dask,
  connects to the same running cluster, loads A and B from the `.npy` files, runs the Dask job
  above and saves C (`dask_process_wall_s`).
The mesh's CPU is also given per part (`mesh_cpu_consumer_s`, `_coordinator_s`, `_workers_s`).
ramnet's bytecode is compiled first, as an installed package has it. Each is run once untimed
first (Dask's workers too). Medians over --runs. The mesh also audits
(overlapping blocks) and checks every partial.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import emit

import ramnet
from ramnet import orchid
from ramnet.mesh import grid_for

ME = [sys.executable, "-m", "ramnet.cli"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    c0, t0 = _child_cpu(), time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0, _child_cpu() - c0


def dask_run(a: np.ndarray, b: np.ndarray, client: object) -> np.ndarray:
    m, k = a.shape
    n = b.shape[1]
    grid = orchid.make_grid(m, k, n, grid_for(m, k, n, 3, dtype=a.dtype))
    p, q, r = grid.shape
    tiles_a = {
        (i, kk): client.scatter(np.ascontiguousarray(a[grid.rows(i), grid.inner(kk)]))  # type: ignore[attr-defined]
        for i in range(p)
        for kk in range(r)
    }
    tiles_b = {
        (kk, j): client.scatter(np.ascontiguousarray(b[grid.inner(kk), grid.cols(j)]))  # type: ignore[attr-defined]
        for kk in range(r)
        for j in range(q)
    }

    def block(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        import ramnet

        return ramnet.matmul(x, y, threads=1)

    def add(*parts: np.ndarray) -> np.ndarray:
        out = parts[0].copy()
        for part in parts[1:]:
            out += part
        return out

    tiles = {}
    for i in range(p):
        for j in range(q):
            partials = [client.submit(block, tiles_a[(i, kk)], tiles_b[(kk, j)]) for kk in range(r)]  # type: ignore[attr-defined]
            tiles[(i, j)] = client.submit(add, *partials)  # type: ignore[attr-defined]
    c = np.empty((m, n), orchid.result_dtype(a.dtype, k))
    for (i, j), future in tiles.items():
        c[grid.rows(i), grid.cols(j)] = future.result()
    return c


DASK_CONSUMER = """
import sys
sys.path.insert(0, {bench!r})
import numpy as np
from dask.distributed import Client
import bench_mesh
from ramnet import orchid

with Client(sys.argv[1]) as client:
    a, b = np.load("A.npy"), np.load("B.npy")
    orchid.save_npy("CD.npy", bench_mesh.dask_run(a, b, client))
"""


def mesh_in_process(client: Any, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The consumer's part of a mesh job without its process: submit, wait, fetch and check C."""
    from ramnet.mesh.nodes import consumer as _consumer

    job_id = _consumer.submit(client, a, b, 3)
    c, _ = _consumer.fetch_checked(client, job_id, a, b)
    _consumer.wait(client, job_id)  # and settled: stored and paid
    return c


def start_mesh(
    folder: Path,
    env: dict[str, str],
    extra: list[str],
    coordinator: Callable[[int], list[str]] | None = None,
) -> tuple[str, list[Any]]:
    """A coordinator (with ``extra`` flags, state in ``folder/state``) and 3 workers, started in
    ``folder``: returns the coordinator's URL and the processes, the coordinator first.
    ``coordinator`` gives another command for the coordinator from its port (state in ``state``)."""
    port = _port()
    url = f"http://127.0.0.1:{port}"
    command = (
        coordinator(port)
        if coordinator is not None
        else [*ME, "coordinator", "start", "--port", str(port), "--data-dir", "state", *extra]
    )
    procs = [
        subprocess.Popen(command, cwd=folder, env=env, stderr=subprocess.DEVNULL)
    ]  # fmt: skip
    deadline = time.monotonic() + 30
    while not (folder / "state" / "state.sqlite").exists():
        if time.monotonic() > deadline:
            raise SystemExit("bench: the coordinator did not start")
        time.sleep(0.05)
    for w in range(3):
        procs.append(
            subprocess.Popen(
                [*ME, "worker", "start", "--key-file", f"w{w}.key", "--coordinator", url],
                cwd=folder, env=env, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
    time.sleep(2)
    return url, procs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n = args.n
    # An installed ramnet carries its bytecode (pip compiles it, the executable embeds it). In a
    # checkout run with PYTHONDONTWRITEBYTECODE=1 every command would compile its modules again:
    # about 35 ms for the sovereign run and 55 ms for the consumer.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(ramnet.__file__).parent)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    tmp = Path(tempfile.mkdtemp())
    a, b = orchid.random_operands(n, n, n, "int8", seed=9)
    np.save(tmp / "A.npy", a)
    np.save(tmp / "B.npy", b)
    exact = ramnet.matmul(a, b)
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp / "cfg")}
    sovereign = [*ME, "run", "--a", "A.npy", "--b", "B.npy", "--out", "C.npy"]
    url, procs = start_mesh(tmp, env, [])
    mesh = [*ME, "run", "--mode", "mesh", "--nodes", "3", "--coordinator", url]
    mesh += ["--a", "A.npy", "--b", "B.npy", "--out", "CM.npy", "--key-file", "consumer.key"]
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    client.run(
        lambda: __import__("ramnet").matmul(np.ones((8, 8), np.int8), np.ones((8, 8), np.int8))
    )
    scheduler = str(cluster.scheduler_address)
    (tmp / "dask_consumer.py").write_text(
        DASK_CONSUMER.format(bench=str(Path(__file__).resolve().parent))
    )
    from ramnet.mesh import MeshClient
    from ramnet.valkyrie import NodeKey

    client_ = MeshClient(url, NodeKey.generate())
    rows: dict[str, list[float]] = {}
    try:
        # One untimed round of each, as Dask's workers are warmed above: a node's first job pays
        # for growing its heap, and that is not what a running cluster costs per job.
        _timed(sovereign, tmp, env)
        _timed(mesh, tmp, env)
        mesh_in_process(client_, a, b)
        _timed([sys.executable, "dask_consumer.py", scheduler], tmp, env)
        for _ in range(args.runs):
            wall, cpu = _timed(sovereign, tmp, env)
            rows.setdefault("sovereign_wall_s", []).append(wall)
            rows.setdefault("sovereign_cpu_s", []).append(cpu)
            before_each = [_cpu([p.pid]) for p in procs]
            wall, cpu = _timed(mesh, tmp, env)
            spent = [_cpu([p.pid]) - b for p, b in zip(procs, before_each, strict=True)]
            mesh_cpu = cpu + sum(spent)
            rows.setdefault("mesh_wall_s", []).append(wall)
            rows.setdefault("mesh_cpu_s", []).append(mesh_cpu)
            rows.setdefault("mesh_cpu_consumer_s", []).append(cpu)
            rows.setdefault("mesh_cpu_coordinator_s", []).append(spent[0])
            rows.setdefault("mesh_cpu_workers_s", []).append(sum(spent[1:]))
            assert np.array_equal(np.load(tmp / "CM.npy"), exact)
            t0 = time.perf_counter()
            c = dask_run(a, b, client)
            rows.setdefault("dask_wall_s", []).append(time.perf_counter() - t0)
            assert np.array_equal(c, exact)
            before = _cpu([p.pid for p in procs]) + time.process_time()
            t0 = time.perf_counter()
            c = mesh_in_process(client_, a, b)
            rows.setdefault("mesh_inproc_wall_s", []).append(time.perf_counter() - t0)
            inproc_cpu = _cpu([p.pid for p in procs]) + time.process_time() - before
            rows.setdefault("mesh_inproc_cpu_s", []).append(inproc_cpu)
            assert np.array_equal(c, exact)
            wall, _ = _timed([sys.executable, "dask_consumer.py", scheduler], tmp, env)
            rows.setdefault("dask_process_wall_s", []).append(wall)
            assert np.array_equal(np.load(tmp / "CD.npy"), exact)
    finally:
        client.close()
        cluster.close()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
    med = {key: round(statistics.median(v), 3) for key, v in rows.items()}
    result: dict[str, object] = {"n": n, "runs": args.runs, "median": med}
    result["mesh_cpu_over_sovereign_cpu"] = round(med["mesh_cpu_s"] / med["sovereign_cpu_s"], 2)
    result["mesh_wall_over_sovereign_wall"] = round(med["mesh_wall_s"] / med["sovereign_wall_s"], 2)
    result["mesh_wall_over_dask_wall"] = round(med["mesh_wall_s"] / med["dask_wall_s"], 2)
    result["mesh_inproc_wall_over_dask_wall"] = round(
        med["mesh_inproc_wall_s"] / med["dask_wall_s"], 2
    )
    result["mesh_wall_over_dask_process_wall"] = round(
        med["mesh_wall_s"] / med["dask_process_wall_s"], 2
    )
    emit(result, args.json)


if __name__ == "__main__":
    main()
