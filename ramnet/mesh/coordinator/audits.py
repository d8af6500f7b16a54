"""The asymmetric topology: unproven results from nodes that only compute, and the auditors who
check an optimistic job before it settles.

A ``--no-prove`` worker posts its partials without commit-reveal; once every shard is in, the job
waits in ``optimistic`` for an auditor that is no party to it. A clean report settles the job only
if the copies that must agree do and a secret sample of partials passes the coordinator's own
check (``spot_checks``), so an auditor who passes a bad result risks its bond on every report.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import numpy as np

from ramnet.mesh.coordinator.disputes import Disputes
from ramnet.mesh.coordinator.inputs import JobInputs
from ramnet.mesh.coordinator.parties import parties
from ramnet.mesh.coordinator.polls import Polls
from ramnet.mesh.coordinator.results import Partials, Results
from ramnet.mesh.coordinator.settlement import Settler
from ramnet.mesh.coordinator.shards import Shards, shard_number
from ramnet.mesh.protocol.messages import AuditReport
from ramnet.mesh.rules.audits import audit_package, copies_agree, spot_check
from ramnet.mesh.rules.disputes import frauds_proven
from ramnet.mesh.rules.shard import TileMap, named_partials, result_digest
from ramnet.mesh.state.errors import ShardStateError
from ramnet.mesh.state.ledger import Ledger
from ramnet.mesh.state.store import Store

__all__ = ["Audits"]


class Audits:
    """Unproven results in, audit packages out, audit reports checked.

    Args:
        store, ledger: The coordinator's state.
        polls: The long polls (woken on every change, and waited on).
        inputs: The jobs' tiles.
        results: Where results go, and the revealed partials.
        shards: The shards' lifecycle (a result in may be the job's last).
        settler: Settles a job an auditor passed.
        disputes: Punishes the authors of proven frauds.
        spot_checks: The fraction of a job's partials (at least one per copy) checked before a
            clean report is accepted.
    """

    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        polls: Polls,
        inputs: JobInputs,
        results: Results,
        shards: Shards,
        settler: Settler,
        disputes: Disputes,
        *,
        spot_checks: float,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._polls = polls
        self._inputs = inputs
        self._results = results
        self._shards = shards
        self._settler = settler
        self._disputes = disputes
        self._spot_checks = spot_checks

    def submit_result(
        self,
        node: str,
        shard_id: str,
        arrays: Mapping[str, np.ndarray],
        body: bytes | None = None,
        body_hash: str | None = None,
    ) -> dict[str, Any]:
        """Accept the partials of a node that only computes (``worker start --no-prove``).

        There is no commit-reveal: the result is recorded at once (its digest as its commitment)
        and the job, once every shard is in, waits in ``optimistic`` for an auditor.

        Raises:
            ShardStateError: The node proves its results, or does not hold the shard.
            InvalidInputError: Partials missing.
        """
        number = shard_number(shard_id)
        shard = self._store.get_shard(number)
        if self._store.get_node(node).prove:
            raise ShardStateError("this node registered as proving: commit, then reveal")
        if shard.node_id != node:
            raise ShardStateError(f"shard {shard_id} is not this node's")
        partials = named_partials(shard.blocks, arrays)
        digest_hex = result_digest(partials).hex()
        if shard.state == "revealed" and shard.commit_hash == digest_hex:
            return {"shard_id": shard_id, "state": "revealed"}  # a retried request
        if shard.state != "assigned":
            raise ShardStateError(f"shard {shard_id} is {shard.state}, not awaiting a result")
        with self._results.blob_refs, self._store.transaction():
            # A node that only computes forgets its result once posted: stored at once.
            blob = self._results.put(shard.job_id, partials, body, body_hash)
            self._store.record_commit(number, node, digest_hex)
            self._store.record_reveal(number, node, blob)
        self._shards.reveal_open(shard.job_id)  # this may have been the last shard awaited
        return self._shards.result_in(shard_id, shard, partials)

    def audit(self, node: str, wait: float = 0.0) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The oldest optimistic job this node may audit (``job_id`` None: none): every tile,
        every revealed copy's partials, and which copies must agree bit for bit.

        Args:
            node: The auditor (never a node that holds a shard of the job).
            wait: Seconds to hold the request while there is none (a long poll).
        """
        banned = self._store.get_node(node).banned

        def next_job() -> str | None:
            if banned:
                return None
            for job in reversed(self._store.list_jobs(state="optimistic")):
                if node not in parties(self._store, job.job_id):
                    return job.job_id
            return None

        job_id = self._polls.wait_for(next_job, wait)
        if job_id is None:
            return {"job_id": None}, {}
        spec = self._store.get_job(job_id).spec
        tiles_a, tiles_b = self._inputs.tiles(job_id, spec)
        reveals, nodes_of = self._results.revealed(job_id)
        meta, arrays = audit_package(job_id, tiles_a, tiles_b, reveals, nodes_of)
        return meta, arrays

    def audit_report(self, node: str, job_id: str, report: AuditReport) -> dict[str, Any]:
        """An auditor's report on an optimistic job: settle it, or revert what it proves wrong.

        A report with fraud proofs is checked in O(K) per proof; when every one holds, each
        proven author is slashed (a bounty to the auditor) and banned, its shards rejected and
        queued again (unless a mirror copy serves them), and the job goes back to work. A clean
        report settles the job, and the auditor earns the job's fee, provided the copies that
        must agree do and a random sample of partials passes Freivalds (the coordinator checks
        both itself: ``spot_checks``). Any other report is a lie: the
        auditor is slashed and banned, and the job waits for another one.

        Args:
            node: The auditor.
            job_id: The job it audited.
            report: Its fraud proofs, each checked here (a malformed one is a false proof).

        Returns:
            The job's outcome, and whom it slashed.

        Raises:
            ShardStateError: The job is not optimistic, or the auditor is a party to it.
        """
        frauds = report.frauds
        if self._store.get_job(job_id).state != "optimistic":
            raise ShardStateError(f"job {job_id} is not awaiting an audit")
        if node in parties(self._store, job_id) or self._store.get_node(node).banned:
            raise ShardStateError("a party to the job (or a banned node) cannot audit it")
        spec = self._store.get_job(job_id).spec
        tiles_a, tiles_b = self._inputs.tiles(job_id, spec)
        reveals, nodes_of = self._results.revealed(job_id)
        proven = frauds_proven(frauds, reveals, nodes_of, tiles_a, tiles_b)
        if frauds and proven:
            accused = sorted({str(f["node"]) for f in frauds})
            with self._store.transaction():
                for cheater in accused:
                    self._disputes.punish(job_id, cheater, node, nodes_of)
                self._store.set_job_state(job_id, "dispatched")
            self._polls.notify()
            self._settler.maybe_settle(job_id)
            return {"job_id": job_id, "outcome": "reverted", "slashed": accused}
        if not frauds and copies_agree(reveals) and self._spot_check(reveals, tiles_a, tiles_b):
            self._settler.settle(job_id, auditor=node)
            return {"job_id": job_id, "outcome": "settled"}
        with self._store.transaction():
            self._ledger.slash(node, None, 0, job_id, ref=f"slash:{job_id}:{node}:auditor")
            self._store.set_banned(node, True)
        self._polls.notify()
        return {"job_id": job_id, "outcome": "auditor lied"}

    def _spot_check(
        self, reveals: Mapping[int, Partials], tiles_a: TileMap, tiles_b: TileMap
    ) -> bool:
        # A random sample the auditor cannot predict: secrets, not the job's public data.
        rng = np.random.default_rng(secrets.randbits(64))
        return spot_check(reveals, tiles_a, tiles_b, self._spot_checks, rng)
