"""The disputes table's queries: a dispute opened, its validator drawn, its outcome recorded.

Each function works on a connection inside the caller's transaction (``Store`` opens it and
checks the arguments first); claims and outcomes arrive as their stored JSON text.
"""

from __future__ import annotations

import sqlite3
from typing import cast

from ramnet.mesh.state.errors import NotFoundError, StoreConflictError
from ramnet.mesh.state.records import Dispute
from ramnet.mesh.state.rows import dispute_of

__all__ = ["eligible_validators", "get", "insert", "resolve", "set_validator"]


def get(conn: sqlite3.Connection, dispute_id: int) -> Dispute:
    """The dispute's record.

    Raises:
        NotFoundError: No such dispute.
    """
    row = conn.execute("SELECT * FROM disputes WHERE dispute_id = ?", (dispute_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no dispute {dispute_id}")
    return dispute_of(row)


def insert(
    conn: sqlite3.Connection, job_id: str, claims: str, validator: str | None, t: float
) -> Dispute:
    """Open a dispute on a job with its claims (stored JSON).

    Raises:
        NotFoundError: No such job.
    """
    if conn.execute("SELECT 1 FROM jobs WHERE job_id = ?", (job_id,)).fetchone() is None:
        raise NotFoundError(f"no job {job_id}")
    cur = conn.execute(
        "INSERT INTO disputes (job_id, claims, validator, state, created_at)"
        " VALUES (?, ?, ?, 'open', ?)",
        (job_id, claims, validator, t),
    )
    return get(conn, cast(int, cur.lastrowid))


def resolve(
    conn: sqlite3.Connection,
    dispute_id: int,
    outcome: str,
    verdict_digest: str | None,
    t: float,
) -> Dispute:
    """Close a dispute with its outcome (stored JSON); the same resolution again is a no-op.

    Raises:
        NotFoundError: No such dispute.
        StoreConflictError: It was resolved otherwise.
    """
    row = conn.execute("SELECT * FROM disputes WHERE dispute_id = ?", (dispute_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no dispute {dispute_id}")
    if row["state"] == "resolved":
        if row["outcome"] == outcome and row["verdict_digest"] == verdict_digest:
            return dispute_of(row)
        raise StoreConflictError(f"dispute {dispute_id} is already resolved")
    conn.execute(
        "UPDATE disputes SET state = 'resolved', outcome = ?, verdict_digest = ?,"
        " resolved_at = ? WHERE dispute_id = ?",
        (outcome, verdict_digest, t, dispute_id),
    )
    return get(conn, dispute_id)


def eligible_validators(conn: sqlite3.Connection, job_id: str, live_after: float) -> list[str]:
    """The validators that may judge a job's dispute, in node id order: opted in, unbanned,
    seen at ``live_after`` or later (never seen since this was recorded: registered then or
    later), and no party to the job (they never held a copy of any of its shards)."""
    rows = conn.execute(
        "SELECT node_id FROM nodes v WHERE validator = 1 AND banned = 0"
        " AND coalesce(last_seen, updated_at) >= ?"
        " AND NOT EXISTS (SELECT 1 FROM shards s WHERE s.job_id = ? AND s.node_id = v.node_id)"
        " ORDER BY node_id",
        (live_after, job_id),
    ).fetchall()
    return [str(r["node_id"]) for r in rows]


def set_validator(conn: sqlite3.Connection, dispute_id: int, validator: str | None) -> Dispute:
    """Name the validator of an open dispute (None: none, until another is drawn).

    Raises:
        NotFoundError: No such dispute.
        StoreConflictError: It is resolved.
    """
    dispute = get(conn, dispute_id)
    if dispute.state != "open":
        raise StoreConflictError(f"dispute {dispute_id} is already resolved")
    conn.execute("UPDATE disputes SET validator = ? WHERE dispute_id = ?", (validator, dispute_id))
    return get(conn, dispute_id)
