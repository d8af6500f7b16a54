"""Recovery from a worker killed mid-shard: from the SIGKILL to the consumer holding C.

Usage: python bench/bench_recovery.py [--n 1536] [--runs 5] [--dtype int8] [--json]

Real processes on this machine's loopback, at the coordinator's default settings (leases sized
by the work, node timeout 15 s), as issue 17 asks:

1. a coordinator; a doomed worker (``--misbehave stall``: it claims a shard and then says
   nothing, as a machine that died mid-computation) and two honest workers;
2. ``ramnet run --mode mesh --nodes 3 --random NxNxN`` (the three shards go to the three
   workers), then a spare honest worker once the doomed one holds its shard;
3. SIGKILL to the doomed worker (``claim_to_kill_s`` after it claimed: the spare's start); the
   time from the kill to the consumer's exit (C downloaded, checked with Freivalds and saved) is
   the recovery time.

Also measured, on the same kind of mesh without a kill: the job's time from the consumer's start
(``honest_s``), so ``recovery_s`` can be read against it. Which rule handed the shard over is read
from the coordinator's log: ``backup`` (a straggler: held far longer than its peers' commits,
rules.lease.is_straggler) or ``silent`` (no request or heartbeat for the node timeout); the
first that applies acts. Before issue 17 the shard waited for the fixed 300 s lease. Medians
over --runs.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import emit
from _procs import ME, ProcessMesh, wait_log


def _consumer(mesh: ProcessMesh, n: int, dtype: str) -> subprocess.Popen[bytes]:
    size = f"{n}x{n}x{n}"
    return subprocess.Popen(
        [*ME, "run", "--mode", "mesh", "--nodes", "3", "--random", size, "--dtype", dtype,
         "--out", "C.npy", "--key-file", "c.key", "--json"],
        cwd=mesh.folder, env=mesh.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _finish(consumer: subprocess.Popen[bytes], timeout: float) -> None:
    _, err = consumer.communicate(timeout=timeout)
    if consumer.returncode != 0:
        raise SystemExit(f"the consumer failed: {err.decode(errors='replace')}")


def one_run(n: int, dtype: str, *, crash: bool) -> dict[str, Any]:
    """One job on a fresh mesh, with a worker killed mid-shard or not."""
    with tempfile.TemporaryDirectory(prefix="ramnet-recovery-") as tmp:
        folder = Path(tmp)
        mesh = ProcessMesh(folder)
        try:
            mesh.coordinator()
            names = ["doomed", "w0", "w1"] if crash else ["w0", "w1", "w2"]
            for name in names:
                mesh.worker(name, *(["--misbehave", "stall"] if name == "doomed" else []))
            for name in names:
                wait_log(folder / f"{name}.log", "registered", 60)
            started = time.monotonic()
            consumer = _consumer(mesh, n, dtype)
            if not crash:
                _finish(consumer, 600)
                return {"honest_s": time.monotonic() - started}
            wait_log(folder / "doomed.log", "stalling", 300)
            stalled = time.monotonic()  # it claimed its shard a moment before
            mesh.worker("spare")
            wait_log(folder / "spare.log", "registered", 60)
            mesh.procs["doomed"].send_signal(signal.SIGKILL)
            killed = time.monotonic()
            _finish(consumer, 600)
            recovery = time.monotonic() - killed
            log = (folder / "coord.log").read_text(errors="replace")
            rule = "backup" if "backup cop" in log else "silent" if "silent for" in log else "?"
            return {"recovery_s": recovery, "rule": rule, "claim_to_kill_s": killed - stalled}
        finally:
            mesh.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1536)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dtype", default="int8")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    recoveries = [one_run(args.n, args.dtype, crash=True) for _ in range(args.runs)]
    honest = [one_run(args.n, args.dtype, crash=False)["honest_s"] for _ in range(args.runs)]
    times = [r["recovery_s"] for r in recoveries]
    rules = [r["rule"] for r in recoveries]
    emit(
        {
            "n": args.n,
            "dtype": args.dtype,
            "runs": args.runs,
            "recovery_s": round(statistics.median(times), 2),
            "recovery_s_all": [round(t, 2) for t in times],
            "recovery_s_max": round(max(times), 2),
            "rules": {rule: rules.count(rule) for rule in sorted(set(rules))},
            "honest_job_s": round(statistics.median(honest), 2),
            "recovery_over_honest_job": round(
                statistics.median(times) / statistics.median(honest), 2
            ),
            "claim_to_kill_s": round(
                statistics.median(r["claim_to_kill_s"] for r in recoveries), 2
            ),
            "goal_s": 20.0,
            "old_lease_s": 300.0,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
