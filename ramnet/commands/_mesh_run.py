"""``ramnet run --mode mesh``: a consumer's job on the mesh, as a library call (prints nothing)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ramnet._errors import RamnetError
from ramnet.commands._operands import check_sources, load_operands, save_operands
from ramnet.orchid._io import check_writable


@dataclass
class MeshJob:
    """What a consumer submits.

    Attributes:
        coordinator: The coordinator's URL.
        nodes: Workers to spread the job over (a multiple of 3).
        redundancy: ``mirror`` or ``none`` (None: mirror from 6 nodes on).
        out: Where C goes.
        a_path, b_path / random, dtype, seed: The operands, as for a sovereign run.
        key: The consumer's NodeKey (signs its requests), or a function that returns it.
        detach: Return once the job is accepted.
        timeout: Seconds to wait for settlement (None: no limit).
        retry_for: Seconds to keep retrying while the coordinator is unreachable, once it was
            reached (a restart); before that, ``reach`` says how long.
        wait: Keep trying to reach the coordinator at first instead of failing in seconds.
        say: Where a long wait says what it waits for (one line each time that changes).
        ca_file: PEM CA certificates to trust for an https coordinator (None: the system's).
    """

    coordinator: str
    nodes: int
    out: Path
    key: Any
    a_path: Path | None = None
    b_path: Path | None = None
    random: tuple[int, int, int] | None = None
    dtype: str | None = None
    seed: int = 0
    save_inputs: Path | None = None
    detach: bool = False
    timeout: float | None = None
    retry_for: float = 300.0
    redundancy: str | None = None
    wait: bool = False
    say: Callable[[str], None] | None = None
    ca_file: str | None = None


def client_for(
    coordinator: str, key: Any, retry_for: float = 300.0, ca_file: str | None = None
) -> Any:
    """A MeshClient that keeps retrying for ``retry_for`` seconds while the coordinator is away
    (``ca_file``: the CA certificates an https coordinator is checked against)."""
    from ramnet.mesh import MeshClient

    return MeshClient(coordinator, key, retries=None, retry_for=retry_for, ca_file=ca_file)


#: Seconds a command tries to reach a coordinator before it says it cannot (``reach``).
REACH_S = 5.0


class Narrator:
    """Says on ``say`` why a job waits, once it has waited ``after`` seconds, and again each
    time the reason changes (not for a countdown's seconds): for a run without the live view.

    Args:
        say: Where each line goes (stderr).
        after: Seconds of waiting before the first line.
    """

    def __init__(self, say: Callable[[str], None], after: float = 3.0) -> None:
        self._say = say
        self._after = after
        self._start = time.monotonic()
        self._last = ""

    def __call__(self, info: dict[str, Any]) -> None:
        """Take a job status; say its ``waiting`` line if it is new and the wait is long."""
        waiting = info.get("waiting")
        if not waiting or time.monotonic() - self._start < self._after:
            return
        gist = re.sub(r"\d+(\.\d+)? s\b", "", str(waiting))
        if gist != self._last:
            self._last = gist
            self._say(f"job {info.get('job_id')}: {waiting}")


class JobInterrupted(RamnetError):
    """Ctrl-C while a submitted job runs on: the message names the job and how to get C (the
    command exits 130, as for any Ctrl-C).

    Attributes:
        job_id: The job's full id.
    """

    def __init__(self, message: str, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id


def reach(
    coordinator: str,
    *,
    wait: bool = False,
    say: Callable[[str], None] | None = None,
    ca_file: str | None = None,
) -> None:
    """Make sure the coordinator answers before anything is loaded or sent.

    Args:
        coordinator: Its URL.
        wait: Keep trying (saying so through ``say`` once) instead of failing after ``REACH_S``.
        say: Where the wait is announced.
        ca_file: The CA certificates an https coordinator is checked against.

    Raises:
        MeshUnavailableError: It did not answer within ``REACH_S`` seconds (and ``wait`` is off):
            the same one-line error as ``ramnet ledger show``.
    """
    from ramnet.mesh import MeshClient, MeshUnavailableError
    from ramnet.mesh.protocol.routes import url

    with MeshClient(coordinator, None, retries=None, retry_for=REACH_S, ca_file=ca_file) as probe:
        try:
            probe.get_json(url("health"))
            return
        except MeshUnavailableError as exc:
            if not wait:
                raise
            if say is not None:
                say(f"waiting for the coordinator: {exc}")
    with MeshClient(coordinator, None, retries=None, retry_for=1e9, ca_file=ca_file) as probe:
        probe.get_json(url("health"))


def run(job: MeshJob, on_status: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Submit a job, wait for it to settle, check C with Freivalds, save it.

    Returns:
        A JSON-ready report: ``mode``, ``job_id``, ``shape``, ``dtype``, ``nodes``, ``state``,
        ``seconds`` (``load``, ``compute``, ``save``, ``total``), ``gops``, ``price``, ``out``.

    Raises:
        InvalidInputError: Bad options or operands (before anything is sent).
        MeshJobFailed, ResultCheckFailed: The job ended badly.
        MeshUnavailableError: The coordinator stayed unreachable (``REACH_S`` seconds at first,
            unless ``job.wait``; then ``job.retry_for``).
        JobInterrupted: Ctrl-C once the job was submitted.
    """
    from ramnet.mesh.nodes import consumer as _consumer
    from ramnet.mesh.rules.plan import check_nodes, check_redundancy

    check_nodes(job.nodes)
    redundancy = check_redundancy(job.redundancy, job.nodes)
    check_sources(job.a_path, job.b_path, job.random, job.dtype, job.save_inputs)
    if not job.detach:
        check_writable(job.out)
    # A coordinator that is not there fails the run in seconds, before operands are loaded.
    reach(job.coordinator, wait=job.wait, say=job.say, ca_file=job.ca_file)
    t0 = time.perf_counter()
    a, b = load_operands(job.a_path, job.b_path, job.random, job.dtype, job.seed)
    if job.save_inputs is not None:
        save_operands(job.save_inputs, a, b)
    # Loaded (or created) only once the job and its operands have been validated.
    key = job.key() if callable(job.key) else job.key
    client = client_for(job.coordinator, key, job.retry_for, job.ca_file)
    t1 = time.perf_counter()
    job_id = _consumer.submit(client, a, b, job.nodes, redundancy)
    report: dict[str, Any] = {
        "mode": "mesh",
        "job_id": job_id,
        "shape": [a.shape[0], b.shape[1]],
        "a_shape": list(a.shape),
        "b_shape": list(b.shape),
        "dtype": a.dtype.name,
        "nodes": job.nodes,
        "redundancy": redundancy,
        "coordinator": job.coordinator,
    }
    if job.detach:
        report["state"] = "submitted"
        return report
    try:
        return _follow(job, client, job_id, a, b, report, t0, t1, on_status)
    except KeyboardInterrupt:
        raise JobInterrupted(_resume_hint(job, job_id), job_id) from None


def _resume_hint(job: MeshJob, job_id: str) -> str:
    # What to run to get C once the job settles: the coordinator goes on with it.
    where = f" --coordinator {job.coordinator}"
    return (
        f"interrupted: job {job_id} goes on at the coordinator; follow it with"
        f" 'ramnet job status {job_id}{where}' and fetch C with"
        f" 'ramnet job result {job_id} --out {job.out}{where}' (same key), or cancel it with"
        f" 'ramnet job cancel {job_id}{where}'"
    )


def _follow(
    job: MeshJob,
    client: Any,
    job_id: str,
    a: Any,
    b: Any,
    report: dict[str, Any],
    t0: float,
    t1: float,
    on_status: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    from ramnet.mesh.nodes import consumer as _consumer

    # C is fetched as soon as it passed the coordinator's checks, while the coordinator stores it
    # and pays the workers; the run ends once the job has settled.
    deadline = None if job.timeout is None else time.monotonic() + job.timeout
    # C goes straight to its file as it downloads, and is checked there before it takes the
    # out path's name: the download is the save.
    c, info = _consumer.fetch_checked(
        client, job_id, a, b, timeout=job.timeout, on_status=on_status, out=job.out
    )
    t2 = t3 = time.perf_counter()
    if info["state"] != "settled":
        left = None if deadline is None else max(1.0, deadline - time.monotonic())
        info = _consumer.wait(client, job_id, timeout=left, on_status=on_status)
    m, k = a.shape
    n = b.shape[1]
    report.update(
        {
            "state": info["state"],
            "out_dtype": c.dtype.name,
            "price": info.get("price"),
            "seconds": {
                "load": round(t1 - t0, 6),
                "compute": round(t2 - t1, 6),
                "save": round(t3 - t2, 6),
                "total": round(t3 - t0, 6),
            },
            "gops": round(2.0 * m * n * k / (t2 - t1) / 1e9, 3) if t2 > t1 else None,
            "out": str(job.out),
        }
    )
    return report
