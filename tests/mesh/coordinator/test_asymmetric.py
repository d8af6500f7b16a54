"""The asymmetric topology without HTTP: ``--no-prove`` workers post results without commit-
reveal, the job waits in ``optimistic``, an auditor settles it or reverts a bad result (its
author slashed, the shard recomputed); a lying auditor is caught. Also the store's upgrade from
schema version 1."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ramnet import orchid
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.nodes.worker import _misbehave
from ramnet.mesh.protocol.messages import AuditReport, JobSubmission, RegisterRequest
from ramnet.mesh.rules.audits import audit_findings
from ramnet.mesh.state.errors import ShardStateError
from ramnet.mesh.state.schema import SCHEMA_VERSION
from ramnet.mesh.state.store import Store
from ramnet.valkyrie import NodeKey
from tests.mesh.coordinator.test_service import _work


def _mesh(tmp_path: Path, spot_checks: float = 0.1) -> tuple[Coordinator, list[str], str, str]:
    config = CoordinatorConfig(data_dir=tmp_path, validator_fee=5, spot_checks=spot_checks)
    coord = Coordinator(config)
    workers = [NodeKey.generate().node_id for _ in range(4)]
    auditor, consumer = NodeKey.generate().node_id, NodeKey.generate().node_id
    for w in workers:
        coord.register(w, RegisterRequest(bond=30, prove=False))
    coord.register(auditor, RegisterRequest(bond=30))
    coord.register(consumer, RegisterRequest(bond=0))
    return coord, workers, auditor, consumer


def _post(coord: Coordinator, w: str, tamper: bool = False) -> None:
    s, p = _work(coord, w)
    if tamper:
        p = _misbehave("off-by-one", p, [])
    coord.submit_result(w, s, {f"p/{x.i}/{x.j}/{x.k}": v for x, v in p.items()})


def _audit(coord: Coordinator, auditor: str, lie: bool = False) -> dict[str, Any]:
    meta, arrays = coord.audit(auditor)
    assert meta["job_id"] is not None
    frauds, checked = audit_findings(meta, arrays)
    assert checked == sum(len(c["blocks"]) for c in meta["copies"])
    if lie:
        frauds = []  # clears whatever it found
    return coord.audit_report(auditor, meta["job_id"], AuditReport(frauds=frauds))


def test_unproven_results_wait_for_an_auditor_then_settle(tmp_path: Path) -> None:
    coord, workers, auditor, consumer = _mesh(tmp_path)
    a, b = orchid.random_operands(60, 50, 40, "int8", seed=1)
    job = coord.submit(consumer, JobSubmission(nodes=3), {"A": a, "B": b})["job_id"]
    for w in workers[:3]:
        _post(coord, w)
    assert coord.status(job)["state"] == "optimistic"
    with pytest.raises(ShardStateError, match="not settled"):
        coord.result(job)
    # A party to the job may not audit it; nor may anyone audit a job that is not optimistic.
    assert coord.audit(workers[0])[0]["job_id"] is None
    with pytest.raises(ShardStateError, match="party"):
        coord.audit_report(workers[0], job, AuditReport(frauds=[]))
    assert _audit(coord, auditor)["outcome"] == "settled"
    assert coord.status(job)["state"] == "settled"
    np.testing.assert_array_equal(
        coord.result(job)[1]["C"], a.astype(np.int64) @ b.astype(np.int64)
    )
    with pytest.raises(ShardStateError, match="not awaiting an audit"):
        coord.audit_report(auditor, job, AuditReport(frauds=[]))
    ledger = coord.ledger.show()
    accounts = {x["node_id"]: x for x in ledger["accounts"]}
    assert ledger["totals"]["conserved"] and ledger["totals"]["escrow"] == 0
    assert accounts[auditor]["balance"] == 1_000_000 - 30 + 5  # the job's fee
    assert all(accounts[w]["balance"] > 1_000_000 - 30 for w in workers[:3])
    coord.close()


def test_a_bad_optimistic_result_is_reverted_and_recomputed(tmp_path: Path) -> None:
    coord, workers, auditor, consumer = _mesh(tmp_path)
    a, b = orchid.random_operands(60, 50, 40, "int16", seed=2)
    job = coord.submit(consumer, JobSubmission(nodes=3), {"A": a, "B": b})["job_id"]
    cheater = workers[1]
    for w in workers[:3]:
        _post(coord, w, tamper=w == cheater)
    assert coord.status(job)["state"] == "optimistic"
    reply = _audit(coord, auditor)
    assert reply == {"job_id": job, "outcome": "reverted", "slashed": [cheater]}
    assert coord.status(job)["state"] == "dispatched"
    assert coord.store.get_node(cheater).banned
    # The cheater's slot goes to another worker; the job is optimistic again, then settles.
    _post(coord, workers[3])
    assert coord.status(job)["state"] == "optimistic"
    assert _audit(coord, auditor)["outcome"] == "settled"
    np.testing.assert_array_equal(
        coord.result(job)[1]["C"], a.astype(np.int64) @ b.astype(np.int64)
    )
    ledger = coord.ledger.show()
    accounts = {x["node_id"]: x for x in ledger["accounts"]}
    assert ledger["totals"]["conserved"]
    assert accounts[cheater]["slashed"] == 30 and accounts[cheater]["balance"] == 1_000_000 - 30
    assert accounts[auditor]["slashed"] == 0
    assert accounts[auditor]["balance"] == 1_000_000 - 30 + 15 + 5  # bounty, then the fee
    assert all(accounts[w]["slashed"] == 0 for w in workers if w != cheater)
    coord.close()


def test_a_lying_auditor_is_slashed_and_the_job_stays_optimistic(tmp_path: Path) -> None:
    coord, workers, auditor, consumer = _mesh(tmp_path, spot_checks=1.0)
    honest = NodeKey.generate().node_id
    coord.register(honest, RegisterRequest(bond=30))
    a, b = orchid.random_operands(40, 30, 20, "int8", seed=3)
    job = coord.submit(consumer, JobSubmission(nodes=3), {"A": a, "B": b})["job_id"]
    for w in workers[:3]:
        _post(coord, w, tamper=w == workers[0])
    assert _audit(coord, auditor, lie=True)["outcome"] == "auditor lied"
    assert coord.store.get_node(auditor).banned
    assert coord.status(job)["state"] == "optimistic"
    assert coord.audit(auditor)[0]["job_id"] is None  # banned
    assert _audit(coord, honest)["outcome"] == "reverted"
    accounts = {x["node_id"]: x for x in coord.ledger.show()["accounts"]}
    assert accounts[auditor]["slashed"] == 30 and accounts[honest]["slashed"] == 0
    assert coord.ledger.show()["totals"]["conserved"]
    coord.close()


def test_proving_nodes_cannot_skip_the_commitment(tmp_path: Path) -> None:
    coord, _, _, consumer = _mesh(tmp_path)
    prover = NodeKey.generate().node_id
    coord.register(prover, RegisterRequest(bond=0))
    a, b = orchid.random_operands(30, 20, 10, "int8", seed=4)
    coord.submit(consumer, JobSubmission(nodes=3), {"A": a, "B": b})
    s, p = _work(coord, prover)
    with pytest.raises(ShardStateError, match="commit, then reveal"):
        coord.submit_result(prover, s, {f"p/{x.i}/{x.j}/{x.k}": v for x, v in p.items()})
    coord.close()


def test_a_version_1_store_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    Store(path).close()
    raw = sqlite3.connect(path)
    # What version 1 looked like: no prove column (nor version 3's result_blob, nor version 4's
    # columns).
    raw.execute("ALTER TABLE nodes DROP COLUMN prove")
    raw.execute("ALTER TABLE jobs DROP COLUMN result_blob")
    for table, column in (("nodes", "last_seen"), ("nodes", "instance"), ("jobs", "reason")):
        raw.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    for column in ("payout_bound", "payout_binding"):  # nor version 5's
        raw.execute(f"ALTER TABLE nodes DROP COLUMN {column}")
    raw.execute(
        "INSERT INTO nodes (node_id, registered_at, updated_at) VALUES (?, 1, 1)", ("a" * 64,)
    )
    raw.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION == 7
    assert store.get_node("a" * 64).prove is True
    store.register_node("b" * 64, prove=False)
    assert store.get_node("b" * 64).prove is False
    store.close()
