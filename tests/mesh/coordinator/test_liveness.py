"""Failure detection in the coordinator (issue 17): a node silent for ``node_timeout`` loses its
shards at once, stragglers get a backup copy (the first copy to commit wins), a straggler whose
mirror committed does not hold the job, leases are sized by the work, and heartbeats keep a
computing node alive. In process, with the sweep's clock passed in; the heartbeat test serves
the coordinator on 127.0.0.1 and runs real workers."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ramnet import orchid
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.nodes import consumer as _consumer
from ramnet.mesh.nodes.client import MeshClient
from ramnet.mesh.nodes.worker import Worker
from ramnet.mesh.protocol.messages import CommitRequest, JobSubmission, RegisterRequest
from ramnet.mesh.rules.shard import compute_shard, result_digest
from ramnet.mesh.state.errors import DeadlinePassedError
from ramnet.orchid import BlockProduct
from ramnet.valkyrie import NodeKey
from tests.mesh_server import served

Partials = dict[BlockProduct, np.ndarray]


def _mesh(tmp_path: Path, workers: int, **config: Any) -> tuple[Coordinator, list[str], str]:
    coord = Coordinator(CoordinatorConfig(data_dir=tmp_path, **config))
    nodes = [NodeKey.generate().node_id for _ in range(workers)]
    consumer = NodeKey.generate().node_id
    for node in [*nodes, consumer]:
        coord.register(node, RegisterRequest(bond=0))
    with coord.store.transaction() as conn:  # as a serving process's registration names it
        conn.executemany(
            "UPDATE nodes SET instance = ? WHERE node_id = ?", [(n[:8], n) for n in nodes]
        )
    return coord, nodes, consumer


def _seen(coord: Coordinator, nodes: list[str], at: float) -> None:
    for node in nodes:
        coord.liveness.seen(node, now=at)


def _compute(coord: Coordinator, node: str) -> tuple[str, Partials]:
    meta, arrays = coord.claim(node)
    assert meta["shard_id"] is not None, node
    blocks = [BlockProduct(*b) for b in meta["blocks"]]
    tiles_a = {(int(n.split("/")[1]), int(n.split("/")[2])): x for n, x in arrays.items()
               if n.startswith("a/")}  # fmt: skip
    tiles_b = {(int(n.split("/")[1]), int(n.split("/")[2])): x for n, x in arrays.items()
               if n.startswith("b/")}  # fmt: skip
    return meta["shard_id"], compute_shard(blocks, tiles_a, tiles_b)


def _commit(coord: Coordinator, node: str, work: tuple[str, Partials]) -> None:
    coord.commit(node, work[0], CommitRequest(digest=result_digest(work[1]).hex()))


def _reveal(coord: Coordinator, node: str, work: tuple[str, Partials]) -> None:
    coord.reveal(node, work[0], {f"p/{b.i}/{b.j}/{b.k}": x for b, x in work[1].items()})


def _settled_exactly(coord: Coordinator, job: str, a: np.ndarray, b: np.ndarray) -> None:
    assert coord.status(job)["state"] == "settled"
    np.testing.assert_array_equal(
        coord.result(job)[1]["C"], a.astype(np.int64) @ b.astype(np.int64)
    )
    assert coord.ledger.show()["totals"]["conserved"]


def _balance(coord: Coordinator, node: str) -> int:
    accounts = {x["node_id"]: x for x in coord.ledger.show()["accounts"]}
    return int(accounts[node]["balance"])


def test_a_silent_nodes_shard_goes_to_another_node_at_once(tmp_path: Path) -> None:
    # The old fixed lease of 300 s: silence is found long before it runs out.
    coord, workers, consumer = _mesh(tmp_path, 4, lease_s=300.0)
    a, b = orchid.random_operands(60, 50, 40, "int8", seed=1)
    job = coord.submit(consumer, JobSubmission(nodes=3), {"A": a, "B": b})["job_id"]
    t0 = time.time()
    _seen(coord, workers, t0)
    work = {w: _compute(coord, w) for w in workers[:3]}
    silent, spare = workers[0], workers[3]
    # The silent node's shard is still its own 14 s on (its peers are computing: no straggler
    # rule applies before one of them commits)...
    _seen(coord, workers[1:], t0 + 14)
    assert not coord.liveness.sweep(now=t0 + 14)
    # ...and goes the moment it has been silent for node_timeout (15 s).
    swept = coord.liveness.sweep(now=t0 + 16)
    assert swept.silent == [int(work[silent][0])]
    assert coord.store.get_node(silent).last_seen == pytest.approx(t0)
    assert coord.store.get_node(spare).last_seen == pytest.approx(t0 + 14)
    for w in workers[1:3]:
        _commit(coord, w, work[w])
    redo = _compute(coord, spare)
    assert (
        coord.store.get_shard(int(redo[0])).slot == coord.store.get_shard(int(work[silent][0])).slot
    )
    with pytest.raises(DeadlinePassedError):
        _commit(coord, silent, work[silent])  # it came back: its shard is gone
    _commit(coord, spare, redo)
    for w in workers[1:3]:
        _reveal(coord, w, work[w])
    _reveal(coord, spare, redo)
    _settled_exactly(coord, job, a, b)
    assert _balance(coord, silent) == 1_000_000 and _balance(coord, spare) > 1_000_000
    coord.close()


def test_nobody_is_judged_silent_just_after_a_start_and_never_seen_is_not_judged(
    tmp_path: Path,
) -> None:
    coord, workers, consumer = _mesh(tmp_path, 3, lease_s=1000.0)
    a, b = orchid.random_operands(30, 20, 10, "int8", seed=2)
    coord.submit(consumer, JobSubmission(nodes=3), {"A": a, "B": b})
    for w in workers:
        _compute(coord, w)
    now = time.time()
    # Never seen (no signed request recorded): not judged, even long after.
    assert not coord.liveness.sweep(now=now + 100)
    # Seen long ago (before a restart, say): not judged until node_timeout after the start.
    coord.liveness.seen(workers[0], now=now - 1000)
    coord.liveness.sweep(now=now)
    assert not coord.liveness.sweep(now=now + 1)
    assert len(coord.liveness.sweep(now=now + 100).silent) == 1
    coord.close()


@pytest.mark.parametrize("winner", ["backup", "straggler"])
def test_a_straggler_gets_a_backup_and_the_first_commit_wins(tmp_path: Path, winner: str) -> None:
    coord, workers, consumer = _mesh(tmp_path, 4)
    a, b = orchid.random_operands(60, 50, 40, "int16", seed=3)
    job = coord.submit(consumer, JobSubmission(nodes=3), {"A": a, "B": b})["job_id"]
    t0 = time.time()
    _seen(coord, workers, t0)
    work = {w: _compute(coord, w) for w in workers[:3]}
    slow, spare = workers[0], workers[3]
    for w in workers[1:3]:
        _commit(coord, w, work[w])  # at once: the job's median commit time is a few ms
    _seen(coord, workers, t0 + 6)  # all alive, but the slow one holds its shard 6 s
    swept = coord.liveness.sweep(now=t0 + 6)
    assert len(swept.backups) == 1 and not swept.silent
    assert not coord.liveness.sweep(now=t0 + 7).backups  # one backup per slot, no more
    backup = _compute(coord, spare)
    assert backup[0] == str(swept.backups[0])
    first, second = (spare, slow) if winner == "backup" else (slow, spare)
    works = {slow: work[slow], spare: backup}
    _commit(coord, first, works[first])
    with pytest.raises(DeadlinePassedError):
        _commit(coord, second, works[second])  # its rival won: expired, never paid
    assert coord.store.get_shard(int(works[second][0])).state == "expired"
    for w in workers[1:3]:
        _reveal(coord, w, work[w])
    _reveal(coord, first, works[first])
    _settled_exactly(coord, job, a, b)
    assert _balance(coord, second) == 1_000_000 and _balance(coord, first) > 1_000_000
    coord.close()


def test_an_unclaimed_backup_goes_when_the_straggler_commits(tmp_path: Path) -> None:
    coord, workers, consumer = _mesh(tmp_path, 4)
    a, b = orchid.random_operands(60, 50, 40, "int8", seed=4)
    job = coord.submit(consumer, JobSubmission(nodes=3), {"A": a, "B": b})["job_id"]
    t0 = time.time()
    _seen(coord, workers, t0)
    work = {w: _compute(coord, w) for w in workers[:3]}
    for w in workers[1:3]:
        _commit(coord, w, work[w])
    _seen(coord, workers, t0 + 6)
    assert len(coord.liveness.sweep(now=t0 + 6).backups) == 1
    _commit(coord, workers[0], work[workers[0]])  # the straggler made it after all
    assert not coord.store.list_shards(job_id=job, state="pending")
    assert coord.claim(workers[3])[0]["shard_id"] is None
    for w in workers[:3]:
        _reveal(coord, w, work[w])
    _settled_exactly(coord, job, a, b)
    coord.close()


def test_a_straggler_whose_mirror_committed_does_not_hold_the_job(tmp_path: Path) -> None:
    coord, workers, consumer = _mesh(tmp_path, 6)
    a, b = orchid.random_operands(70, 60, 50, "int8", seed=5)
    job = coord.submit(consumer, JobSubmission(nodes=6), {"A": a, "B": b})["job_id"]
    t0 = time.time()
    _seen(coord, workers, t0)
    work = {w: _compute(coord, w) for w in workers}
    slow = workers[0]
    for w in workers[1:]:
        _commit(coord, w, work[w])
    _seen(coord, workers, t0 + 6)  # alive (it sends heartbeats), but far slower than the rest
    swept = coord.liveness.sweep(now=t0 + 6)
    assert swept.stragglers == [int(work[slow][0])] and not swept.backups
    # Its slot is served by its other copy: nothing pending, the reveals open.
    assert not coord.store.list_shards(job_id=job, state=("pending", "assigned"))
    for w in workers[1:]:
        _reveal(coord, w, work[w])
    _settled_exactly(coord, job, a, b)
    assert _balance(coord, slow) == 1_000_000
    coord.close()


def test_a_silent_nodes_mirrored_slot_is_served_by_its_mirror_at_once(tmp_path: Path) -> None:
    coord, workers, consumer = _mesh(tmp_path, 6, lease_s=300.0)
    a, b = orchid.random_operands(70, 60, 50, "int8", seed=6)
    job = coord.submit(consumer, JobSubmission(nodes=6), {"A": a, "B": b})["job_id"]
    t0 = time.time()
    _seen(coord, workers, t0)
    work = {w: _compute(coord, w) for w in workers}
    dead = workers[0]
    for w in workers[1:]:
        _commit(coord, w, work[w])
    _seen(coord, workers[1:], t0 + 15.5)
    swept = coord.liveness.sweep(now=t0 + 15.5)
    assert swept.silent == [int(work[dead][0])]
    assert not coord.store.list_shards(job_id=job, state=("pending", "assigned"))
    for w in workers[1:]:
        _reveal(coord, w, work[w])
    _settled_exactly(coord, job, a, b)
    coord.close()


def test_leases_are_sized_by_the_work_unless_fixed(tmp_path: Path) -> None:
    coord, workers, consumer = _mesh(tmp_path, 3)
    a, b = orchid.random_operands(60, 50, 40, "int8", seed=7)
    coord.submit(consumer, JobSubmission(nodes=3), {"A": a, "B": b})
    shard_id, _ = _compute(coord, workers[0])
    shard = coord.store.get_shard(int(shard_id))
    assert shard.deadline is not None and shard.assigned_at is not None
    # A small shard: the floor (10 s), not the old fixed 300 s.
    assert shard.deadline - shard.assigned_at == pytest.approx(coord.leases.policy.floor_s)
    assert coord.leases.for_shard(shard) == coord.leases.policy.floor_s
    coord.close()
    fixed, workers, consumer = _mesh(tmp_path / "fixed", 3, lease_s=42.0)
    fixed.submit(consumer, JobSubmission(nodes=3), {"A": a, "B": b})
    shard = fixed.store.get_shard(int(_compute(fixed, workers[0])[0]))
    assert shard.deadline is not None and shard.assigned_at is not None
    assert shard.deadline - shard.assigned_at == pytest.approx(42.0)
    fixed.close()


def test_a_heartbeat_lists_the_nodes_shards_and_the_timeout(tmp_path: Path) -> None:
    coord, workers, consumer = _mesh(tmp_path, 3, node_timeout=7.0)
    a, b = orchid.random_operands(30, 20, 10, "int8", seed=8)
    coord.submit(consumer, JobSubmission(nodes=3), {"A": a, "B": b})
    shard_id, _ = _compute(coord, workers[0])
    assert coord.heartbeat(workers[0]) == {"node_timeout": 7.0, "shards": [shard_id]}
    assert coord.heartbeat(workers[1]) == {"node_timeout": 7.0, "shards": []}
    coord.close()


def test_heartbeats_keep_a_long_computation_alive(tmp_path: Path) -> None:
    # A worker computing longer than node_timeout keeps its shard because it beats; signed
    # requests record last_seen. Real HTTP, real workers.
    coord = Coordinator(CoordinatorConfig(data_dir=tmp_path / "state", node_timeout=2.0))
    a, b = orchid.random_operands(40, 30, 20, "int8", seed=9)
    with served(coord) as base:
        consumer = MeshClient(base, NodeKey.generate(), retry_for=30)
        job = _consumer.submit(consumer, a, b, 3)
        slow_key = NodeKey.generate()

        def slow(blocks: Any, tiles_a: Any, tiles_b: Any) -> Partials:
            time.sleep(4.0)  # twice the node timeout
            return compute_shard(blocks, tiles_a, tiles_b)

        logs: list[str] = []
        slow_worker = Worker(MeshClient(base, slow_key, retry_for=30), compute=slow,
                             log=logs.append)  # fmt: skip
        others = [Worker(MeshClient(base, NodeKey.generate(), retry_for=30)) for _ in range(2)]
        stop = threading.Event()
        threads = [
            threading.Thread(target=w.run, args=(stop,), kwargs={"max_shards": 1})
            for w in [slow_worker, *others]
        ]
        for t in threads:
            t.start()
        try:
            c, _ = _consumer.fetch_checked(consumer, job, a, b, timeout=90)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        np.testing.assert_array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
        assert slow_worker.heartbeat.beats >= 2, logs
        assert slow_worker.done == 1, logs  # its shard was never taken from it
        assert not coord.store.list_shards(job_id=job, state="expired")
        assert coord.store.get_node(slow_key.node_id).last_seen is not None


def test_coordinator_start_takes_a_node_timeout_and_sizes_leases_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import ramnet.mesh
    from ramnet.cli import app
    from ramnet.commands import _node

    seen: dict[str, Any] = {}
    monkeypatch.setattr(_node, "long_running", lambda: None)
    monkeypatch.setattr(ramnet.mesh, "serve", lambda config, **kw: seen.update(config=config))
    args = ["coordinator", "start", "--data-dir", str(tmp_path / "s")]
    runner = CliRunner()
    result = runner.invoke(app, [*args, "--node-timeout", "7"])
    assert result.exit_code == 0, result.output
    assert seen["config"].node_timeout == 7.0 and seen["config"].lease_s is None
    assert runner.invoke(app, args).exit_code == 0 and seen["config"].node_timeout == 15.0
    assert runner.invoke(app, [*args, "--node-timeout", "1"]).exit_code == 2
