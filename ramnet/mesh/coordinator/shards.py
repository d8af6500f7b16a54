"""A shard's life with its worker: claimed under a lease, committed, revealed (or handed back),
and the long poll a worker waits on for the reveal to open.

The commit phase of a job closes once no live shard awaits its commit; from then on every
committed shard must be revealed within a lease. The last result in settles the job.

Leases are sized by each shard's work (``Leases``); silent nodes and stragglers are found by
``Liveness``, whose sweep every claim's poll triggers. Of two copies of one slot and role (a
straggler and its backup) the first to commit wins, and the other goes in the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from ramnet._errors import InvalidInputError
from ramnet.mesh.coordinator.inputs import JobInputs
from ramnet.mesh.coordinator.leases import Leases
from ramnet.mesh.coordinator.liveness import Liveness
from ramnet.mesh.coordinator.polls import Polls
from ramnet.mesh.coordinator.results import Partials, Results
from ramnet.mesh.coordinator.settlement import Settler
from ramnet.mesh.protocol.messages import CommitRequest
from ramnet.mesh.rules.shard import named_partials, result_digest
from ramnet.mesh.state import shard_queries
from ramnet.mesh.state.errors import ShardStateError
from ramnet.mesh.state.records import NewShard, Shard
from ramnet.mesh.state.store import Store

__all__ = ["Shards", "shard_number"]


def shard_number(shard_id: str) -> int:
    """The shard number a request's ``shard_id`` names.

    Raises:
        InvalidInputError: Not a number of at most 18 digits.
    """
    if not shard_id.isdigit() or len(shard_id) > 18:
        raise InvalidInputError(f"bad shard id {shard_id!r}")
    return int(shard_id)


class Shards:
    """Claims, commits, reveals and hand-backs of shards.

    Args:
        store: The state store.
        polls: The long polls (woken on every change, and waited on).
        inputs: The jobs' tiles, sent with each claim.
        results: Where revealed results go.
        settler: Settles a job when its last result is in.
        leases: How long a worker has to commit a shard, and then to reveal it.
        liveness: The sweep that finds silent nodes and stragglers (triggered by claims).
    """

    def __init__(
        self,
        store: Store,
        polls: Polls,
        inputs: JobInputs,
        results: Results,
        settler: Settler,
        *,
        leases: Leases,
        liveness: Liveness,
    ) -> None:
        self._store = store
        self._polls = polls
        self._inputs = inputs
        self._results = results
        self._settler = settler
        self._leases = leases
        self._liveness = liveness

    def claim(self, node: str, wait: float = 0.0) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Give the node its next shard with the tiles it needs (``shard_id`` None: no work).

        Args:
            node: The claiming node.
            wait: Seconds to hold the request while there is no work (a long poll).
        """

        def ready() -> Shard | None:
            self._liveness.tick()  # a poll's re-check is when a silent node's shard comes free
            return self._store.next_shard_for(
                node, lease_s=self._leases.policy.floor_s, lease_for=self._leases.for_shard
            )

        shard = self._polls.wait_for(ready, wait)
        if shard is None:
            return {"shard_id": None}, {}
        spec = self._store.get_job(shard.job_id).spec
        # In memory, not re-read per claim.
        tiles_a, tiles_b = self._inputs.tiles(shard.job_id, spec)
        arrays: dict[str, np.ndarray] = {}
        for i, j, kk in shard.blocks:
            arrays.setdefault(f"a/{i}/{kk}", tiles_a[(i, kk)])
            arrays.setdefault(f"b/{kk}/{j}", tiles_b[(kk, j)])
        meta = {
            "shard_id": str(shard.shard_id),
            "job_id": shard.job_id,
            "blocks": shard.blocks,
            "dtype": spec.dtype,
            "deadline": shard.deadline,
        }
        return meta, arrays

    def reveal_open(self, job_id: str) -> bool:
        """Whether the job's commit phase is closed (its reveals open); sets the reveal
        deadlines when it is."""
        # The commit phase closes once no live shard of the job still awaits its commit; from
        # then on every committed shard must be revealed within a lease. Setting the deadlines
        # here (idempotent) rather than only at the closing commit keeps a crash between the
        # two from leaving shards without one.
        live = self._store.list_shards(job_id=job_id, state=("pending", "assigned"))
        if live:
            return False
        spec = self._store.get_job(job_id).spec
        self._store.open_reveals(job_id, time.time() + self._leases.to_reveal(spec))
        return True

    def view(self, node: str, shard_id: str, wait: float = 0.0) -> dict[str, Any]:
        """The shard's state and whether its reveal is open.

        Args:
            node: The asking node (must hold the shard).
            shard_id: The shard.
            wait: Seconds to hold the request until the reveal opens (a long poll).

        Raises:
            NotFoundError: No such shard; ShardStateError: another node's shard.
        """
        number = shard_number(shard_id)

        def view() -> dict[str, Any]:
            shard = self._store.get_shard(number)
            if shard.node_id != node:
                raise ShardStateError(f"shard {shard_id} is not this node's")
            return {
                "shard_id": shard_id,
                "state": shard.state,
                "reveal": shard.state == "committed" and self.reveal_open(shard.job_id),
                "stored": self._results.stored(shard),
            }

        first = view()
        if first["reveal"] or first["state"] != "committed" or wait <= 0:
            return first
        return dict(self._polls.wait_for(lambda: (v := view())["reveal"] and v, wait) or view())

    def commit(self, node: str, shard_id: str, request: CommitRequest) -> dict[str, Any]:
        """Record a commitment to a shard's result; returns the shard's view (``view``).

        Args:
            node: The committing node (must hold the shard).
            shard_id: The shard.
            request: The result's digest (64 hex digits, as the message checks).

        Raises:
            InvalidInputError: A bad shard id; ShardStateError, DeadlinePassedError: as the
                store says.
        """
        with self._store.transaction() as conn:
            shard = self._store.record_commit(shard_number(shard_id), node, request.digest.lower())
            # The first copy of its slot and role to commit wins: a straggler's backup (or the
            # straggler) goes now, so that only one copy is ever revealed and paid.
            shard_queries.drop_rivals(conn, shard, time.time())
        self._leases.observe(shard)
        self.reveal_open(shard.job_id)  # sets the reveal deadlines if this closed the phase
        self._polls.notify()
        return self.view(node, shard_id)

    def release(self, node: str, shard_id: str) -> dict[str, Any]:
        """Hand a shard back (a worker stopping): it expires and a fresh copy goes to another node.

        Raises:
            ShardStateError: Not this node's shard, or already revealed.
        """
        number = shard_number(shard_id)
        with self._store.transaction():
            shard = self._store.get_shard(number)
            if shard.node_id != node or shard.state not in ("assigned", "committed"):
                raise ShardStateError(f"shard {shard_id} is not this node's to hand back")
            self._store.set_shard_state(number, "expired", expect=("assigned", "committed"))
            if not self._store.has_live_copy(shard.job_id, shard.slot):  # else its mirror serves
                self._store.add_shards(
                    shard.job_id, [NewShard(shard.slot, shard.blocks, shard.role)]
                )
        self._polls.notify()
        return {"shard_id": shard_id, "state": "expired"}

    def reveal(
        self,
        node: str,
        shard_id: str,
        arrays: Mapping[str, np.ndarray],
        body: bytes | None = None,
        body_hash: str | None = None,
    ) -> dict[str, Any]:
        """Accept a shard's partial tiles if they match its commitment; settle when all are in.

        Args:
            node: The revealing node.
            shard_id: Its shard.
            arrays: The partials, named ``p/i/j/k``.
            body: The wire container they came in, stored as is (None: packed anew).
            body_hash: ``body_digest(body)``, if already computed (checking the signature).

        Raises:
            ShardStateError: Not open for reveal, or the partials do not match the commitment.
            InvalidInputError: Partials missing.
        """
        number = shard_number(shard_id)
        shard = self._store.get_shard(number)
        if shard.node_id != node or shard.state != "committed":
            raise ShardStateError(f"shard {shard_id} is not awaiting this node's reveal")
        if not self.reveal_open(shard.job_id):
            raise ShardStateError("the commit phase of this job is still open")
        partials = named_partials(shard.blocks, arrays)
        if len(arrays) != len(partials):
            # A reveal signed over its commitment binds only the partials: nothing else may ride
            # along into the stored result.
            raise InvalidInputError("the reveal holds arrays besides the shard's partials")
        if result_digest(partials).hex() != shard.commit_hash:
            self._store.set_shard_state(number, "rejected", expect="committed")
            raise ShardStateError("the revealed partials do not match the commitment")
        with self._results.blob_refs:
            blob = self._results.put(shard.job_id, partials, body, body_hash, shard=shard)
            self._store.record_reveal(number, node, blob)
        return self.result_in(shard_id, shard, partials)

    def result_in(self, shard_id: str, shard: Shard, partials: Partials) -> dict[str, Any]:
        """A shard's result was recorded: keep its partials at hand, wake the long polls, and
        settle (or go optimistic) if it was the last one. Returns the reply to its worker."""
        self._results.keep(shard, partials)
        self._polls.notify()
        self._settler.maybe_settle(shard.job_id)
        stored = self._results.stored(self._store.get_shard(shard.shard_id))
        return {"shard_id": shard_id, "state": "revealed", "stored": stored}
