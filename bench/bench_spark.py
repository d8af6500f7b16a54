"""RAMNET on Spark (issue 18) against Spark MLlib, the sovereign run and Dask, in one run.

Usage: python bench/bench_spark.py [--n 4096] [--runs 3] [--slow-runs 3]
       [--rss-sizes 2048,4096,8192] [--rss-runs 2] [--master local[2]] [--json]
Needs the `bench` extra (Dask, psutil), pyspark and zarr, and Java 17+.

Square int8 jobs on this machine, every measured run a whole process, medians over the runs:

- operands: A and B written once with ``ramnet.spark.store.write_random`` (seed 9), as ``.npy``
  files and as Zarr stores whose chunks fit the grid RAMNET on Spark picks for them (an untimed
  first Spark run on the ``.npy`` files says which grid);
- ``spark``: ``ramnet run --mode spark --a A.zarr --b B.zarr --out C.zarr --master local[2]
  --json`` (wall of the process; the job's ``seconds`` from its report);
- ``checks_on`` / ``checks_off``: a driver script (``_spark_peers.py ramnet``) that starts the
  session and calls ``ramnet.spark.matmul(..., checks=True|False)``: the cost of the audit copies
  and the Freivalds checks, alternating which goes first;
- ``checks_warm_on`` / ``checks_warm_off``: the same in one warm session (``_spark_peers.py
  ramnet-warm``: an untimed first job, then ``--warm-pairs`` alternating pairs), where the first
  stage's Python-worker start does not swamp what the checks cost;
- ``sovereign``: ``ramnet run --mode sovereign --a A.npy --b B.npy --out C.npy --json``;
- ``dask``: ``da.matmul`` on ``da.from_zarr`` of the same Zarr stores, int8 upcast to int32 (the
  exact product needs it), C written with ``to_zarr``; the threaded scheduler, 2 threads;
- ``mllib``: Spark MLlib's ``BlockMatrix.multiply`` in float64 (exact here: every sum is an
  integer below 2^53), blocks of RAMNET's grid read from the same Zarr chunks by Spark tasks, same
  master; the product is forced in the JVM (its blocks cached and counted) and three of its blocks
  are checked against the exact product in the same process (not timed);
- ``rss``: the driver script with ``--random NxNxN`` (executors write the operands) at each of
  ``--rss-sizes``: peak resident memory of the Python driver, of the driver's JVM (local mode:
  it also runs the executors' threads) and of Spark's Python workers.

Every C is compared with the exact product (``ramnet.matmul``) after its run. ``--slow-runs``
limits how many rounds include MLlib and Dask (they take minutes at 4096). One untimed sovereign
and Spark run come first.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import emit

import ramnet
from ramnet import orchid

ME = [sys.executable, "-m", "ramnet.cli"]
PEERS = [sys.executable, str(Path(__file__).resolve().parent / "_spark_peers.py")]
SEED = 9


def cpu_model() -> dict[str, Any]:
    """``lscpu``'s model name, CPU count and whether the CPU has AVX-512 VNNI."""
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = fields.get("Flags", "")
    return {
        "model": fields.get("Model name", "?").strip(),
        "cpus": int(fields.get("CPU(s)", "0").strip() or 0),
        "avx512_vnni": "avx512_vnni" in flags.split(),
    }


def _process(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    """Run ``cmd`` as a process; its wall seconds and the JSON object on its last stdout line."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"bench: {' '.join(cmd)} failed (exit {proc.returncode}):\n{tail}")
    lines = proc.stdout.strip().splitlines()
    return wall, json.loads(lines[-1]) if lines else {}


def _read_c(path: Path) -> np.ndarray:
    if path.suffix == ".zarr":
        import zarr

        return np.asarray(zarr.open_array(str(path), mode="r")[:])
    return np.load(path)


def _check(path: Path, exact: np.ndarray, who: str) -> None:
    if not np.array_equal(_read_c(path), exact):
        raise SystemExit(f"bench: {who}'s C ({path.name}) is not the exact product")


def write_operands(folder: Path, n: int, grid: tuple[int, int, int] | None) -> None:
    """A and B (n x n int8, seed ``SEED``) as ``.npy`` files (``grid`` None) or as Zarr stores
    whose chunks fit ``grid``; the values are the same either way."""
    from ramnet.spark.store import TileGrid, write_random

    if grid is None:
        whole = TileGrid((0, n), (0, n))
        for name in ("A", "B"):
            write_random(folder / f"{name}.npy", (n, n), "int8", SEED, whole, operand=name)
        return
    blocks = orchid.make_grid(n, n, n, grid)
    for name in ("A", "B"):
        tiles = TileGrid.of_operand(blocks, name)  # type: ignore[arg-type]
        write_random(folder / f"{name}.zarr", (n, n), "int8", SEED, tiles, operand=name)


def _block_steps(n: int, grid: tuple[int, int, int]) -> tuple[int, int, int]:
    """RAMNET's block size (rows, inner, columns) for MLlib, which needs one size per axis."""
    blocks = orchid.make_grid(n, n, n, grid)
    steps = []
    for edges in (blocks.row_edges, blocks.k_edges, blocks.col_edges):
        step = edges[1]
        # Every block but the last is ``step`` long; the last may be shorter (MLlib allows that).
        if (
            any(b - a != step for a, b in itertools.pairwise(edges[:-1]))
            or edges[-1] - edges[-2] > step
        ):
            raise SystemExit(f"bench: grid edges {edges} are not one block size (MLlib needs one)")
        steps.append(step)
    return steps[0], steps[1], steps[2]


def _seconds(report: dict[str, Any]) -> tuple[float, float]:
    """(job seconds without the session start, session seconds) from a Spark report."""
    seconds = report["seconds"]
    session = float(seconds.get("session", 0.0))
    return float(seconds["total"]) - session, session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--slow-runs", type=int, default=None, help="rounds with MLlib and Dask")
    parser.add_argument("--rss-sizes", default="2048,4096,8192")
    parser.add_argument("--rss-runs", type=int, default=2)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--skip", default="", help="comma list of: mllib, dask, checks, rss")
    parser.add_argument(
        "--warm-pairs", type=int, default=8, help="checks on/off job pairs in one warm session"
    )
    parser.add_argument("--tmp", default=None, help="folder for the operands (default: /tmp)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n, master = args.n, args.master
    skip = {s for s in args.skip.split(",") if s}
    slow_runs = args.runs if args.slow_runs is None else args.slow_runs
    rss_sizes = [int(s) for s in args.rss_sizes.split(",") if s] if "rss" not in skip else []
    # As bench_mesh.py: an installed ramnet carries its bytecode.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(ramnet.__file__).parent)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="ramnet-bench-spark-", dir=args.tmp))
    # A, B (int8) in two formats, four int32 Cs; the largest --random job's stores (the
    # engine's operands and partials, C), twice over for headroom.
    biggest = max([n, *rss_sizes])
    need = 20 * n * n + 2 * 12 * biggest * biggest
    free = shutil.disk_usage(tmp).free
    if free < need:
        raise SystemExit(f"bench: {tmp} has {free >> 20} MiB free, needs about {need >> 20} MiB")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp / "cfg")}
    rows: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        rows.setdefault(key, []).append(value)

    try:
        write_operands(tmp, n, None)
        exact = ramnet.matmul(np.load(tmp / "A.npy"), np.load(tmp / "B.npy"))
        sovereign = [*ME, "run", "--mode", "sovereign", "--a", "A.npy", "--b", "B.npy"]
        sovereign += ["--out", "C.npy", "--json"]
        spark_npy = [*ME, "run", "--mode", "spark", "--a", "A.npy", "--b", "B.npy"]
        spark_npy += ["--out", "CS.zarr", "--master", master, "--json"]
        # Untimed: warms the page cache, the JVM's jars, and says which grid Spark picks.
        _process(sovereign, tmp, env)
        _, first = _process(spark_npy, tmp, env)
        grid = (int(first["grid"][0]), int(first["grid"][1]), int(first["grid"][2]))
        _check(tmp / "CS.zarr", exact, "spark")
        write_operands(tmp, n, grid)
        spark = [*ME, "run", "--mode", "spark", "--a", "A.zarr", "--b", "B.zarr"]
        spark += ["--out", "CS.zarr", "--master", master, "--json"]
        driver = [*PEERS, "ramnet", "--a", "A.zarr", "--b", "B.zarr", "--out", "CR.zarr"]
        driver += ["--master", master]
        dask = [*PEERS, "dask", "--a", "A.zarr", "--b", "B.zarr", "--out", "CD.zarr"]
        mllib = [*PEERS, "mllib", "--a", "A.zarr", "--b", "B.zarr", "--master", master]
        mllib += ["--block", ",".join(str(s) for s in _block_steps(n, grid))]
        if "checks" not in skip:
            # The checks' own cost, without the first stage's Python-worker start that dominates
            # a whole process's job time: pairs of jobs in one warm session.
            warm = [*PEERS, "ramnet-warm", "--a", "A.zarr", "--b", "B.zarr", "--out", "CW.zarr"]
            warm += ["--master", master, "--pairs", str(args.warm_pairs)]
            _, out = _process(warm, tmp, env)
            for value in out["on"]:
                add("checks_warm_on_job_s", value)
            for value in out["off"]:
                add("checks_warm_off_job_s", value)
            _check(tmp / "CW.zarr", exact, "checks_warm")
        for round_ in range(args.runs):
            wall, report = _process(sovereign, tmp, env)
            add("sovereign_wall_s", wall)
            add("sovereign_job_s", float(report["seconds"]["total"]))
            _check(tmp / "C.npy", exact, "sovereign")
            wall, report = _process(spark, tmp, env)
            job, session = _seconds(report)
            add("spark_wall_s", wall)
            add("spark_job_s", job)
            add("spark_session_s", session)
            for stage in ("random", "compute", "check", "assemble"):
                add(f"spark_{stage}_s", float(report["seconds"].get(stage, 0.0)))
            _check(tmp / "CS.zarr", exact, "spark")
            if "checks" not in skip:
                order = [True, False] if round_ % 2 == 0 else [False, True]
                for checks in order:
                    name = "checks_on" if checks else "checks_off"
                    wall, out = _process(driver + ([] if checks else ["--no-checks"]), tmp, env)
                    add(f"{name}_wall_s", wall)
                    add(f"{name}_job_s", _seconds(out["report"])[0])
                    add(f"{name}_session_s", float(out["session_s"]))
                    _check(tmp / "CR.zarr", exact, name)
            if round_ < slow_runs and "dask" not in skip:
                wall, out = _process(dask, tmp, env)
                add("dask_wall_s", wall)
                add("dask_job_s", float(out["job_s"]))
                _check(tmp / "CD.zarr", exact, "dask")
            if round_ < slow_runs and "mllib" not in skip:
                wall, out = _process(mllib, tmp, env)  # checks its own blocks
                add("mllib_wall_s", wall)
                add("mllib_job_s", float(out["job_s"]))
                add("mllib_session_s", float(out["session_s"]))
                add("mllib_load_s", float(out["load_s"]))
                add("mllib_multiply_s", float(out["multiply_s"]))
        rss: dict[str, dict[str, float]] = {}
        for size in rss_sizes:
            peaks: dict[str, list[float]] = {}
            for _ in range(args.rss_runs):
                cmd = [*PEERS, "ramnet", "--rss", "--random", str(size), "--out", "CX.zarr"]
                _, out = _process([*cmd, "--master", master], tmp, env)
                for key in ("driver_peak_mib", "jvm_peak_mib", "workers_peak_mib"):
                    peaks.setdefault(key, []).append(float(out[key]))
                peaks.setdefault("driver_bytes", []).append(float(out["report"]["driver_bytes"]))
                peaks.setdefault("job_s", []).append(_seconds(out["report"])[0])
                shutil.rmtree(tmp / "CX.zarr", ignore_errors=True)
            rss[str(size)] = {k: round(statistics.median(v), 1) for k, v in peaks.items()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {key: round(statistics.median(v), 3) for key, v in rows.items()}
    result: dict[str, Any] = {
        "cpu": cpu_model(),
        "n": n,
        "dtype": "int8",
        "master": master,
        "grid": list(grid),
        "runs": args.runs,
        "slow_runs": slow_runs if {"mllib", "dask"} - skip else 0,
        "median": med,
        "each": {key: [round(x, 3) for x in v] for key, v in rows.items()},
        # Other work on the machine (1-minute load average) at the start and at the end.
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    ratios: dict[str, Any] = {}

    def ratio(name: str, top: str, bottom: str, goal: str | None = None) -> None:
        if top in med and bottom in med and med[bottom] > 0:
            ratios[name] = round(med[top] / med[bottom], 2)
            if goal:
                ratios[name + "_goal"] = goal

    ratio("mllib_wall_over_spark_wall", "mllib_wall_s", "spark_wall_s", ">= 5")
    ratio("mllib_job_over_spark_job", "mllib_job_s", "spark_job_s", ">= 5")
    ratio("mllib_multiply_over_spark_job", "mllib_multiply_s", "spark_job_s")
    ratio("spark_wall_over_sovereign_wall", "spark_wall_s", "sovereign_wall_s", "<= 1.5")
    ratio("spark_job_over_sovereign_job", "spark_job_s", "sovereign_job_s")
    ratio("dask_wall_over_spark_wall", "dask_wall_s", "spark_wall_s")
    ratio("dask_job_over_spark_job", "dask_job_s", "spark_job_s")
    ratio("checks_on_over_off_job", "checks_on_job_s", "checks_off_job_s", "<= 1.15")
    ratio("checks_on_over_off_wall", "checks_on_wall_s", "checks_off_wall_s")
    ratio("checks_warm_on_over_off_job", "checks_warm_on_job_s", "checks_warm_off_job_s", "<= 1.15")
    result["ratios"] = ratios
    if rss_sizes:
        result["rss_mib"] = rss
        drivers = [rss[str(s)]["driver_peak_mib"] for s in rss_sizes]
        result["driver_rss_largest_over_smallest"] = round(drivers[-1] / drivers[0], 2)
    if args.json:
        emit(result, True)
        return
    _print_table(result, rss_sizes)


def _print_table(result: dict[str, Any], rss_sizes: list[int]) -> None:
    cpu = result["cpu"]
    vnni = "with" if cpu["avx512_vnni"] else "without"
    print(f"{cpu['model']}, {cpu['cpus']} CPUs, {vnni} AVX-512 VNNI; master {result['master']}")
    print(f"load average (1 min) at start and end: {result['load_average']}")
    print(f"n = {result['n']} int8, grid {result['grid']}, medians of {result['runs']} runs")
    print(f"{'':>12} {'wall (s)':>10} {'job (s)':>10} {'session (s)':>12}")
    med = result["median"]
    for name in ("sovereign", "spark", "checks_on", "checks_off", "dask", "mllib"):
        if f"{name}_wall_s" not in med:
            continue
        session = med.get(f"{name}_session_s")
        shown = "" if session is None else f"{session:.3f}"
        wall, job = med[f"{name}_wall_s"], med[f"{name}_job_s"]
        print(f"{name:>12} {wall:>10.3f} {job:>10.3f} {shown:>12}")
    ratios = {k: v for k, v in result["ratios"].items() if not k.endswith("_goal")}
    for key, value in ratios.items():
        goal = result["ratios"].get(key + "_goal")
        print(f"{key:>32}: {value}" + (f"  (goal {goal})" if goal else ""))
    if rss_sizes:
        print(f"{'peak RSS, MiB':>14} {'driver':>8} {'JVM':>8} {'workers':>8} {'bytes in':>10}")
        for size in rss_sizes:
            row = result["rss_mib"][str(size)]
            print(
                f"{size:>14} {row['driver_peak_mib']:>8.1f} {row['jvm_peak_mib']:>8.1f} "
                f"{row['workers_peak_mib']:>8.1f} {row['driver_bytes']:>10.0f}"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
