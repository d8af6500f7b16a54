"""What C's second copy costs a settled job: the replica's write against the primary's.

Usage: python bench/bench_replica.py [--n 4096] [--runs 9] [--dir PATH] [--json]

A settled n x n int8 job's C (int32, n*n*4 bytes) is packed and written as the coordinator writes
it: the primary with ``put_stream`` on the settling path, then the replica with ``put_replica`` on
the write-behind thread (issue 17: C must survive the damage of one file). Each is timed, wall
and CPU seconds of this process, into a fresh blob store under ``--dir`` (default: a temporary
folder, which may be tmpfs; give a folder on the coordinator's disk to measure that disk). Then a
download from disk with the primary damaged (``get_redundant``: read and hash both copies,
rewrite the primary) against one with both intact. Medians over --runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ramnet.mesh.protocol.wire import pack_parts
from ramnet.mesh.state.blobs import BlobStore


def _timed(work: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def _flip(path: Path) -> None:
    with path.open("r+b") as fh:
        fh.seek(path.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))


def _one_run(blobs: BlobStore, c: np.ndarray) -> dict[str, tuple[float, float]]:
    # Each step's (wall, cpu) on a fresh store, in the coordinator's order.
    out = {}
    digest = ""

    def primary() -> None:
        nonlocal digest
        digest = blobs.put_stream(pack_parts({}, {"C": c}))

    out["primary"] = _timed(primary)
    # As the coordinator writes it: the bytes it just stored, not hashed again.
    out["replica"] = _timed(
        lambda: blobs.put_replica(pack_parts({}, {"C": c}), digest, trusted=True)
    )
    out["download_intact"] = _timed(lambda: blobs.get_redundant(digest))
    _flip(blobs.path_of(digest))
    out["download_primary_damaged"] = _timed(lambda: blobs.get_redundant(digest))
    return out


def measure(n: int, runs: int, folder: Path) -> dict[str, float]:
    """Median wall and CPU seconds of each step, over ``runs`` fresh stores in ``folder``."""
    c = np.random.default_rng(0).integers(-(2**20), 2**20, size=(n, n), dtype=np.int32)
    rows: dict[str, list[float]] = {}
    for run in range(runs + 1):  # the first, untimed: imports and first-touch pages
        steps = _one_run(BlobStore(folder / f"store{run}", durable=False), c)
        for name, (wall, cpu) in steps.items():
            if run:
                rows.setdefault(f"{name}_wall_s", []).append(wall)
                rows.setdefault(f"{name}_cpu_s", []).append(cpu)
    out = {key: statistics.median(values) for key, values in rows.items()}
    out["c_bytes"] = float(c.nbytes)
    out["replica_over_primary_wall"] = out["replica_wall_s"] / out["primary_wall_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        figures = measure(args.n, args.runs, Path(tmp))
    if args.json:
        print(json.dumps({"n": args.n, "runs": args.runs, **figures}, indent=2))
        return
    print(f"C of a {args.n}^3 int8 job: {figures['c_bytes'] / 2**20:.0f} MiB, {args.runs} runs")
    for name in ("primary", "replica", "download_intact", "download_primary_damaged"):
        wall, cpu = figures[f"{name}_wall_s"], figures[f"{name}_cpu_s"]
        print(f"  {name:26s} wall {wall * 1e3:8.1f} ms   cpu {cpu * 1e3:8.1f} ms")
    print(f"  replica / primary (wall): {figures['replica_over_primary_wall']:.2f}")


if __name__ == "__main__":
    main()
