"""Disputes once open: the drawn validator's package, its verdict, and what a proven fraud costs.

A settlement whose checks fail opens a dispute (``settlement``); the validator drawn for it
(``parties.draw``) receives only the contested blocks and claims (``rules.disputes``) and answers
with fraud proofs, which are checked here. A verdict that does not prove exactly the partials that
failed is a lie: its validator is slashed, and the dispute goes to another one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import msgspec
import numpy as np

from ramnet.mesh.coordinator.inputs import JobInputs
from ramnet.mesh.coordinator.parties import draw
from ramnet.mesh.coordinator.polls import Polls
from ramnet.mesh.coordinator.results import Results
from ramnet.mesh.coordinator.settlement import Settler
from ramnet.mesh.protocol.messages import Verdict
from ramnet.mesh.rules.disputes import frauds_proven, validation_package
from ramnet.mesh.state.blobs import BlobStore
from ramnet.mesh.state.errors import ShardStateError
from ramnet.mesh.state.ledger import Ledger
from ramnet.mesh.state.records import DisputeOutcome, NewShard
from ramnet.mesh.state.store import Store

__all__ = ["Disputes"]


class Disputes:
    """Validation packages, verdicts, and punishing proven cheaters.

    Args:
        store, ledger, blobs: The coordinator's state.
        polls: The long polls (woken on every change, and waited on).
        inputs: The jobs' tiles.
        results: The revealed partials.
        settler: Settles a job once a verdict leaves every slot served.
        validator_fee: Paid to the validator of an upheld dispute.
        bounty: The share of a slashed bond that goes to whoever proved the fraud.
    """

    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        blobs: BlobStore,
        polls: Polls,
        inputs: JobInputs,
        results: Results,
        settler: Settler,
        *,
        validator_fee: int,
        bounty: float,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._blobs = blobs
        self._polls = polls
        self._inputs = inputs
        self._results = results
        self._settler = settler
        self._validator_fee = validator_fee
        self._bounty = bounty

    def validation(
        self, node: str, wait: float = 0.0
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The next dispute this validator was drawn for: contested tiles and claims only
        (``dispute_id`` None: none).

        Args:
            node: The validator.
            wait: Seconds to hold the request while there is none (a long poll).
        """

        def mine() -> Any:
            for dispute in self._store.list_disputes(state="open"):
                if dispute.validator is None:  # nobody was eligible then: draw again
                    drawn = draw(self._store, dispute.job_id, dispute.claims.round)
                    if drawn is not None:
                        dispute = self._store.set_dispute_validator(dispute.dispute_id, drawn)
                if dispute.validator == node:
                    return dispute
            return None

        dispute = self._polls.wait_for(mine, wait)
        if dispute is None:
            return {"dispute_id": None}, {}
        spec = self._store.get_job(dispute.job_id).spec
        tiles_a, tiles_b = self._inputs.tiles(dispute.job_id, spec)
        reveals, nodes_of = self._results.revealed(dispute.job_id)
        commits = self._results.commits(dispute.job_id)
        p, q, r = (len(e) - 1 for e in spec.edges)
        return validation_package(
            dispute.dispute_id,
            dispute.job_id,
            dispute.claims.blocks,
            tiles_a,
            tiles_b,
            reveals,
            nodes_of,
            commits,
            (spec.commit_a, spec.commit_b),
            (p, q, r),
        )

    def verdict(self, node: str, dispute_id: int, verdict: Verdict) -> dict[str, Any]:
        """Check a validator's verdict; slash and requeue the proven cheaters, or the validator.

        Args:
            node: The validator.
            dispute_id: Its dispute.
            verdict: Its fraud proofs, each checked here (a malformed one is a false proof).

        Returns:
            The dispute's outcome, and whom it slashed.

        Raises:
            ShardStateError: Not this validator's open dispute.
        """
        frauds = verdict.frauds
        dispute = self._store.get_dispute(dispute_id)
        if dispute.validator != node or dispute.state != "open":
            raise ShardStateError(f"dispute {dispute_id} is not this validator's to settle")
        job_id = dispute.job_id
        spec = self._store.get_job(job_id).spec
        tiles_a, tiles_b = self._inputs.tiles(job_id, spec)
        reveals, nodes_of = self._results.revealed(job_id)
        proven = frauds_proven(frauds, reveals, nodes_of, tiles_a, tiles_b)
        accused = {str(f.get("node")) for f in frauds}
        failed = {str(n) for n, _ in dispute.claims.failed}
        verdict_blob = self._blobs.put(json.dumps({"validator": node, "frauds": frauds}).encode())
        if not proven or accused != failed:
            # A lie (or a miss): the validator pays, and the dispute goes to another one.
            with self._store.transaction():
                self._ledger.slash(node, None, 0, job_id, ref=f"slash:{job_id}:{node}:validator")
                self._store.set_banned(node, True)
                self._store.resolve_dispute(
                    dispute_id, DisputeOutcome("validator lied"), verdict_digest=verdict_blob
                )
                round_ = dispute.claims.round + 1
                claims_next = msgspec.structs.replace(dispute.claims, round=round_)
                self._store.open_dispute(
                    job_id, claims_next, validator=draw(self._store, job_id, round_)
                )
            self._polls.notify()
            return {"dispute_id": dispute_id, "outcome": "validator lied"}
        with self._store.transaction():
            for cheater in sorted(accused):
                self.punish(job_id, cheater, node, nodes_of)
            if self._validator_fee:
                self._ledger.pay(job_id, node, self._validator_fee, reason="validation")
            self._store.resolve_dispute(
                dispute_id, DisputeOutcome("upheld", sorted(accused)), verdict_digest=verdict_blob
            )
            self._store.set_job_state(job_id, "dispatched")
        self._polls.notify()
        self._settler.maybe_settle(job_id)  # mirrors may already serve every rejected slot
        return {"dispute_id": dispute_id, "outcome": "upheld", "slashed": sorted(accused)}

    def punish(
        self, job_id: str, cheater: str, challenger: str, nodes_of: Mapping[int, str]
    ) -> None:
        """Punish a proven cheater, inside the caller's transaction.

        Args:
            job_id: The job it cheated on.
            cheater: Its node id.
            challenger: Who proved the fraud (the validator or auditor): it gets the bounty.
            nodes_of: Copy key -> node, of the job's revealed copies.
        """
        # Its bond slashed (the bounty to the challenger, the rest burned), banned, its revealed
        # shards of the job rejected and queued again, unless a mirror copy serves the slot at
        # once.
        self._ledger.slash(cheater, challenger, self._bounty, job_id)
        self._store.set_banned(cheater, True)
        for shard in self._store.list_shards(job_id=job_id, node_id=cheater):
            if shard.state == "revealed":
                self._store.set_shard_state(shard.shard_id, "rejected")
                if not self._store.has_live_copy(job_id, shard.slot):
                    self._store.add_shards(job_id, [NewShard(shard.slot, shard.blocks, shard.role)])
        self._results.forget_copies(job_id, [key for key, n in nodes_of.items() if n == cheater])
