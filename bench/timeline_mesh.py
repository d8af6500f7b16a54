"""Where one mesh job's wall time and the coordinator's CPU go: a timeline of its steps.

Usage: python bench/timeline_mesh.py [--n 4096] [--jobs 8] [--json]

Starts a coordinator whose methods are wrapped to log start, end and thread CPU time (a
diagnostic: the wrappers change nothing else), and 3 ordinary workers, all on this machine's
loopback. This process submits --jobs int8 jobs one after another as a consumer in process
(submit, wait until checked, fetch and check C, wait until settled), 2 s apart, and prints, for
the medians over the jobs after the first 4 (a coordinator's heap and page cache warm up over
its first jobs): the consumer's steps, the coordinator's steps from the job's start (submit, the
first and last commit and reveal, the settlement and its parts), and the coordinator's thread CPU
per step. Times are seconds from the consumer starting the job's submission.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from _common import emit
from bench_mesh import start_mesh

from ramnet import orchid

# The coordinator, with logging wrappers around the steps that matter: method, start, end and
# thread CPU seconds, one line each, in the file named by argv[3].
COORDINATOR = textwrap.dedent(
    """
    import functools, sys, threading, time
    from pathlib import Path
    from ramnet.mesh.coordinator import settlement as S
    from ramnet.mesh.coordinator.server import serve
    from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
    from ramnet.orchid._memory import keep_freed_memory

    log = open(sys.argv[3], "a", buffering=1)
    lock = threading.Lock()

    def wrap(owner, name, label):
        f = getattr(owner, name)

        @functools.wraps(f)
        def logged(*a, **k):
            t0, c0 = time.time(), time.thread_time()
            try:
                return f(*a, **k)
            finally:
                cpu = time.thread_time() - c0
                with lock:
                    log.write(f"{label} {t0:.6f} {time.time():.6f} {cpu:.6f}\\n")

        setattr(owner, name, logged)

    for name in ("submit", "commit", "reveal", "result"):
        wrap(Coordinator, name, name)
    # A job is settled by the settler (from its last reveal), not through Coordinator.settle;
    # its checks and C's assembly are the rules' settle, which the settler calls by this name.
    wrap(S.Settler, "settle", "settle")
    wrap(S, "settle", "checks_and_assembly")
    wrap(S.Settler, "_store_and_pay", "store_c_and_pay")
    keep_freed_memory()
    serve(CoordinatorConfig(data_dir=Path(sys.argv[2])), port=int(sys.argv[1]))
    """
)


def _events(path: Path) -> list[tuple[str, float, float, float]]:
    out = []
    for line in path.read_text().splitlines():
        label, start, end, cpu = line.split()
        out.append((label, float(start), float(end), float(cpu)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from ramnet.mesh import MeshClient
    from ramnet.mesh.nodes import consumer as _consumer
    from ramnet.valkyrie import NodeKey

    tmp = Path(tempfile.mkdtemp())
    log = tmp / "coordinator.log"
    log.touch()
    (tmp / "coordinator.py").write_text(COORDINATOR)
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp / "cfg")}
    url, procs = start_mesh(
        tmp, env, [], lambda port: [sys.executable, "coordinator.py", str(port), "state", str(log)]
    )
    n = args.n
    a, b = orchid.random_operands(n, n, n, "int8", seed=9)
    client = MeshClient(url, NodeKey.generate())
    jobs: list[dict[str, float]] = []
    try:
        for _ in range(args.jobs):
            t0 = time.time()
            job_id = _consumer.submit(client, a, b, 3)
            t1 = time.time()
            _consumer.wait(client, job_id, until=("checked", "settled"))
            t2 = time.time()
            _consumer.fetch_checked(client, job_id, a, b)
            t3 = time.time()
            _consumer.wait(client, job_id)
            t4 = time.time()
            jobs.append({"t0": t0, "submitted": t1, "checked": t2, "fetched": t3, "settled": t4})
            time.sleep(2)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
    events = _events(log)
    rows: dict[str, list[float]] = {}
    for job in jobs[4:] if len(jobs) > 4 else jobs:
        t0 = job["t0"]
        mine = [e for e in events if t0 <= e[1] <= job["settled"]]

        def at(
            label: str,
            which: int,
            pick: Any,
            mine: list[tuple[str, float, float, float]] = mine,
            t0: float = t0,
        ) -> float:
            times = [e[which] for e in mine if e[0] == label]
            return round(pick(times) - t0, 4) if times else float("nan")

        row = {
            "consumer_submitted": job["submitted"] - t0,
            "consumer_woken_checked": job["checked"] - t0,
            "consumer_fetched_and_checked": job["fetched"] - t0,
            "consumer_saw_settled": job["settled"] - t0,
            "submit_start": at("submit", 1, min),
            "submit_end": at("submit", 2, max),
            "first_commit": at("commit", 1, min),
            "last_commit": at("commit", 2, max),
            "first_reveal_start": at("reveal", 1, min),
            "last_reveal_end": at("reveal", 2, max),
            "settle_start": at("checks_and_assembly", 1, min),
            "checks_and_assembly_end": at("checks_and_assembly", 2, max),
            "store_c_and_pay_end": at("store_c_and_pay", 2, max),
        }
        for label in ("submit", "commit", "reveal", "checks_and_assembly", "store_c_and_pay"):
            row[f"cpu_{label}"] = sum(e[3] for e in mine if e[0] == label)
        for key, value in row.items():
            rows.setdefault(key, []).append(value)
    median = {key: round(statistics.median(v), 4) for key, v in rows.items()}
    emit({"n": n, "jobs": args.jobs, "measured_jobs": len(rows["submit_end"]), **median}, args.json)


if __name__ == "__main__":
    main()
