"""Reveals signed over their commitment: the signature covers the commitment the worker signed at
commit time instead of the reveal body's hash, the coordinator checks the partials against it, and
neither side hashes the body for the signature. A real uvicorn server on 127.0.0.1 for the API;
the coordinator's write-behind naming without HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from ramnet import orchid
from ramnet.mesh import MeshClient
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.nodes.client import MeshRequestError
from ramnet.mesh.protocol import routes
from ramnet.mesh.protocol.auth import AuthError, bound_by, sign_request
from ramnet.mesh.protocol.messages import CommitRequest, JobSubmission, RegisterRequest
from ramnet.mesh.protocol.wire import pack
from ramnet.mesh.rules.shard import compute_shard, result_digest, tile_map
from ramnet.mesh.state.blobs import blob_digest
from ramnet.orchid import BlockProduct
from ramnet.valkyrie import NodeKey
from tests.mesh_server import served


def test_bound_by_names_the_commitment() -> None:
    digest = "ab" * 32
    assert bound_by(digest) == f"commitment:{digest}"
    for bad in ("AB" * 32, "ab" * 31, "ab" * 32 + "\n", 7):
        with pytest.raises(AuthError) as caught:
            bound_by(bad)  # type: ignore[arg-type]
        assert caught.value.http_status == 400


@pytest.fixture
def served_coordinator(tmp_path: Path) -> Iterator[tuple[str, Coordinator]]:
    # Results stay in memory for a minute, so what a reveal recorded can be looked at.
    config = CoordinatorConfig(data_dir=tmp_path / "state", max_body=16 << 20, write_behind=60)
    coordinator = Coordinator(config)
    with served(coordinator) as url:
        yield url, coordinator


class _Worker:
    """A worker's steps by hand: claim, compute, commit; then reveals of any making."""

    def __init__(self, url: str) -> None:
        self.key = NodeKey.generate()
        self.url = url
        self.client = MeshClient(url, self.key, retry_for=5)
        self.client.post_json(routes.url("register"), {"bond": 0})

    def claim_and_commit(self) -> None:
        meta, arrays = self.client.get_wire(routes.url("claim", {"wait": 0}))
        self.shard = str(meta["shard_id"])
        blocks = [BlockProduct(*b) for b in meta["blocks"]]
        partials = compute_shard(blocks, tile_map(arrays, "a"), tile_map(arrays, "b"))
        self.payload = {f"p/{b.i}/{b.j}/{b.k}": x for b, x in partials.items()}
        self.commitment = result_digest(partials).hex()
        self.client.post_json(
            routes.url("shard_commit", shard_id=self.shard), {"digest": self.commitment}
        )

    def reveal(
        self,
        signed_over: str | None,
        payload: dict[str, np.ndarray] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> tuple[httpx.Response, bytes, dict[str, str]]:
        """POST a reveal signed over ``signed_over`` (None: the body's hash)."""
        meta = {"shard_id": self.shard} if meta is None else meta
        body = pack(meta, self.payload if payload is None else payload)
        path = routes.url("shard_reveal", shard_id=self.shard)
        headers = {
            **sign_request(self.key, "POST", path, body, body_hash=signed_over),
            "Content-Type": "application/vnd.ramnet.wire",
        }
        return httpx.post(f"{self.url}{path}", content=body, headers=headers), body, headers


def _job(url: str) -> tuple[list[_Worker], str, np.ndarray]:
    workers = [_Worker(url) for _ in range(3)]
    consumer = MeshClient(url, NodeKey.generate(), retry_for=5)
    consumer.post_json(routes.url("register"), {"bond": 0})
    a, b = orchid.random_operands(60, 50, 40, "int8", seed=4)
    job_id = consumer.post_wire(
        routes.url("submit_job"), {"nodes": 3, "request_id": "r"}, {"A": a, "B": b}
    )
    for worker in workers:
        worker.claim_and_commit()
    exact = a.astype(np.int64) @ b.astype(np.int64)
    return workers, str(job_id["job_id"]), exact


def test_a_reveal_signed_over_its_commitment_is_checked_against_it(
    served_coordinator: tuple[str, Coordinator],
) -> None:
    url, coordinator = served_coordinator
    workers, job_id, exact = _job(url)
    first, second, third = workers

    def state(worker: _Worker) -> str:
        return coordinator.store.get_shard(int(worker.shard)).state

    # Signed over another commitment (or another shard's): refused, nothing recorded.
    for wrong in ("0" * 64, second.commitment):
        response, _, _ = first.reveal(bound_by(wrong))
        assert response.status_code == 401, response.text
    assert state(first) == "committed"
    # What the commitment does not bind may not ride along: other arrays, other metadata.
    extra = {**first.payload, "junk": np.zeros(3, np.int8)}
    response, _, _ = first.reveal(bound_by(first.commitment), payload=extra)
    assert response.status_code == 400 and "besides" in response.json()["error"]
    response, _, _ = first.reveal(bound_by(first.commitment), meta={"shard_id": "1", "x": 1})
    assert response.status_code == 400 and "metadata" in response.json()["error"]
    assert state(first) == "committed"
    # The right commitment: accepted, and the body was never hashed: its result is known by a
    # provisional name until it is written.
    response, body, headers = first.reveal(bound_by(first.commitment))
    assert response.status_code == 200, response.text
    name = str(coordinator.store.get_shard(int(first.shard)).result_digest)
    assert name != blob_digest(body) and name in coordinator.results.provisional
    # The same request again is a replay.
    path = routes.url("shard_reveal", shard_id=first.shard)
    again = httpx.post(f"{url}{path}", content=body, headers=headers)
    assert again.status_code == 409 and "replayed" in again.json()["error"]
    # A reveal signed over its body, as before, still works: named by the body's hash.
    response, body, _ = second.reveal(None)
    assert response.status_code == 200, response.text
    assert coordinator.store.get_shard(int(second.shard)).result_digest == blob_digest(body)
    # MeshClient signs over the commitment when told to; the job settles with the right C.
    third.client.post_wire(
        routes.url("shard_reveal", shard_id=third.shard),
        {"shard_id": third.shard},
        third.payload,
        signed_body=bound_by(third.commitment),
    )
    assert coordinator.status(job_id)["state"] == "settled"
    np.testing.assert_array_equal(coordinator.result(job_id)[1]["C"], exact)


def test_partials_that_differ_from_the_signed_commitment_are_rejected(
    served_coordinator: tuple[str, Coordinator],
) -> None:
    url, coordinator = served_coordinator
    workers, _, _ = _job(url)
    worker = workers[0]
    forged = {name: x.copy() for name, x in worker.payload.items()}
    name = next(iter(forged))
    forged[name][0, 0] += 1
    response, _, _ = worker.reveal(bound_by(worker.commitment), payload=forged)
    assert response.status_code == 409 and "commitment" in response.json()["error"]
    shard = coordinator.store.get_shard(int(worker.shard))
    assert shard.state == "rejected" and shard.result_digest is None
    with pytest.raises(MeshRequestError):
        worker.client.post_wire(
            routes.url("shard_reveal", shard_id=worker.shard),
            {"shard_id": worker.shard},
            worker.payload,
            signed_body=bound_by(worker.commitment),
        )


def test_a_provisionally_named_result_is_renamed_when_written(tmp_path: Path) -> None:
    # Without HTTP: a reveal whose body was not hashed waits in memory under a provisional name;
    # written by the write-behind, it is hashed then, stored, and its shard names the blob.
    config = CoordinatorConfig(data_dir=tmp_path, default_credit=1000, write_behind=0.2)
    coord = Coordinator(config)
    try:
        workers = [NodeKey.generate().node_id for _ in range(3)]
        consumer = NodeKey.generate().node_id
        for node in [*workers, consumer]:
            coord.register(node, RegisterRequest(bond=0))
        a, b = orchid.random_operands(40, 30, 20, "int16", seed=8)
        job = JobSubmission(nodes=3, request_id="x")
        job_id = coord.submit(consumer, job, {"A": a, "B": b})["job_id"]
        work = []
        for w in workers:
            meta, arrays = coord.claim(w)
            blocks = [BlockProduct(*x) for x in meta["blocks"]]
            partials = compute_shard(blocks, tile_map(arrays, "a"), tile_map(arrays, "b"))
            coord.commit(w, meta["shard_id"], CommitRequest(digest=result_digest(partials).hex()))
            work.append((w, meta["shard_id"], partials))
        w, s, partials = work[0]
        payload = {f"p/{x.i}/{x.j}/{x.k}": v for x, v in partials.items()}
        body = pack({"shard_id": s}, payload)
        coord.reveal(w, s, payload, body, None)
        provisional = str(coord.store.get_shard(int(s)).result_digest)
        assert provisional in coord.results.provisional and not coord.blobs.has(provisional)
        assert coord.shard_view(w, s)["stored"] is False
        deadline = time.monotonic() + 10
        while coord.store.get_shard(int(s)).result_digest == provisional:
            assert time.monotonic() < deadline, "the result was not written"
            time.sleep(0.05)
        assert coord.store.get_shard(int(s)).result_digest == blob_digest(body)
        assert coord.blobs.get(blob_digest(body)) == body
        assert coord.results.provisional == {} and coord.shard_view(w, s)["stored"] is True
        for w, s, partials in work[1:]:
            coord.reveal(w, s, {f"p/{x.i}/{x.j}/{x.k}": v for x, v in partials.items()})
        assert coord.status(job_id)["state"] == "settled"
        exact = a.astype(np.int64) @ b.astype(np.int64)
        np.testing.assert_array_equal(coord.result(job_id)[1]["C"], exact)
    finally:
        coord.close()
