"""The coordinator (the source design's "L3 cache / DSM"): jobs, shards, checks, ledger, HTTP API.

``Coordinator`` holds the logic and the state (SQLite in WAL mode, a content-addressed blob store,
the ledger), all under one data folder; ``create_app`` puts the Starlette API in front of it;
``serve`` runs it with uvicorn until SIGTERM. Every node request is signed and checked before
anything else happens; a state change is one SQLite transaction, so a restart on the same data
folder resumes where the last committed step left off, and payments carry idempotency keys.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from ramnet import orchid
from ramnet._errors import InvalidInputError
from ramnet.mesh.coordinator.writeback import WriteBehind
from ramnet.mesh.protocol.auth import bound_by, verify_request
from ramnet.mesh.protocol.wire import (
    pack,
    pack_parts,
    unpack,
)
from ramnet.mesh.rules.audits import audit_package, copies_agree
from ramnet.mesh.rules.disputes import draw_validator, frauds_proven
from ramnet.mesh.rules.plan import (
    check_nodes,
    check_redundancy,
    grid_for,
    plan_shards,
    planned_nodes,
)
from ramnet.mesh.rules.settle import Settlement, chosen, copy_key, settle
from ramnet.mesh.rules.shard import assemble, check_partial, result_digest
from ramnet.mesh.rules.tilecommit import (
    commit_leaves,
    commit_tiles,
    is_tile_leaf,
    open_tile_path,
    parse_tile_leaf,
    tile_leaf_parts,
)
from ramnet.mesh.state.blobs import BlobStore
from ramnet.mesh.state.errors import NotFoundError, ShardStateError, StoreConflictError
from ramnet.mesh.state.ledger import Ledger
from ramnet.mesh.state.records import DisputeClaims, DisputeOutcome, JobSpec, NewShard, Shard
from ramnet.mesh.state.store import Store
from ramnet.orchid import BlockProduct
from ramnet.valkyrie import block_digest
from ramnet.valkyrie._hash import digest

MAX_WAIT = 5.0  # longest a long poll is held, seconds
# A long poll re-checks this often even when nothing was notified (leases expire with time). Each
# check is a few SQLite queries: at 0.25 s an idle coordinator with 3 polling workers spent
# about 14 ms of CPU per second on them.
RECHECK = 1.0


@dataclass(frozen=True)
class CoordinatorConfig:
    """Settings of one coordinator.

    Attributes:
        data_dir: Where state.sqlite and blobs/ live.
        default_credit: Units granted to every new account (so a local mesh works at once).
        price_per_block: What a consumer pays per block product computed (audit copies included),
            and what a worker earns per block product it computed and that passed its checks.
        max_body: Largest request body accepted, in bytes (413 beyond).
        lease_s: Seconds a worker has to commit a shard before it goes to another node.
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
        audits, checks: Benchmarking aids only (hidden flags of ``coordinator start``): False
            plans jobs without audit blocks / settles them without the per-shard checks, to
            measure what those cost. A coordinator serving real jobs keeps both on.
    """

    data_dir: Path
    default_credit: int = 1_000_000
    price_per_block: int = 1
    max_body: int = 1 << 30
    lease_s: float = 300.0
    max_skew: float = 300.0
    durable: bool = False
    validator_fee: int = 10
    bounty: float = 0.5
    audits: bool = True
    checks: bool = True
    spot_checks: float = 0.1
    write_behind: float = 1.0


class Coordinator:
    """The coordinator's state and logic; thread-safe (called from the server's thread pool)."""

    def __init__(self, config: CoordinatorConfig) -> None:
        self.config = config
        root = Path(config.data_dir)
        root.mkdir(parents=True, exist_ok=True)
        self.store = Store(
            root / "state.sqlite", synchronous="FULL" if config.durable else "NORMAL"
        )
        self.ledger = Ledger(self.store)
        self.blobs = BlobStore(root / "blobs", durable=config.durable)
        self._root = root
        self._settling = threading.Lock()
        # Jobs whose checks passed and whose C is in memory, while C is stored and the workers
        # are paid ("checked"): the consumer downloads C meanwhile, it does not wait for the disk.
        self._checked: set[str] = set()
        # Held from storing a blob to recording who refers to it, and while a settled job's
        # blobs are dropped: a blob another job has just stored is never dropped under it.
        self._blob_refs = threading.Lock()
        # Long polls wait on this; every state change wakes them.
        self._changed = threading.Condition()
        self._changes = 0  # counts notifications, under ``_changed``
        # Hot copies of what is also on disk: a job's tiles and revealed partials until it
        # settles, and the last few assembled results. After a restart, everything is re-read.
        self._tiles: dict[str, tuple[dict[Any, np.ndarray], dict[Any, np.ndarray]]] = {}
        self._partials: dict[str, dict[int, dict[BlockProduct, np.ndarray]]] = {}
        self._results: dict[str, np.ndarray] = {}
        # Revealed results not yet in the blob store: digest -> (job id, wire container).
        self._unwritten: dict[str, tuple[str, Any]] = {}
        # Those of them known by a provisional name (a reveal signed over its commitment, whose
        # body was never hashed): name -> shard number, renamed to the digest once written.
        self._provisional: dict[str, int] = {}
        self._write_delay = 0.0 if config.durable else max(0.0, float(config.write_behind))
        self._writes = WriteBehind(report=_report_write_failure)
        self._reopen_lost_reveals()

    def _notify(self) -> None:
        with self._changed:
            self._changes += 1
            self._changed.notify_all()

    def _wait_for(self, ready: Any, wait: float) -> Any:
        """Call ``ready()`` until it returns something truthy or ``wait`` seconds pass: again
        after every state change, and every ``RECHECK`` seconds for changes that come with time
        alone (a lease running out)."""
        deadline = time.monotonic() + max(0.0, min(wait, MAX_WAIT))
        while True:
            # ready() runs outside the condition's lock: it may change state and notify (settle),
            # and holding the lock then would deadlock against a thread that settles and
            # notifies. A notification in between is not missed: the count shows it.
            with self._changed:
                seen = self._changes
            value = ready()
            left = deadline - time.monotonic()
            if value or left <= 0:
                return value
            with self._changed:
                if self._changes == seen:
                    self._changed.wait(min(left, RECHECK))

    def close(self) -> None:
        """Write what is still waiting to be written, then close the state store."""
        self._writes.close()
        for blob in list(self._unwritten):  # a write that failed earlier gets a last try
            try:
                self._write_result(blob)
            except Exception as exc:
                _report_write_failure(exc)
        self.store.close()

    def _reopen_lost_reveals(self) -> None:
        # Results revealed shortly before the process died may never have reached the blob
        # store (``write_behind``). Their shards go back to ``committed`` with the reveal open
        # for a lease: the worker keeps a revealed result until the coordinator reports it
        # stored (``shard_view``), and reveals it again. A worker that does not (it died too)
        # loses the shard at the deadline, and it is computed again, as for any late reveal.
        deadline = time.time() + self.config.lease_s
        unsettled = [job for job, _ in self.store.jobs_holding_inputs() if job.state != "settled"]
        for job in unsettled:
            for shard in self.store.list_shards(job_id=job.job_id, state="revealed"):
                if not self.blobs.has(str(shard.result_digest)):
                    self.store.reopen_reveal(shard.shard_id, deadline)

    # ---- requests -------------------------------------------------------------------------

    def authenticate(
        self, method: str, target: str, headers: Any, body: bytes, body_hash: str | None = None
    ) -> str:
        """Check a signed request and record its nonce; returns the node id.

        Args:
            body_hash: ``body_digest(body)`` if already computed.

        Raises:
            AuthError: Unsigned, badly signed, stale or replayed.
        """
        return verify_request(
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

    def reveal_binding(self, shard_id: str) -> str | None:
        """What a reveal of this shard is signed over instead of its body's hash: the shard's
        commitment (``bound_by``), or None when it has none (the body's hash is checked then).

        The reveal's partials must hash to that commitment (``reveal`` checks it), so the
        signature still binds what is stored, and nobody hashes the body a second time.
        """
        try:
            shard = self.store.get_shard(_shard_number(shard_id))
        except (InvalidInputError, NotFoundError):
            return None
        return None if shard.commit_hash is None else bound_by(str(shard.commit_hash))

    def register(self, node: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Register (or update) the signing node, grant a new account its credit, stake its bond.

        A banned node (a proven cheater, its bond slashed) that stakes a bond again here may take
        shards again.

        Raises:
            InvalidInputError: A bad bond or payout address.
            InsufficientFundsError: The bond exceeds the node's balance.
        """
        bond = body.get("bond", 0)
        if isinstance(bond, bool) or not isinstance(bond, int) or bond < 0:
            raise InvalidInputError(f"bond must be a whole number >= 0, got {bond!r}")
        payout = body.get("payout_address")
        with self.store.transaction():
            new = self.store.register_node(
                node,
                payout_address=payout,
                validator=bool(body.get("validator", False)),
                prove=bool(body.get("prove", True)),
            )
            if new and self.config.default_credit > 0:
                self.ledger.grant(node, self.config.default_credit, ref=f"welcome:{node}")
            missing = bond - int(self.ledger.account(node)["bond"])
            if missing > 0:
                self.ledger.stake(node, missing, ref=f"stake:{node}:{secrets.token_hex(8)}")
                # A slashed node is banned from new shards until it stakes a bond again.
                if self.store.get_node(node).banned:
                    self.store.set_banned(node, False)
        return {**self.ledger.account(node), "new": new}

    def submit(
        self, consumer: str, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
    ) -> dict[str, Any]:
        """Accept a job: plan its shards, store its tiles, escrow its price.

        Raises:
            InvalidInputError: Bad node count, operands, or dtypes.
            InsufficientFundsError: The consumer cannot pay.
        """
        nodes = check_nodes(meta.get("nodes"))  # type: ignore[arg-type]
        redundancy = check_redundancy(meta.get("redundancy"), nodes)
        planned = planned_nodes(nodes, redundancy)
        if "A" not in arrays or "B" not in arrays:
            raise InvalidInputError("a job needs arrays A and B")
        a, b = orchid.prepare(arrays["A"], arrays["B"])
        m, k = a.shape
        n = b.shape[1]
        grid = orchid.make_grid(m, k, n, grid_for(m, k, n, planned, dtype=a.dtype))
        request = str(meta.get("request_id") or secrets.token_hex(16))
        job_id = digest(b"RNJOB1\x00", consumer.encode(), request.encode()).hex()[:32]
        try:  # a retried upload (its first answer was lost): the job already exists
            existing = self.store.get_job(job_id)
        except NotFoundError:
            existing = None
        if existing is not None:
            if existing.consumer != consumer:
                raise StoreConflictError(f"job {job_id} belongs to another consumer")
            return self._submitted(job_id, existing.spec)
        salt = secrets.token_bytes(16)
        audits = 1 if self.config.audits else 0
        plan = plan_shards(
            job_id.encode(), grid.shape, planned, audit_per_triad=audits, audit_salt=salt
        )
        mirrored = range(nodes - planned)  # slots whose triad has a mirror triad
        p, q, r = grid.shape
        # Contiguous once here (a row slab of A already is): a strided tile would be copied again
        # for its commitment, its blob, every claim that sends it, and every check that reads it.
        mem_a = {
            (i, kk): np.ascontiguousarray(a[grid.rows(i), grid.inner(kk)])
            for i in range(p)
            for kk in range(r)
        }
        mem_b = {
            (kk, j): np.ascontiguousarray(b[grid.inner(kk), grid.cols(j)])
            for kk in range(r)
            for j in range(q)
        }
        with self._blob_refs:  # held until the job that refers to the tiles exists
            # A tile's blob is its Merkle leaf's bytes, so the digest that names it is its leaf:
            # each tile is hashed once. Validators check the tiles they are sent against the
            # roots.
            leaves_a = {xy: self._put_tile("a", xy, t) for xy, t in mem_a.items()}
            leaves_b = {xy: self._put_tile("b", xy, t) for xy, t in mem_b.items()}
            commit_a, _ = commit_leaves(
                "a", {xy: bytes.fromhex(v) for xy, v in leaves_a.items()}, (p, r)
            )
            commit_b, _ = commit_leaves(
                "b", {xy: bytes.fromhex(v) for xy, v in leaves_b.items()}, (r, q)
            )
            tiles_a = {f"{i}/{kk}": leaf for (i, kk), leaf in leaves_a.items()}
            tiles_b = {f"{kk}/{j}": leaf for (kk, j), leaf in leaves_b.items()}
            computed = sum(plan.load.values()) + sum(plan.load[slot] for slot in mirrored)
            price = computed * self.config.price_per_block + self.config.validator_fee
            spec = JobSpec(
                m=m,
                k=k,
                n=n,
                dtype=a.dtype.name,
                out_dtype=orchid.result_dtype(a.dtype, k).name,
                nodes=nodes,
                plan_nodes=planned,
                redundancy=redundancy,
                edges=(grid.row_edges, grid.col_edges, grid.k_edges),
                tiles_a=tiles_a,
                tiles_b=tiles_b,
                commit_a=commit_a,
                commit_b=commit_b,
                audit_salt=salt.hex(),
                audit_per_triad=audits,
                price=price,
                request_id=request,
            )
            shards = [
                NewShard(slot, [(x.i, x.j, x.k) for x in plan.assignment(slot)], "primary")
                for slot in range(planned)
            ] + [NewShard(slot, [(x.i, x.j, x.k) for x in plan.assignment(slot)], "mirror")
                 for slot in mirrored]  # fmt: skip
            self._tiles[job_id] = (mem_a, mem_b)
            with self.store.transaction():
                self.store.create_job(job_id, consumer, spec, shards, state="sharded")
                self.ledger.escrow(consumer, job_id, price)
            self._notify()
            return self._submitted(job_id, spec)

    def _put_tile(self, kind: str, xy: tuple[int, int], tile: np.ndarray) -> str:
        # Written piece by piece, hashed on the way (no packed copy): the digest is the leaf's.
        return self.blobs.put_stream(tile_leaf_parts(kind, xy[0], xy[1], tile))

    def _submitted(self, job_id: str, spec: JobSpec) -> dict[str, Any]:
        plan, grid = self._plan(job_id, spec)
        return {
            "job_id": job_id,
            "price": spec.price,
            "grid": list(grid.shape),
            "block_products": len(grid.blocks()),
            "audit_volume": plan.audit_volume,
            "redundancy": spec.redundancy,
            "commitments": {"a": spec.commit_a, "b": spec.commit_b},
        }

    def _plan(self, job_id: str, spec: JobSpec) -> tuple[Any, orchid.Grid]:
        grid = orchid.Grid(*spec.edges)
        salt = bytes.fromhex(spec.audit_salt)
        plan = plan_shards(
            job_id.encode(),
            grid.shape,
            spec.plan_nodes,
            audit_per_triad=spec.audit_per_triad,
            audit_salt=salt,
        )
        return plan, grid

    def _tile(self, blob: str) -> np.ndarray:
        data = self.blobs.get(blob)
        if is_tile_leaf(data):
            return parse_tile_leaf(data)[3]
        # Stored by an older version: a wire container of one array.
        _, arrays = unpack(data, max_bytes=self.config.max_body)
        return arrays["t"]

    def _job_tiles(
        self, job_id: str, spec: JobSpec
    ) -> tuple[dict[Any, np.ndarray], dict[Any, np.ndarray]]:
        if job_id not in self._tiles:
            self._tiles[job_id] = (
                {_pair(key): self._tile(v) for key, v in spec.tiles_a.items()},
                {_pair(key): self._tile(v) for key, v in spec.tiles_b.items()},
            )
        return self._tiles[job_id]

    def _copy_key(self, shard: Shard) -> int:
        # ``copy_key`` of a stored shard: its slot, or slot + the plan's nodes for a mirror.
        return copy_key(self.store.get_job(shard.job_id).spec.plan_nodes, shard.slot, shard.role)

    def _revealed(
        self, job_id: str
    ) -> tuple[dict[int, dict[BlockProduct, np.ndarray]], dict[int, str]]:
        # Each copy's revealed partials (from memory, or re-read from the blob store), keyed
        # by ``_copy_key``.
        cached = self._partials.get(job_id, {})
        reveals: dict[int, dict[BlockProduct, np.ndarray]] = {}
        nodes_of: dict[int, str] = {}
        for shard in self.store.list_shards(job_id=job_id, state="revealed"):
            key = self._copy_key(shard)
            if key in cached:
                reveals[key] = cached[key]
            else:
                waiting = self._unwritten.get(str(shard.result_digest))
                body = waiting[1] if waiting else self.blobs.get(str(shard.result_digest))
                _, arrays = unpack(body, max_bytes=self.config.max_body)
                reveals[key] = {
                    BlockProduct(*map(int, name.split("/")[1:])): x for name, x in arrays.items()
                }
            nodes_of[key] = str(shard.node_id)
        return reveals, nodes_of

    def _commits(self, job_id: str) -> dict[int, str]:
        # Each revealed copy's commitment, by copy key (as ``_revealed``).
        return {
            self._copy_key(s): str(s.commit_hash)
            for s in self.store.list_shards(job_id=job_id, state="revealed")
        }

    def claim(self, node: str, wait: float = 0.0) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Give the node its next shard with the tiles it needs (``shard_id`` None: no work).

        Args:
            node: The claiming node.
            wait: Seconds to hold the request while there is no work (a long poll).
        """
        shard = self._wait_for(
            lambda: self.store.next_shard_for(node, lease_s=self.config.lease_s), wait
        )
        if shard is None:
            return {"shard_id": None}, {}
        spec = self.store.get_job(shard.job_id).spec
        tiles_a, tiles_b = self._job_tiles(shard.job_id, spec)  # in memory, not re-read per claim
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

    def _reveal_open(self, job_id: str) -> bool:
        # The commit phase closes once no live shard of the job still awaits its commit; from
        # then on every committed shard must be revealed within a lease. Setting the deadlines
        # here (idempotent) rather than only at the closing commit keeps a crash between the
        # two from leaving shards without one.
        live = self.store.list_shards(job_id=job_id, state=("pending", "assigned"))
        if live:
            return False
        self.store.open_reveals(job_id, time.time() + self.config.lease_s)
        return True

    def shard_view(self, node: str, shard_id: str, wait: float = 0.0) -> dict[str, Any]:
        """The shard's state and whether its reveal is open.

        Args:
            node: The asking node (must hold the shard).
            shard_id: The shard.
            wait: Seconds to hold the request until the reveal opens (a long poll).

        Raises:
            NotFoundError: No such shard; ShardStateError: another node's shard.
        """
        number = _shard_number(shard_id)

        def view() -> dict[str, Any]:
            shard = self.store.get_shard(number)
            if shard.node_id != node:
                raise ShardStateError(f"shard {shard_id} is not this node's")
            return {
                "shard_id": shard_id,
                "state": shard.state,
                "reveal": shard.state == "committed" and self._reveal_open(shard.job_id),
                "stored": self._stored(shard),
            }

        first = view()
        if first["reveal"] or first["state"] != "committed" or wait <= 0:
            return first
        return dict(self._wait_for(lambda: (v := view())["reveal"] and v, wait) or view())

    def commit(self, node: str, shard_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Record a commitment to a shard's result.

        Raises:
            InvalidInputError: A malformed digest; ShardStateError, DeadlinePassedError: as the
                store says.
        """
        value = body.get("digest")
        if not isinstance(value, str) or len(value) != 64:
            raise InvalidInputError("digest must be 64 hex digits")
        shard = self.store.record_commit(_shard_number(shard_id), node, value.lower())
        self._reveal_open(shard.job_id)  # sets the reveal deadlines if this closed the phase
        self._notify()
        return self.shard_view(node, shard_id)

    def release(self, node: str, shard_id: str) -> dict[str, Any]:
        """Hand a shard back (a worker stopping): it expires and a fresh copy goes to another node.

        Raises:
            ShardStateError: Not this node's shard, or already revealed.
        """
        number = _shard_number(shard_id)
        with self.store.transaction():
            shard = self.store.get_shard(number)
            if shard.node_id != node or shard.state not in ("assigned", "committed"):
                raise ShardStateError(f"shard {shard_id} is not this node's to hand back")
            self.store.set_shard_state(number, "expired", expect=("assigned", "committed"))
            if not self.store.has_live_copy(shard.job_id, shard.slot):  # else its mirror serves
                self.store.add_shards(
                    shard.job_id, [NewShard(shard.slot, shard.blocks, shard.role)]
                )
        self._notify()
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
        number = _shard_number(shard_id)
        shard = self.store.get_shard(number)
        if shard.node_id != node or shard.state != "committed":
            raise ShardStateError(f"shard {shard_id} is not awaiting this node's reveal")
        if not self._reveal_open(shard.job_id):
            raise ShardStateError("the commit phase of this job is still open")
        partials = _partials_of(shard.blocks, arrays)
        if len(arrays) != len(partials):
            # A reveal signed over its commitment binds only the partials: nothing else may ride
            # along into the stored result.
            raise InvalidInputError("the reveal holds arrays besides the shard's partials")
        if result_digest(partials).hex() != shard.commit_hash:
            self.store.set_shard_state(number, "rejected", expect="committed")
            raise ShardStateError("the revealed partials do not match the commitment")
        with self._blob_refs:
            blob = self._store_result(shard.job_id, partials, body, body_hash, shard=shard)
            self.store.record_reveal(number, node, blob)
        return self._result_in(shard_id, shard, partials)

    def _store_result(
        self,
        job_id: str,
        partials: Mapping[BlockProduct, np.ndarray],
        body: bytes | None,
        body_hash: str | None = None,
        *,
        shard: Shard | None = None,
    ) -> str:
        # The result's wire container as a blob (packed anew when it did not come as one); a
        # body's hash from checking its signature is its blob name, so it is not hashed again.
        # A revealed ``shard``'s result is written after ``write_behind`` seconds unless the job
        # no longer needs it by then (the revealing worker keeps it until then); one that was
        # not hashed (a reveal signed over its commitment) goes by a provisional name until it
        # is written, and is hashed only then: a job that settles first never hashes it.
        # Without ``shard`` it is written at once. The caller holds ``_blob_refs``.
        if body is None:
            body = pack({}, {f"p/{b.i}/{b.j}/{b.k}": x for b, x in partials.items()})
        if (
            shard is None
            or self._write_delay <= 0
            or self.store.get_job(job_id).state in ("disputed", "optimistic")
        ):  # a job off the quick path: its results go to disk at once
            return self.blobs.put(body, digest=body_hash)
        blob = body_hash
        if blob is None:
            blob = _provisional_name(shard)
            self._provisional[blob] = shard.shard_id
        self._unwritten[blob] = (job_id, body)
        self._writes.schedule(self._write_delay, job_id, lambda: self._write_result(blob))
        return blob

    def _write_result(self, blob: str) -> None:
        with self._blob_refs:
            waiting = self._unwritten.get(blob)
            if waiting is None:  # its job settled and no longer needs it
                return
            shard = self._provisional.get(blob)
            if shard is None:
                self.blobs.put(waiting[1], digest=blob)
            else:
                self.store.rename_result(shard, blob, self.blobs.put(waiting[1]))
                del self._provisional[blob]
            del self._unwritten[blob]

    def _stored(self, shard: Shard) -> bool:
        # Whether a revealed result is on disk, or its job settled and no longer needs it: the
        # worker that revealed it may then forget it.
        if shard.state not in ("revealed", "accepted"):
            return False
        if str(shard.result_digest) not in self._unwritten:
            return True
        return self.store.get_job(shard.job_id).state == "settled"

    def _result_in(
        self, shard_id: str, shard: Shard, partials: dict[BlockProduct, np.ndarray]
    ) -> dict[str, Any]:
        # A shard's result was recorded: keep its partials at hand, wake the long polls, and
        # settle (or go optimistic) if it was the last one.
        self._partials.setdefault(shard.job_id, {})[self._copy_key(shard)] = partials
        self._notify()
        self._maybe_settle(shard.job_id)
        stored = self._stored(self.store.get_shard(shard.shard_id))
        return {"shard_id": shard_id, "state": "revealed", "stored": stored}

    def _maybe_settle(self, job_id: str) -> None:
        # Settle once every live shard is revealed: from the last reveal, or, if the process died
        # between that reveal and its settlement, from the next status poll after a restart.
        if self.store.get_job(job_id).state in ("settled", "disputed", "optimistic"):
            return
        remaining = self.store.list_shards(
            job_id=job_id, state=("pending", "assigned", "committed")
        )
        revealed = self.store.list_shards(job_id=job_id, state="revealed")
        if remaining or not revealed:
            return
        if any(not self.store.get_node(str(s.node_id)).prove for s in revealed):
            # Unproven results (``--no-prove`` workers) wait for an auditor: on disk.
            self._writes.flush(job_id)
            with self.store.transaction():
                if self.store.get_job(job_id).state not in ("settled", "optimistic"):
                    self.store.set_job_state(job_id, "optimistic")
            self._notify()
        else:
            self.settle(job_id)

    def settle(self, job_id: str, *, auditor: str | None = None) -> dict[str, Any]:
        """Check every revealed shard of a job, pay, and publish C (idempotent).

        Args:
            job_id: The job.
            auditor: The auditor whose check passed an optimistic job: it earns the job's fee,
                and the per-partial checks it ran are not repeated here.
        """
        with self._settling:
            job = self.store.get_job(job_id)
            if job.state in ("settled", "disputed"):
                return self.status(job_id)
            spec = job.spec
            plan, grid = self._plan(job_id, spec)
            tiles_a, tiles_b = self._job_tiles(job_id, spec)
            reveals, nodes_of = self._revealed(job_id)
            dtype = np.dtype(spec.out_dtype)
            outcome = settle(
                plan,
                grid,
                dtype,
                reveals,
                tiles_a,
                tiles_b,
                checks=self.config.checks and auditor is None,
            )
            if not outcome.ok or outcome.c is None:
                self._open_dispute(job_id, outcome, nodes_of)
                return self.status(job_id)
            # C is stored before the job is settled: a settled job's partials may never have
            # reached the disk (``write_behind``). The last few results also stay in memory, and
            # a checked job's C is served from there while it is being stored.
            self._remember(job_id, outcome.c)
            self._checked.add(job_id)
            self._notify()
            try:
                c_blob = self._store_and_pay(job_id, job.consumer, outcome, nodes_of, auditor)
            finally:
                self._checked.discard(job_id)
            self._tiles.pop(job_id, None)
            self._partials.pop(job_id, None)
            self._notify()
        # Off the settling path: the consumer and the last reveal are answered meanwhile.
        self._writes.schedule(0.0, f"drop:{job_id}", lambda: self._drop_inputs(job_id, c_blob))
        return self.status(job_id)

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
        c_blob = self.blobs.put_stream(pack_parts({}, {"C": outcome.c}))
        earnings: dict[str, int] = {}
        for slot, count in outcome.computed.items():  # a node may have served two slots
            earnings[nodes_of[slot]] = earnings.get(nodes_of[slot], 0) + count
        with self.store.transaction():
            for worker, count in earnings.items():
                if count:
                    self.ledger.pay(job_id, worker, count * self.config.price_per_block)
            fee = min(self.config.validator_fee, self.ledger.escrow_held(job_id))
            if auditor is not None and fee > 0:
                self.ledger.pay(job_id, auditor, fee, reason="audit")
            self.ledger.refund(job_id, consumer)
            self.store.set_job_state(job_id, "settled")
            self.store.set_job_result(job_id, c_blob)
        return c_blob

    def _drop_inputs(self, job_id: str, c_blob: str) -> None:
        """Drop a settled job's tiles and partials from the blob store (and those still waiting
        to be written): nothing reads them again, as C is stored.

        This keeps the blob folder from growing by every job's inputs. On the reference VM it is
        also what makes writes cheap: a file written into recycled page cache cost 16 ms per
        68 MiB against 160 ms into fresh pages (a throwaway timing; see docs/mesh.md).
        """
        job = self.store.get_job(job_id)
        mine = {*job.spec.tiles_a.values(), *job.spec.tiles_b.values()}
        mine |= {
            str(s.result_digest)
            for s in self.store.list_shards(job_id=job_id)
            if s.result_digest is not None
        }
        with self._blob_refs:
            for other, digests in self.store.jobs_holding_inputs(besides=job_id):
                mine -= {*other.spec.tiles_a.values()}
                mine -= {*other.spec.tiles_b.values()}
                mine -= set(digests)
            mine.discard(c_blob)
            for blob in mine:
                waiting = self._unwritten.get(blob)
                if waiting is not None and waiting[0] == job_id:
                    del self._unwritten[blob]
                    self._provisional.pop(blob, None)
                self.blobs.delete(blob)

    # ---- disputes ----------------------------------------------------------------------------

    def _parties(self, job_id: str) -> set[str]:
        return {str(s.node_id) for s in self.store.list_shards(job_id=job_id) if s.node_id}

    def _draw(self, job_id: str, round_: int) -> str | None:
        parties = self._parties(job_id)
        eligible = [
            n.node_id
            for n in self.store.list_nodes(validators_only=True, include_banned=False)
            if n.node_id not in parties
        ]
        commits = [
            str(s.commit_hash)
            for s in self.store.list_shards(job_id=job_id, state="revealed")
            if s.commit_hash
        ]
        return draw_validator(job_id, commits, round_, eligible)

    def _open_dispute(self, job_id: str, outcome: Any, nodes_of: Mapping[int, str]) -> None:
        failed = [
            (nodes_of[slot], (b.i, b.j, b.k)) for slot, b in outcome.failed if slot in nodes_of
        ]
        contested = sorted(
            {(b.i, b.j, b.k) for _, b in outcome.failed}
            | {(b.i, b.j, b.k) for b, _ in outcome.disagreements}
        )
        round_ = len(self.store.list_disputes(job_id))
        self._writes.flush(job_id)  # a validator and the dispute's record need the results
        claims = DisputeClaims(
            round=round_,
            failed=failed,
            blocks=contested,
            slots={str(slot): node for slot, node in nodes_of.items()},
        )
        with self.store.transaction():
            self.store.open_dispute(job_id, claims, validator=self._draw(job_id, round_))
            self.store.set_job_state(job_id, "disputed")
        self._notify()

    def validation(
        self, node: str, wait: float = 0.0
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The next dispute this validator was drawn for: contested tiles and claims only."""

        def mine() -> Any:
            for dispute in self.store.list_disputes(state="open"):
                if dispute.validator is None:  # nobody was eligible then: draw again
                    drawn = self._draw(dispute.job_id, dispute.claims.round)
                    if drawn is not None:
                        dispute = self.store.set_dispute_validator(dispute.dispute_id, drawn)
                if dispute.validator == node:
                    return dispute
            return None

        dispute = self._wait_for(mine, wait)
        if dispute is None:
            return {"dispute_id": None}, {}
        spec = self.store.get_job(dispute.job_id).spec
        tiles_a, tiles_b = self._job_tiles(dispute.job_id, spec)
        reveals, nodes_of = self._revealed(dispute.job_id)
        commits = self._commits(dispute.job_id)
        p, q, r = (len(e) - 1 for e in spec.edges)
        levels_a = commit_tiles("a", tiles_a, (p, r))[1]
        levels_b = commit_tiles("b", tiles_b, (r, q))[1]
        arrays: dict[str, np.ndarray] = {}
        openings: dict[str, list[str]] = {}
        claims = []
        digests_of: dict[int, dict[str, str]] = {}  # each copy's partial digests, hashed once
        for i, j, k in dispute.claims.blocks:
            block = BlockProduct(i, j, k)
            arrays[f"a/{i}/{k}"] = tiles_a[(i, k)]
            arrays[f"b/{k}/{j}"] = tiles_b[(k, j)]
            openings[f"a/{i}/{k}"] = open_tile_path(levels_a, (p, r), i, k)
            openings[f"b/{k}/{j}"] = open_tile_path(levels_b, (r, q), k, j)
            for copy, partials in reveals.items():
                if block in partials:
                    name = f"c/{copy}/{i}/{j}/{k}"
                    arrays[name] = partials[block]
                    # The claim is opened against the worker's own commitment: the digests of
                    # the shard's partials, which must hash to the commit it posted.
                    if copy not in digests_of:
                        digests_of[copy] = {
                            f"{b.i}/{b.j}/{b.k}": block_digest(b, x).hex()
                            for b, x in partials.items()
                        }
                    claims.append(
                        {
                            "node": nodes_of[copy],
                            "copy": copy,
                            "block": [i, j, k],
                            "name": name,
                            "commit": commits.get(copy),
                            "digests": digests_of[copy],
                        }
                    )
        meta = {
            "dispute_id": dispute.dispute_id,
            "job_id": dispute.job_id,
            "blocks": dispute.claims.blocks,
            "claims": claims,
            "commitments": {
                "a": spec.commit_a,
                "b": spec.commit_b,
                "grid": [p, q, r],
            },
            "openings": openings,
        }
        return meta, arrays

    def verdict(self, node: str, dispute_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        """Check a validator's verdict; slash and requeue the proven cheaters, or the validator.

        Raises:
            ShardStateError: Not this validator's open dispute; InvalidInputError: a malformed
                verdict.
        """
        frauds = body.get("frauds")
        if not isinstance(frauds, list) or not all(isinstance(f, dict) for f in frauds):
            raise InvalidInputError("a verdict is {'frauds': [fraud proof, ...]}")
        dispute = self.store.get_dispute(dispute_id)
        if dispute.validator != node or dispute.state != "open":
            raise ShardStateError(f"dispute {dispute_id} is not this validator's to settle")
        job_id = dispute.job_id
        spec = self.store.get_job(job_id).spec
        tiles_a, tiles_b = self._job_tiles(job_id, spec)
        reveals, nodes_of = self._revealed(job_id)
        proven = frauds_proven(frauds, reveals, nodes_of, tiles_a, tiles_b)
        accused = {str(f.get("node")) for f in frauds}
        failed = {str(n) for n, _ in dispute.claims.failed}
        verdict_blob = self.blobs.put(json.dumps({"validator": node, "frauds": frauds}).encode())
        if not proven or accused != failed:
            # A lie (or a miss): the validator pays, and the dispute goes to another one.
            with self.store.transaction():
                self.ledger.slash(node, None, 0, job_id, ref=f"slash:{job_id}:{node}:validator")
                self.store.set_banned(node, True)
                self.store.resolve_dispute(
                    dispute_id, DisputeOutcome("validator lied"), verdict_digest=verdict_blob
                )
                round_ = dispute.claims.round + 1
                claims_next = msgspec.structs.replace(dispute.claims, round=round_)
                self.store.open_dispute(job_id, claims_next, validator=self._draw(job_id, round_))
            self._notify()
            return {"dispute_id": dispute_id, "outcome": "validator lied"}
        with self.store.transaction():
            for cheater in sorted(accused):
                self._punish(job_id, cheater, node, nodes_of)
            if self.config.validator_fee:
                self.ledger.pay(job_id, node, self.config.validator_fee, reason="validation")
            self.store.resolve_dispute(
                dispute_id, DisputeOutcome("upheld", sorted(accused)), verdict_digest=verdict_blob
            )
            self.store.set_job_state(job_id, "dispatched")
        self._notify()
        self._maybe_settle(job_id)  # mirrors may already serve every rejected slot
        return {"dispute_id": dispute_id, "outcome": "upheld", "slashed": sorted(accused)}

    # ---- the asymmetric topology: unproven results, auditors --------------------------------

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
        number = _shard_number(shard_id)
        shard = self.store.get_shard(number)
        if self.store.get_node(node).prove:
            raise ShardStateError("this node registered as proving: commit, then reveal")
        if shard.node_id != node:
            raise ShardStateError(f"shard {shard_id} is not this node's")
        partials = _partials_of(shard.blocks, arrays)
        digest_hex = result_digest(partials).hex()
        if shard.state == "revealed" and shard.commit_hash == digest_hex:
            return {"shard_id": shard_id, "state": "revealed"}  # a retried request
        if shard.state != "assigned":
            raise ShardStateError(f"shard {shard_id} is {shard.state}, not awaiting a result")
        with self._blob_refs, self.store.transaction():
            # A node that only computes forgets its result once posted: stored at once.
            blob = self._store_result(shard.job_id, partials, body, body_hash)
            self.store.record_commit(number, node, digest_hex)
            self.store.record_reveal(number, node, blob)
        self._reveal_open(shard.job_id)  # this may have been the last shard awaited
        return self._result_in(shard_id, shard, partials)

    def audit(self, node: str, wait: float = 0.0) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The oldest optimistic job this node may audit (``job_id`` None: none): every tile,
        every revealed copy's partials, and which copies must agree bit for bit.

        Args:
            node: The auditor (never a node that holds a shard of the job).
            wait: Seconds to hold the request while there is none (a long poll).
        """
        banned = self.store.get_node(node).banned

        def next_job() -> str | None:
            if banned:
                return None
            for job in reversed(self.store.list_jobs(state="optimistic")):
                if node not in self._parties(job.job_id):
                    return job.job_id
            return None

        job_id = self._wait_for(next_job, wait)
        if job_id is None:
            return {"job_id": None}, {}
        spec = self.store.get_job(job_id).spec
        tiles_a, tiles_b = self._job_tiles(job_id, spec)
        reveals, nodes_of = self._revealed(job_id)
        meta, arrays = audit_package(job_id, tiles_a, tiles_b, reveals, nodes_of)
        return meta, arrays

    def audit_report(self, node: str, job_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """An auditor's report on an optimistic job: settle it, or revert what it proves wrong.

        A report with fraud proofs is checked in O(K) per proof; when every one holds, each
        proven author is slashed (a bounty to the auditor) and banned, its shards rejected and
        queued again (unless a mirror copy serves them), and the job goes back to work. A clean
        report settles the job, and the auditor earns the job's fee, provided the copies that
        must agree do and a random sample of partials passes Freivalds (the coordinator checks
        both itself: ``spot_checks``). Any other report is a lie: the
        auditor is slashed and banned, and the job waits for another one.

        Raises:
            ShardStateError: The job is not optimistic, or the auditor is a party to it.
            InvalidInputError: A malformed report.
        """
        frauds = body.get("frauds")
        if not isinstance(frauds, list) or not all(isinstance(f, dict) for f in frauds):
            raise InvalidInputError("an audit report is {'frauds': [fraud proof, ...]}")
        if self.store.get_job(job_id).state != "optimistic":
            raise ShardStateError(f"job {job_id} is not awaiting an audit")
        if node in self._parties(job_id) or self.store.get_node(node).banned:
            raise ShardStateError("a party to the job (or a banned node) cannot audit it")
        spec = self.store.get_job(job_id).spec
        tiles_a, tiles_b = self._job_tiles(job_id, spec)
        reveals, nodes_of = self._revealed(job_id)
        proven = frauds_proven(frauds, reveals, nodes_of, tiles_a, tiles_b)
        if frauds and proven:
            accused = sorted({str(f["node"]) for f in frauds})
            with self.store.transaction():
                for cheater in accused:
                    self._punish(job_id, cheater, node, nodes_of)
                self.store.set_job_state(job_id, "dispatched")
            self._notify()
            self._maybe_settle(job_id)
            return {"job_id": job_id, "outcome": "reverted", "slashed": accused}
        if not frauds and copies_agree(reveals) and self._spot_check(reveals, tiles_a, tiles_b):
            self.settle(job_id, auditor=node)
            return {"job_id": job_id, "outcome": "settled"}
        with self.store.transaction():
            self.ledger.slash(node, None, 0, job_id, ref=f"slash:{job_id}:{node}:auditor")
            self.store.set_banned(node, True)
        self._notify()
        return {"job_id": job_id, "outcome": "auditor lied"}

    def _spot_check(
        self,
        reveals: Mapping[int, Mapping[BlockProduct, np.ndarray]],
        tiles_a: Mapping[tuple[int, int], np.ndarray],
        tiles_b: Mapping[tuple[int, int], np.ndarray],
    ) -> bool:
        # A random sample the auditor cannot predict: secrets, not the job's public data.
        rng = np.random.default_rng(secrets.randbits(64))
        for partials in reveals.values():
            blocks = list(partials)
            count = max(1, round(self.config.spot_checks * len(blocks)))
            for t in rng.choice(len(blocks), size=min(count, len(blocks)), replace=False):
                block = blocks[int(t)]
                if not check_partial(block, partials[block], tiles_a, tiles_b):
                    return False
        return True

    def _punish(
        self, job_id: str, cheater: str, challenger: str, nodes_of: Mapping[int, str]
    ) -> None:
        # A proven cheater (inside the caller's transaction): its bond slashed (the bounty to
        # the challenger, the rest burned), banned, its revealed shards of the job rejected and
        # queued again, unless a mirror copy serves the slot at once.
        self.ledger.slash(cheater, challenger, self.config.bounty, job_id)
        self.store.set_banned(cheater, True)
        for shard in self.store.list_shards(job_id=job_id, node_id=cheater):
            if shard.state == "revealed":
                self.store.set_shard_state(shard.shard_id, "rejected")
                if not self.store.has_live_copy(job_id, shard.slot):
                    self.store.add_shards(job_id, [NewShard(shard.slot, shard.blocks, shard.role)])
        cache = self._partials.get(job_id, {})
        for key in [key for key, n in nodes_of.items() if n == cheater]:
            cache.pop(key, None)

    def _remember(self, job_id: str, c: np.ndarray) -> None:
        self._results[job_id] = c
        while len(self._results) > 4:
            self._results.pop(next(iter(self._results)))

    def status(self, job_id: str, wait: float = 0.0) -> dict[str, Any]:
        """The job's state, its shards' states, and what settlement found.

        Args:
            job_id: The job.
            wait: Seconds to hold the request until the job settles or fails (a long poll).
        """
        if wait > 0:

            def look() -> bool:
                if job_id in self._checked:
                    return True
                self._reveal_open(job_id)
                self.store.expire_overdue()  # a stalled or dead worker's shard moves on
                return self.store.get_job(job_id).state in ("settled", "disputed")

            # A poll settles the job itself only before it waits, and only if nobody is settling:
            # that is for a job whose last reveal was answered but not settled (a restart, a
            # failed store). Otherwise the last reveal settles it, and this poll is woken as soon
            # as C is checked instead of holding its answer until C is stored.
            if not look() and not self._settling.locked():
                self._maybe_settle(job_id)
            self._wait_for(look, wait)
        checked = job_id in self._checked
        info = self.store.job_status(job_id)
        if checked and info["state"] != "settled":
            info["state"] = "checked"
        spec = self.store.get_job(job_id).spec
        info["shape"] = [spec.m, spec.n]
        info["k"] = spec.k
        info["dtype"] = spec.dtype
        info["nodes"] = spec.nodes
        info["price"] = spec.price
        disputes = self.store.list_disputes(job_id)
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

    def result(self, job_id: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """C of a settled job, or of a checked one (its C is being stored).

        Raises:
            ShardStateError: The job has not settled or been checked.
        """
        c = self._results.get(job_id)
        if c is not None and job_id in self._checked:
            return {"job_id": job_id}, {"C": c}
        job = self.store.get_job(job_id)
        if job.state != "settled":
            raise ShardStateError(f"job {job_id} is {job.state}, not settled")
        if job_id not in self._results and job.result_blob is not None:
            _, arrays = unpack(self.blobs.get(job.result_blob), max_bytes=self.config.max_body)
            self._remember(job_id, arrays["C"])
        elif job_id not in self._results:  # settled before C was stored (or just before a crash)
            plan, grid = self._plan(job_id, job.spec)
            reveals, _ = self._revealed(job_id)
            picked = chosen(plan, reveals)
            primaries = {b: picked[plan.owner(b)][b] for b in grid.blocks()}
            self._remember(job_id, assemble(grid, primaries, np.dtype(job.spec.out_dtype)))
        return {"job_id": job_id}, {"C": self._results[job_id]}


def _partials_of(blocks: Any, arrays: Mapping[str, np.ndarray]) -> dict[BlockProduct, np.ndarray]:
    partials: dict[BlockProduct, np.ndarray] = {}
    for i, j, kk in blocks:
        name = f"p/{i}/{j}/{kk}"
        if name not in arrays:
            raise InvalidInputError(f"the result lacks partial {name}")
        partials[BlockProduct(i, j, kk)] = np.asarray(arrays[name])
    return partials


def _provisional_name(shard: Shard) -> str:
    # Unique to the shard and its commitment, and no blob's digest (a different hash input).
    tag = b"RNPENDING1\x00" + str(shard.shard_id).encode() + b"\x00"
    return digest(tag, str(shard.commit_hash).encode()).hex()


def _pair(key: str) -> tuple[int, int]:
    x, y = key.split("/")
    return int(x), int(y)


def _shard_number(shard_id: str) -> int:
    if not shard_id.isdigit() or len(shard_id) > 18:
        raise InvalidInputError(f"bad shard id {shard_id!r}")
    return int(shard_id)


def _report_write_failure(exc: BaseException) -> None:
    # The result stays in memory (close tries it again); say so rather than lose it quietly.
    print(f"coordinator: a deferred blob write failed: {exc}", file=sys.stderr, flush=True)
