"""What the coordinator does with a blob that fails its digest (or is gone) on the request path.

A damaged blob is reported once, in one line naming the job and the blob, and handled so that
nothing else waits on it:

- a job's **tile** cannot be read back: the job cannot be computed, so it ``failed`` with the
  reason, its escrow goes back to its consumer and its shards are no longer handed out
  (``state.job_failures``); workers carry on with other jobs;
- a revealed **partial** cannot be read back: its worker sent a result that matched its
  commitment, so the loss is the coordinator's, not the worker's. The shard is set aside
  (``expired``, never ``rejected``: nobody is blamed or slashed) and its slot computed again by
  another node, as for a lost shard.
"""

from __future__ import annotations

import sys

from ramnet._errors import RamnetError
from ramnet.mesh.coordinator.polls import Polls
from ramnet.mesh.state.blobs import BlobError, BlobNotFoundError
from ramnet.mesh.state.job_failures import fail_job
from ramnet.mesh.state.ledger import Ledger
from ramnet.mesh.state.records import FINAL_JOB_STATES, NewShard, Shard
from ramnet.mesh.state.store import Store

__all__ = ["Damage", "InputsDamagedError", "ResultLostError", "log"]


class InputsDamagedError(RamnetError):
    """A job's tiles cannot be read back: the job failed (``Damage.inputs_damaged``)."""

    http_status = 409


class ResultLostError(RamnetError):
    """A revealed result cannot be read back: its slot is being computed again."""

    http_status = 409


def log(line: str) -> None:
    """One line in the coordinator's log (its stderr)."""
    print(f"coordinator: {line}", file=sys.stderr, flush=True)


def damage_of(exc: BlobError) -> str:
    """``missing`` or ``corrupt``: what is wrong with a blob, in a word."""
    return "missing" if isinstance(exc, BlobNotFoundError) else "corrupt"


class Damage:
    """Handles damaged blobs found while serving a request.

    Args:
        store: The state store.
        ledger: The ledger (a failed job's escrow is refunded).
        polls: Woken when a job fails or a slot is computed again.
    """

    def __init__(self, store: Store, ledger: Ledger, polls: Polls) -> None:
        self._store = store
        self._ledger = ledger
        self._polls = polls
        self._reported: set[str] = set()

    def inputs_damaged(self, job_id: str, blob: str, exc: BlobError) -> InputsDamagedError:
        """A tile of the job failed its digest or is gone: fail the job (once; logged once).

        Returns:
            The error the request that found it answers with.
        """
        reason = f"its tile blob {blob} is {damage_of(exc)} on the coordinator's disk"
        if fail_job(self._store, self._ledger, job_id, reason):
            log(f"job {job_id} failed: {reason}; its escrow is refunded")
            self._polls.notify()
        return InputsDamagedError(f"job {job_id} failed: {reason}")

    def result_lost(self, shard: Shard, exc: BlobError) -> ResultLostError:
        """A revealed shard's result blob failed its digest or is gone: set the shard aside
        without blame and have its slot computed again (once; logged once).

        Returns:
            The error the request that found it answers with.
        """
        blob = shard.result_digest
        what = f"shard {shard.shard_id}'s result blob {blob} is {damage_of(exc)}"
        with self._store.transaction():
            job = self._store.get_job(shard.job_id)
            current = self._store.get_shard(shard.shard_id)
            again = job.state not in FINAL_JOB_STATES and current.state == "revealed"
            if again:
                self._store.set_shard_state(shard.shard_id, "expired", expect="revealed")
                if not self._store.has_live_copy(shard.job_id, shard.slot):
                    self._store.add_shards(
                        shard.job_id, [NewShard(shard.slot, shard.blocks, shard.role)]
                    )
        if again:
            log(f"job {shard.job_id}: {what}; its slot {shard.slot} is computed again")
            self._polls.notify()
        elif job.state in FINAL_JOB_STATES and blob not in self._reported:
            self._reported.add(str(blob))  # nothing to compute again: say so once
            log(f"job {shard.job_id} ({job.state}): {what}")
        return ResultLostError(f"job {shard.job_id}: {what}")
