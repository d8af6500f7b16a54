"""A consumer's jobs: listed, named by a unique prefix, cancelled with the unspent escrow refunded
(in the service, and over HTTP with real signed requests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ramnet import orchid
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.nodes import consumer as _consumer
from ramnet.mesh.nodes.client import MeshClient, MeshRequestError
from ramnet.mesh.protocol.messages import (
    CancelRequest,
    CommitRequest,
    JobSubmission,
    RegisterRequest,
)
from ramnet.mesh.rules.shard import compute_shard, result_digest
from ramnet.mesh.state.errors import (
    NotAllowedError,
    NotFoundError,
    ShardStateError,
    StoreConflictError,
    StoreInputError,
)
from ramnet.orchid import BlockProduct
from ramnet.valkyrie import NodeKey
from tests.mesh_server import served


@pytest.fixture
def coord(tmp_path: Path) -> Iterator[Coordinator]:
    coordinator = Coordinator(CoordinatorConfig(data_dir=tmp_path, default_credit=1000))
    yield coordinator
    coordinator.close()


def _submit(coord: Coordinator, consumer: str, seed: int = 1) -> str:
    coord.register(consumer, RegisterRequest())
    a, b = orchid.random_operands(48, 40, 32, "int8", seed=seed)
    return str(coord.submit(consumer, JobSubmission(nodes=3), {"A": a, "B": b})["job_id"])


def _tiles(arrays: dict[str, np.ndarray], kind: str) -> dict[tuple[int, int], np.ndarray]:
    return {
        (int(name.split("/")[1]), int(name.split("/")[2])): x
        for name, x in arrays.items()
        if name.startswith(kind + "/")
    }


def _work(coord: Coordinator, node: str) -> tuple[str, dict[BlockProduct, np.ndarray]]:
    meta, arrays = coord.claim(node)
    blocks = [BlockProduct(*b) for b in meta["blocks"]]
    return meta["shard_id"], compute_shard(blocks, _tiles(arrays, "a"), _tiles(arrays, "b"))


def test_cancel_refunds_the_escrow_and_no_node_works_on_the_job_again(coord: Coordinator) -> None:
    consumer = NodeKey.generate().node_id
    job_id = _submit(coord, consumer)
    price = coord.status(job_id)["price"]
    assert coord.ledger.account(consumer)["balance"] == 1000 - price
    workers = [NodeKey.generate().node_id for _ in range(3)]
    for w in workers:
        coord.register(w, RegisterRequest(bond=10, instance=w[:6]))
    held, partials = _work(coord, workers[0])  # one worker holds a shard when the job goes
    reply = coord.cancel(consumer, job_id[:8], CancelRequest(reason="wrong operands"))
    assert reply == {"job_id": job_id, "state": "cancelled", "refunded": price}
    status = coord.status(job_id)
    assert status["state"] == "cancelled"
    assert status["reason"] == "cancelled by its consumer: wrong operands"
    assert status["waiting"] is None
    assert coord.ledger.account(consumer)["balance"] == 1000
    totals = coord.ledger.show()["totals"]
    assert totals["escrow"] == 0 and totals["conserved"] is True
    # Its pending shards are not handed out; the holder's commit is refused, saying why.
    assert coord.claim(workers[1])[0]["shard_id"] is None
    with pytest.raises(ShardStateError, match=f"job {job_id} was cancelled .* no longer wanted"):
        coord.commit(workers[0], held, CommitRequest(digest=result_digest(partials).hex()))
    # Cancelling again answers the same, and refunds nothing more.
    assert coord.cancel(consumer, job_id) == reply
    assert coord.ledger.account(consumer)["balance"] == 1000


def test_only_the_consumer_may_cancel_and_a_settled_job_cannot_be(coord: Coordinator) -> None:
    consumer, other = NodeKey.generate().node_id, NodeKey.generate().node_id
    job_id = _submit(coord, consumer)
    with pytest.raises(NotAllowedError, match="another consumer"):
        coord.cancel(other, job_id)
    workers = [NodeKey.generate().node_id for _ in range(3)]
    for w in workers:
        coord.register(w, RegisterRequest(bond=10))
    work = {w: _work(coord, w) for w in workers}
    for w, (shard, partials) in work.items():
        coord.commit(w, shard, CommitRequest(digest=result_digest(partials).hex()))
    for w, (shard, partials) in work.items():
        coord.reveal(w, shard, {f"p/{x.i}/{x.j}/{x.k}": v for x, v in partials.items()})
    assert coord.status(job_id)["state"] == "settled"
    before = coord.ledger.show()
    with pytest.raises(StoreConflictError, match="settled; it cannot be cancelled") as caught:
        coord.cancel(consumer, job_id)
    assert caught.value.http_status == 409
    assert coord.ledger.show() == before


def test_a_prefix_names_one_job_or_is_refused_in_one_line(coord: Coordinator) -> None:
    consumer = NodeKey.generate().node_id
    job_id = _submit(coord, consumer)
    spec = coord.store.get_job(job_id).spec
    for twin in ("abcdef01" + "0" * 24, "abcdef02" + "0" * 24):
        coord.store.create_job(twin, consumer, spec)
    assert coord.jobs.resolve(job_id[:6]) == job_id
    assert coord.jobs.resolve("abcdef01") == "abcdef01" + "0" * 24
    with pytest.raises(StoreInputError, match="'abcdef' matches 2 jobs"):
        coord.jobs.resolve("abcdef")
    with pytest.raises(StoreInputError, match="too short: give at least 6 hex digits"):
        coord.jobs.resolve(job_id[:5])
    with pytest.raises(NotFoundError, match="no job 0123456789"):
        coord.jobs.resolve("0123456789")


def test_list_shows_the_callers_jobs_newest_first(coord: Coordinator) -> None:
    consumer, other = NodeKey.generate().node_id, NodeKey.generate().node_id
    first = _submit(coord, consumer, seed=1)
    second = _submit(coord, consumer, seed=2)
    _submit(coord, other, seed=3)
    jobs = coord.job_list(consumer)["jobs"]
    assert [j["job_id"] for j in jobs] == [second, first]
    assert jobs[0]["shape"] == [48, 40, 32] and jobs[0]["dtype"] == "int8"
    assert jobs[0]["nodes"] == 3 and jobs[0]["state"] == "sharded" and jobs[0]["reason"] is None


def test_list_and_cancel_over_http(tmp_path: Path) -> None:
    coordinator = Coordinator(CoordinatorConfig(data_dir=tmp_path, default_credit=1000))
    with served(coordinator) as url:
        owner = MeshClient(url, NodeKey.generate(), retry_for=5)
        stranger = MeshClient(url, NodeKey.generate(), retry_for=5)
        stranger.post_json("/v1/nodes", {"bond": 0})
        a, b = orchid.random_operands(40, 32, 24, "int8", seed=4)
        job_id = _consumer.submit(owner, a, b, 3)
        assert [j["job_id"] for j in _consumer.list_jobs(owner)] == [job_id]
        assert _consumer.list_jobs(stranger) == []
        assert _consumer.status(owner, job_id[:7])["job_id"] == job_id
        with pytest.raises(MeshRequestError, match=r"403 job .* belongs to another consumer"):
            _consumer.cancel(stranger, job_id)
        reply = _consumer.cancel(owner, job_id[:6])
        assert reply["job_id"] == job_id and reply["state"] == "cancelled"
        assert reply["refunded"] == _consumer.status(owner, job_id)["price"]
        with pytest.raises(MeshRequestError, match=r"400 .*too short"):
            _consumer.status(owner, job_id[:4])
        # A consumer's long poll answers as soon as its job is cancelled, and says why.
        with pytest.raises(_consumer.MeshJobFailed, match="cancelled: cancelled by its consumer"):
            _consumer.wait(owner, job_id, timeout=30)
