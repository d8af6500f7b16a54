"""A job's status reply, and the long poll a consumer holds until its job settles or fails.

The reply says why a job is waiting (``waiting``, one line from ``rules.waiting.explain``): too
few live nodes for its ``--nodes``, shards pending or held on named nodes with their deadlines,
a dispute waiting for a validator."""

from __future__ import annotations

import time
from typing import Any

from ramnet.mesh.coordinator.polls import Polls
from ramnet.mesh.coordinator.results import Results
from ramnet.mesh.coordinator.settlement import Settler
from ramnet.mesh.coordinator.shards import Shards
from ramnet.mesh.rules.waiting import HeldShard, OpenDispute, explain
from ramnet.mesh.state.job_queries import serving_nodes
from ramnet.mesh.state.records import Dispute, Job
from ramnet.mesh.state.store import Store

__all__ = ["JobStatus"]


class JobStatus:
    """Answers status requests.

    Args:
        store: The state store.
        polls: The long polls.
        results: Which jobs are checked (their C is being stored).
        shards: Opens a job's reveals when its commit phase is over.
        settler: Settles a job a poll finds ready and nobody settling.
        node_timeout: Seconds of silence after which a node no longer counts as serving.
        validator_wait: Seconds a dispute waits for a validator before the coordinator settles
            it itself.
    """

    def __init__(
        self,
        store: Store,
        polls: Polls,
        results: Results,
        shards: Shards,
        settler: Settler,
        *,
        node_timeout: float = 15.0,
        validator_wait: float = 10.0,
    ) -> None:
        self._store = store
        self._polls = polls
        self._results = results
        self._shards = shards
        self._settler = settler
        self._node_timeout = node_timeout
        self._validator_wait = validator_wait

    def status(self, job_id: str, wait: float = 0.0) -> dict[str, Any]:
        """The job's state, its shards' states, what settlement found, and why it waits.

        Args:
            job_id: The job (its full id).
            wait: Seconds to hold the request until the job settles, is disputed or ends (a
                long poll).
        """
        if wait > 0:

            def look() -> bool:
                if job_id in self._results.checked:
                    return True
                self._shards.reveal_open(job_id)
                self._store.expire_overdue()  # a stalled or dead worker's shard moves on
                return self._store.get_job(job_id).state in _ANSWERED

            # A poll settles the job itself only before it waits, and only if nobody is settling:
            # that is for a job whose last reveal was answered but not settled (a restart, a
            # failed store). Otherwise the last reveal settles it, and this poll is woken as soon
            # as C is checked instead of holding its answer until C is stored.
            if not look() and not self._settler.busy:
                self._settler.maybe_settle(job_id)
            self._polls.wait_for(look, wait)
        checked = job_id in self._results.checked
        info = self._store.job_status(job_id)
        if checked and info["state"] != "settled":
            info["state"] = "checked"
        job = self._store.get_job(job_id)
        spec = job.spec
        info["shape"] = [spec.m, spec.n]
        info["k"] = spec.k
        info["dtype"] = spec.dtype
        info["nodes"] = spec.nodes
        info["price"] = spec.price
        disputes = self._store.list_disputes(job_id)
        info["disputes"] = [
            {
                "dispute_id": d.dispute_id,
                "state": d.state,
                "validator": d.validator,
                "failed": [[node, list(block)] for node, block in d.claims.failed],
                "outcome": None if d.outcome is None else d.outcome.as_json(),
            }
            for d in disputes
        ]
        open_ = [d for d in disputes if d.state == "open"]
        if info["state"] == "disputed" and open_:
            d = open_[-1]
            who = d.validator[:16] if d.validator else "none eligible yet"
            info["reason"] = f"{len(d.claims.failed)} failed partials; validator {who}"
        elif job.reason is not None:
            info["reason"] = job.reason
        info["waiting"] = self._waiting(job, info["state"], open_[-1] if open_ else None)
        info["shard_list"] = [
            {"slot": x.slot, "attempt": x.attempt, "state": x.state, "node": x.node_id}
            for x in sorted(self._store.list_shards(job_id), key=lambda x: (x.slot, x.attempt))
        ]
        return info

    def _waiting(self, job: Job, state: str, dispute: Dispute | None) -> str | None:
        # What the job waits for, in one line (``rules.waiting``).
        now = time.time()
        live = self._store.list_shards(job.job_id, state=("pending", "assigned", "committed"))
        return explain(
            state,
            nodes=job.spec.nodes,
            serving=serving_nodes(
                self._store, seen_since=now - self._node_timeout, besides=job.consumer
            ),
            shards=[HeldShard(s.slot, s.state, s.node_id, s.deadline) for s in live],
            dispute=None
            if dispute is None
            else OpenDispute(dispute.dispute_id, dispute.validator, dispute.created_at),
            validator_wait=self._validator_wait,
            now=now,
        )


# A long poll answers once the job reaches one of these (or C passed the checks).
_ANSWERED = ("settled", "disputed", "cancelled", "failed")
