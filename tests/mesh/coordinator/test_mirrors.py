"""Mirror triads (``--redundancy mirror``): the same shards computed twice, a dead or slashed
worker's slot served by its mirror without a recompute, and the whole shard cross-checked."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ramnet import orchid
from ramnet._errors import InvalidInputError
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.protocol.messages import CommitRequest, JobSubmission, RegisterRequest
from ramnet.mesh.rules.plan import check_redundancy, planned_nodes
from ramnet.mesh.rules.shard import result_digest
from ramnet.orchid import BlockProduct
from ramnet.valkyrie import NodeKey
from tests.mesh.coordinator.test_service import _validate, _work


@pytest.mark.parametrize(
    ("nodes", "asked", "redundancy", "planned"),
    [
        (3, None, "none", 3),
        (6, None, "mirror", 3),
        (9, None, "mirror", 6),
        (12, None, "mirror", 6),
        (15, "mirror", "mirror", 9),
        (6, "none", "none", 6),
        (30, None, "mirror", 15),
    ],
)
def test_redundancy_defaults_and_plan_size(
    nodes: int, asked: str | None, redundancy: str, planned: int
) -> None:
    assert check_redundancy(asked, nodes) == redundancy
    assert planned_nodes(nodes, redundancy) == planned


@pytest.mark.parametrize(("value", "nodes"), [("mirror", 3), ("triple", 6), ("", 9)])
def test_bad_redundancy_is_refused(value: str, nodes: int) -> None:
    with pytest.raises(InvalidInputError, match="redundancy"):
        check_redundancy(value, nodes)


def _mesh(tmp_path: Path, workers: int = 3, **config: float) -> tuple[Coordinator, list[str], str]:
    coord = Coordinator(CoordinatorConfig(data_dir=tmp_path, **config))  # type: ignore[arg-type]
    nodes = [NodeKey.generate().node_id for _ in range(workers)]
    consumer = NodeKey.generate().node_id
    for node in nodes:
        coord.register(node, RegisterRequest(bond=40))
    coord.register(consumer, RegisterRequest(bond=0))
    return coord, nodes, consumer


Copies = dict[str, list[tuple[str, dict[BlockProduct, np.ndarray]]]]


def _claim_all(
    coord: Coordinator, workers: list[str], tamper: Callable[..., Any] | None = None
) -> Copies:
    # Each worker claims, computes and commits until nothing is left for it.
    held: Copies = {w: [] for w in workers}
    progress = True
    while progress:
        progress = False
        for w in workers:
            if coord.claim(w)[0]["shard_id"] is None:
                continue
            s, p = _work(coord, w)
            if tamper is not None:
                p = tamper(w, p)
            coord.commit(w, s, CommitRequest(digest=result_digest(p).hex()))
            held[w].append((s, p))
            progress = True
    return held


def _reveal_all(coord: Coordinator, held: Copies) -> None:
    for w, copies in held.items():
        for s, p in copies:
            if coord.store.get_shard(int(s)).state == "committed":
                coord.reveal(w, s, {f"p/{x.i}/{x.j}/{x.k}": v for x, v in p.items()})


def test_six_nodes_mirror_by_default_and_both_copies_are_paid(tmp_path: Path) -> None:
    # Issue 17: a job's copies go to distinct nodes, so six copies take six workers (three
    # workers held two copies each here before).
    coord, workers, consumer = _mesh(tmp_path, workers=6, price_per_block=1)
    a, b = orchid.random_operands(70, 60, 50, "int8", seed=2)
    job = coord.submit(consumer, JobSubmission(nodes=6), {"A": a, "B": b})
    assert job["redundancy"] == "mirror"
    shards = coord.store.list_shards(job_id=job["job_id"])
    assert sorted((s.role, s.slot) for s in shards) == [
        ("mirror", 0), ("mirror", 1), ("mirror", 2),
        ("primary", 0), ("primary", 1), ("primary", 2),
    ]  # fmt: skip
    held = _claim_all(coord, workers)
    assert sum(len(v) for v in held.values()) == 6
    assert all(len(copies) == 1 for copies in held.values()), "one copy per node"
    for copies in held.values():
        slots = {coord.store.get_shard(int(s)).slot for s, _ in copies}
        assert len(slots) == len(copies), "a node never holds both copies of one slot"
    _reveal_all(coord, held)
    assert coord.status(job["job_id"])["state"] == "settled"
    exact = a.astype(np.int64) @ b.astype(np.int64)
    np.testing.assert_array_equal(coord.result(job["job_id"])[1]["C"], exact)
    ledger = coord.ledger.show()
    assert ledger["totals"]["conserved"] and ledger["totals"]["escrow"] == 0
    accounts = {x["node_id"]: x for x in ledger["accounts"]}
    # Every copy is paid per block product it computed, and the consumer paid for both copies.
    for w, copies in held.items():
        assert accounts[w]["balance"] - (1_000_000 - 40) == sum(len(p) for _, p in copies)
    assert 1_000_000 - accounts[consumer]["balance"] == sum(
        len(p) for copies in held.values() for _, p in copies
    )
    coord.close()


def test_no_redundancy_plans_every_node(tmp_path: Path) -> None:
    coord, _, consumer = _mesh(tmp_path)
    a, b = orchid.random_operands(70, 60, 50, "int8", seed=2)
    job = coord.submit(consumer, JobSubmission(nodes=6, redundancy="none"), {"A": a, "B": b})
    shards = coord.store.list_shards(job_id=job["job_id"])
    assert sorted(s.slot for s in shards) == list(range(6))
    assert {s.role for s in shards} == {"primary"}
    with pytest.raises(InvalidInputError, match="6 or more"):
        coord.submit(consumer, JobSubmission(nodes=3, redundancy="mirror"), {"A": a, "B": b})
    coord.close()


def test_a_dead_workers_slot_is_served_by_its_mirror_without_a_recompute(tmp_path: Path) -> None:
    # Six distinct nodes for six copies (issue 17; four workers shared them here before).
    coord, workers, consumer = _mesh(tmp_path, workers=6, lease_s=1)
    a, b = orchid.random_operands(50, 40, 30, "int16", seed=4)
    job = coord.submit(consumer, JobSubmission(nodes=6), {"A": a, "B": b})["job_id"]
    dead = workers[0]
    assert coord.claim(dead)[0]["shard_id"] is not None  # claims a primary, then dies
    held = _claim_all(coord, workers[1:])
    deadline = time.monotonic() + 10
    while not coord.store.list_shards(job_id=job, state="expired"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
        coord.store.expire_overdue()  # the dead worker's lease runs out
    # The live copy of the dead worker's slot (its mirror) serves it: nothing new to claim.
    shards = coord.store.list_shards(job_id=job)
    assert len(shards) == 6 and not [s for s in shards if s.state == "pending"]
    _reveal_all(coord, held)
    assert coord.status(job)["state"] == "settled"
    np.testing.assert_array_equal(
        coord.result(job)[1]["C"], a.astype(np.int64) @ b.astype(np.int64)
    )
    accounts = {x["node_id"]: x for x in coord.ledger.show()["accounts"]}
    assert accounts[dead]["balance"] == 1_000_000 - 40  # earned nothing
    assert coord.ledger.show()["totals"]["conserved"]
    coord.close()


def test_a_slashed_cheaters_slots_are_served_by_their_mirrors(tmp_path: Path) -> None:
    from ramnet.mesh.nodes.worker import _misbehave

    # Six distinct nodes for six copies (issue 17; three workers held two copies each here
    # before, so the cheater had two copies rejected).
    coord, workers, consumer = _mesh(tmp_path, workers=6)
    validator = NodeKey.generate().node_id
    coord.register(validator, RegisterRequest(bond=40, validator=True))
    a, b = orchid.random_operands(60, 50, 40, "int8", seed=8)
    job = coord.submit(consumer, JobSubmission(nodes=6), {"A": a, "B": b})["job_id"]
    cheater = workers[1]

    def tamper(w: str, p: dict[BlockProduct, np.ndarray]) -> dict[BlockProduct, np.ndarray]:
        return _misbehave("off-by-one", p, []) if w == cheater else p

    held = _claim_all(coord, workers, tamper)
    _reveal_all(coord, held)
    assert coord.status(job)["state"] == "disputed"
    assert _validate(coord, validator)["outcome"] == "upheld"
    # The cheater's copy is rejected; its slot's other copy is honest and serves: no shard is
    # added, and the job settles at once.
    shards = coord.store.list_shards(job_id=job)
    assert len(shards) == 6
    assert {s.state for s in shards if s.node_id == cheater} == {"rejected"}
    assert coord.status(job)["state"] == "settled"
    np.testing.assert_array_equal(
        coord.result(job)[1]["C"], a.astype(np.int64) @ b.astype(np.int64)
    )
    ledger = coord.ledger.show()
    accounts = {x["node_id"]: x for x in ledger["accounts"]}
    assert ledger["totals"]["conserved"]
    assert accounts[cheater]["slashed"] == 40 and accounts[cheater]["balance"] == 1_000_000 - 40
    assert all(accounts[w]["slashed"] == 0 for w in workers if w != cheater)
    coord.close()
