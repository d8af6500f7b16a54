"""The consumer's side of a mesh job: submit, follow, fetch C, check it; list and cancel jobs."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ramnet._errors import RamnetError
from ramnet.mesh.protocol.routes import url
from ramnet.mesh.protocol.wire import ArrayStream, WireFormatError
from ramnet.mesh.rules.plan import check_nodes, check_redundancy
from ramnet.orchid._io import NpyWriter
from ramnet.valkyrie import float_range_check, freivalds

LONG_POLL = 1.0


class MeshJobFailed(RamnetError):
    """The coordinator could not settle the job (a dispute it could not resolve, or a refusal)."""


class ResultCheckFailed(RamnetError):
    """The C the coordinator returned fails the consumer's own Freivalds check."""


def submit(
    client: Any, a: np.ndarray, b: np.ndarray, nodes: int, redundancy: str | None = None
) -> str:
    """Upload A and B for ``nodes`` workers; returns the job id (payment is escrowed then).

    Args:
        client: A MeshClient.
        a, b: The operands.
        nodes: Workers (a multiple of 3).
        redundancy: ``mirror``, ``none``, or None for the default (``check_redundancy``).

    Raises:
        InvalidInputError: A bad node count or redundancy; the coordinator's refusals, as its
            message says.
    """
    check_nodes(nodes)
    redundancy = check_redundancy(redundancy, nodes)
    register(client)
    request_id = os.urandom(16).hex()  # a retried upload must not become a second job
    meta = {"nodes": nodes, "redundancy": redundancy, "request_id": request_id}
    reply = client.post_wire(url("submit_job"), meta, {"A": a, "B": b}, idempotent=True)
    return str(reply["job_id"])


def register(client: Any) -> None:
    """Register the consumer's key (idempotent; a new account gets the starting credit): the
    coordinator serves registered nodes only. A consumer names no process (``instance``), so it
    may share a key with a running worker."""
    client.post_json(url("register"), {"bond": 0}, idempotent=True)


def status(client: Any, job_id: str) -> dict[str, Any]:
    """The job's state, its shards' states, and why it waits (``waiting``).

    Args:
        client: A MeshClient.
        job_id: The job's id, or a unique prefix of it (6 hex digits or more).
    """
    reply: dict[str, Any] = client.get_json(url("job_status", job_id=job_id))
    return reply


def list_jobs(client: Any) -> list[dict[str, Any]]:
    """The signing consumer's jobs, newest first (``JobSummary`` objects)."""
    reply: dict[str, Any] = client.get_json(url("job_list"))
    jobs: list[dict[str, Any]] = reply["jobs"]
    return jobs


def cancel(client: Any, job_id: str, reason: str | None = None) -> dict[str, Any]:
    """Cancel one of the consumer's jobs that has not settled; its unspent escrow is refunded.

    Args:
        client: A MeshClient.
        job_id: The job's id, or a unique prefix of it.
        reason: Why, in a few words (recorded with the job).

    Returns:
        ``job_id`` (the full id), ``state`` (``cancelled``) and ``refunded``.

    Raises:
        MeshRequestError: Not the consumer's job (403), no such job (404), or a job that settled
            or is being settled (409).
    """
    # Idempotent: cancelling a cancelled job answers the same.
    body = {} if reason is None else {"reason": reason}
    reply: dict[str, Any] = client.post_json(
        url("job_cancel", job_id=job_id), body, idempotent=True
    )
    return reply


def wait(
    client: Any,
    job_id: str,
    *,
    timeout: float | None = None,
    poll: float = 0.01,
    on_status: Callable[[dict[str, Any]], None] | None = None,
    until: Sequence[str] = ("settled",),
) -> dict[str, Any]:
    """Follow a job until it settles (or reaches another state of ``until``).

    Args:
        client: A MeshClient.
        job_id: The job.
        timeout: Give up after this many seconds (None: never).
        poll: Seconds between polls.
        on_status: Called with each status (for a live view).
        until: States to stop at. ``("checked", "settled")`` stops as soon as C passed the
            coordinator's checks and can be downloaded, while it is still being stored and the
            workers paid.

    Returns:
        The final status.

    Raises:
        MeshJobFailed: The job ended without a result.
        TimeoutError: ``timeout`` passed first.
    """
    start = time.monotonic()
    while True:
        # A long poll: the coordinator answers as soon as the job settles, or after a second.
        info: dict[str, Any] = client.get_json(
            url("job_status", {"wait": LONG_POLL}, job_id=job_id)
        )
        if on_status is not None:
            on_status(info)
        if info.get("state") in until or info.get("state") == "settled":
            return info
        if info.get("state") in ("failed", "cancelled"):
            raise MeshJobFailed(f"job {job_id} {info['state']}: {info.get('reason', '')}")
        if timeout is not None and time.monotonic() - start > timeout:
            raise TimeoutError(f"job {job_id} did not settle within {timeout:.0f} s")
        # A disputed job is being settled by a validator (or the coordinator): keep waiting. Its
        # status answers at once, so it is asked at the long poll's pace rather than in a spin.
        time.sleep(LONG_POLL if info.get("state") == "disputed" else poll)


def fetch_checked(
    client: Any,
    job_id: str,
    a: np.ndarray | None,
    b: np.ndarray | None,
    *,
    timeout: float | None = None,
    on_status: Callable[[dict[str, Any]], None] | None = None,
    security_bits: int = 40,
    out: str | os.PathLike[str] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Wait until C passed the coordinator's checks, then download and check it.

    A coordinator that dies between answering ``checked`` and storing C has lost C (its workers
    reveal their results again after the restart): its successor answers 409, and this waits for
    the job to be checked again.

    Args:
        out: A ``.npy`` file to download C into (``fetch_result_to``); None: into memory
            (``fetch_result``).

    Returns:
        C (as ``fetch_result`` or ``fetch_result_to``) and the last status seen.

    Raises:
        MeshJobFailed, TimeoutError: As ``wait``.
        ResultCheckFailed: C fails the check.
        OutputFileError: ``out`` cannot be written.
    """
    from ramnet.mesh.nodes.client import MeshRequestError

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        info = wait(client, job_id, timeout=left, on_status=on_status, until=("checked", "settled"))
        try:
            if out is not None:
                return fetch_result_to(client, job_id, out, a, b, security_bits=security_bits), info
            return fetch_result(client, job_id, a, b, security_bits=security_bits), info
        except MeshRequestError as exc:
            if exc.status != 409:
                raise
        time.sleep(0.05)  # it is being checked again: poll rather than spin


def fetch_result(
    client: Any, job_id: str, a: np.ndarray | None, b: np.ndarray | None, *, security_bits: int = 40
) -> np.ndarray:
    """Download C and, when A and B are at hand, check it (Freivalds; floats: the range check).

    Returns:
        C, read-only: it shares the downloaded body's memory (a copy of a 64 MiB C would cost as
        much CPU as the download's parsing).

    Raises:
        ResultCheckFailed: C fails the check.
    """
    _, arrays = client.get_wire(url("job_result", job_id=job_id))
    c: np.ndarray = arrays["C"]
    _check(job_id, a, b, c, security_bits)
    return c


def fetch_result_to(
    client: Any,
    job_id: str,
    out: str | os.PathLike[str],
    a: np.ndarray | None,
    b: np.ndarray | None,
    *,
    security_bits: int = 40,
) -> np.ndarray:
    """Download C into the ``.npy`` file ``out`` as it arrives, check it, then put it in place.

    C goes from the socket to a temporary file beside ``out`` through a small buffer, and is
    checked from that file: a 64 MiB C is never held in this process's memory (fresh memory is
    what a download costs most, see ``docs/mesh.md``). A C that fails the check leaves nothing
    behind, and ``out`` is replaced only once it passed.

    Returns:
        C, read-only, mapped from ``out``.

    Raises:
        ResultCheckFailed: C fails the check.
        MeshProtocolError: The reply is not a well-formed RNWIRE1 body holding C.
        OutputFileError: ``out`` cannot be written.
    """
    from ramnet.mesh.nodes.client import MeshProtocolError

    stream = ArrayStream(
        "C",
        lambda _meta, entry: NpyWriter(out, entry.dtype, entry.shape),
        max_bytes=client.max_response_bytes,
    )
    try:
        client.get_wire_into(url("job_result", job_id=job_id), stream)
        _, writer = stream.result()
    except WireFormatError as exc:
        stream.discard()
        raise MeshProtocolError(f"coordinator reply is malformed: {exc}") from None
    except BaseException:
        stream.discard()
        raise
    assert isinstance(writer, NpyWriter)
    with writer:
        c = writer.array()
        _check(job_id, a, b, c, security_bits)
        writer.commit()
    return c


def _check(
    job_id: str, a: np.ndarray | None, b: np.ndarray | None, c: np.ndarray, security_bits: int
) -> None:
    # The consumer's own check of C, when A and B are at hand.
    if a is None or b is None:
        return
    if a.dtype.kind == "f":
        if not float_range_check(a, b, c):
            raise ResultCheckFailed(f"job {job_id}: C is off by more than rounding explains")
    elif not freivalds(a, b, c, security_bits=security_bits):
        raise ResultCheckFailed(f"job {job_id}: C fails Freivalds' check against A and B")
