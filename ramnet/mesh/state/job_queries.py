"""A consumer's view of its jobs: a job named by a unique prefix of its id, and a job cancelled.

Each function takes the ``Store`` and is one transaction (or joins the caller's, as ``Store``'s
methods do), so that the coordinator can cancel a job and refund its escrow in one.
"""

from __future__ import annotations

import re
import sqlite3

from ramnet.mesh.state.checks import check_node_id, clock, short
from ramnet.mesh.state.errors import (
    NotAllowedError,
    NotFoundError,
    StoreConflictError,
    StoreInputError,
)
from ramnet.mesh.state.records import FINAL_JOB_STATES, Job
from ramnet.mesh.state.rows import job_of
from ramnet.mesh.state.store import Store

__all__ = ["MIN_PREFIX", "cancel_job", "refunded", "resolve_job_id", "serving_nodes"]

#: The fewest hex digits a job id's prefix may have (fewer would match by chance).
MIN_PREFIX = 6
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_HEX = re.compile(r"[0-9a-f]+")


def resolve_job_id(store: Store, text: str) -> str:
    """The job that ``text`` names: its full id, or a unique prefix of at least ``MIN_PREFIX``
    hex digits.

    Args:
        store: The state store.
        text: What the caller typed.

    Returns:
        The job's full id.

    Raises:
        StoreInputError: Not a job id, a prefix too short, or a prefix that several jobs share
            (the message says how many).
        NotFoundError: No job has that id or prefix.
    """
    if not isinstance(text, str) or _JOB_ID.fullmatch(text) is None:
        raise StoreInputError(f"not a job id (1-128 of A-Z a-z 0-9 _ -): {short(text)}")
    with store.snapshot() as conn:
        if conn.execute("SELECT 1 FROM jobs WHERE job_id = ?", (text,)).fetchone() is not None:
            return text
        prefix = text.lower()
        if _HEX.fullmatch(prefix) is None:
            raise NotFoundError(f"no job {text}")
        if len(prefix) < MIN_PREFIX:
            raise StoreInputError(
                f"job id prefix {text!r} is too short: give at least {MIN_PREFIX} hex digits"
            )
        # Job ids are lowercase hex: those starting with the prefix sort between it and the
        # prefix followed by the first character after 'f'.
        rows = conn.execute(
            "SELECT job_id FROM jobs WHERE job_id >= ? AND job_id < ? ORDER BY job_id LIMIT 1000",
            (prefix, prefix + "g"),
        ).fetchall()
    if not rows:
        raise NotFoundError(f"no job {text}")
    if len(rows) > 1:
        count = f"{len(rows)}" if len(rows) < 1000 else "1000 or more"
        raise StoreInputError(
            f"job id prefix {text!r} matches {count} jobs: give more digits (or the full id)"
        )
    return str(rows[0]["job_id"])


def cancel_job(
    store: Store, job_id: str, consumer: str, reason: str, *, now: float | None = None
) -> tuple[Job, bool]:
    """Cancel a job on its consumer's word: it becomes ``cancelled`` with ``reason``; its pending
    shards stay pending, which nobody claims in a final job, and those held or revealed are
    ``expired``: a commit or reveal of one is refused (``shard_queries.step``), and nothing
    settles the job. The caller
    refunds the escrow in the same transaction; work already revealed is not paid.

    Args:
        store: The state store.
        job_id: The job (its full id).
        consumer: The signing node: only the job's consumer may cancel it.
        reason: Recorded with the job.

    Returns:
        The job as it is now, and whether this call cancelled it (False: it already was).

    Raises:
        NotFoundError: No such job.
        NotAllowedError: ``consumer`` is not the job's consumer.
        StoreConflictError: The job settled or failed: it cannot be cancelled.
    """
    check_node_id(consumer)
    t = clock(now)
    with store.transaction() as conn:
        job = _job(conn, job_id)
        if job.consumer != consumer:
            raise NotAllowedError(f"job {job_id} belongs to another consumer")
        if job.state == "cancelled":
            return job, False
        if job.state in FINAL_JOB_STATES:
            raise StoreConflictError(f"job {job_id} is {job.state}; it cannot be cancelled")
        conn.execute(
            "UPDATE jobs SET state = 'cancelled', reason = ?, updated_at = ? WHERE job_id = ?",
            (reason, t, job_id),
        )
        conn.execute(
            "UPDATE shards SET state = 'expired', updated_at = ? WHERE job_id = ?"
            " AND state IN ('assigned', 'committed', 'revealed')",
            (t, job_id),
        )
        return _job(conn, job_id), True


def serving_nodes(store: Store, *, seen_since: float, besides: str | None = None) -> int:
    """How many nodes could take shards now: registered by a serving process (one that named
    its ``instance``: a worker, a validator, an auditor; consumers name none), not banned, and
    seen since ``seen_since`` (their last signed request, else their registration's update).

    Args:
        store: The state store.
        seen_since: Unix seconds: a node silent since before then counts as gone.
        besides: A node not to count (the job's consumer).
    """
    with store.snapshot() as conn:
        row = conn.execute(
            "SELECT count(*) FROM nodes WHERE instance IS NOT NULL AND banned = 0"
            " AND coalesce(last_seen, updated_at) >= ? AND node_id != ?",
            (seen_since, besides or ""),
        ).fetchone()
    return int(row[0])


def refunded(store: Store, job_id: str) -> int:
    """What the job's escrow has given back to its consumer so far (0: no escrow)."""
    with store.snapshot() as conn:
        row = conn.execute("SELECT refunded FROM escrows WHERE job_id = ?", (job_id,)).fetchone()
    return 0 if row is None else int(row[0])


def _job(conn: sqlite3.Connection, job_id: str) -> Job:
    row = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no job {job_id}")
    return job_of(row)
