"""One measured process of ``bench_spark.py``: RAMNET on Spark in a driver script, Spark MLlib's
``BlockMatrix.multiply`` or Dask's ``da.matmul``, each on the same stores.

Usage (``bench_spark.py`` starts it, one process per run)::

    python bench/_spark_peers.py ramnet --a A.zarr --b B.zarr --out C.zarr [--no-checks]
    python bench/_spark_peers.py ramnet --random 4096 --out C.zarr
    python bench/_spark_peers.py mllib --a A.zarr --b B.zarr --block 832,4096,832
    python bench/_spark_peers.py dask --a A.zarr --b B.zarr --out C.zarr

Each prints one JSON line: the seconds it spent starting Spark (``session_s``), the job
(``job_s``) and, for RAMNET, the engine's report and the peak resident memory of this (driver)
process, of the JVM it started and of Spark's Python workers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


def _parse_ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


class PeakMemory:
    """Samples, every ``interval`` seconds, the resident memory of this process's JVM child
    (Spark's driver JVM) and of every other descendant (Spark's Python workers), and keeps each
    peak in MiB. This process's own peak comes from the kernel (``driver_mib``), exactly."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.peaks = {"jvm": 0.0, "workers": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        mib = 1024.0 * 1024.0
        while not self._stop.is_set():
            jvm = workers = 0.0
            try:
                children = me.children(recursive=True)
            except psutil.Error:
                children = []
            for child in children:
                try:
                    rss = child.memory_info().rss / mib
                    is_jvm = child.ppid() == me.pid and "java" in child.name()
                except psutil.Error:
                    continue
                if is_jvm:
                    jvm += rss
                else:
                    workers += rss
            self.peaks["jvm"] = max(self.peaks["jvm"], jvm)
            self.peaks["workers"] = max(self.peaks["workers"], workers)
            self._stop.wait(self.interval)

    @staticmethod
    def driver_mib() -> float:
        """This process's peak resident memory so far, in MiB: Linux's ``VmHWM``. Not
        ``ru_maxrss``, which a process started by fork and exec inherits from its parent (here
        the benchmark, holding the exact product)."""
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
        return float("nan")


def _session(master: str, memory: str | None) -> Any:
    """RAMNET's session (``spark_session``: ``master``, 127.0.0.1, no UI, quiet logs), with
    ``spark.driver.memory`` set to ``memory`` when given (in local mode the executors live in the
    driver's JVM, and MLlib's blocks in its heap)."""
    from ramnet.spark.session import spark_session

    conf = {"spark.driver.memory": memory} if memory else None
    return spark_session(master, app_name="ramnet-bench-peer", conf=conf)


def run_ramnet(args: argparse.Namespace) -> dict[str, Any]:
    """RAMNET on Spark through the library: session start, then ``ramnet.spark.matmul``."""
    from ramnet.spark import matmul

    # The sampler walks /proc ten times a second: only where memory is what is measured.
    peaks = PeakMemory()
    with peaks if args.rss else contextlib.nullcontext():
        t0 = time.perf_counter()
        spark = _session(args.master, None)
        session_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        extra: dict[str, Any] = {}
        if args.random:
            n = args.random
            extra = {"random": (n, n, n), "dtype": "int8"}
        report = matmul(
            args.a, args.b, args.out, spark=spark, nodes=args.nodes, checks=args.checks, **extra
        )
        job_s = time.perf_counter() - t1
        spark.stop()
    return {
        "session_s": session_s,
        "job_s": job_s,
        "report": report.to_dict(),
        "driver_peak_mib": PeakMemory.driver_mib(),
        "jvm_peak_mib": peaks.peaks["jvm"] if args.rss else None,
        "workers_peak_mib": peaks.peaks["workers"] if args.rss else None,
    }


def run_ramnet_warm(args: argparse.Namespace) -> dict[str, Any]:
    """The checks' cost in one warm session: an untimed job first (it starts the Python workers),
    then ``--pairs`` pairs of jobs with and without checks, alternating which goes first."""
    from ramnet.spark import matmul

    spark = _session(args.master, None)
    matmul(args.a, args.b, args.out, spark=spark, nodes=args.nodes)
    times: dict[str, list[float]] = {"on": [], "off": []}
    for pair in range(args.pairs):
        for checks in (True, False) if pair % 2 == 0 else (False, True):
            report = matmul(args.a, args.b, args.out, spark=spark, nodes=args.nodes, checks=checks)
            times["on" if checks else "off"].append(float(report.seconds["total"]))
    spark.stop()
    return times


def _dense_block(path: str, name: str, rows: slice, cols: slice) -> Any:
    from pyspark.mllib.linalg import Matrices

    from ramnet.spark.store import open_matrix

    tile = open_matrix(path, name).read_tile(rows, cols).astype(np.float64)
    # MLlib's dense matrices are column-major.
    return Matrices.dense(tile.shape[0], tile.shape[1], tile.ravel(order="F"))


def _block_matrix(
    sc: Any, path: str, name: str, shape: tuple[int, int], step: tuple[int, int]
) -> Any:
    from pyspark.mllib.linalg.distributed import BlockMatrix

    rows, cols = shape
    index = [(i, j) for i in range(-(-rows // step[0])) for j in range(-(-cols // step[1]))]

    def load(ij: tuple[int, int]) -> tuple[tuple[int, int], Any]:
        i, j = ij
        r = slice(i * step[0], min((i + 1) * step[0], rows))
        c = slice(j * step[1], min((j + 1) * step[1], cols))
        return (i, j), _dense_block(path, name, r, c)

    blocks = sc.parallelize(index, len(index)).map(load)
    return BlockMatrix(blocks, step[0], step[1], rows, cols)


def run_mllib(args: argparse.Namespace) -> dict[str, Any]:
    """MLlib's ``BlockMatrix.multiply`` in float64 on blocks read from the same stores; the product
    is forced in the JVM (its blocks cached and counted), then three whole blocks of it are checked
    against the exact integer product (not timed)."""
    import ramnet
    from ramnet.spark.store import open_matrix

    a_store, b_store = open_matrix(args.a, "A"), open_matrix(args.b, "B")
    m, k = a_store.shape
    n = b_store.shape[1]
    rows_step, inner_step, cols_step = args.block
    t0 = time.perf_counter()
    spark = _session(args.master, args.memory)
    session_s = time.perf_counter() - t0
    sc = spark.sparkContext
    t1 = time.perf_counter()
    a = _block_matrix(sc, args.a, "A", (m, k), (rows_step, inner_step))
    b = _block_matrix(sc, args.b, "B", (k, n), (inner_step, cols_step))
    # Loading (Python tasks read the tiles; pyspark hands them to the JVM through a DataFrame)
    # and the multiplication are timed apart: both blocks' RDDs are cached in the JVM first.
    for operand in (a, b):
        loaded = operand._java_matrix_wrapper._java_model.blocks()
        loaded.cache()
        loaded.count()
    load_s = time.perf_counter() - t1
    product = a.multiply(b)
    blocks = product._java_matrix_wrapper._java_model.blocks()
    blocks.cache()
    count = int(blocks.count())
    job_s = time.perf_counter() - t1
    p, q = -(-m // rows_step), -(-n // cols_step)
    wanted = {(0, 0), (p - 1, q - 1), (p // 2, q // 3)}
    got = dict(product.blocks.filter(lambda kv: kv[0] in wanted).collect())
    checked = 0
    for i, j in sorted(wanted):
        r = slice(i * rows_step, min((i + 1) * rows_step, m))
        c = slice(j * cols_step, min((j + 1) * cols_step, n))
        exact = ramnet.matmul(a_store.read_tile(r, slice(0, k)), b_store.read_tile(slice(0, k), c))
        if not np.array_equal(got[(i, j)].toArray(), exact.astype(np.float64)):
            raise SystemExit(f"MLlib's block ({i}, {j}) differs from the exact product")
        checked += exact.size
    spark.stop()
    return {
        "session_s": session_s,
        "job_s": job_s,
        "load_s": load_s,
        "multiply_s": job_s - load_s,
        "blocks": count,
        "entries_checked": checked,
        "block": [rows_step, inner_step, cols_step],
    }


def run_dask(args: argparse.Namespace) -> dict[str, Any]:
    """Dask's ``da.matmul`` on the Zarr chunks, int8 upcast to int32, C written with ``to_zarr``,
    on the threaded scheduler with ``--workers`` threads."""
    import dask
    import dask.array as da

    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        a = da.from_zarr(args.a).astype(np.int32)
        b = da.from_zarr(args.b).astype(np.int32)
        da.matmul(a, b).to_zarr(args.out, overwrite=True)
    return {"session_s": 0.0, "job_s": time.perf_counter() - t0, "workers": args.workers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("peer", choices=["ramnet", "ramnet-warm", "mllib", "dask"])
    parser.add_argument("--a")
    parser.add_argument("--b")
    parser.add_argument("--out")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--random", type=int, default=0, help="ramnet: seeded NxNxN int8")
    parser.add_argument("--no-checks", dest="checks", action="store_false")
    parser.add_argument("--rss", action="store_true", help="ramnet: sample the JVM's and workers'")
    parser.add_argument("--block", type=_parse_ints, help="mllib: rows,inner,cols per block")
    parser.add_argument("--memory", default="4g", help="mllib: spark.driver.memory")
    parser.add_argument("--workers", type=int, default=2, help="dask: threads")
    parser.add_argument("--pairs", type=int, default=8, help="ramnet-warm: job pairs")
    args = parser.parse_args()
    run = {
        "ramnet": run_ramnet,
        "ramnet-warm": run_ramnet_warm,
        "mllib": run_mllib,
        "dask": run_dask,
    }[args.peer]
    result = run(args)
    sys.stdout.flush()
    print(json.dumps(result))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
