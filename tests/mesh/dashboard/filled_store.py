"""A coordinator's state filled directly through the store's and the ledger's API, for the
dashboard's tests and its benchmark (bench/bench_dashboard.py): registered nodes with accounts,
settled jobs whose shards went through claim, commit, reveal and acceptance, a few running, a
disputed job whose dispute was upheld with a fraud proof (its verdict in the blob store) and its
cheater slashed and banned, an open dispute, and a failed job with its reason."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ramnet.mesh.state import node_queries
from ramnet.mesh.state.blobs import BlobStore
from ramnet.mesh.state.ledger import Ledger
from ramnet.mesh.state.records import DisputeClaims, DisputeOutcome, JobSpec, NewShard
from ramnet.mesh.state.store import Store

EDGES = ((0, 256, 512), (0, 256, 512), (0, 256, 512))
BLOCKS = [[(i, j, k) for k in range(2)] for i in range(2) for j in range(2)]
#: A fake, recognisable salt: no page may ever show it.
SECRET_SALT = "5a17" * 8
PAYOUT = "0x52908400098527886E0F7030069857D2E4169EE7"


def hex_id(label: str) -> str:
    """A node id (64 hex digits) derived from ``label``."""
    return hashlib.blake2b(label.encode(), digest_size=32).hexdigest()


@dataclass
class Filled:
    """What was put in the store."""

    nodes: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    disputed: str = ""
    open_dispute: str = ""
    failed: str = ""
    cheater: str = ""
    validator: str = ""
    consumer: str = ""


def _spec(index: int) -> JobSpec:
    tiles = {f"{i}/{k}": hex_id(f"tile {index} {i} {k}") for i in range(2) for k in range(2)}
    return JobSpec(
        m=512,
        k=512,
        n=512,
        dtype="int8",
        out_dtype="int32",
        nodes=3,
        edges=EDGES,
        tiles_a=tiles,
        tiles_b=tiles,
        audit_salt=SECRET_SALT,
        price=24,
        request_id=f"request-{index}",
    )


def _job(store: Store, ledger: Ledger, filled: Filled, index: int, t: float) -> str:
    job_id = f"job-{index:04d}-" + hex_id(f"job {index}")[:20]
    shards = [NewShard(slot, [tuple(b) for b in BLOCKS[slot]]) for slot in range(3)]
    store.create_job(job_id, filled.consumer, _spec(index), shards, now=t)
    ledger.escrow(filled.consumer, job_id, 24, now=t)
    return job_id


def _work(store: Store, job_id: str, workers: list[str], t: float, *, reveal: bool = True) -> None:
    for worker in workers:
        shard = store.next_shard_for(worker, now=t)
        # Running jobs come last: the second may hand a worker the first one's pending shard.
        assert shard is not None, (worker, job_id)
        store.record_commit(shard.shard_id, worker, hex_id(f"commit {shard.shard_id}"), now=t + 1)
        if reveal:
            store.record_reveal(shard.shard_id, worker, hex_id(f"rev {shard.shard_id}"), now=t + 2)


def fill_store(
    data_dir: Path,
    *,
    nodes: int = 30,
    jobs: int = 200,
    now: float | None = None,
    live: bool = True,
) -> Filled:
    """Fill a coordinator's data folder (``state.sqlite`` and ``blobs/``).

    Args:
        data_dir: The folder (created).
        nodes: Registered nodes (at least 8): three validators, one consumer, workers.
        jobs: Jobs in all (at least 6): one disputed and upheld, one with an open dispute, one
            failed, two running, the rest settled.
        now: The newest job's time (default: now); jobs are 20 s apart before it.
        live: Whether there are running jobs and an open dispute. Without them (False: they
            are settled too), a real coordinator and real workers can work on top of this
            history and nothing in it waits for a node.

    Returns:
        What it holds.
    """
    assert nodes >= 8 and jobs >= 6
    now = time.time() if now is None else now
    data_dir.mkdir(parents=True, exist_ok=True)
    filled = Filled()
    start = now - 20.0 * jobs
    store = Store(data_dir / "state.sqlite", synchronous="NORMAL", node_timeout=1e9, claim_yield=0)
    ledger = Ledger(store)
    blobs = BlobStore(data_dir / "blobs")
    try:
        for i in range(nodes):
            node = hex_id(f"node {i}")
            validator = i < 3
            store.register_node(
                node, validator=validator, payout_address=PAYOUT if i % 4 == 0 else None, now=start
            )
            ledger.grant(node, 1_000_000, now=start)
            if i != 3:
                ledger.stake(node, 100, now=start)
            filled.nodes.append(node)
        filled.validator = filled.nodes[0]
        filled.consumer = filled.nodes[3]
        workers = filled.nodes[4:]
        filled.cheater = workers[-1]
        special = {jobs - 1: "running", jobs - 2: "running", jobs - 3: "open", jobs - 4: "failed"}
        if not live:
            special = {jobs - 4: "failed"}
        special[jobs // 2] = "disputed"
        for index in range(jobs):
            t = start + 20.0 * index
            job_id = _job(store, ledger, filled, index, t)
            kind = special.get(index, "settled")
            trio = [workers[(index + d) % (len(workers) - 1)] for d in range(3)]
            if kind == "running":
                _work(store, job_id, trio[:2], t, reveal=index % 2 == 0)
                store.set_job_state(job_id, "dispatched", now=t + 3)
                filled.running.append(job_id)
                continue
            if kind == "failed":
                store.set_job_state(job_id, "failed", now=t + 5)
                with store.transaction() as conn:
                    conn.execute(
                        "UPDATE jobs SET reason = ? WHERE job_id = ?",
                        ("an input tile's blob was damaged", job_id),
                    )
                filled.failed = job_id
                continue
            if kind == "disputed":
                trio[2] = filled.cheater
            _work(store, job_id, trio, t)
            shards = store.list_shards(job_id)
            if kind == "open":
                store.set_job_state(job_id, "disputed", now=t + 4)
                claims = DisputeClaims(
                    round=0, failed=[(trio[2], (1, 0, 0))], blocks=[(1, 0, 0)], slots={}
                )
                store.open_dispute(job_id, claims, validator=filled.nodes[1], now=t + 4)
                filled.open_dispute = job_id
                continue
            if kind == "disputed":
                claims = DisputeClaims(
                    round=0,
                    failed=[(filled.cheater, (1, 1, 0))],
                    blocks=[(1, 1, 0)],
                    slots={"2": filled.cheater},
                )
                dispute = store.open_dispute(job_id, claims, validator=filled.validator, now=t + 4)
                fraud = {
                    "node": filled.cheater,
                    "copy": 0,
                    "block": [1, 1, 0],
                    "row": 300,
                    "col": 260,
                    "claimed": 7,
                    "correct": -12,
                }
                verdict = blobs.put(
                    json.dumps({"validator": filled.validator, "frauds": [fraud]}).encode()
                )
                with store.transaction():
                    ledger.slash(filled.cheater, filled.validator, 0.5, job_id, now=t + 6)
                    store.set_banned(filled.cheater, True, now=t + 6)
                    store.resolve_dispute(
                        dispute.dispute_id,
                        DisputeOutcome("upheld", [filled.cheater]),
                        verdict_digest=verdict,
                        now=t + 6,
                    )
                filled.disputed = job_id
                shards = [s for s in shards if s.node_id != filled.cheater]
            for shard in shards:
                store.set_shard_state(shard.shard_id, "accepted", now=t + 8)
                assert shard.node_id is not None
                ledger.pay(job_id, shard.node_id, 8, now=t + 8)
            store.set_job_state(job_id, "settled", now=t + 9)
            filled.settled.append(job_id)
        with store.transaction() as conn:
            node_queries.record_seen(conn, {node: now - 3 for node in filled.nodes})
    finally:
        store.close()
    return filled
