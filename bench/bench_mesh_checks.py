"""What the audit overlap and the per-shard checks cost an honest mesh job, in one run.

Usage: python bench/bench_mesh_checks.py [--n 4096] [--runs 3] [--json]

Square int8 jobs from `.npy` files on this machine's loopback, 3 nodes, 3 workers. Two meshes in
turn, each a coordinator and 3 workers already running: the real one (one audit block per triad
computed three times, every partial checked by Freivalds before settlement), and one whose
coordinator runs with the hidden benchmarking aids `--bench-no-audits --bench-no-checks` (no
audit blocks planned, nothing checked). Per run: the consumer's wall time, and the CPU seconds of
every mesh process during the job (coordinator, workers, consumer). Medians over --runs, the two
meshes alternating so both see the same noise.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
from pathlib import Path

import numpy as np
from _common import emit
from bench_mesh import ME, _cpu, _timed, start_mesh

import ramnet
from ramnet import orchid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n = args.n
    root = Path(tempfile.mkdtemp(prefix="ramnet-checks-"))
    a, b = orchid.random_operands(n, n, n, "int8", seed=9)
    exact = ramnet.matmul(a, b)
    meshes = {}
    for name, extra in (("checked", []), ("unchecked", ["--bench-no-audits", "--bench-no-checks"])):
        folder = root / name
        folder.mkdir()
        np.save(folder / "A.npy", a)
        np.save(folder / "B.npy", b)
        env = {**os.environ, "XDG_CONFIG_HOME": str(folder / "cfg")}
        meshes[name] = (folder, env, *start_mesh(folder, env, extra))
    rows: dict[str, list[float]] = {}
    try:
        for _ in range(args.runs):
            for name, (folder, env, url, procs) in meshes.items():
                cmd = [*ME, "run", "--mode", "mesh", "--nodes", "3", "--coordinator", url]
                cmd += ["--a", "A.npy", "--b", "B.npy", "--out", "C.npy", "--key-file", "c.key"]
                before = _cpu([p.pid for p in procs])
                wall, cpu = _timed(cmd, folder, env)
                rows.setdefault(f"{name}_wall_s", []).append(wall)
                mesh_cpu = cpu + _cpu([p.pid for p in procs]) - before
                rows.setdefault(f"{name}_cpu_s", []).append(mesh_cpu)
                if not np.array_equal(np.load(folder / "C.npy"), exact):
                    raise SystemExit(f"bench_mesh_checks: the {name} mesh returned a wrong C")
    finally:
        for _, _, _, procs in meshes.values():
            for proc in procs[1:] + procs[:1]:  # workers first, then the coordinator
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
    med = {key: round(statistics.median(v), 3) for key, v in rows.items()}
    result: dict[str, object] = {"n": n, "runs": args.runs, "median": med}
    result["wall_cost_of_audits_and_checks"] = round(
        med["checked_wall_s"] / med["unchecked_wall_s"] - 1, 3
    )
    result["cpu_cost_of_audits_and_checks"] = round(
        med["checked_cpu_s"] / med["unchecked_cpu_s"] - 1, 3
    )
    result["runs_raw"] = {key: [round(x, 3) for x in v] for key, v in rows.items()}
    emit(result, args.json)


if __name__ == "__main__":
    main()
