"""Every wait explains itself: the ``waiting`` line of a job's status, from the pure rule
(``rules.waiting.explain``) and from a coordinator with real registrations, claims and commits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ramnet import orchid
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.protocol.messages import CommitRequest, JobSubmission, RegisterRequest
from ramnet.mesh.rules.shard import compute_shard, result_digest
from ramnet.mesh.rules.waiting import HeldShard, OpenDispute, explain
from ramnet.orchid import BlockProduct
from ramnet.valkyrie import NodeKey

NOW = 1000.0


def _explain(state: str = "dispatched", **kw: object) -> str | None:
    args: dict[str, object] = {
        "nodes": 3,
        "serving": 3,
        "shards": [],
        "dispute": None,
        "validator_wait": 10.0,
        "now": NOW,
    }
    args.update(kw)
    return explain(state, **args)  # type: ignore[arg-type]


# ---- the rule ---------------------------------------------------------------------------------


def test_too_few_nodes_says_how_many_there_are() -> None:
    shards = [HeldShard(slot, "pending", None, None) for slot in range(6)]
    line = _explain(nodes=6, serving=4, shards=shards)
    assert line == (
        "waiting for nodes: the job needs 6 distinct nodes, 4 registered and live; 6 shards pending"
    )
    assert "0 registered" in str(_explain(nodes=3, serving=0, shards=shards[:3]))


def test_held_shards_are_named_with_their_deadlines() -> None:
    node = "ab" * 32
    shards = [
        HeldShard(0, "assigned", node, NOW + 12.4),
        HeldShard(1, "committed", "cd" * 32, None),
        HeldShard(2, "committed", "ef" * 32, NOW - 3),
    ]
    assert _explain(shards=shards) == (
        f"waiting on slot 0 on node {node[:12]} (commit due in 12 s), slot 1 on node"
        f" {'cd' * 6} (committed, waiting for the other commits), slot 2 on node {'ef' * 6}"
        " (reveal overdue by 3 s)"
    )


def test_many_held_shards_are_counted_after_the_first_three() -> None:
    shards = [HeldShard(s, "assigned", f"{s:02d}" * 32, NOW + 5) for s in range(6)]
    line = _explain(nodes=6, serving=6, shards=shards)
    assert line is not None and line.endswith("3 more")
    assert line.count("slot ") == 3


def test_pending_shards_with_enough_nodes_say_they_are_not_taken_yet() -> None:
    line = _explain(shards=[HeldShard(2, "pending", None, None)])
    assert line == "1 shard pending, not yet taken by a node"


def test_a_dispute_without_a_validator_says_when_the_coordinator_settles_it() -> None:
    waiting = _explain("disputed", dispute=OpenDispute(4, None, NOW - 3))
    assert waiting == (
        "dispute 4: waiting for an eligible validator; the coordinator settles it itself in 7 s"
    )
    late = _explain("disputed", dispute=OpenDispute(4, None, NOW - 30))
    assert late == "dispute 4: no eligible validator; the coordinator settles it"
    judged = _explain("disputed", dispute=OpenDispute(4, "9f" * 32, NOW - 3))
    assert judged == f"dispute 4: validator {'9f' * 6} is judging the contested blocks"


@pytest.mark.parametrize("state", ["settled", "cancelled", "failed", "checked"])
def test_a_job_that_ended_or_is_being_stored_waits_for_nothing(state: str) -> None:
    shards = [HeldShard(0, "pending", None, None)]
    assert _explain(state, serving=0, shards=shards) is None


def test_an_optimistic_job_waits_for_an_auditor() -> None:
    assert "auditor" in str(_explain("optimistic"))


# ---- the coordinator's status -----------------------------------------------------------------


def _tiles(arrays: dict[str, np.ndarray], kind: str) -> dict[tuple[int, int], np.ndarray]:
    return {
        (int(name.split("/")[1]), int(name.split("/")[2])): x
        for name, x in arrays.items()
        if name.startswith(kind + "/")
    }


@pytest.fixture
def coordinator(tmp_path: Path) -> Coordinator:
    coord = Coordinator(CoordinatorConfig(data_dir=tmp_path, node_timeout=15.0))
    yield coord  # type: ignore[misc]
    coord.close()


def _job(coord: Coordinator, nodes: int = 3) -> tuple[str, str]:
    consumer = NodeKey.generate().node_id
    coord.register(consumer, RegisterRequest())  # a consumer names no instance
    a, b = orchid.random_operands(64, 48, 40, "int8", seed=2)
    job_id = coord.submit(consumer, JobSubmission(nodes=nodes), {"A": a, "B": b})["job_id"]
    return job_id, consumer


def test_status_says_nobody_is_registered_then_who_holds_what(coordinator: Coordinator) -> None:
    coord = coordinator
    job_id, _ = _job(coord)
    assert coord.status(job_id)["waiting"] == (
        "waiting for nodes: the job needs 3 distinct nodes, 0 registered and live; 3 shards pending"
    )
    workers = [NodeKey.generate().node_id for _ in range(3)]
    for w in workers[:2]:
        coord.register(w, RegisterRequest(bond=10, instance=w[:8]))
    assert "3 distinct nodes, 2 registered and live" in coord.status(job_id)["waiting"]
    meta, arrays = coord.claim(workers[0])
    waiting = coord.status(job_id)["waiting"]
    assert f"on node {workers[0][:12]} (commit due in " in waiting
    coord.register(workers[2], RegisterRequest(bond=10, instance="third"))
    blocks = [BlockProduct(*b) for b in meta["blocks"]]
    partials = compute_shard(blocks, _tiles(arrays, "a"), _tiles(arrays, "b"))
    coord.commit(workers[0], meta["shard_id"], CommitRequest(digest=result_digest(partials).hex()))
    waiting = coord.status(job_id)["waiting"]
    assert "2 shards pending, not yet taken by a node" in waiting
    assert f"on node {workers[0][:12]} (committed, waiting for the other commits)" in waiting


def test_a_silent_node_does_not_count_as_serving(coordinator: Coordinator) -> None:
    coord = coordinator
    job_id, _ = _job(coord)
    worker = NodeKey.generate().node_id
    coord.register(worker, RegisterRequest(instance="w"))
    assert "1 registered and live" in coord.status(job_id)["waiting"]
    with coord.store.transaction() as conn:  # last seen a minute ago
        conn.execute("UPDATE nodes SET last_seen = last_seen - 60, updated_at = updated_at - 60")
    assert "0 registered and live" in coord.status(job_id)["waiting"]


def test_status_takes_a_unique_prefix_of_the_job_id(coordinator: Coordinator) -> None:
    coord = coordinator
    job_id, _ = _job(coord)
    assert len(job_id) == 32
    assert coord.status(job_id[:6])["job_id"] == job_id
    assert coord.status(job_id[:10].upper())["job_id"] == job_id


def test_a_mirror_with_fewer_nodes_than_asked_waits_and_says_how_many(
    coordinator: Coordinator,
) -> None:
    # --nodes 6 with 4 workers: each takes one slot (a mirror needs distinct nodes); the job
    # waits for two more nodes, and says so.
    coord = coordinator
    job_id, _ = _job(coord, nodes=6)
    workers = [NodeKey.generate().node_id for _ in range(4)]
    for w in workers:
        coord.register(w, RegisterRequest(bond=10, instance=w[:8]))
        assert coord.claim(w)[0]["shard_id"] is not None
    status = coord.status(job_id)
    assert status["shards"]["assigned"] == 4 and status["shards"]["pending"] == 2
    waiting = status["waiting"]
    assert waiting.startswith(
        "waiting for nodes: the job needs 6 distinct nodes, 4 registered and live; 2 shards pending"
    )
    assert waiting.endswith("1 more")  # three holders named, the fourth counted
