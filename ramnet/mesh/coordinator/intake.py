"""Who comes in and what they bring: a node's registration (its account and bond), and a job's
submission (its plan, its tiles stored and committed to, its price escrowed)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ramnet import orchid
from ramnet._errors import InvalidInputError
from ramnet.mesh.coordinator.inputs import JobInputs
from ramnet.mesh.coordinator.payouts import checked_binding
from ramnet.mesh.coordinator.polls import Polls
from ramnet.mesh.coordinator.results import Results
from ramnet.mesh.protocol.messages import JobSubmission, RegisterRequest
from ramnet.mesh.rules.plan import (
    check_nodes,
    check_redundancy,
    grid_for,
    job_price,
    plan_shards,
    planned_nodes,
)
from ramnet.mesh.rules.tilecommit import commit_leaves
from ramnet.mesh.state.errors import NotFoundError, StoreConflictError
from ramnet.mesh.state.ledger import Ledger
from ramnet.mesh.state.node_instances import claim_instance
from ramnet.mesh.state.records import JobSpec, NewShard
from ramnet.mesh.state.store import Store
from ramnet.valkyrie._hash import digest

__all__ = ["Intake"]


class Intake:
    """Registers nodes and accepts jobs.

    Args:
        store, ledger: The coordinator's state.
        polls: Woken when a job comes in.
        inputs: Where a job's tiles are stored.
        results: Holds ``blob_refs`` while a new job's tiles are stored.
        default_credit: Units granted to every new account.
        price_per_block: What a consumer pays per block product computed.
        validator_fee: Escrowed with every job.
        audits: False plans jobs without audit blocks (a benchmarking aid).
        node_timeout: Seconds of silence after which a node's process counts as gone, so that
            its key may register from another process.
        last_seen: When a node last made a signed request, as the liveness tracker knows it
            (newer than the store's, which it writes in batches); None: the store's.
    """

    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        polls: Polls,
        inputs: JobInputs,
        results: Results,
        *,
        default_credit: int,
        price_per_block: int,
        validator_fee: int,
        audits: bool,
        node_timeout: float = 15.0,
        last_seen: Callable[[str], float | None] | None = None,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._polls = polls
        self._inputs = inputs
        self._results = results
        self._default_credit = default_credit
        self._price_per_block = price_per_block
        self._validator_fee = validator_fee
        self._audits = audits
        self._node_timeout = node_timeout
        self._last_seen = last_seen

    def register(self, node: str, request: RegisterRequest) -> dict[str, Any]:
        """Register (or update) the signing node, grant a new account its credit, stake its bond.

        A banned node (a proven cheater, its bond slashed) that stakes a bond again here may take
        shards again. A serving process names its ``instance``: a key whose node another live
        process runs is refused (one key, one process); a consumer names none and is not.

        Args:
            node: The signing node.
            request: Its bond (a whole number >= 0, as the message checks), its roles and its
                payout address.

        Returns:
            The node's account, and ``new``: it was not registered before.

        Raises:
            InvalidInputError: A payout address not 1-256 characters (the store's check).
            BindingRefusedError: A wallet binding that does not check or binds another node
                (``payouts.checked_binding``); nothing is registered then.
            InsufficientFundsError: The bond exceeds the node's balance.
            KeyInUseError: Another live process registered with this key.
        """
        instance = request.instance
        payout_address, binding = request.payout_address, None
        if request.binding is not None:  # checked before the write lock is taken
            payout_address, binding = checked_binding(node, request.binding, payout_address)
        with self._store.transaction():
            # Checked before registering updates the node (its last update may be all that says
            # when the other process was last seen), recorded again once a new node exists.
            if instance is not None:
                seen = None if self._last_seen is None else self._last_seen(node)
                claim_instance(
                    self._store, node, instance, timeout=self._node_timeout, last_seen=seen
                )
            new = self._store.register_node(
                node,
                payout_address=payout_address,
                validator=request.validator,
                prove=request.prove,
                payout_binding=binding,
            )
            if new and instance is not None:
                claim_instance(self._store, node, instance, timeout=self._node_timeout)
            if new and self._default_credit > 0:
                self._ledger.grant(node, self._default_credit, ref=f"welcome:{node}")
            missing = request.bond - int(self._ledger.account(node)["bond"])
            if missing > 0:
                self._ledger.stake(node, missing, ref=f"stake:{node}:{secrets.token_hex(8)}")
                # A slashed node is banned from new shards until it stakes a bond again.
                if self._store.get_node(node).banned:
                    self._store.set_banned(node, False)
        return {**self._ledger.account(node), "new": new}

    def submit(
        self, consumer: str, job: JobSubmission, arrays: Mapping[str, np.ndarray]
    ) -> dict[str, Any]:
        """Accept a job: plan its shards, store its tiles, escrow its price.

        Args:
            consumer: The submitting node, who pays.
            job: The upload's metadata: node count, redundancy, and the name of the upload.
            arrays: Its operands ``A`` and ``B``.

        Returns:
            The reply (``submitted``); a retried upload's names the job it already made.

        Raises:
            InvalidInputError: Bad node count (not a positive multiple of 3), redundancy (mirror
                with fewer than 6 nodes), operands, or dtypes.
            InsufficientFundsError: The consumer cannot pay.
            StoreConflictError: The upload's name is another consumer's job.
        """
        # The rules the message's type does not say: a multiple of 3, mirrors from 6 nodes on.
        nodes = check_nodes(job.nodes)
        redundancy = check_redundancy(job.redundancy, nodes)
        planned = planned_nodes(nodes, redundancy)
        if "A" not in arrays or "B" not in arrays:
            raise InvalidInputError("a job needs arrays A and B")
        a, b = orchid.prepare(arrays["A"], arrays["B"])
        m, k = a.shape
        n = b.shape[1]
        grid = orchid.make_grid(m, k, n, grid_for(m, k, n, planned, dtype=a.dtype))
        request = job.request_id or secrets.token_hex(16)
        job_id = digest(b"RNJOB1\x00", consumer.encode(), request.encode()).hex()[:32]
        try:  # a retried upload (its first answer was lost): the job already exists
            existing = self._store.get_job(job_id)
        except NotFoundError:
            existing = None
        if existing is not None:
            if existing.consumer != consumer:
                raise StoreConflictError(f"job {job_id} belongs to another consumer")
            return self.submitted(job_id, existing.spec)
        salt = secrets.token_bytes(16)
        audits = 1 if self._audits else 0
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
        with self._results.blob_refs:  # held until the job that refers to the tiles exists
            # A tile's blob is its Merkle leaf's bytes, so the digest that names it is its leaf:
            # each tile is hashed once. Validators check the tiles they are sent against the
            # roots.
            leaves_a = {xy: self._inputs.put_tile("a", xy, t) for xy, t in mem_a.items()}
            leaves_b = {xy: self._inputs.put_tile("b", xy, t) for xy, t in mem_b.items()}
            commit_a, _ = commit_leaves(
                "a", {xy: bytes.fromhex(v) for xy, v in leaves_a.items()}, (p, r)
            )
            commit_b, _ = commit_leaves(
                "b", {xy: bytes.fromhex(v) for xy, v in leaves_b.items()}, (r, q)
            )
            tiles_a = {f"{i}/{kk}": leaf for (i, kk), leaf in leaves_a.items()}
            tiles_b = {f"{kk}/{j}": leaf for (kk, j), leaf in leaves_b.items()}
            price = job_price(plan, mirrored, self._price_per_block, self._validator_fee)
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
            self._inputs.keep(job_id, (mem_a, mem_b))
            with self._store.transaction():
                self._store.create_job(job_id, consumer, spec, shards, state="sharded")
                self._ledger.escrow(consumer, job_id, price)
            self._polls.notify()
            return self.submitted(job_id, spec)

    def submitted(self, job_id: str, spec: JobSpec) -> dict[str, Any]:
        """The reply to a job's submission (the same on a retry)."""
        plan, grid = self._inputs.plan(job_id, spec)
        return {
            "job_id": job_id,
            "price": spec.price,
            "grid": list(grid.shape),
            "block_products": len(grid.blocks()),
            "audit_volume": plan.audit_volume,
            "redundancy": spec.redundancy,
            "commitments": {"a": spec.commit_a, "b": spec.commit_b},
        }
