"""Why a job is waiting, in one line: the rule behind the ``waiting`` field of a job's status.

Pure: it takes what the coordinator knows as plain values (the job's state, its shards, its open
dispute, how many nodes could serve, the time) and says what the job waits for, so that a
consumer never watches a count of pending shards without knowing why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["HeldShard", "OpenDispute", "explain"]

_NAMED = 3  # held shards named one by one; the rest are counted
_NODE = 12  # hex digits of a node id shown


@dataclass(frozen=True)
class HeldShard:
    """A live copy of one of the job's slots.

    Attributes:
        slot: Its slot in the plan.
        state: ``pending``, ``assigned`` or ``committed`` (others are not waited for).
        node: Who holds it (None: pending).
        deadline: Unix seconds by which its commit (assigned) or reveal (committed) is due;
            None for a committed shard waiting for the others' commits.
    """

    slot: int
    state: str
    node: str | None
    deadline: float | None


@dataclass(frozen=True)
class OpenDispute:
    """The job's open dispute: its id, its validator (None: none drawn yet) and when it opened."""

    dispute_id: int
    validator: str | None
    opened_at: float


def explain(
    state: str,
    *,
    nodes: int,
    serving: int,
    shards: Sequence[HeldShard],
    dispute: OpenDispute | None,
    validator_wait: float,
    now: float,
) -> str | None:
    """One line saying why the job is waiting, or None when it is not waiting on anyone.

    Args:
        state: The job's state (``checked`` for one whose C passed the checks).
        nodes: The distinct nodes the job needs (its ``--nodes``).
        serving: The nodes registered by a serving process and seen lately, its consumer aside.
        shards: Its shards' live copies (pending, assigned, committed).
        dispute: Its open dispute, if any.
        validator_wait: Seconds a dispute waits for a validator before the coordinator settles
            it itself.
        now: The time, Unix seconds.

    Returns:
        The line, or None (the job ended, or C is being stored and paid for).
    """
    if state in ("settled", "cancelled", "failed", "checked", "resolved"):
        return None
    if dispute is not None:
        if dispute.validator is not None:
            return (
                f"dispute {dispute.dispute_id}: validator {dispute.validator[:_NODE]} is judging"
                " the contested blocks"
            )
        left = dispute.opened_at + validator_wait - now
        if left > 0:
            return (
                f"dispute {dispute.dispute_id}: waiting for an eligible validator; the"
                f" coordinator settles it itself in {left:.0f} s"
            )
        return f"dispute {dispute.dispute_id}: no eligible validator; the coordinator settles it"
    if state == "optimistic":
        return "waiting for an auditor to check the unproven results (ramnet auditor start)"
    pending = sum(1 for s in shards if s.state == "pending")
    parts: list[str] = []
    if pending:
        if serving < nodes:
            parts.append(
                f"waiting for nodes: the job needs {nodes} distinct nodes, {serving} registered"
                f" and live; {pending} shard{_s(pending)} pending"
            )
        else:
            parts.append(f"{pending} shard{_s(pending)} pending, not yet taken by a node")
    held = sorted((s for s in shards if s.node is not None), key=lambda s: s.slot)
    named = [_held(s, now) for s in held[:_NAMED]]
    if len(held) > _NAMED:
        named.append(f"{len(held) - _NAMED} more")
    if named:
        parts.append("waiting on " + ", ".join(named))
    return "; ".join(parts) or None


def _held(shard: HeldShard, now: float) -> str:
    node = (shard.node or "")[:_NODE]
    if shard.state == "committed" and shard.deadline is None:
        due = "committed, waiting for the other commits"
    else:
        due = _due("commit" if shard.state == "assigned" else "reveal", shard.deadline, now)
    return f"slot {shard.slot} on node {node} ({due})"


def _due(what: str, deadline: float | None, now: float) -> str:
    if deadline is None:
        return f"{what} due"
    left = deadline - now
    return f"{what} due in {left:.0f} s" if left >= 0 else f"{what} overdue by {-left:.0f} s"


def _s(count: int) -> str:
    return "" if count == 1 else "s"
