"""The nodes' liveness in the state store: when each node was last seen, and the shards held by
nodes gone silent.

Each function works on a connection inside the caller's transaction (``Store`` opens it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from ramnet.mesh.state.records import Shard
from ramnet.mesh.state.rows import shard_of

__all__ = ["record_seen", "shards_of_silent_nodes"]


def record_seen(conn: sqlite3.Connection, seen: Mapping[str, float]) -> int:
    """Record when nodes were last seen (a later time than the one stored only).

    Args:
        seen: Node id -> Unix time of its latest signed request.

    Returns:
        How many registered nodes were updated (unknown nodes are skipped).
    """
    cur = conn.executemany(
        "UPDATE nodes SET last_seen = ? WHERE node_id = ? AND (last_seen IS NULL OR last_seen < ?)",
        [(t, node, t) for node, t in seen.items()],
    )
    return int(cur.rowcount)


def shards_of_silent_nodes(conn: sqlite3.Connection, silent_since: float) -> list[Shard]:
    """The shards that nodes silent since ``silent_since`` still hold: ``assigned`` ones, and
    ``committed`` ones whose reveal is open (they have a deadline).

    A node's last sign of life is the later of its ``last_seen`` and the claim of the shard (a
    claim is a request too); a node never seen (``last_seen`` NULL, as before this was
    recorded) is not judged, and its shards wait for their deadlines as before.
    """
    rows = conn.execute(
        "SELECT s.* FROM shards s JOIN nodes n USING (node_id)"
        " WHERE n.last_seen IS NOT NULL"
        " AND (s.state = 'assigned' OR (s.state = 'committed' AND s.deadline IS NOT NULL))"
        " AND max(n.last_seen, coalesce(s.assigned_at, 0)) <= ?"
        " ORDER BY s.shard_id",
        (silent_since,),
    ).fetchall()
    return [shard_of(r) for r in rows]
