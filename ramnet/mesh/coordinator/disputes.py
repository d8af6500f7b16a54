"""Disputes once open: the drawn validator's package, its verdict, and what a proven fraud costs.

A settlement whose checks fail opens a dispute (``settlement``); the validator drawn for it
(``parties.draw``) receives only the contested blocks and claims (``rules.disputes``) and answers
with fraud proofs, which are checked here. A verdict that does not prove exactly the partials that
failed is a lie: its validator is slashed, and the dispute goes to another one.

Disputes always end. Validators stay out of a job's shards while that would leave it no eligible
validator (``Store.next_shard_for``); a drawn validator that goes silent (``node_timeout``) is
replaced by another draw; and a dispute that has had no validator for ``validator_wait`` seconds
since it opened is judged by the coordinator itself (``settle_without_validator``): it rebuilds the
package a validator would get from the tiles it holds, recomputes the contested blocks with
ORCHID and applies the same rule (``rules.disputes.coordinator_verdict``). Upheld, the cheaters
are slashed (no bounty: nobody else proved it; the rest of the bond is burned), the job goes on
and settles exactly, and the validator fee stays in the escrow, refunded to the consumer at
settlement. What the rule cannot uphold fails the job with that reason and refunds its escrow.
A thread (``dispute_watch.DisputeWatch``) calls ``tend`` every second.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any, NamedTuple

import msgspec
import numpy as np

from ramnet.mesh.coordinator.inputs import JobInputs
from ramnet.mesh.coordinator.parties import draw
from ramnet.mesh.coordinator.polls import Polls
from ramnet.mesh.coordinator.results import Partials, Results
from ramnet.mesh.coordinator.settlement import Settler
from ramnet.mesh.protocol.messages import Verdict
from ramnet.mesh.rules.disputes import coordinator_verdict, frauds_proven, validation_package
from ramnet.mesh.state.blobs import BlobStore
from ramnet.mesh.state.errors import ShardStateError
from ramnet.mesh.state.job_failures import fail_job
from ramnet.mesh.state.ledger import Ledger
from ramnet.mesh.state.records import FINAL_JOB_STATES, Dispute, DisputeOutcome, NewShard
from ramnet.mesh.state.store import Store

#: A validation package: its metadata and its arrays (``rules.disputes.validation_package``).
Package = tuple[dict[str, Any], dict[str, np.ndarray]]


class JobMaterial(NamedTuple):
    """What the coordinator holds of a disputed job: its tiles, the revealed partials and whose
    they are (``Results.revealed``)."""

    tiles_a: dict[tuple[int, int], np.ndarray]
    tiles_b: dict[tuple[int, int], np.ndarray]
    reveals: dict[int, Partials]
    nodes_of: dict[int, str]


__all__ = ["Disputes"]


def _say(line: str) -> None:
    # One line in the coordinator's log (its stderr), as its other messages are.
    print(f"coordinator: {line}", file=sys.stderr, flush=True)


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
        validator_wait: Seconds a dispute waits for an eligible validator before the
            coordinator judges it itself.
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
        validator_wait: float = 10.0,
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
        self._validator_wait = validator_wait
        # One resolution at a time: a verdict and the coordinator's own judgement of the same
        # dispute must not both apply.
        self._resolving = threading.Lock()
        self._failing: set[int] = set()  # disputes whose tending failed (logged once each)

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
                if self.close_if_ended(dispute):
                    continue
                if (drawn := self.redraw(dispute)).validator == node:
                    return drawn
            return None

        dispute = self._polls.wait_for(mine, wait)
        if dispute is None:
            return {"dispute_id": None}, {}
        return self._package(dispute)[0]

    def _package(self, dispute: Dispute) -> tuple[Package, JobMaterial]:
        """The dispute's validation package, and what the coordinator holds of its job (the
        tiles, the revealed partials and their nodes) to judge it itself."""
        spec = self._store.get_job(dispute.job_id).spec
        tiles_a, tiles_b = self._inputs.tiles(dispute.job_id, spec)
        reveals, nodes_of = self._results.revealed(dispute.job_id)
        commits = self._results.commits(dispute.job_id)
        p, q, r = (len(e) - 1 for e in spec.edges)
        package = validation_package(
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
        return package, JobMaterial(tiles_a, tiles_b, reveals, nodes_of)

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
        with self._resolving:
            return self._verdict(node, dispute_id, verdict)

    def _verdict(self, node: str, dispute_id: int, verdict: Verdict) -> dict[str, Any]:
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
        self, job_id: str, cheater: str, challenger: str | None, nodes_of: Mapping[int, str]
    ) -> None:
        """Punish a proven cheater, inside the caller's transaction.

        Args:
            job_id: The job it cheated on.
            cheater: Its node id.
            challenger: Who proved the fraud (the validator or auditor): it gets the bounty.
                None (the coordinator proved it): no bounty, the whole bond is burned.
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

    # ---- disputes that end without a validator ----------------------------------------------

    def redraw(self, dispute: Dispute, *, now: float | None = None) -> Dispute:
        """Draw the validator of an open dispute that has none, or whose validator is no longer
        eligible (gone silent for ``node_timeout``, banned, or party to the job since): the
        dispute as it is now (its validator None while nobody is eligible).

        Args:
            dispute: An open dispute.
            now: The time (tests).
        """
        if dispute.validator is not None and dispute.validator in self._store.eligible_validators(
            dispute.job_id, now=now
        ):
            return dispute
        drawn = draw(self._store, dispute.job_id, dispute.claims.round, now=now)
        if drawn == dispute.validator:
            return dispute
        with self._resolving:
            current = self._store.get_dispute(dispute.dispute_id)
            if current.state != "open" or current.validator != dispute.validator:
                return current  # resolved or drawn meanwhile
            if dispute.validator is not None:
                again = f"drawn again: {drawn[:16]}" if drawn else "no other validator yet"
                _say(
                    f"dispute {dispute.dispute_id}: validator {dispute.validator[:16]} is no"
                    f" longer eligible (silent, banned or a party to the job); {again}"
                )
            updated = self._store.set_dispute_validator(dispute.dispute_id, drawn)
        self._polls.notify()
        return updated

    def tend(self, *, now: float | None = None) -> list[int]:
        """Keep every open dispute moving: draw a validator where there is none or it went
        silent, and judge here each dispute that has had none for ``validator_wait`` seconds
        since it opened (``settle_without_validator``).

        Args:
            now: The time (tests).

        Returns:
            The ids of the disputes the coordinator judged itself.
        """
        t = time.time() if now is None else now
        judged = []
        for dispute in self._store.list_disputes(state="open"):
            try:
                if self.close_if_ended(dispute):
                    continue
                dispute = self.redraw(dispute, now=t)
                due = dispute.validator is None and t >= dispute.created_at + self._validator_wait
                if due and self.settle_without_validator(dispute.dispute_id):
                    judged.append(dispute.dispute_id)
                self._failing.discard(dispute.dispute_id)
            except Exception as exc:  # one dispute's trouble holds up no other; logged once
                if dispute.dispute_id not in self._failing:
                    _say(
                        f"dispute {dispute.dispute_id} (job {dispute.job_id}): tending it"
                        f" failed: {type(exc).__name__}: {exc}"
                    )
                    traceback.print_exception(exc, file=sys.stderr)
                self._failing.add(dispute.dispute_id)
        return judged

    def close_if_ended(self, dispute: Dispute) -> bool:
        """Close an open dispute whose job ended meanwhile (cancelled by its consumer, or failed:
        its tiles damaged): nobody judges it any more. Returns whether it was closed.

        Args:
            dispute: An open dispute.
        """
        state = self._store.get_job(dispute.job_id).state
        if state not in FINAL_JOB_STATES:
            return False
        with self._resolving:
            if self._store.get_dispute(dispute.dispute_id).state == "open":
                self._store.resolve_dispute(dispute.dispute_id, DisputeOutcome(f"job {state}"))
        self._polls.notify()
        return True

    def settle_without_validator(self, dispute_id: int) -> bool:
        """Judge an open dispute that has no validator here: rebuild its validation package from
        the tiles, recompute the contested blocks and apply ``coordinator_verdict``. Upheld, the
        cheaters are punished (no bounty, no validator fee) and the job goes on to settle;
        otherwise the job fails with the reason and its escrow is refunded.

        Args:
            dispute_id: The dispute.

        Returns:
            True if this call resolved it; False if it was resolved or drawn meanwhile.
        """
        with self._resolving:
            dispute = self._store.get_dispute(dispute_id)
            if dispute.state != "open" or dispute.validator is not None:
                return False
            job_id = dispute.job_id
            (meta, arrays), held = self._package(dispute)
            verdict = coordinator_verdict(
                meta,
                arrays,
                dispute.claims.failed,
                held.reveals,
                held.nodes_of,
                held.tiles_a,
                held.tiles_b,
            )
            record = {"validator": None, "judged_by": "coordinator", "frauds": verdict.frauds}
            verdict_blob = self._blobs.put(json.dumps(record).encode())
            if verdict.failure is not None:
                with self._store.transaction():
                    self._store.resolve_dispute(
                        dispute_id, DisputeOutcome("job failed"), verdict_digest=verdict_blob
                    )
                    fail_job(self._store, self._ledger, job_id, verdict.failure)
                _say(f"dispute {dispute_id} (job {job_id}): {verdict.failure}; the job failed")
            else:
                with self._store.transaction():
                    for cheater in verdict.slashed:
                        self.punish(job_id, cheater, None, held.nodes_of)
                    self._store.resolve_dispute(
                        dispute_id,
                        DisputeOutcome("upheld", verdict.slashed),
                        verdict_digest=verdict_blob,
                    )
                    self._store.set_job_state(job_id, "dispatched")
                _say(
                    f"dispute {dispute_id} (job {job_id}): no validator within"
                    f" {self._validator_wait:g} s; the coordinator recomputed the contested"
                    f" blocks and slashed {', '.join(n[:16] for n in verdict.slashed)}"
                )
        self._polls.notify()
        if verdict.failure is None:
            self._settler.maybe_settle(job_id)  # mirrors may already serve every rejected slot
        return True
