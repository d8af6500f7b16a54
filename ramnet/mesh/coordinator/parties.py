"""Who may judge a job: the nodes that are party to it, and the validator drawn for a dispute."""

from __future__ import annotations

from ramnet.mesh.rules.disputes import draw_validator
from ramnet.mesh.state.store import Store

__all__ = ["draw", "parties"]


def parties(store: Store, job_id: str) -> set[str]:
    """Every node that holds (or held) a shard of the job: none of them may judge it."""
    return {str(s.node_id) for s in store.list_shards(job_id=job_id) if s.node_id}


def draw(store: Store, job_id: str, round_: int, *, now: float | None = None) -> str | None:
    """The validator of the job's dispute in round ``round_`` (``draw_validator``): an opt-in,
    unbanned validator seen within the node timeout (at ``now``) that is no party to the job
    (``Store.eligible_validators``); None when there is none."""
    commits = [
        str(s.commit_hash)
        for s in store.list_shards(job_id=job_id, state="revealed")
        if s.commit_hash
    ]
    return draw_validator(job_id, commits, round_, store.eligible_validators(job_id, now=now))
