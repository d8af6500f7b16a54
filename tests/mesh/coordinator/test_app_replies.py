"""Every reply the coordinator makes is its route's message, and encoding it through the message
gives the bytes the app sent before replies were typed (``json.dumps`` of the dict, compact): same
fields, same order, same values. The coordinator's methods are called directly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from ramnet import orchid
from ramnet.mesh.coordinator.payouts import with_payouts
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.nodes.worker import _misbehave
from ramnet.mesh.protocol import messages as m
from ramnet.mesh.protocol.routes import Json, Wire, openapi, route
from ramnet.mesh.rules.shard import compute_shard, result_digest, tile_map
from ramnet.orchid import BlockProduct
from ramnet.valkyrie import NodeKey


def _before(value: Any) -> bytes:
    # What the app sent before replies were typed: Starlette's JSONResponse for a JSON reply;
    # a wire reply's metadata goes through the same json.dumps call (wire.pack).
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _same_bytes(name: str, value: Any) -> None:
    reply = route(name).reply
    assert isinstance(reply, Json), name
    assert msgspec.json.encode(msgspec.convert(value, reply.message)) == _before(value), name


def _meta_conforms(name: str, meta: Any) -> None:
    # The metadata goes on the wire as the coordinator made it; checked against its message,
    # which holds all of it: nothing left out, nothing added, in the same order.
    reply = route(name).reply
    assert isinstance(reply, Wire), name
    assert msgspec.json.encode(msgspec.convert(meta, reply.meta)) == _before(meta), name


def _compute(coord: Coordinator, node: str) -> tuple[str, dict[BlockProduct, np.ndarray]]:
    meta, arrays = coord.claim(node)
    _meta_conforms("claim", meta)
    blocks = [BlockProduct(*b) for b in meta["blocks"]]
    return str(meta["shard_id"]), compute_shard(
        blocks, tile_map(arrays, "a"), tile_map(arrays, "b")
    )


def _named(partials: dict[BlockProduct, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"p/{b.i}/{b.j}/{b.k}": x for b, x in partials.items()}


def _job(coord: Coordinator, consumer: str, tag: str) -> str:
    a, b = orchid.random_operands(30, 20, 10, "int8", seed=2)
    submitted = coord.submit(consumer, m.JobSubmission(nodes=3, request_id=tag), {"A": a, "B": b})
    _same_bytes("submit_job", submitted)
    job_id = str(submitted["job_id"])
    _same_bytes("job_status", coord.status(job_id))
    return job_id


def test_every_reply_is_its_message_and_encodes_as_before(tmp_path: Path) -> None:
    coord = Coordinator(CoordinatorConfig(data_dir=tmp_path, write_behind=0))
    workers = [NodeKey.generate().node_id for _ in range(3)]
    consumer, validator, auditor = (NodeKey.generate().node_id for _ in range(3))
    for node in workers:
        _same_bytes(
            "register", coord.register(node, m.RegisterRequest(bond=20, payout_address="wallet"))
        )
    _same_bytes("register", coord.register(consumer, m.RegisterRequest()))
    _same_bytes("register", coord.register(validator, m.RegisterRequest(bond=20, validator=True)))
    _same_bytes("register", coord.register(auditor, m.RegisterRequest(bond=20)))
    _meta_conforms("claim", coord.claim(consumer)[0])  # no work: shard_id null
    _meta_conforms("next_validation", coord.validation(validator)[0])
    _meta_conforms("next_audit", coord.audit(auditor)[0])

    # An honest job, settled.
    job = _job(coord, consumer, "honest")
    work = {w: _compute(coord, w) for w in workers}
    for w, (shard, partials) in work.items():
        _same_bytes(
            "shard_commit",
            coord.commit(w, shard, m.CommitRequest(digest=result_digest(partials).hex())),
        )
        _same_bytes("shard_view", coord.shard_view(w, shard))
    for w, (shard, partials) in work.items():
        _same_bytes("shard_reveal", coord.reveal(w, shard, _named(partials)))
    _same_bytes("job_status", coord.status(job))
    _meta_conforms("job_result", coord.result(job)[0])

    # A job whose first worker cheats: disputed; a validator that clears it is told it lied.
    job = _job(coord, consumer, "disputed")
    work = {w: _compute(coord, w) for w in workers}
    cheat = workers[0]
    work[cheat] = (work[cheat][0], _misbehave("off-by-one", work[cheat][1], []))
    for w, (shard, partials) in work.items():
        coord.commit(w, shard, m.CommitRequest(digest=result_digest(partials).hex()))
    for w, (shard, partials) in work.items():
        coord.reveal(w, shard, _named(partials))
    disputed = coord.status(job)
    assert disputed["state"] == "disputed" and "reason" in disputed
    _same_bytes("job_status", disputed)
    meta, _ = coord.validation(validator)
    _meta_conforms("next_validation", meta)
    _same_bytes("verdict", coord.verdict(validator, int(meta["dispute_id"]), m.Verdict(frauds=[])))
    lied = coord.status(job)
    assert lied["disputes"][0]["outcome"] == {"outcome": "validator lied"}
    _same_bytes("job_status", lied)

    # A shard handed back.
    job = _job(coord, consumer, "released")
    shard, _ = _compute(coord, workers[1])
    _same_bytes("shard_release", coord.release(workers[1], shard))

    # The route adds each account's payout address and binding flag to the ledger's view.
    _same_bytes("ledger", with_payouts(coord.ledger.show(), coord.store))
    _same_bytes("health", {"status": "ok"})
    _same_bytes("openapi", openapi())
    coord.close()


def test_unproven_results_and_audits(tmp_path: Path) -> None:
    coord = Coordinator(CoordinatorConfig(data_dir=tmp_path))
    workers = [NodeKey.generate().node_id for _ in range(3)]
    consumer, auditor = NodeKey.generate().node_id, NodeKey.generate().node_id
    for node in workers:
        coord.register(node, m.RegisterRequest(bond=20, prove=False))
    coord.register(consumer, m.RegisterRequest())
    coord.register(auditor, m.RegisterRequest(bond=20))
    job = _job(coord, consumer, "unproven")
    for w in workers:
        shard, partials = _compute(coord, w)
        _same_bytes("shard_result", coord.submit_result(w, shard, _named(partials)))
        # Posted again (its first answer lost): the short reply, without "stored".
        again = coord.submit_result(w, shard, _named(partials))
        assert "stored" not in again
        _same_bytes("shard_result", again)
    meta, _ = coord.audit(auditor)
    _meta_conforms("next_audit", meta)
    _same_bytes("audit_report", coord.audit_report(auditor, job, m.AuditReport(frauds=[])))
    _same_bytes("job_status", coord.status(job))
    coord.close()


def test_every_message_is_in_the_document() -> None:
    # Each message is a route's body, or a part of one; none is left over.
    assert sorted(openapi()["components"]["schemas"]) == sorted(m.__all__)
