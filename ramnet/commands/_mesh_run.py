"""``ramnet run --mode mesh``: a consumer's job on the mesh, as a library call (prints nothing)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        retry_for: Seconds to keep retrying while the coordinator is unreachable.
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
    ca_file: str | None = None


def client_for(
    coordinator: str, key: Any, retry_for: float = 300.0, ca_file: str | None = None
) -> Any:
    """A MeshClient that keeps retrying for ``retry_for`` seconds while the coordinator is away
    (``ca_file``: the CA certificates an https coordinator is checked against)."""
    from ramnet.mesh import MeshClient

    return MeshClient(coordinator, key, retries=None, retry_for=retry_for, ca_file=ca_file)


def run(job: MeshJob, on_status: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Submit a job, wait for it to settle, check C with Freivalds, save it.

    Returns:
        A JSON-ready report: ``mode``, ``job_id``, ``shape``, ``dtype``, ``nodes``, ``state``,
        ``seconds`` (``load``, ``compute``, ``save``, ``total``), ``gops``, ``price``, ``out``.

    Raises:
        InvalidInputError: Bad options or operands (before anything is sent).
        MeshJobFailed, ResultCheckFailed: The job ended badly.
        MeshUnavailableError: The coordinator stayed unreachable.
    """
    from ramnet.mesh.nodes import consumer as _consumer
    from ramnet.mesh.rules.plan import check_nodes, check_redundancy

    check_nodes(job.nodes)
    redundancy = check_redundancy(job.redundancy, job.nodes)
    check_sources(job.a_path, job.b_path, job.random, job.dtype, job.save_inputs)
    if not job.detach:
        check_writable(job.out)
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
