"""One key, one process: which process (``instance``) a node's key runs in.

A worker, validator or auditor names itself at random when it registers. Two processes sharing
a key would otherwise become one node silently (they would claim each other's shards), so a key
whose recorded instance is another process seen within the node timeout is refused.
"""

from __future__ import annotations

from ramnet.mesh.state.checks import check_node_id, check_time, clock
from ramnet.mesh.state.errors import KeyInUseError
from ramnet.mesh.state.store import Store

__all__ = ["claim_instance"]


def claim_instance(
    store: Store,
    node_id: str,
    instance: str,
    *,
    timeout: float,
    last_seen: float | None = None,
    now: float | None = None,
) -> bool:
    """Record ``instance`` as the process of ``node_id``'s key, unless another live one holds it.

    The other instance counts as live while its node was seen within ``timeout`` seconds: its
    last signed request (``last_seen``), or, where that is not recorded, its registration's last
    update: so call this before registration updates the node, and again after it created a
    new one. Joins the caller's transaction (registration's).

    Args:
        store: The state store.
        node_id: The registered node.
        instance: The registering process's name.
        timeout: Seconds of silence after which a node counts as gone (``node_timeout``).
        last_seen: A later sign of life than the store holds (the liveness tracker's), if any.
            A registration is none: its requests must not keep the other process looking alive.

    Returns:
        True if recorded; False if the node is not registered (yet).

    Raises:
        KeyInUseError: Another live process uses the key.
    """
    check_node_id(node_id)
    limit = check_time("timeout", timeout)
    t = clock(now)
    with store.transaction() as conn:
        row = conn.execute(
            "SELECT instance, coalesce(last_seen, updated_at) AS seen FROM nodes WHERE node_id = ?",
            (node_id,),
        ).fetchone()
        if row is None:
            return False
        held, seen = row["instance"], max(float(row["seen"]), last_seen or 0.0)
        if held is not None and held != instance and t - seen < limit:
            raise KeyInUseError(
                f"node {node_id[:16]}'s key is in use by another running process (seen"
                f" {max(0.0, t - seen):.0f} s ago): give each process its own --key-file"
            )
        conn.execute(
            "UPDATE nodes SET instance = ?, last_seen = ? WHERE node_id = ?",
            (instance, t, node_id),
        )
        return True
