"""Disputes always end: a dispute whose only validator could have taken a shard, run many times.

Usage: python bench/bench_dispute_end.py [--runs 20] [--n 256] [--dtype int8] [--fallback] [--json]

Each run is a fresh mesh of real processes on this machine's loopback, at the coordinator's
default settings (validator wait 10 s, node timeout 15 s), as issue 17 describes the failure:

1. a coordinator; three workers, one of them ``--misbehave off-by-one`` (one entry of one block
   +1); and the only validator, a worker with ``--validator`` that computes too, all registered
   before the job is submitted, so the validator could be handed one of the job's shards (which
   made it ineligible for the dispute, and the job waited for ever, before issue 17);
2. ``ramnet run --mode mesh --nodes 3 --random NxNxN --save-inputs``: the consumer's whole job,
   timed from its start to its exit (C downloaded, checked and saved), then compared with numpy.

From the coordinator's state file after each run: when the dispute opened, who judged it (the
validator, or the coordinator's own fallback), the time from the dispute to the job settled, and
whether the validator held a first copy of any of the job's shards (it must not: at most the
cheater's slot computed again after the dispute). Prints the distribution over the runs: all
settled, each within the goal (30 s).

``--fallback``: no validator at all; a spare honest worker joins once the three hold the job's
shards (to compute the cheater's slot again), and the coordinator judges the dispute itself after
its validator wait (10 s).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import emit
from _procs import ME, ProcessMesh, wait_log

GOAL_S = 30.0


def one_run(n: int, dtype: str, timeout: float, fallback: bool = False) -> dict[str, Any]:
    """One disputed job on a fresh mesh whose only validator runs from the start (``fallback``:
    with no validator, and a spare worker)."""
    with tempfile.TemporaryDirectory(prefix="ramnet-dispute-end-") as tmp:
        folder = Path(tmp)
        mesh = ProcessMesh(folder)
        try:
            mesh.coordinator()
            nodes = {
                "cheat": ["--misbehave", "off-by-one"],
                "w0": [],
                "w1": [],
                "val": ["--validator"],
            }
            if fallback:
                del nodes["val"]
            for name, extra in nodes.items():
                mesh.start(name, "worker", "start", "--key-file", f"{name}.key", "--bond", "50",
                           *extra)  # fmt: skip
            for name in nodes:
                wait_log(folder / f"{name}.log", "registered", 60)
            started = time.monotonic()
            consumer = subprocess.Popen(
                [*ME, "run", "--mode", "mesh", "--nodes", "3", "--random", f"{n}x{n}x{n}",
                 "--dtype", dtype, "--save-inputs", "in", "--out", "C.npy", "--key-file",
                 "c.key", "--json"],
                cwd=folder, env=mesh.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            if fallback:
                for name in nodes:
                    wait_log(folder / f"{name}.log", "block products", 60)
                mesh.start("spare", "worker", "start", "--key-file", "spare.key", "--bond", "50")
            try:
                out, err = consumer.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                consumer.kill()
                consumer.communicate()
                return {"settled": False, "total_s": time.monotonic() - started, "why": "timeout"}
            total = time.monotonic() - started
            if consumer.returncode != 0:
                why = err.decode(errors="replace").strip()
                return {"settled": False, "total_s": total, "why": why}
            report = json.loads(out)
            a, b = np.load(folder / "in" / "A.npy"), np.load(folder / "in" / "B.npy")
            exact = bool(
                np.array_equal(np.load(folder / "C.npy"), a.astype(np.int64) @ b.astype(np.int64))
            )
            val = "" if fallback else mesh.node_id("val")
            with sqlite3.connect(folder / "s" / "state.sqlite") as db:
                disputes = db.execute(
                    "SELECT created_at, resolved_at, validator, outcome FROM disputes"
                    " WHERE job_id = ? ORDER BY dispute_id",
                    (report["job_id"],),
                ).fetchall()
                settled_at = db.execute(
                    "SELECT updated_at FROM jobs WHERE job_id = ?", (report["job_id"],)
                ).fetchone()[0]
                first_copies = db.execute(
                    "SELECT count(*) FROM shards WHERE job_id = ? AND node_id = ? AND attempt = 0",
                    (report["job_id"], val),
                ).fetchone()[0]
            opened = disputes[0][0] if disputes else None
            last = disputes[-1] if disputes else None
            return {
                "settled": report["state"] == "settled",
                "exact": exact,
                "total_s": total,
                "disputes": len(disputes),
                "judged_by": None if last is None else ("validator" if last[2] else "coordinator"),
                "dispute_to_settled_s": None if opened is None else settled_at - opened,
                "dispute_to_verdict_s": None
                if last is None or last[1] is None
                else last[1] - opened,
                "validator_first_copies": int(first_copies),
            }
        finally:
            mesh.stop()


def _spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {
        "min": round(ordered[0], 2),
        "median": round(statistics.median(ordered), 2),
        "p90": round(p90, 2),
        "max": round(ordered[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--dtype", default="int8")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per run at most")
    parser.add_argument("--fallback", action="store_true", help="no validator at all")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs = []
    for i in range(args.runs):
        runs.append(one_run(args.n, args.dtype, args.timeout, args.fallback))
        if not args.json:
            print(f"run {i + 1}/{args.runs}: {runs[-1]}", file=sys.stderr, flush=True)
    totals = [r["total_s"] for r in runs]
    ended = [r for r in runs if r["settled"]]
    to_settle = [r["dispute_to_settled_s"] for r in ended if r["dispute_to_settled_s"] is not None]
    judges = [str(r.get("judged_by")) for r in ended]
    emit(
        {
            "n": args.n,
            "dtype": args.dtype,
            "validator": "none (the coordinator's fallback)" if args.fallback else "the only one",
            "runs": args.runs,
            "settled": len(ended),
            "exact": sum(1 for r in ended if r["exact"]),
            "disputed": sum(1 for r in ended if r["disputes"]),
            "within_goal": sum(1 for t in totals if t <= GOAL_S),
            "goal_s": GOAL_S,
            "total_s": _spread(totals),
            "dispute_to_settled_s": _spread(to_settle) if to_settle else None,
            "judged_by": {j: judges.count(j) for j in sorted(set(judges))},
            "validator_first_copies": sum(r.get("validator_first_copies", 0) for r in runs),
            "total_s_all": [round(t, 2) for t in totals],
            "failures": [r.get("why") for r in runs if not r["settled"]],
        },
        args.json,
    )


if __name__ == "__main__":
    main()
