"""The consumer's side of a mesh job: submit, follow, fetch C, check it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ramnet._errors import InvalidInputError, RamnetError
from ramnet.mesh import _api
from ramnet.valkyrie import float_range_check, freivalds

LONG_POLL = 1.0


class MeshJobFailed(RamnetError):
    """The coordinator could not settle the job (a dispute it could not resolve, or a refusal)."""


class ResultCheckFailed(RamnetError):
    """The C the coordinator returned fails the consumer's own Freivalds check."""


def check_nodes(nodes: int) -> int:
    """Refuse node counts that are not positive multiples of 3.

    Raises:
        InvalidInputError: Anything else.
    """
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 3 or nodes % 3:
        raise InvalidInputError(
            f"--nodes must be a positive multiple of 3 (3, 6, 9, ...), got {nodes}"
        )
    return nodes


def submit(client: Any, a: np.ndarray, b: np.ndarray, nodes: int) -> str:
    """Upload A and B for ``nodes`` workers; returns the job id (payment is escrowed then).

    Raises:
        InvalidInputError: A bad node count; the coordinator's refusals, as its message says.
    """
    check_nodes(nodes)
    # Registering is idempotent; a new account gets the coordinator's starting credit.
    client.post_json(_api.NODES, {"bond": 0})
    request_id = secrets.token_hex(16)  # a retried upload must not become a second job
    meta = {"nodes": nodes, "request_id": request_id}
    reply = client.post_wire(_api.JOBS, meta, {"A": a, "B": b}, idempotent=True)
    return str(reply["job_id"])


def status(client: Any, job_id: str) -> dict[str, Any]:
    """The job's state and its shards' states."""
    reply: dict[str, Any] = client.get_json(_api.job(job_id))
    return reply


def wait(
    client: Any,
    job_id: str,
    *,
    timeout: float | None = None,
    poll: float = 0.01,
    on_status: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Follow a job until it settles.

    Args:
        client: A MeshClient.
        job_id: The job.
        timeout: Give up after this many seconds (None: never).
        poll: Seconds between polls.
        on_status: Called with each status (for a live view).

    Returns:
        The final status.

    Raises:
        MeshJobFailed: The job ended without a result.
        TimeoutError: ``timeout`` passed first.
    """
    start = time.monotonic()
    while True:
        # A long poll: the coordinator answers as soon as the job settles, or after a second.
        info: dict[str, Any] = client.get_json(f"{_api.job(job_id)}?wait={LONG_POLL:g}")
        if on_status is not None:
            on_status(info)
        if info.get("state") == "settled":
            return info
        # A disputed job is being settled by a validator: keep waiting.
        if info.get("state") in ("failed", "cancelled"):
            raise MeshJobFailed(f"job {job_id} {info['state']}: {info.get('reason', '')}")
        if timeout is not None and time.monotonic() - start > timeout:
            raise TimeoutError(f"job {job_id} did not settle within {timeout:.0f} s")
        time.sleep(poll)


def fetch_result(
    client: Any, job_id: str, a: np.ndarray | None, b: np.ndarray | None, *, security_bits: int = 40
) -> np.ndarray:
    """Download C and, when A and B are at hand, check it (Freivalds; floats: the range check).

    Raises:
        ResultCheckFailed: C fails the check.
    """
    _, arrays = client.get_wire(_api.job_result(job_id))
    c = np.array(arrays["C"])
    if a is not None and b is not None:
        if a.dtype.kind == "f":
            if not float_range_check(a, b, c):
                raise ResultCheckFailed(f"job {job_id}: C is off by more than rounding explains")
        elif not freivalds(a, b, c, security_bits=security_bits):
            raise ResultCheckFailed(f"job {job_id}: C fails Freivalds' check against A and B")
    return c
