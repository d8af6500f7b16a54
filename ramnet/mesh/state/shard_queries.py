"""The shards table's queries: a shard's life from pending to accepted or expired.

Each function works on a connection inside the caller's transaction (``Store`` opens it and
checks the arguments first); the rules of who may hold what are in ``Store``'s docstrings.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import cast

from ramnet.mesh.state.errors import DeadlinePassedError, NotFoundError, ShardStateError
from ramnet.mesh.state.records import FINAL_JOB_STATES, Shard
from ramnet.mesh.state.rows import shard_of

__all__ = [
    "FINAL_JOB_STATES",
    "claim",
    "drop_rivals",
    "expire",
    "expire_shards",
    "get",
    "has_live_copy",
    "insert_pending",
    "set_deadline",
    "set_state",
    "step",
]

# Jobs whose pending shards nodes may not claim.
_UNCLAIMABLE_JOB_STATES = ("submitted", *sorted(FINAL_JOB_STATES))
_UNCLAIMABLE_SQL = ", ".join(f"'{state}'" for state in _UNCLAIMABLE_JOB_STATES)  # constants


def get(conn: sqlite3.Connection, shard_id: int) -> Shard:
    """The shard's record.

    Raises:
        NotFoundError: No such shard.
    """
    row = conn.execute("SELECT * FROM shards WHERE shard_id = ?", (shard_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no shard {shard_id}")
    return shard_of(row)


def insert_pending(
    conn: sqlite3.Connection,
    job_id: str,
    slot: int,
    role: str,
    attempt: int,
    blocks: str,
    t: float,
) -> int:
    """Add a ``pending`` copy of a job's slot (``blocks`` as stored JSON); return its id."""
    cur = conn.execute(
        "INSERT INTO shards (job_id, slot, triad, role, attempt, blocks, state,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
        (job_id, slot, slot // 3, role, attempt, blocks, t, t),
    )
    return cast(int, cur.lastrowid)


def expire(conn: sqlite3.Connection, t: float) -> list[int]:
    """Expire the assigned or committed shards whose deadline is ``t`` or earlier, each replaced
    by a fresh pending copy unless its job settled or another copy of its slot is live.

    Returns:
        The ids of the shards that expired.
    """
    rows = conn.execute(
        "SELECT s.*, j.state AS job_state FROM shards s JOIN jobs j USING (job_id)"
        " WHERE s.state IN ('assigned', 'committed') AND s.deadline IS NOT NULL"
        " AND s.deadline <= ? ORDER BY s.shard_id",
        (t,),
    ).fetchall()
    return _expire_rows(conn, rows, t)


def expire_shards(conn: sqlite3.Connection, shard_ids: Sequence[int], t: float) -> list[int]:
    """Expire these shards now, those still assigned or committed, as ``expire`` does at a
    deadline (a node gone silent, a straggler whose slot another copy serves): each replaced by
    a fresh pending copy unless its job is final or another copy of its slot is live.

    Returns:
        The ids of the shards that expired.
    """
    if not shard_ids:
        return []
    rows = conn.execute(
        "SELECT s.*, j.state AS job_state FROM shards s JOIN jobs j USING (job_id)"
        f" WHERE s.state IN ('assigned', 'committed') AND s.shard_id IN"
        f" ({', '.join('?' * len(shard_ids))}) ORDER BY s.shard_id",
        [int(x) for x in shard_ids],
    ).fetchall()
    return _expire_rows(conn, rows, t)


def drop_rivals(conn: sqlite3.Connection, shard: Shard, t: float) -> list[int]:
    """The first copy of a (job, slot, role) to commit wins: its other copies (a straggler's
    backup, or the straggler) go. A rival still pending (nobody took it) is deleted; one
    assigned expires, with no replacement (the winner serves the slot).

    Returns:
        The ids of the rivals that went.
    """
    rivals = conn.execute(
        "SELECT shard_id, state FROM shards WHERE job_id = ? AND slot = ? AND role = ?"
        " AND shard_id != ? AND state IN ('pending', 'assigned')",
        (shard.job_id, shard.slot, shard.role, shard.shard_id),
    ).fetchall()
    for r in rivals:
        if r["state"] == "pending":
            conn.execute("DELETE FROM shards WHERE shard_id = ?", (r["shard_id"],))
        else:
            conn.execute(
                "UPDATE shards SET state = 'expired', updated_at = ? WHERE shard_id = ?",
                (t, r["shard_id"]),
            )
    return [int(r["shard_id"]) for r in rivals]


def set_deadline(conn: sqlite3.Connection, shard_id: int, deadline: float, t: float) -> Shard:
    """Give a shard a new deadline (a lease sized after the claim); returns the shard."""
    conn.execute(
        "UPDATE shards SET deadline = ?, updated_at = ? WHERE shard_id = ?",
        (deadline, t, shard_id),
    )
    return get(conn, shard_id)


def _expire_rows(conn: sqlite3.Connection, rows: Sequence[sqlite3.Row], t: float) -> list[int]:
    # Each row: a shard with its job's state (``job_state``).
    for r in rows:
        conn.execute(
            "UPDATE shards SET state = 'expired', updated_at = ? WHERE shard_id = ?",
            (t, r["shard_id"]),
        )
        if r["job_state"] in FINAL_JOB_STATES or has_live_copy(conn, r["job_id"], r["slot"]):
            continue  # settled, or another copy of the slot (its mirror) serves it
        attempt = conn.execute(
            "SELECT max(attempt) + 1 FROM shards WHERE job_id = ? AND slot = ? AND role = ?",
            (r["job_id"], r["slot"], r["role"]),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO shards (job_id, slot, triad, role, attempt, blocks, state,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            (r["job_id"], r["slot"], r["triad"], r["role"], attempt, r["blocks"], t, t),
        )
    return [int(r["shard_id"]) for r in rows]


def has_live_copy(conn: sqlite3.Connection, job_id: str, slot: int) -> bool:
    """Whether some copy of the job's slot (any role) is pending, held, revealed or accepted."""
    return (
        conn.execute(
            "SELECT 1 FROM shards WHERE job_id = ? AND slot = ?"
            " AND state IN ('pending', 'assigned', 'committed', 'revealed', 'accepted')",
            (job_id, slot),
        ).fetchone()
        is not None
    )


def claim(
    conn: sqlite3.Connection,
    node_id: str,
    lease: float,
    t: float,
    *,
    live_after: float = float("-inf"),
    yield_before: float = float("inf"),
) -> Shard | None:
    """The shard the node already holds (``assigned``), else assign it the first pending shard
    it may take (``Store.next_shard_for`` says which) with deadline ``t + lease``; None if none.

    The node must exist and not be banned (the caller checked), and overdue shards must have
    expired first (``expire``).

    Args:
        live_after: A node last seen (or, never seen, last registered) before this time is
            gone: it does not count as a validator left for the job's disputes.
        yield_before: A shard the node may take only by yielding first (a slot it lost, or one
            that would leave the job no eligible validator) is its own once it has been pending
            since before this time, nobody else having taken it.
    """
    held = conn.execute(
        "SELECT * FROM shards WHERE node_id = ? AND state = 'assigned' ORDER BY shard_id LIMIT 1",
        (node_id,),
    ).fetchone()
    if held is not None:
        return shard_of(held)
    # Distinct nodes: one live copy of a job per node, and never a slot it had rejected.
    candidates = conn.execute(
        "SELECT s.shard_id, s.job_id, s.slot, s.created_at FROM shards s JOIN jobs j"
        " USING (job_id) WHERE s.state = 'pending'"
        f" AND j.state NOT IN ({_UNCLAIMABLE_SQL})"
        " AND NOT EXISTS (SELECT 1 FROM shards o WHERE o.job_id = s.job_id AND o.node_id = ?"
        "   AND (o.state IN ('assigned', 'committed', 'revealed', 'accepted')"
        "   OR (o.slot = s.slot AND o.state = 'rejected')))"
        " ORDER BY j.created_at, j.job_id, s.shard_id",
        (node_id,),
    )
    # Others first: a slot this node lost, or a shard that would make the job's last eligible
    # validator a party to it, waits for another node until ``yield_before``. Both are read
    # once per claim (and per job), not per pending shard.
    lost: set[tuple[str, int]] | None = None
    last_judge: dict[str, bool] = {}
    row = None
    for candidate in candidates:
        if candidate["created_at"] > yield_before:
            if lost is None:
                lost = {
                    (str(r[0]), int(r[1]))
                    for r in conn.execute(
                        "SELECT job_id, slot FROM shards WHERE node_id = ? AND state = 'expired'",
                        (node_id,),
                    )
                }
            job_id = str(candidate["job_id"])
            if (job_id, int(candidate["slot"])) in lost:
                continue
            if job_id not in last_judge:
                last_judge[job_id] = _last_judge(conn, node_id, job_id, live_after)
            if last_judge[job_id]:
                continue
        row = candidate
        break
    candidates.close()
    if row is None:
        return None
    conn.execute(
        "UPDATE shards SET node_id = ?, state = 'assigned', assigned_at = ?,"
        " deadline = ?, updated_at = ? WHERE shard_id = ?",
        (node_id, t, t + lease, t, row["shard_id"]),
    )
    conn.execute(
        "UPDATE jobs SET state = 'dispatched', updated_at = ?"
        " WHERE job_id = ? AND state = 'sharded'",
        (t, row["job_id"]),
    )
    return get(conn, int(row["shard_id"]))


def step(
    conn: sqlite3.Connection,
    shard_id: int,
    node_id: str,
    t: float,
    *,
    frm: str,
    to: str,
    column: str,
    value: str,
    stamp: str,
    deadline: float | None,
) -> Shard:
    """Move the node's shard ``frm`` -> ``to``, recording ``value`` in ``column`` and the time
    in ``stamp`` (a commit or a reveal); the same step again is a no-op.

    Raises:
        NotFoundError: No such shard.
        ShardStateError: Not this node's shard, not in ``frm``, or another value recorded.
        DeadlinePassedError: The shard expired, or its deadline has passed.
    """
    shard = get(conn, shard_id)
    if shard.node_id != node_id:
        raise ShardStateError(f"shard {shard_id} is not assigned to node {node_id}")
    if (
        shard.state == to
        or (to == "committed" and shard.state in ("revealed", "accepted", "rejected"))
        or (to == "revealed" and shard.state in ("accepted", "rejected"))
    ):
        if getattr(shard, column) == value:
            return shard  # a retried request
        raise ShardStateError(f"shard {shard_id} already has another {column}")
    ended = conn.execute(
        "SELECT state, reason FROM jobs WHERE job_id = ?", (shard.job_id,)
    ).fetchone()
    if ended is not None and ended["state"] in ("cancelled", "failed"):
        why = f" ({ended['reason']})" if ended["reason"] else ""
        raise ShardStateError(
            f"job {shard.job_id} was {ended['state']}{why}: shard {shard_id} is no longer wanted"
        )
    if shard.state == "expired":
        raise DeadlinePassedError(f"shard {shard_id} expired; it went to another node")
    if shard.state != frm:
        raise ShardStateError(f"shard {shard_id} is {shard.state}, not {frm}")
    if shard.deadline is not None and shard.deadline <= t:
        raise DeadlinePassedError(f"shard {shard_id}'s deadline has passed")
    conn.execute(
        f"UPDATE shards SET state = ?, {column} = ?, {stamp} = ?, deadline = ?,"
        " updated_at = ? WHERE shard_id = ?",
        (to, value, t, deadline, t, shard_id),
    )
    return get(conn, shard_id)


def set_state(
    conn: sqlite3.Connection,
    shard_id: int,
    state: str,
    expected: Sequence[str] | None,
    t: float,
) -> bool:
    """Set a shard's state, only from ``expected`` when given (``Store.set_shard_state``).

    Returns:
        True if the shard is now in ``state``; False if ``expected`` did not match.

    Raises:
        NotFoundError: No such shard.
        ShardStateError: A state other than ``pending`` for a shard nobody holds.
    """
    shard = get(conn, shard_id)
    if shard.state == state:
        return True
    if expected is not None and shard.state not in expected:
        return False
    if state == "pending":
        conn.execute(
            "UPDATE shards SET state = 'pending', node_id = NULL, deadline = NULL,"
            " updated_at = ? WHERE shard_id = ?",
            (t, shard_id),
        )
    else:
        if shard.node_id is None:
            raise ShardStateError(f"shard {shard_id} has no node; it cannot be {state}")
        conn.execute(
            "UPDATE shards SET state = ?, updated_at = ? WHERE shard_id = ?",
            (state, t, shard_id),
        )
    return True


def _last_judge(conn: sqlite3.Connection, node_id: str, job_id: str, live_after: float) -> bool:
    # Whether the node is a validator eligible for the job's disputes (no party to it) with no
    # other eligible one beside it (unbanned, seen at ``live_after`` or later, no party either).
    row = conn.execute("SELECT validator FROM nodes WHERE node_id = ?", (node_id,)).fetchone()
    if row is None or not row["validator"]:
        return False
    party = conn.execute(
        "SELECT 1 FROM shards WHERE job_id = ? AND node_id = ? LIMIT 1", (job_id, node_id)
    ).fetchone()
    if party is not None:
        return False
    other = conn.execute(
        "SELECT 1 FROM nodes v WHERE validator = 1 AND banned = 0 AND node_id != ?"
        " AND coalesce(last_seen, updated_at) >= ?"
        " AND NOT EXISTS (SELECT 1 FROM shards p WHERE p.job_id = ? AND p.node_id = v.node_id)"
        " LIMIT 1",
        (node_id, live_after, job_id),
    ).fetchone()
    return other is None
