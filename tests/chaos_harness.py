"""A seeded chaos run of a real mesh on 127.0.0.1, shared by tests/mesh/e2e/test_chaos.py (short)
and bench/chaos.py (long).

One coordinator, ``workers`` workers and ``validators`` validators run as ``ramnet`` processes;
``cheaters`` of the workers cheat (``--misbehave``, a strategy drawn for each). Consumers in this
process submit ``jobs`` jobs over ``window`` seconds, each from its own key, and wait for C.
Meanwhile faults hit just after drawn bursts of jobs, each on its own thread: a worker killed
(SIGKILL) and started again on its key, a worker stalled (SIGSTOP, then SIGCONT), the coordinator
killed and started again on the same data folder and port (one restart at a time). A fault hits
a worker that holds a shard at that moment when there is one, never one already down or stalled.

What is checked (``ChaosReport.problems`` lists what failed):

- every job ends exactly (the consumer's C equals A @ B) or is refused with a reason;
- no honest node (validators, workers that do not cheat) is slashed;
- the ledger is conserved (minted = balances + bonds + escrow held + burned), over HTTP and in
  the state file;
- nothing is paid twice: movement references are unique, and what a job paid and refunded is at
  most what it escrowed;
- every node serves again after its faults (running, registered again after each restart),
  unless it is a cheater the coordinator banned;
- no traceback in any process's log.

Each fault's recovery time is from its injection to the last of the jobs it affected (those with
a shard on the node hit; every unfinished job for the coordinator) ending with C at its consumer.

Only the standard library, numpy and ramnet are used, so the benchmark runs without the test
tools. Seeds fix the plan (jobs, operands, fault times and kinds, cheaters); which node a fault
hits also depends on what is running at that moment.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CHEATS = ("off-by-one", "random", "zeros", "replay")
FAULT_KINDS = ("kill", "stall", "coordinator")
_HOLDING = ("assigned", "committed")
_REGISTERED = "registered: balance"  # what a worker logs once registered


@dataclass(frozen=True)
class ChaosConfig:
    """What a chaos run does.

    Attributes:
        seed: Fixes the plan.
        jobs: Jobs submitted, one consumer key each.
        workers, validators: Nodes started (validators also compute).
        cheaters: Workers that cheat, each with a strategy drawn from ``CHEATS``.
        kills, stalls: Faults on workers.
        coordinator_restarts: Times the coordinator is killed and started again.
        window: Seconds over which jobs are submitted and faults injected.
        burst: Jobs submitted at once (the window is split evenly between bursts).
        sizes: Range of a job's M, K and N (inclusive).
        stall_s: Range of a stall's length, seconds.
        down_s: Range of the seconds a killed process stays down.
        job_timeout: Seconds a job may take after its submission before it counts as hung.
        coordinator_args: Extra ``coordinator start`` options (e.g. a short ``--lease``).
        bond: Bond every node stakes.
    """

    seed: int = 1
    jobs: int = 20
    workers: int = 9
    validators: int = 2
    cheaters: int = 2
    kills: int = 2
    stalls: int = 2
    coordinator_restarts: int = 2
    window: float = 30.0
    burst: int = 4
    sizes: tuple[int, int] = (48, 160)
    stall_s: tuple[float, float] = (3.0, 8.0)
    down_s: tuple[float, float] = (0.5, 3.0)
    job_timeout: float = 90.0
    coordinator_args: tuple[str, ...] = ()
    bond: int = 50


@dataclass
class JobRun:
    """One job: its plan and how it ended."""

    index: int
    at: float
    shape: tuple[int, int, int]
    dtype: str
    nodes: int
    job_id: str | None = None
    submitted: float | None = None
    ended: float | None = None
    outcome: str = "pending"  # exact, refused, wrong, hung, error
    detail: str = ""


@dataclass
class Fault:
    """One fault: when, what, on whom, and what it cost."""

    at: float
    kind: str
    length: float
    target: str | None = None
    injected: float | None = None
    affected: list[str] = field(default_factory=list)
    recovery_s: float | None = None
    note: str = ""


@dataclass
class ChaosReport:
    """What a chaos run found."""

    config: ChaosConfig
    jobs: list[JobRun]
    faults: list[Fault]
    cheaters: dict[str, str]
    slashed: dict[str, int]
    problems: list[str]
    wall_s: float

    def summary(self) -> dict[str, Any]:
        """The run's figures as plain values (for ``--json`` and the test's message)."""
        outcomes: dict[str, int] = {}
        for job in self.jobs:
            outcomes[job.outcome] = outcomes.get(job.outcome, 0) + 1
        durations = [j.ended - j.submitted for j in self.jobs if j.ended and j.submitted]
        return {
            "seed": self.config.seed,
            "jobs": len(self.jobs),
            "outcomes": outcomes,
            "job_s_median": _median(durations),
            "job_s_max": max(durations, default=None),
            "faults": [
                {
                    "kind": f.kind,
                    "target": f.target,
                    "at_s": None if f.injected is None else round(f.injected, 2),
                    "length_s": round(f.length, 2),
                    "affected_jobs": len(f.affected),
                    "recovery_s": None if f.recovery_s is None else round(f.recovery_s, 2),
                    "note": f.note,
                }
                for f in self.faults
            ],
            "recovery_s_by_kind": {
                kind: {"n": len(times), "median": _median(times), "max": max(times)}
                for kind in FAULT_KINDS
                if (
                    times := [
                        f.recovery_s
                        for f in self.faults
                        if f.kind == kind and f.recovery_s is not None
                    ]
                )
            },
            "cheaters": self.cheaters,
            "slashed": self.slashed,
            "problems": self.problems,
            "wall_s": round(self.wall_s, 1),
        }


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ChaosMesh:
    """The processes of a chaos run, each logging to ``<name>.log`` in ``folder``."""

    def __init__(self, folder: Path, coordinator_args: tuple[str, ...]) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.coordinator_args = coordinator_args
        self.env = {
            **os.environ,
            "RAMNET_COORDINATOR": self.url,
            "XDG_CONFIG_HOME": str(folder / "cfg"),
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.args: dict[str, tuple[str, ...]] = {}
        self.stopped: set[str] = set()
        self.lock = threading.Lock()

    @property
    def db(self) -> Path:
        return self.folder / "s" / "state.sqlite"

    def start(self, name: str, *args: str) -> None:
        """Start ``ramnet *args`` as ``name`` (again, if it ran before)."""
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.args[name] = args
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "ramnet.cli", *args],
            cwd=self.folder,
            env=self.env,
            stdout=log,
            stderr=log,
        )

    def start_coordinator(self, timeout: float = 60) -> None:
        """Start the coordinator on this mesh's port and data folder; wait until it answers."""
        self.start(
            "coord",
            "coordinator", "start", "--port", str(self.port), "--data-dir", "s",
            *self.coordinator_args,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            if self.procs["coord"].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the coordinator did not start: {self.log_tail('coord')}")
            time.sleep(0.1)

    def log_tail(self, name: str, chars: int = 2000) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def wait_logged(self, name: str, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log_tail(name, 1 << 20):
            if time.monotonic() > deadline or self.procs[name].poll() is not None:
                raise RuntimeError(f"{name} never said {text!r}: {self.log_tail(name)}")
            time.sleep(0.1)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self.stopped.discard(name)

    def restart(self, name: str) -> None:
        if name == "coord":
            self.start_coordinator()
        else:
            self.start(name, *self.args[name])

    def pause(self, name: str) -> None:
        if self.procs[name].poll() is None:
            self.procs[name].send_signal(signal.SIGSTOP)
            self.stopped.add(name)

    def resume(self, name: str) -> None:
        if name in self.stopped and self.procs[name].poll() is None:
            self.procs[name].send_signal(signal.SIGCONT)
        self.stopped.discard(name)

    def stop(self) -> None:
        """Resume what is stopped, then SIGTERM every process (workers first); kill after 15 s."""
        for name in list(self.stopped):
            self.resume(name)
        ordered = [p for n, p in self.procs.items() if n != "coord"]
        if "coord" in self.procs:
            ordered.append(self.procs["coord"])
        for proc in ordered:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in ordered:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on the coordinator's state file ([] before it exists)."""
        if not self.db.exists():
            return []
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            return list(conn.execute(sql, params).fetchall())
        finally:
            conn.close()

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as reply:
            return json.loads(reply.read())


def plan_jobs(config: ChaosConfig, rng: np.random.Generator) -> list[JobRun]:
    """The jobs: submitted in bursts spread over the window; sizes, dtypes, node counts."""
    lo, hi = config.sizes
    bursts = -(-config.jobs // max(1, config.burst))
    jobs = []
    for i in range(config.jobs):
        m, k, n = (int(x) for x in rng.integers(lo, hi + 1, 3))
        jobs.append(
            JobRun(
                index=i,
                at=config.window * (i // max(1, config.burst)) / bursts,
                shape=(m, k, n),
                dtype=str(rng.choice(["int8", "int16"])),
                nodes=6 if rng.random() < 0.2 else 3,
            )
        )
    return jobs


def _bursts(config: ChaosConfig) -> int:
    return -(-config.jobs // max(1, config.burst))


def plan_faults(config: ChaosConfig, rng: np.random.Generator) -> list[Fault]:
    """The faults: worker kills and stalls just after drawn bursts of jobs (so that they catch
    jobs running), coordinator restarts after bursts spread over the window."""
    bursts = _bursts(config)

    def after(burst: int) -> float:
        return config.window * burst / bursts + float(rng.uniform(0.05, 0.5))

    faults = [
        Fault(after(int(rng.integers(bursts))), kind, float(rng.uniform(*span)))
        for kind, count, span in (
            ("kill", config.kills, config.down_s),
            ("stall", config.stalls, config.stall_s),
        )
        for _ in range(count)
    ]
    for r in range(config.coordinator_restarts):
        burst = min(bursts - 1, round((r + 1) * bursts / (config.coordinator_restarts + 1)))
        faults.append(Fault(after(burst), "coordinator", float(rng.uniform(*config.down_s))))
    return sorted(faults, key=lambda f: f.at)


class ChaosRun:
    """One chaos run: ``run()`` starts the mesh, submits the jobs, injects the faults, checks."""

    def __init__(self, config: ChaosConfig, folder: Path, log: Any = None) -> None:
        self.config = config
        self.folder = folder
        self.rng = np.random.default_rng(config.seed)
        self.mesh = ChaosMesh(folder, config.coordinator_args)
        self.jobs = plan_jobs(config, self.rng)
        self.faults = plan_faults(config, self.rng)
        self.say = log or (lambda line: None)
        self.t0 = 0.0
        self.workers = [f"w{i}" for i in range(config.workers)]
        self.validators = [f"v{i}" for i in range(config.validators)]
        chosen = self.rng.choice(config.workers, size=config.cheaters, replace=False)
        self.cheaters = {f"w{i}": str(self.rng.choice(CHEATS)) for i in sorted(chosen)}
        self.ids: dict[str, str] = {}
        # Node -> until when it is not hit again (down, stalled, or just back).
        self.faulted: dict[str, float] = {}
        self.picking = threading.Lock()
        self.restarts: dict[str, int] = {}
        self.coordinator_down = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.t0

    # ---- set-up --------------------------------------------------------------------------

    def _start_nodes(self) -> None:
        from ramnet.valkyrie import NodeKey, save_key

        for name in self.validators + self.workers:
            key = save_key(NodeKey.generate(), self.folder / f"{name}.key")
            self.ids[name] = key.node_id
            args = ["worker", "start", "--key-file", f"{name}.key", "--bond", str(self.config.bond)]
            if name in self.validators:
                args.append("--validator")
            if name in self.cheaters:
                args += ["--misbehave", self.cheaters[name]]
            self.mesh.start(name, *args)
        for name in self.validators + self.workers:
            self.mesh.wait_logged(name, _REGISTERED, 120)

    # ---- consumers -----------------------------------------------------------------------

    def _operands(self, job: JobRun) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.config.seed, job.index])
        m, k, n = job.shape
        info = np.iinfo(job.dtype)
        a = rng.integers(info.min, info.max, (m, k), dtype=job.dtype, endpoint=True)
        b = rng.integers(info.min, info.max, (k, n), dtype=job.dtype, endpoint=True)
        return a, b

    def _consume(self, job: JobRun) -> None:
        from ramnet.mesh import MeshClient
        from ramnet.mesh.nodes import consumer
        from ramnet.mesh.nodes.client import MeshRequestError
        from ramnet.valkyrie import NodeKey

        a, b = self._operands(job)
        delay = job.at - self.now()
        if delay > 0:
            time.sleep(delay)
        client = MeshClient(self.mesh.url, NodeKey.generate(), retries=None, retry_for=120)
        try:
            job.submitted = self.now()
            try:
                job.job_id = consumer.submit(client, a, b, job.nodes)
            except MeshRequestError as exc:
                if exc.status is not None and 400 <= exc.status < 500 and str(exc):
                    job.outcome, job.detail, job.ended = "refused", str(exc), self.now()
                    return
                raise
            left = job.submitted + self.config.job_timeout - self.now()
            c, _ = consumer.fetch_checked(client, job.job_id, a, b, timeout=max(1.0, left))
            job.ended = self.now()
            exact = np.array_equal(np.asarray(c).astype(np.int64), a.astype(np.int64) @ b)
            job.outcome = "exact" if exact else "wrong"
        except consumer.MeshJobFailed as exc:
            job.ended = self.now()
            job.outcome, job.detail = "refused", str(exc)
        except TimeoutError as exc:
            job.outcome, job.detail = "hung", str(exc)
        except Exception as exc:  # reported as a problem of the run, not raised in a thread
            job.outcome, job.detail = "error", f"{type(exc).__name__}: {exc}"
        finally:
            client.close()

    # ---- faults --------------------------------------------------------------------------

    def _busy_workers(self) -> list[str]:
        rows = self.mesh.query(
            "SELECT DISTINCT node_id FROM shards WHERE state IN (?, ?)", _HOLDING
        )
        busy = {r[0] for r in rows}
        return [w for w in self.workers if self.ids[w] in busy]

    def _affected(self, fault: Fault) -> list[str]:
        if fault.kind == "coordinator":
            return self._unfinished()
        assert fault.target is not None
        rows = self.mesh.query(
            "SELECT DISTINCT job_id FROM shards WHERE node_id = ? AND state IN (?, ?)",
            (self.ids[fault.target], *_HOLDING),
        )
        return sorted({r[0] for r in rows})

    def _unfinished(self) -> list[str]:
        rows = self.mesh.query(
            "SELECT job_id FROM jobs WHERE state NOT IN ('settled', 'cancelled', 'failed')"
        )
        return [r[0] for r in rows]

    def _pick_worker(self) -> str | None:
        # A fault hits a worker holding a shard (what recovery is about), waiting until the next
        # burst of jobs at most; a worker down, stalled or just back is not hit again.
        deadline = time.monotonic() + self.config.window / _bursts(self.config) + 1
        while True:
            with self.picking:
                now = time.monotonic()
                spared = {w for w, until in self.faulted.items() if until > now}
                free = [w for w in self._busy_workers() if w not in spared]
                if not free and now > deadline:
                    free = [w for w in self.workers if w not in spared]
                    if not free:
                        return None
                if free:
                    chosen = str(self.rng.choice(free))
                    self.faulted[chosen] = float("inf")
                    return chosen
            time.sleep(0.02)

    def _aim_at_coordinator(self) -> None:
        # The coordinator goes down while a job is running, or at the next burst at the latest.
        deadline = time.monotonic() + self.config.window / _bursts(self.config) + 1
        while not self._unfinished() and time.monotonic() < deadline:
            time.sleep(0.02)

    def _inject(self, fault: Fault) -> None:
        delay = fault.at - self.now()
        if delay > 0:
            time.sleep(delay)
        if fault.kind == "coordinator":
            with self.coordinator_down:  # one coordinator restart at a time
                self._aim_at_coordinator()
                fault.target = "coord"
                self._hit(fault)
            return
        fault.target = self._pick_worker()
        if fault.target is None:
            fault.note = "no worker left to hit"
            return
        try:
            self._hit(fault)
        finally:
            # Back, but spared a while: a restarted worker may still be waiting for its key.
            self.faulted[fault.target] = time.monotonic() + 10

    def _hit(self, fault: Fault) -> None:
        assert fault.target is not None
        fault.affected = self._affected(fault)
        fault.injected = self.now()
        self.say(f"{fault.injected:6.1f} s {fault.kind} {fault.target}: {len(fault.affected)} jobs")
        try:
            if fault.kind == "stall":
                self.mesh.pause(fault.target)
                time.sleep(fault.length)
                self.mesh.resume(fault.target)
            else:
                self.mesh.kill(fault.target)
                time.sleep(fault.length)
                self.mesh.restart(fault.target)
                self.restarts[fault.target] = self.restarts.get(fault.target, 0) + 1
        except Exception as exc:
            fault.note = f"{type(exc).__name__}: {exc}"

    def _faults(self) -> None:
        # Each fault at its time, on its own thread: a long stall does not put off the others.
        threads = [threading.Thread(target=self._inject, args=(f,)) for f in self.faults]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # ---- checks --------------------------------------------------------------------------

    def _recoveries(self) -> None:
        ends = {j.job_id: j for j in self.jobs if j.job_id is not None}
        for fault in self.faults:
            if fault.injected is None or not fault.affected:
                continue
            done = [ends[j].ended for j in fault.affected if j in ends]
            if len(done) == len(fault.affected) and all(t is not None for t in done):
                fault.recovery_s = max(t for t in done if t is not None) - fault.injected
            elif not fault.note:
                fault.note = "an affected job did not end with C"

    def _check_jobs(self, problems: list[str]) -> None:
        for job in self.jobs:
            if job.outcome == "exact":
                continue
            if job.outcome == "refused" and job.detail.strip():
                continue
            problems.append(f"job {job.index} ({job.job_id}): {job.outcome} {job.detail}".strip())

    def _check_ledger(self, problems: list[str], slashed: dict[str, int]) -> None:
        honest = [n for n in self.workers + self.validators if n not in self.cheaters]
        accounts = {r[0]: r[1] for r in self.mesh.query("SELECT node_id, slashed FROM accounts")}
        for name in self.workers + self.validators:
            amount = int(accounts.get(self.ids[name], 0))
            if amount:
                slashed[name] = amount
        for name in honest:
            if slashed.get(name):
                problems.append(f"honest node {name} was slashed {slashed[name]}")
        ((minted, burned),) = self.mesh.query("SELECT minted, burned FROM ledger_totals")
        ((balances, bonds),) = self.mesh.query("SELECT total(balance), total(bond) FROM accounts")
        (held,) = self.mesh.query("SELECT total(held) FROM escrows")[0]
        if minted != balances + bonds + held + burned:
            problems.append(
                f"ledger not conserved: minted {minted} != balances {balances} + bonds {bonds}"
                f" + escrow {held} + burned {burned}"
            )
        twice = self.mesh.query(
            "SELECT ref, count(*) FROM movements WHERE ref IS NOT NULL GROUP BY ref"
            " HAVING count(*) > 1"
        )
        problems += [f"movement {ref} applied {n} times" for ref, n in twice]
        over = self.mesh.query(
            "SELECT e.job_id, e.deposited, coalesce(sum(m.amount), 0) FROM escrows e"
            " LEFT JOIN movements m ON m.job_id = e.job_id AND m.kind IN ('pay', 'refund')"
            " GROUP BY e.job_id HAVING coalesce(sum(m.amount), 0) > e.deposited"
        )
        problems += [f"job {j} paid out {out} of an escrow of {dep}" for j, dep, out in over]

    def _nodes_not_back(self) -> list[str]:
        # Every node serves again after its faults: running, and registered once more after
        # each restart. Only a cheater the coordinator banned may have left.
        banned = {r[0] for r in self.mesh.query("SELECT node_id FROM nodes WHERE banned = 1")}
        missing = []
        for name in self.validators + self.workers:
            if self.ids[name] in banned:
                continue
            log = self.mesh.log_tail(name, 1 << 22)
            last = log.strip().splitlines()[-1] if log.strip() else ""
            code = self.mesh.procs[name].poll()
            if code is not None:
                missing.append(f"{name} exited ({code}), not banned: {last}")
            elif log.count(_REGISTERED) < 1 + self.restarts.get(name, 0):
                missing.append(
                    f"{name} restarted {self.restarts[name]} times, registered"
                    f" {log.count(_REGISTERED)} times: {last}"
                )
        return missing

    def _check_nodes(self, problems: list[str], patience: float = 30) -> None:
        # A worker restarted lately may still be waiting for its key's old process to time out.
        deadline = time.monotonic() + patience
        while (missing := self._nodes_not_back()) and time.monotonic() < deadline:
            time.sleep(0.5)
        problems += missing

    def _check_logs(self, problems: list[str]) -> None:
        for path in sorted(self.folder.glob("*.log")):
            if "Traceback" in path.read_text(errors="replace"):
                problems.append(f"a traceback in {path.name}")

    # ---- the run -------------------------------------------------------------------------

    def run(self) -> ChaosReport:
        """Run it all; the processes are stopped whatever happens."""
        started = time.monotonic()
        problems: list[str] = []
        slashed: dict[str, int] = {}
        try:
            self.mesh.start_coordinator()
            self._start_nodes()
            self.t0 = time.monotonic()
            self.say(f"mesh up in {self.t0 - started:.1f} s; cheaters {self.cheaters}")
            threads = [
                threading.Thread(target=self._consume, args=(job,), daemon=True)
                for job in self.jobs
            ]
            chaos = threading.Thread(target=self._faults, daemon=True)
            for thread in [*threads, chaos]:
                thread.start()
            chaos.join(self.config.window + 300)
            for thread in threads:
                thread.join(max(0.0, self.config.window + self.config.job_timeout - self.now()))
            for job in self.jobs:
                if job.outcome == "pending":
                    job.outcome, job.detail = "hung", "no end within the run's time"
            try:
                totals = self.mesh.get_json("/v1/ledger")["totals"]
                if not totals.get("conserved"):
                    problems.append(f"GET /v1/ledger says not conserved: {totals}")
            except OSError as exc:
                problems.append(f"GET /v1/ledger failed: {exc}")
            self._check_nodes(problems)
        finally:
            self.mesh.stop()
        self._recoveries()
        self._check_jobs(problems)
        self._check_ledger(problems, slashed)
        self._check_logs(problems)
        return ChaosReport(
            self.config,
            self.jobs,
            self.faults,
            self.cheaters,
            slashed,
            problems,
            time.monotonic() - started,
        )
