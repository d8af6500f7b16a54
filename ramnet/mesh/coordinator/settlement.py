"""Settling a job once every live shard is revealed: check, store C, pay; or open a dispute.

Unproven results (``--no-prove`` workers) are not settled here at once: their job goes
``optimistic`` and waits for an auditor (``audits``), who settles it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import numpy as np

from ramnet.mesh.coordinator.damage import InputsDamagedError, ResultLostError
from ramnet.mesh.coordinator.inputs import JobInputs
from ramnet.mesh.coordinator.parties import draw
from ramnet.mesh.coordinator.polls import Polls
from ramnet.mesh.coordinator.results import Results
from ramnet.mesh.protocol.wire import pack_parts
from ramnet.mesh.rules.disputes import contested
from ramnet.mesh.rules.settle import Settlement, earnings, settle
from ramnet.mesh.state.blobs import BlobStore
from ramnet.mesh.state.ledger import Ledger
from ramnet.mesh.state.records import DisputeClaims
from ramnet.mesh.state.store import Store

__all__ = ["Settler"]


class Settler:
    """Settles jobs, one at a time.

    Args:
        store, ledger, blobs: The coordinator's state.
        polls: Woken on every state change.
        inputs: The jobs' tiles and plans.
        results: The revealed partials and C's.
        price_per_block: What a worker earns per block product that passed its checks.
        validator_fee: The fee escrowed with every job (an auditor that settles it earns it).
        checks: False settles without the per-shard checks (a benchmarking aid).
    """

    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        blobs: BlobStore,
        polls: Polls,
        inputs: JobInputs,
        results: Results,
        *,
        price_per_block: int,
        validator_fee: int,
        checks: bool,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._blobs = blobs
        self._polls = polls
        self._inputs = inputs
        self._results = results
        self._price_per_block = price_per_block
        self._validator_fee = validator_fee
        self._checks = checks
        self._settling = threading.Lock()

    @property
    def busy(self) -> bool:
        """Whether a job is being settled right now."""
        return self._settling.locked()

    def maybe_settle(self, job_id: str) -> None:
        """Settle the job (or send it to an auditor) if every live shard is revealed."""
        # Settle once every live shard is revealed: from the last reveal, or, if the process died
        # between that reveal and its settlement, from the next status poll after a restart.
        if self._store.get_job(job_id).state in ("settled", "disputed", "optimistic"):
            return
        remaining = self._store.list_shards(
            job_id=job_id, state=("pending", "assigned", "committed")
        )
        revealed = self._store.list_shards(job_id=job_id, state="revealed")
        if remaining or not revealed:
            return
        if any(not self._store.get_node(str(s.node_id)).prove for s in revealed):
            # Unproven results (``--no-prove`` workers) wait for an auditor: on disk.
            self._results.writes.flush(job_id)
            with self._store.transaction():
                if self._store.get_job(job_id).state not in ("settled", "optimistic"):
                    self._store.set_job_state(job_id, "optimistic")
            self._polls.notify()
        else:
            self.settle(job_id)

    def settle(self, job_id: str, *, auditor: str | None = None) -> None:
        """Check every revealed shard of a job, pay, and publish C; or open a dispute
        (idempotent: a settled or disputed job is left as it is).

        Args:
            job_id: The job.
            auditor: The auditor whose check passed an optimistic job: it earns the job's fee,
                and the per-partial checks it ran are not repeated here.
        """
        with self._settling:
            job = self._store.get_job(job_id)
            if job.state in ("settled", "disputed"):
                return
            spec = job.spec
            plan, grid = self._inputs.plan(job_id, spec)
            try:
                tiles_a, tiles_b = self._inputs.tiles(job_id, spec)
                reveals, nodes_of = self._results.revealed(job_id)
            except (InputsDamagedError, ResultLostError):
                return  # the job failed, or a lost result's slot is being computed again
            dtype = np.dtype(spec.out_dtype)
            outcome = settle(
                plan,
                grid,
                dtype,
                reveals,
                tiles_a,
                tiles_b,
                checks=self._checks and auditor is None,
            )
            if not outcome.ok or outcome.c is None:
                self._open_dispute(job_id, outcome, nodes_of)
                return
            # C is stored before the job is settled: a settled job's partials may never have
            # reached the disk (``write_behind``). The last few results also stay in memory, and
            # a checked job's C is served from there while it is being stored.
            self._results.remember(job_id, outcome.c)
            self._results.checked.add(job_id)
            self._polls.notify()
            try:
                c_blob = self._store_and_pay(job_id, job.consumer, outcome, nodes_of, auditor)
            finally:
                self._results.checked.discard(job_id)
            self._inputs.forget(job_id)
            self._results.forget(job_id)
            self._polls.notify()
        # Off the settling path: the consumer and the last reveal are answered meanwhile. C's
        # replica is written before the inputs that could rebuild C are dropped.
        c = outcome.c
        self._results.writes.schedule(
            0.0, f"drop:{job_id}", lambda: self._results.secure(job_id, c_blob, c)
        )

    def _store_and_pay(
        self,
        job_id: str,
        consumer: str,
        outcome: Settlement,
        nodes_of: Mapping[int, str],
        auditor: str | None,
    ) -> str:
        # The settlement's durable half: C's blob, then (one transaction) the payments and the
        # settled state with the blob that holds C. Returns that blob.
        assert outcome.c is not None
        c_blob = self._blobs.put_stream(pack_parts({}, {"C": outcome.c}))
        earned = earnings(outcome.computed, nodes_of)  # a node may have served two slots
        with self._store.transaction():
            for worker, count in earned.items():
                if count:
                    self._ledger.pay(job_id, worker, count * self._price_per_block)
            fee = min(self._validator_fee, self._ledger.escrow_held(job_id))
            if auditor is not None and fee > 0:
                self._ledger.pay(job_id, auditor, fee, reason="audit")
            self._ledger.refund(job_id, consumer)
            self._store.set_job_state(job_id, "settled")
            self._store.set_job_result(job_id, c_blob)
        return c_blob

    def _open_dispute(self, job_id: str, outcome: Settlement, nodes_of: Mapping[int, str]) -> None:
        # A check failed: the job freezes and a validator is drawn (``disputes``).
        failed, blocks = contested(outcome.failed, outcome.disagreements, nodes_of)
        round_ = len(self._store.list_disputes(job_id))
        self._results.writes.flush(job_id)  # a validator and the dispute's record need the results
        claims = DisputeClaims(
            round=round_,
            failed=failed,
            blocks=blocks,
            slots={str(slot): node for slot, node in nodes_of.items()},
        )
        with self._store.transaction():
            self._store.open_dispute(job_id, claims, validator=draw(self._store, job_id, round_))
            self._store.set_job_state(job_id, "disputed")
        self._polls.notify()
