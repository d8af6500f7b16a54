"""The coordinator (the source design's "L3 cache / DSM"): jobs, shards, checks, ledger, HTTP API.

``Coordinator`` holds the state (SQLite in WAL mode, a content-addressed blob store, the ledger),
all under one data folder, and composes the collaborators that do the work, one job each:
``intake`` (registration, job submission), ``shards`` (claim, commit, reveal, hand-back),
``polls`` (long polls), ``results`` (partials, their write-behind, C), ``settlement``,
``disputes``, ``audits`` and ``status``. ``create_app`` (``app``) puts the Starlette API in front
of it; ``serve`` (``server``) runs it with uvicorn until SIGTERM. Every node request is signed and
checked before anything else happens; a state change is one SQLite transaction, so a restart on
the same data folder resumes where the last committed step left off, and payments carry
idempotency keys.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ramnet._errors import InvalidInputError
from ramnet.mesh.coordinator.audits import Audits
from ramnet.mesh.coordinator.damage import Damage, InputsDamagedError, log
from ramnet.mesh.coordinator.dispute_watch import DisputeWatch
from ramnet.mesh.coordinator.disputes import Disputes
from ramnet.mesh.coordinator.inputs import JobInputs
from ramnet.mesh.coordinator.intake import Intake
from ramnet.mesh.coordinator.jobs import ConsumerJobs
from ramnet.mesh.coordinator.leases import Leases
from ramnet.mesh.coordinator.liveness import Liveness
from ramnet.mesh.coordinator.polls import MAX_WAIT, Polls
from ramnet.mesh.coordinator.results import Results
from ramnet.mesh.coordinator.settlement import Settler
from ramnet.mesh.coordinator.shards import Shards, shard_number
from ramnet.mesh.coordinator.status import JobStatus
from ramnet.mesh.protocol.auth import bound_by, verify_request
from ramnet.mesh.protocol.messages import (
    AuditReport,
    CancelRequest,
    CommitRequest,
    JobSubmission,
    RegisterRequest,
    Verdict,
)
from ramnet.mesh.protocol.routes import route
from ramnet.mesh.state.blobs import BlobStore
from ramnet.mesh.state.errors import NotFoundError
from ramnet.mesh.state.integrity import LedgerWatch
from ramnet.mesh.state.ledger import Ledger
from ramnet.mesh.state.store import Store

__all__ = ["MAX_WAIT", "Coordinator", "CoordinatorConfig"]

_REGISTER = route("register").path


@dataclass(frozen=True)
class CoordinatorConfig:
    """Settings of one coordinator.

    Attributes:
        data_dir: Where state.sqlite and blobs/ live.
        default_credit: Units granted to every new account (so a local mesh works at once).
        price_per_block: What a consumer pays per block product computed (audit copies included),
            and what a worker earns per block product it computed and that passed its checks.
        max_body: Largest request body accepted, in bytes (413 beyond).
        lease_s: Seconds a worker has to commit a shard before it goes to another node, and then
            to reveal it; None (the default) sizes each lease by its shard's work at a measured
            rate, with a floor (``rules.lease``, ``coordinator.leases``).
        max_skew: Largest accepted clock difference of a signed request, seconds.
        durable: fsync every state change and blob (survives power loss). Off, state still
            survives the process being killed at any point (SQLite WAL with synchronous=NORMAL,
            blobs renamed into place), at a fraction of the cost.
        validator_fee: Escrowed with every job; paid to the validator of an upheld dispute,
            refunded otherwise.
        bounty: The share of a slashed bond that goes to the validator who proved the fraud
            (the rest is burned, so challenging oneself never pays).
        spot_checks: The fraction of an optimistic job's partials (at least one per copy) the
            coordinator checks itself before it accepts an auditor's clean report, so that an
            auditor who passes a bad result risks its bond on every report.
        write_behind: Seconds a revealed shard's result waits in memory before it is written to
            the blob store. A job that settles sooner never writes its partials (C is stored
            instead); a job going to a dispute or an auditor writes them at once. Workers keep a
            revealed result until the coordinator reports it stored, so after a kill in between
            the restarted coordinator awaits those reveals again (a worker gone too loses the
            shard at the reveal deadline, as for any late reveal). 0 writes every result at once;
            ``durable`` implies 0.
        node_timeout: Seconds after its last signed request (or heartbeat) that a node counts as
            gone: its uncommitted shards go to other nodes at once, and its key may register
            from another process.
        validator_wait: Seconds an open dispute waits for an eligible validator before the
            coordinator settles it itself (the documented fallback, ``coordinator.disputes``).
        dashboard: Serve the dashboard (``/dashboard``: public, read-only pages; the
            ``coordinator.dashboard`` package); off, those paths are 404.
        audits, checks: Benchmarking aids only (hidden flags of ``coordinator start``): False
            plans jobs without audit blocks / settles them without the per-shard checks, to
            measure what those cost. A coordinator serving real jobs keeps both on.
    """

    data_dir: Path
    default_credit: int = 1_000_000
    price_per_block: int = 1
    max_body: int = 1 << 30
    lease_s: float | None = None
    max_skew: float = 300.0
    durable: bool = False
    validator_fee: int = 10
    bounty: float = 0.5
    audits: bool = True
    checks: bool = True
    spot_checks: float = 0.1
    write_behind: float = 1.0
    node_timeout: float = 15.0
    validator_wait: float = 10.0
    dashboard: bool = True


class Coordinator:
    """The coordinator's state and logic; thread-safe (called from the server's thread pool).

    The public methods are what the app's routes call; each hands the request to the
    collaborator whose job it is. A request with a body takes it as its typed message
    (``protocol.messages``), already decoded and checked by the app, so nothing behind it checks
    a body's fields by hand.

    Attributes:
        config, store, ledger, blobs: Its settings and state.
        polls, inputs, results, settler, shards, disputes, audits, intake, statuses, jobs: The
            collaborators (see the module's docstring); damage handles a blob found damaged,
            ledger_watch serves the ledger's view and warns when it is not conserved.
    """

    def __init__(self, config: CoordinatorConfig) -> None:
        self.config = config
        root = Path(config.data_dir)
        root.mkdir(parents=True, exist_ok=True)
        self.store = Store(
            root / "state.sqlite",
            synchronous="FULL" if config.durable else "NORMAL",
            node_timeout=config.node_timeout,
        )
        self.ledger = Ledger(self.store)
        self.blobs = BlobStore(root / "blobs", durable=config.durable)
        self.polls = Polls()
        self.damage = Damage(self.store, self.ledger, self.polls)
        self.ledger_watch = LedgerWatch(self.ledger, warn=log)
        self.inputs = JobInputs(self.blobs, config.max_body, on_damage=self.damage.inputs_damaged)
        self.results = Results(
            self.store,
            self.blobs,
            self.inputs,
            write_behind=0.0 if config.durable else max(0.0, float(config.write_behind)),
            max_body=config.max_body,
            on_lost=self.damage.result_lost,
        )
        self.settler = Settler(
            self.store,
            self.ledger,
            self.blobs,
            self.polls,
            self.inputs,
            self.results,
            price_per_block=config.price_per_block,
            validator_fee=config.validator_fee,
            checks=config.checks,
        )
        self.leases = Leases(self.store, fixed_s=config.lease_s)
        self.liveness = Liveness(
            self.store, self.polls, self.leases, node_timeout=config.node_timeout
        )
        self.shards = Shards(
            self.store,
            self.polls,
            self.inputs,
            self.results,
            self.settler,
            leases=self.leases,
            liveness=self.liveness,
        )
        self.disputes = Disputes(
            self.store,
            self.ledger,
            self.blobs,
            self.polls,
            self.inputs,
            self.results,
            self.settler,
            validator_fee=config.validator_fee,
            bounty=config.bounty,
            validator_wait=config.validator_wait,
        )
        self.audits = Audits(
            self.store,
            self.ledger,
            self.polls,
            self.inputs,
            self.results,
            self.shards,
            self.settler,
            self.disputes,
            spot_checks=config.spot_checks,
        )
        self.intake = Intake(
            self.store,
            self.ledger,
            self.polls,
            self.inputs,
            self.results,
            default_credit=config.default_credit,
            price_per_block=config.price_per_block,
            validator_fee=config.validator_fee,
            audits=config.audits,
            node_timeout=config.node_timeout,
            last_seen=self.liveness.last_seen,
        )
        self.statuses = JobStatus(
            self.store,
            self.polls,
            self.results,
            self.shards,
            self.settler,
            node_timeout=config.node_timeout,
            validator_wait=config.validator_wait,
        )
        self.jobs = ConsumerJobs(self.store, self.ledger, self.polls, self.inputs, self.results)
        self.results.reopen_lost_reveals(self.leases.reopen_s())
        self.dispute_watch = DisputeWatch(self.disputes)  # open disputes always end
        self.dispute_watch.start()

    def close(self) -> None:
        """Write what is still waiting to be written, then close the state store."""
        self.dispute_watch.stop()
        self.results.close()
        self.store.close()

    # ---- requests -------------------------------------------------------------------------

    def authenticate(
        self, method: str, target: str, headers: Any, body: bytes, body_hash: str | None = None
    ) -> str:
        """Check a signed request and record its nonce; returns the node id. The node is seen
        alive (``Liveness.seen``).

        Args:
            body_hash: ``body_digest(body)`` if already computed.

        Raises:
            AuthError: Unsigned, badly signed, stale or replayed.
        """
        node = verify_request(
            method,
            target,
            headers,
            body,
            body_hash=body_hash,
            now=time.time(),
            max_skew=self.config.max_skew,
            seen=lambda node, nonce: (
                not self.store.record_nonce(node, nonce, window_s=2 * self.config.max_skew)
            ),
        )
        # A registration is no sign of life of the key's running process: a second process on
        # the key, refused and trying again, must not keep the first looking alive (intake).
        if target.split("?", 1)[0] != _REGISTER:
            self.liveness.seen(node)
        return node

    def reveal_binding(self, shard_id: str) -> str | None:
        """What a reveal of this shard is signed over instead of its body's hash: the shard's
        commitment (``bound_by``), or None when it has none (the body's hash is checked then).

        The reveal's partials must hash to that commitment (``reveal`` checks it), so the
        signature still binds what is stored, and nobody hashes the body a second time.
        """
        try:
            shard = self.store.get_shard(shard_number(shard_id))
        except (InvalidInputError, NotFoundError):
            return None
        return None if shard.commit_hash is None else bound_by(str(shard.commit_hash))

    # ---- intake ----------------------------------------------------------------------------

    def register(self, node: str, request: RegisterRequest) -> dict[str, Any]:
        """Register (or update) a node, its credit and bond (``Intake.register``)."""
        return self.intake.register(node, request)

    def submit(
        self, consumer: str, job: JobSubmission, arrays: Mapping[str, np.ndarray]
    ) -> dict[str, Any]:
        """Accept a job: plan, tiles, escrow (``Intake.submit``)."""
        return self.intake.submit(consumer, job, arrays)

    # ---- shards ----------------------------------------------------------------------------

    def claim(self, node: str, wait: float = 0.0) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The node's next shard and its tiles (``Shards.claim``)."""
        for _ in range(8):
            try:
                return self.shards.claim(node, wait)
            except InputsDamagedError:
                continue  # that job failed and its shards are gone: the next shard, if any
        return {"shard_id": None}, {}

    def shard_view(self, node: str, shard_id: str, wait: float = 0.0) -> dict[str, Any]:
        """A shard's state and whether its reveal is open (``Shards.view``)."""
        return self.shards.view(node, shard_id, wait)

    def heartbeat(self, node: str) -> dict[str, Any]:
        """A computing node's sign of life (``authenticate`` saw it): the node timeout and the
        shards it still holds (``Liveness.heartbeat``)."""
        return self.liveness.heartbeat(node)

    def commit(self, node: str, shard_id: str, request: CommitRequest) -> dict[str, Any]:
        """Record a commitment to a shard's result (``Shards.commit``)."""
        return self.shards.commit(node, shard_id, request)

    def release(self, node: str, shard_id: str) -> dict[str, Any]:
        """Hand a shard back (``Shards.release``)."""
        return self.shards.release(node, shard_id)

    def reveal(
        self,
        node: str,
        shard_id: str,
        arrays: Mapping[str, np.ndarray],
        body: bytes | None = None,
        body_hash: str | None = None,
    ) -> dict[str, Any]:
        """Accept a shard's partials against its commitment (``Shards.reveal``)."""
        return self.shards.reveal(node, shard_id, arrays, body, body_hash)

    # ---- settlement, status, C -------------------------------------------------------------

    def settle(self, job_id: str, *, auditor: str | None = None) -> dict[str, Any]:
        """Check every revealed shard of a job, pay, and publish C (idempotent;
        ``Settler.settle``); returns the job's status."""
        self.settler.settle(job_id, auditor=auditor)
        return self.status(job_id)

    def status(self, job_id: str, wait: float = 0.0) -> dict[str, Any]:
        """The job's state, its shards' and what settlement found, and why it waits
        (``JobStatus.status``); ``job_id`` may be a unique prefix (``ConsumerJobs.resolve``)."""
        return self.statuses.status(self.jobs.resolve(job_id), wait)

    def result(
        self, job_id: str, *, reader: str | None = None
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """C of a settled or checked job (``Results.download``); ``job_id`` may be a unique
        prefix. ``reader``: the node asking (only the job's consumer may read C; the app always
        names it; None: a caller in this process)."""
        return self.results.download(self.jobs.resolve(job_id), reader)

    def job_list(self, consumer: str) -> dict[str, Any]:
        """The signing consumer's jobs, newest first (``ConsumerJobs.listing``)."""
        return self.jobs.listing(consumer)

    def cancel(
        self, consumer: str, job_id: str, request: CancelRequest | None = None
    ) -> dict[str, Any]:
        """Cancel a job and refund its unspent escrow (``ConsumerJobs.cancel``)."""
        return self.jobs.cancel(consumer, job_id, None if request is None else request.reason)

    # ---- disputes --------------------------------------------------------------------------

    def validation(
        self, node: str, wait: float = 0.0
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The next dispute this validator was drawn for (``Disputes.validation``)."""
        return self.disputes.validation(node, wait)

    def verdict(self, node: str, dispute_id: int, verdict: Verdict) -> dict[str, Any]:
        """Check a validator's verdict (``Disputes.verdict``)."""
        return self.disputes.verdict(node, dispute_id, verdict)

    # ---- the asymmetric topology: unproven results, auditors --------------------------------

    def submit_result(
        self,
        node: str,
        shard_id: str,
        arrays: Mapping[str, np.ndarray],
        body: bytes | None = None,
        body_hash: str | None = None,
    ) -> dict[str, Any]:
        """Accept the partials of a node that only computes (``Audits.submit_result``)."""
        return self.audits.submit_result(node, shard_id, arrays, body, body_hash)

    def audit(self, node: str, wait: float = 0.0) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The oldest optimistic job this node may audit (``Audits.audit``)."""
        return self.audits.audit(node, wait)

    def audit_report(self, node: str, job_id: str, report: AuditReport) -> dict[str, Any]:
        """An auditor's report on an optimistic job (``Audits.audit_report``)."""
        return self.audits.audit_report(node, job_id, report)
