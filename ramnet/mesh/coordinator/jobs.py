"""A consumer's own jobs: which job an id's prefix names, the list of its jobs, and a job
cancelled with its unspent escrow refunded."""

from __future__ import annotations

from typing import Any

from ramnet.mesh.coordinator.inputs import JobInputs
from ramnet.mesh.coordinator.polls import Polls
from ramnet.mesh.coordinator.results import Results
from ramnet.mesh.state import job_queries
from ramnet.mesh.state.errors import StoreConflictError
from ramnet.mesh.state.ledger import Ledger
from ramnet.mesh.state.records import Job
from ramnet.mesh.state.store import Store

__all__ = ["CANCEL_REASON", "ConsumerJobs"]

#: The reason a job cancelled by its consumer carries.
CANCEL_REASON = "cancelled by its consumer"
_LISTED = 100


class ConsumerJobs:
    """Answers ``job list`` and ``job cancel``, and resolves job id prefixes.

    Args:
        store, ledger: The coordinator's state.
        polls: Woken when a job is cancelled (its consumer's long poll answers at once).
        inputs, results: What a cancelled job held in memory, let go.
    """

    def __init__(
        self, store: Store, ledger: Ledger, polls: Polls, inputs: JobInputs, results: Results
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._polls = polls
        self._inputs = inputs
        self._results = results

    def resolve(self, text: str) -> str:
        """The full id of the job ``text`` names (its id or a unique prefix of 6+ hex digits).

        Raises:
            StoreInputError: A malformed id, a prefix too short or shared by several jobs (400).
            NotFoundError: No such job (404).
        """
        return job_queries.resolve_job_id(self._store, text)

    def listing(self, consumer: str) -> dict[str, Any]:
        """The consumer's latest jobs, newest first (``JobList``)."""
        jobs = self._store.list_jobs(consumer=consumer, limit=_LISTED)
        return {"jobs": [_summary(job) for job in jobs]}

    def cancel(self, consumer: str, text: str, reason: str | None = None) -> dict[str, Any]:
        """Cancel a job that has not settled; refund what its escrow still holds.

        Repeating it answers the same (nothing more is refunded). Work already revealed is not
        paid: the consumer gets back everything it escrowed that was not paid out.

        Args:
            consumer: The signing node: the job's consumer.
            text: The job's id or a unique prefix of it.
            reason: The consumer's words, recorded after ``CANCEL_REASON``.

        Returns:
            ``JobCancelled``: the job, its state, and what its escrow has refunded in all.

        Raises:
            NotFoundError: No such job.
            NotAllowedError: Another consumer's job (403).
            StoreConflictError: The job settled or failed, or it is being settled: its C passed
                the checks, or a dispute or an auditor decides it (409).
        """
        job_id = self.resolve(text)
        job = self._store.get_job(job_id)
        # A job whose result is being decided is left to end as it ends: a cancel then would race
        # its payments (the ledger would stay conserved, but the honest work would go unpaid).
        if job_id in self._results.checked or job.state in ("disputed", "resolved", "optimistic"):
            state = "checked" if job_id in self._results.checked else job.state
            raise StoreConflictError(
                f"job {job_id} is {state}: it is being settled and cannot be cancelled now"
            )
        with self._store.transaction():
            why = CANCEL_REASON if reason is None else f"{CANCEL_REASON}: {reason}"
            job, _ = job_queries.cancel_job(self._store, job_id, consumer, why)
            self._ledger.refund(job_id, consumer)
        self._inputs.forget(job_id)
        self._results.forget(job_id)
        self._polls.notify()
        return {
            "job_id": job_id,
            "state": job.state,
            "refunded": job_queries.refunded(self._store, job_id),
        }


def _summary(job: Job) -> dict[str, Any]:
    spec = job.spec
    return {
        "job_id": job.job_id,
        "state": job.state,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "shape": [spec.m, spec.k, spec.n],
        "dtype": spec.dtype,
        "nodes": spec.nodes,
        "price": spec.price,
        "reason": job.reason,
    }
