"""A job's status reply, and the long poll a consumer holds until its job settles or fails."""

from __future__ import annotations

from typing import Any

from ramnet.mesh.coordinator.polls import Polls
from ramnet.mesh.coordinator.results import Results
from ramnet.mesh.coordinator.settlement import Settler
from ramnet.mesh.coordinator.shards import Shards
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
    """

    def __init__(
        self, store: Store, polls: Polls, results: Results, shards: Shards, settler: Settler
    ) -> None:
        self._store = store
        self._polls = polls
        self._results = results
        self._shards = shards
        self._settler = settler

    def status(self, job_id: str, wait: float = 0.0) -> dict[str, Any]:
        """The job's state, its shards' states, and what settlement found.

        Args:
            job_id: The job.
            wait: Seconds to hold the request until the job settles or fails (a long poll).
        """
        if wait > 0:

            def look() -> bool:
                if job_id in self._results.checked:
                    return True
                self._shards.reveal_open(job_id)
                self._store.expire_overdue()  # a stalled or dead worker's shard moves on
                return self._store.get_job(job_id).state in ("settled", "disputed")

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
        spec = self._store.get_job(job_id).spec
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
        return info
