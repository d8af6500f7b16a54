"""Disputes always end (issue 17): with no eligible validator for ``validator_wait`` seconds the
coordinator recomputes the contested blocks and judges them itself with the validator's rule; a
drawn validator that goes silent is replaced; what cannot be upheld fails the job with a reason."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ramnet import orchid
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.nodes.worker import _misbehave
from ramnet.mesh.protocol.messages import CommitRequest, JobSubmission, RegisterRequest, Verdict
from ramnet.mesh.rules.disputes import coordinator_verdict, validation_package
from ramnet.mesh.rules.shard import compute_shard, result_digest
from ramnet.mesh.state.errors import ShardStateError
from ramnet.orchid import BlockProduct
from ramnet.valkyrie import NodeKey
from tests.mesh.coordinator.test_service import _commit_and_reveal, _work

BOND = 40


def _disputed_job(
    coord: Coordinator, validators: int = 0
) -> tuple[str, list[str], str, str, list[str], np.ndarray]:
    # Three workers, one of which cheats, and a consumer: the job ends up disputed.
    workers = [NodeKey.generate().node_id for _ in range(3)]
    checkers = [NodeKey.generate().node_id for _ in range(validators)]
    consumer = NodeKey.generate().node_id
    for w in workers:
        coord.register(w, RegisterRequest(bond=BOND))
    for v in checkers:
        coord.register(v, RegisterRequest(bond=BOND, validator=True))
    coord.register(consumer, RegisterRequest(bond=0))
    a, b = orchid.random_operands(60, 50, 40, "int8", seed=11)
    job = coord.submit(consumer, JobSubmission(nodes=3), {"A": a, "B": b})["job_id"]
    work = {w: _work(coord, w) for w in workers}
    cheater = workers[2]
    shard, honest = work[cheater]
    work[cheater] = (shard, _misbehave("off-by-one", honest, []))
    _commit_and_reveal(coord, work)
    assert coord.status(job)["state"] == "disputed"
    exact = a.astype(np.int64) @ b.astype(np.int64)
    return job, workers, cheater, consumer, checkers, exact


def _recompute_on_a_new_node(coord: Coordinator, job: str) -> str:
    # The cheater's slot goes to a node new to the job (a job's slots go to distinct nodes).
    spare = NodeKey.generate().node_id
    coord.register(spare, RegisterRequest(bond=BOND))
    s, p = _work(coord, spare)
    coord.commit(spare, s, CommitRequest(digest=result_digest(p).hex()))
    coord.reveal(spare, s, {f"p/{x.i}/{x.j}/{x.k}": v for x, v in p.items()})
    return spare


def _accounts(coord: Coordinator) -> dict[str, Any]:
    return {x["node_id"]: x for x in coord.ledger.show()["accounts"]}


def test_a_dispute_without_validators_is_settled_by_the_coordinator(tmp_path: Path) -> None:
    coord = Coordinator(CoordinatorConfig(data_dir=tmp_path, validator_wait=600.0))
    try:
        job, workers, cheater, consumer, _, exact = _disputed_job(coord)
        (dispute,) = coord.store.list_disputes(job)
        assert dispute.validator is None
        # Its status says so, and when the coordinator steps in.
        waiting = coord.status(job)["waiting"]
        assert "waiting for an eligible validator" in waiting and "settles it itself" in waiting
        # Not before validator_wait: the dispute waits for a validator.
        assert coord.disputes.tend(now=dispute.created_at + 599) == []
        assert coord.store.get_dispute(dispute.dispute_id).state == "open"
        assert coord.disputes.tend(now=dispute.created_at + 600) == [dispute.dispute_id]
        resolved = coord.store.get_dispute(dispute.dispute_id)
        assert resolved.outcome is not None
        assert resolved.outcome.as_json() == {"outcome": "upheld", "slashed": [cheater]}
        assert resolved.verdict_digest is not None
        record = json.loads(coord.blobs.get(resolved.verdict_digest))
        assert record["judged_by"] == "coordinator" and record["validator"] is None
        assert {f["node"] for f in record["frauds"]} == {cheater}
        assert coord.store.get_node(cheater).banned
        assert coord.disputes.tend(now=dispute.created_at + 10_000) == []  # once only
        _recompute_on_a_new_node(coord, job)
        assert coord.status(job)["state"] == "settled"
        np.testing.assert_array_equal(coord.result(job)[1]["C"], exact)
        ledger = coord.ledger.show()
        accounts = _accounts(coord)
        assert ledger["totals"]["conserved"] and ledger["totals"]["escrow"] == 0
        assert accounts[cheater]["slashed"] == BOND and accounts[cheater]["bond"] == 0
        assert all(accounts[w]["slashed"] == 0 for w in workers if w != cheater)
        # No validator fee was paid: the consumer paid exactly what the workers earned.
        spent = 1_000_000 - accounts[consumer]["balance"]
        earned = sum(
            x["balance"] + x["bond"] + x["slashed"] - 1_000_000
            for n, x in accounts.items()
            if n != consumer
        )
        assert spent == earned > 0
    finally:
        coord.close()


def test_the_watch_settles_it_in_time_without_being_asked(tmp_path: Path) -> None:
    coord = Coordinator(CoordinatorConfig(data_dir=tmp_path, validator_wait=0.5))
    try:
        job, _, cheater, _, _, exact = _disputed_job(coord)
        (dispute,) = coord.store.list_disputes(job)
        deadline = time.monotonic() + 60  # generous: the watch looks every second
        while coord.store.get_dispute(dispute.dispute_id).state == "open":
            assert time.monotonic() < deadline, "the dispute never ended"
            time.sleep(0.1)
        assert coord.store.get_node(cheater).banned
        _recompute_on_a_new_node(coord, job)
        assert coord.status(job)["state"] == "settled"
        np.testing.assert_array_equal(coord.result(job)[1]["C"], exact)
    finally:
        coord.close()


def test_a_silent_validator_is_replaced_by_the_fallback(tmp_path: Path) -> None:
    coord = Coordinator(CoordinatorConfig(data_dir=tmp_path, validator_wait=5.0))
    try:
        job, _, _, _, (silent,), exact = _disputed_job(coord, validators=1)
        (dispute,) = coord.store.list_disputes(job)
        assert dispute.validator == silent  # drawn: it is live and no party to the job
        # It fetches the package, then says nothing for longer than node_timeout (15 s).
        meta, _ = coord.validation(silent)
        assert meta["dispute_id"] == dispute.dispute_id
        later = time.time() + coord.config.node_timeout + 1
        assert coord.disputes.tend(now=later) == [dispute.dispute_id]
        resolved = coord.store.get_dispute(dispute.dispute_id)
        assert resolved.validator is None and resolved.outcome is not None
        assert resolved.outcome.outcome == "upheld"
        # Its late verdict is refused; it is not slashed for being slow.
        with pytest.raises(ShardStateError):
            coord.verdict(silent, dispute.dispute_id, Verdict(frauds=[]))
        _recompute_on_a_new_node(coord, job)
        assert coord.status(job)["state"] == "settled"
        np.testing.assert_array_equal(coord.result(job)[1]["C"], exact)
        assert _accounts(coord)[silent]["slashed"] == 0
        assert coord.ledger.show()["totals"]["conserved"]
    finally:
        coord.close()


def test_a_live_validator_still_judges_and_the_fallback_stays_out(tmp_path: Path) -> None:
    from tests.mesh.coordinator.test_service import _validate

    coord = Coordinator(CoordinatorConfig(data_dir=tmp_path, validator_wait=0.0))
    try:
        job, _, _, _, (checker,), _ = _disputed_job(coord, validators=1)
        (dispute,) = coord.store.list_disputes(job)
        assert coord.disputes.tend(now=dispute.created_at + 1) == []  # it has a validator
        assert _validate(coord, checker)["outcome"] == "upheld"
    finally:
        coord.close()


def test_the_dispute_of_a_job_that_ended_is_closed(tmp_path: Path) -> None:
    coord = Coordinator(CoordinatorConfig(data_dir=tmp_path, validator_wait=600.0))
    try:
        job, *_ = _disputed_job(coord, validators=1)
        (dispute,) = coord.store.list_disputes(job)
        assert dispute.validator is not None
        coord.store.set_job_state(job, "cancelled")  # its consumer gave up on it
        assert coord.disputes.tend() == []
        closed = coord.store.get_dispute(dispute.dispute_id)
        assert closed.state == "resolved" and closed.outcome is not None
        assert closed.outcome.outcome == "job cancelled"
        assert coord.validation(dispute.validator)[0]["dispute_id"] is None
    finally:
        coord.close()


# ---- the rule itself, with plain values ------------------------------------------------------


def _package(
    failed: list[tuple[str, Any]], dtype: str = "int8", wrong: str = "cheat"
) -> dict[str, Any]:
    a, b = orchid.random_operands(8, 6, 4, dtype, seed=3)
    tiles_a, tiles_b = {(0, 0): a}, {(0, 0): b}
    block = BlockProduct(0, 0, 0)
    good = compute_shard([block], tiles_a, tiles_b)[block]
    bad = good.copy()
    bad[1, 2] += 1
    reveals = {0: {block: good}, 1: {block: bad if wrong == "cheat" else good}}
    nodes_of = {0: "honest", 1: "cheat"}
    commits = {k: result_digest(dict(v)).hex() for k, v in reveals.items()}
    from ramnet.mesh.rules.tilecommit import commit_tiles

    roots = (commit_tiles("a", tiles_a, (1, 1))[0], commit_tiles("b", tiles_b, (1, 1))[0])
    meta, arrays = validation_package(
        1, "job", [(0, 0, 0)], tiles_a, tiles_b, reveals, nodes_of, commits, roots, (1, 1, 1)
    )
    verdict = coordinator_verdict(meta, arrays, failed, reveals, nodes_of, tiles_a, tiles_b)
    return {"verdict": verdict, "meta": meta}


def test_the_rule_upholds_exactly_the_failed_partials() -> None:
    verdict = _package([("cheat", (0, 0, 0))])["verdict"]
    assert verdict.failure is None and verdict.slashed == ["cheat"]
    assert [(f["node"], f["row"], f["col"]) for f in verdict.frauds] == [("cheat", 1, 2)]


@pytest.mark.parametrize(
    ("failed", "wrong", "why"),
    [
        ([], "cheat", "no partial failed"),
        ([("honest", (0, 0, 0))], "cheat", "does not confirm"),
        ([("cheat", (0, 0, 0))], "none", "does not confirm"),
    ],
)
def test_the_rule_refuses_what_it_cannot_uphold(
    failed: list[tuple[str, Any]], wrong: str, why: str
) -> None:
    verdict = _package(failed, wrong=wrong)["verdict"]
    assert verdict.slashed == [] and verdict.failure is not None and why in verdict.failure


def test_the_rule_refuses_a_floating_point_dispute() -> None:
    verdict = _package([("cheat", (0, 0, 0))], dtype="float32")["verdict"]
    assert verdict.slashed == [] and verdict.failure is not None
    assert "floating point" in verdict.failure
