"""What one dispute costs, with real processes on this machine's loopback.

Usage: python bench/bench_dispute.py [--n 2048] [--nodes 3,6] [--json]

For each node count: a coordinator, as many workers as the job has nodes, one of them
`--misbehave off-by-one` (one entry of one block +1), and a validator and a spare worker that join
once every shard of the job is held (so the validator is not a party, and the spare, new to the
job, can compute a slot again: a job's slots go to distinct nodes since issue 17). The
consumer's `ramnet run --mode mesh` job is square int8 from `.npy` files. After it settles, the
coordinator's SQLite file and the validator's log give:

- the validator's work: block products it recomputed, against the job's block products (every
  copy: audits and mirrors included), and its seconds for the whole validation (package checks,
  recompute, fraud proofs), against the job's wall time;
- the time from divergence (the dispute opened at settlement) to the job settled, on loopback:
  with 3 nodes the cheater's slot is recomputed by the spare worker; with 6 (mirror triads) its
  slots are served by their mirrors.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import emit
from bench_mesh import ME, _port

import ramnet
from ramnet import orchid


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_dispute: timed out waiting for {what}")
        time.sleep(0.05)


def _query(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return list(conn.execute(sql, args).fetchall())
    except sqlite3.OperationalError:
        return []


def one_case(n: int, nodes: int, folder: Path) -> dict[str, object]:
    port = _port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "XDG_CONFIG_HOME": str(folder / "cfg"), "RAMNET_COORDINATOR": url}
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str, *args: str) -> None:
        log = open(folder / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        procs[name] = subprocess.Popen([*ME, *args], cwd=folder, env=env, stdout=log, stderr=log)

    db = folder / "state" / "state.sqlite"
    try:
        start("coord", "coordinator", "start", "--port", str(port), "--data-dir", "state",
              "--lease", "120")  # fmt: skip
        _wait(db.exists, 30, "the coordinator")
        start("cheat", "worker", "start", "--key-file", "cheat.key", "--bond", "50",
              "--misbehave", "off-by-one")  # fmt: skip
        for w in range(nodes - 1):
            start(f"w{w}", "worker", "start", "--key-file", f"w{w}.key", "--bond", "50")
        t0 = time.perf_counter()
        consumer = subprocess.Popen(
            [*ME, "run", "--mode", "mesh", "--nodes", str(nodes), "--a", "A.npy", "--b", "B.npy",
             "--out", "C.npy", "--key-file", "c.key", "--json"],
            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        _wait(lambda: _query(db, "SELECT job_id FROM jobs"), 120, "the job")
        job_id = str(_query(db, "SELECT job_id FROM jobs")[0][0])
        _wait(
            lambda: (
                not _query(db, "SELECT 1 FROM shards WHERE job_id = ? AND node_id IS NULL", job_id)
            ),
            300,
            "every shard to be held",
        )
        start("val", "worker", "start", "--key-file", "val.key", "--bond", "50", "--validator")
        start("spare", "worker", "start", "--key-file", "spare.key", "--bond", "50")
        out, err = consumer.communicate(timeout=600)
        wall = time.perf_counter() - t0
        if consumer.returncode != 0:
            raise SystemExit(f"bench_dispute: the consumer failed: {err.decode()}")
        report = json.loads(out)
        opened, resolved, outcome = _query(
            db,
            "SELECT created_at, resolved_at, outcome FROM disputes WHERE job_id = ?"
            " ORDER BY dispute_id DESC LIMIT 1",
            job_id,
        )[0]
        settled_at, spec = _query(db, "SELECT updated_at, spec FROM jobs WHERE job_id = ?", job_id)[
            0
        ]
        shards = _query(db, "SELECT blocks, state FROM shards WHERE job_id = ?", job_id)
        copies = sum(len(json.loads(str(b))) for b, s in shards if s != "expired")
        recomputed = len(shards) - json.loads(str(spec))["nodes"]
        line = re.search(
            r"block products recomputed, ([0-9.]+) s", (folder / "val.log").read_text()
        )
        blocks = re.search(r"\((\d+) block products recomputed", (folder / "val.log").read_text())
        validator_s = float(line.group(1)) if line else float("nan")
        validator_blocks = int(blocks.group(1)) if blocks else -1
        return {
            "nodes": nodes,
            "redundancy": report.get("redundancy"),
            "state": report["state"],
            "outcome": json.loads(str(outcome)) if outcome else None,
            "job_wall_s": round(wall, 3),
            "divergence_to_settled_s": round(float(settled_at) - float(opened), 3),  # type: ignore[arg-type]
            "dispute_open_s": round(float(resolved) - float(opened), 3),  # type: ignore[arg-type]
            "validator_s": validator_s,
            "validator_s_over_job_wall": round(validator_s / wall, 4),
            "validator_block_products": validator_blocks,
            "job_block_products": copies,
            "validator_fraction_of_block_products": round(validator_blocks / copies, 4),
            "shards_added_for_recompute": recomputed,
        }
    finally:
        for name, proc in procs.items():
            if name != "coord" and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in procs.items():
            if name != "coord":
                proc.wait(timeout=30)
        procs["coord"].send_signal(signal.SIGTERM)
        procs["coord"].wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--nodes", default="3,6")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for nodes in (int(x) for x in args.nodes.split(",")):
        folder = Path(tempfile.mkdtemp(prefix="ramnet-dispute-"))
        a, b = orchid.random_operands(args.n, args.n, args.n, "int8", seed=nodes)
        np.save(folder / "A.npy", a)
        np.save(folder / "B.npy", b)
        row = one_case(args.n, nodes, folder)
        c = np.load(folder / "C.npy")
        row["exact"] = bool(np.array_equal(c, ramnet.matmul(a, b)))
        rows.append(row)
    emit({"n": args.n, "dtype": "int8", "cases": rows}, args.json)


if __name__ == "__main__":
    main()
