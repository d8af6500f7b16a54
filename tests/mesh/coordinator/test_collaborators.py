"""The coordinator's collaborators on their own (polls, inputs, results, parties, settlement), the
rules the service's decisions moved into, and the service's public methods, unchanged by the
split."""

from __future__ import annotations

import inspect
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ramnet import orchid
from ramnet._errors import InvalidInputError
from ramnet.mesh.coordinator import polls as _polls
from ramnet.mesh.coordinator.inputs import JobInputs
from ramnet.mesh.coordinator.parties import draw, parties
from ramnet.mesh.coordinator.polls import Polls
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.protocol.messages import JobSubmission, RegisterRequest
from ramnet.mesh.rules.audits import spot_check
from ramnet.mesh.rules.disputes import contested
from ramnet.mesh.rules.plan import job_price, plan_shards
from ramnet.mesh.rules.settle import earnings
from ramnet.mesh.rules.shard import compute_shard, named_partials
from ramnet.mesh.state.errors import NotFoundError, ShardStateError
from ramnet.orchid import BlockProduct
from ramnet.valkyrie import NodeKey

# What the app and the tests call, as the service had it before the split (names, parameters,
# defaults, annotations), except that a request's body comes as its typed message.
PUBLIC = {
    "audit": "(self, node: 'str', wait: 'float' = 0.0) -> "
    "'tuple[dict[str, Any], dict[str, np.ndarray]]'",
    "audit_report": "(self, node: 'str', job_id: 'str', report: 'AuditReport') -> 'dict[str, Any]'",
    "authenticate": "(self, method: 'str', target: 'str', headers: 'Any', body: 'bytes', "
    "body_hash: 'str | None' = None) -> 'str'",
    "cancel": "(self, consumer: 'str', job_id: 'str', request: 'CancelRequest | None' = None) -> "
    "'dict[str, Any]'",
    "claim": "(self, node: 'str', wait: 'float' = 0.0) -> "
    "'tuple[dict[str, Any], dict[str, np.ndarray]]'",
    "close": "(self) -> 'None'",
    "commit": "(self, node: 'str', shard_id: 'str', request: 'CommitRequest') -> 'dict[str, Any]'",
    "heartbeat": "(self, node: 'str') -> 'dict[str, Any]'",
    "job_list": "(self, consumer: 'str') -> 'dict[str, Any]'",
    "register": "(self, node: 'str', request: 'RegisterRequest') -> 'dict[str, Any]'",
    "release": "(self, node: 'str', shard_id: 'str') -> 'dict[str, Any]'",
    "result": "(self, job_id: 'str', *, reader: 'str | None' = None) -> "
    "'tuple[dict[str, Any], dict[str, np.ndarray]]'",
    "reveal": "(self, node: 'str', shard_id: 'str', arrays: 'Mapping[str, np.ndarray]', "
    "body: 'bytes | None' = None, body_hash: 'str | None' = None) -> 'dict[str, Any]'",
    "reveal_binding": "(self, shard_id: 'str') -> 'str | None'",
    "settle": "(self, job_id: 'str', *, auditor: 'str | None' = None) -> 'dict[str, Any]'",
    "shard_view": "(self, node: 'str', shard_id: 'str', wait: 'float' = 0.0) -> 'dict[str, Any]'",
    "status": "(self, job_id: 'str', wait: 'float' = 0.0) -> 'dict[str, Any]'",
    "submit": "(self, consumer: 'str', job: 'JobSubmission', "
    "arrays: 'Mapping[str, np.ndarray]') -> 'dict[str, Any]'",
    "submit_result": "(self, node: 'str', shard_id: 'str', arrays: 'Mapping[str, np.ndarray]', "
    "body: 'bytes | None' = None, body_hash: 'str | None' = None) -> 'dict[str, Any]'",
    "validation": "(self, node: 'str', wait: 'float' = 0.0) -> "
    "'tuple[dict[str, Any], dict[str, np.ndarray]]'",
    "verdict": "(self, node: 'str', dispute_id: 'int', verdict: 'Verdict') -> 'dict[str, Any]'",
}


def test_the_service_keeps_its_public_methods_and_signatures() -> None:
    public = {n: f for n, f in vars(Coordinator).items() if not n.startswith("_")}
    assert {n: str(inspect.signature(f)) for n, f in public.items()} == PUBLIC


def test_every_coordinator_module_stays_small() -> None:
    folder = Path(inspect.getfile(Coordinator)).parent
    sizes = {p.name: len(p.read_text().splitlines()) for p in folder.glob("*.py")}
    assert sizes and max(sizes.values()) <= 400, sizes


# ---- polls ---------------------------------------------------------------------------------


def test_a_poll_checks_once_without_a_wait() -> None:
    calls: list[int] = []
    assert Polls().wait_for(lambda: calls.append(1), 0.0) is None
    assert calls == [1]


def test_a_poll_is_held_no_longer_than_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_polls, "MAX_WAIT", 0.2)
    t0 = time.monotonic()
    assert Polls().wait_for(lambda: None, 60.0) is None
    assert 0.15 < time.monotonic() - t0 < 2.0


def test_a_notification_wakes_a_waiting_poll_before_its_recheck() -> None:
    polls = Polls()
    ready = threading.Event()

    def change() -> None:
        time.sleep(0.1)
        ready.set()
        polls.notify()

    t0 = time.monotonic()
    threading.Thread(target=change).start()
    assert polls.wait_for(ready.is_set, 5.0) is True
    assert time.monotonic() - t0 < 0.9 * _polls.RECHECK


# ---- a job's inputs, results, parties, settlement ----------------------------------------------


def _job(tmp_path: Path) -> tuple[Coordinator, list[str], str, np.ndarray]:
    coord = Coordinator(CoordinatorConfig(data_dir=tmp_path, default_credit=10_000))
    workers = [NodeKey.generate().node_id for _ in range(3)]
    consumer = NodeKey.generate().node_id
    for node in (*workers, consumer):
        coord.register(node, RegisterRequest(bond=0))
    a, b = orchid.random_operands(40, 30, 20, "int8", seed=4)
    job_id = str(
        coord.submit(consumer, JobSubmission(nodes=3, request_id="c"), {"A": a, "B": b})["job_id"]
    )
    return coord, workers, job_id, a


def test_a_jobs_tiles_read_back_from_the_blobs_are_those_it_kept(tmp_path: Path) -> None:
    coord, _, job_id, a = _job(tmp_path)
    spec = coord.store.get_job(job_id).spec
    kept_a, kept_b = coord.inputs.tiles(job_id, spec)
    fresh = JobInputs(coord.blobs, coord.config.max_body)  # nothing in memory: read back
    read_a, read_b = fresh.tiles(job_id, spec)
    assert read_a.keys() == kept_a.keys() and read_b.keys() == kept_b.keys()
    for kept, read in ((kept_a, read_a), (kept_b, read_b)):
        for xy, tile in kept.items():
            np.testing.assert_array_equal(read[xy], tile)
    assert fresh.tiles(job_id, spec)[0] is read_a  # kept once read
    fresh.forget(job_id)
    assert fresh.tiles(job_id, spec)[0] is not read_a
    plan, grid = fresh.plan(job_id, spec)
    assert (grid.row_edges, grid.col_edges, grid.k_edges) == spec.edges
    assert plan.nodes == spec.plan_nodes
    rows = grid.rows(0)
    np.testing.assert_array_equal(kept_a[(0, 0)], a[rows, grid.inner(0)])
    coord.close()


def test_the_last_four_results_stay_in_memory(tmp_path: Path) -> None:
    coord = Coordinator(CoordinatorConfig(data_dir=tmp_path))
    for n in range(6):
        coord.results.remember(f"job{n}", np.full((1, 1), n))
    coord.results.checked.update({"job0", "job5"})
    assert coord.results.download("job5")[1]["C"][0, 0] == 5  # checked, and in memory
    with pytest.raises(NotFoundError, match="job0"):  # checked, gone from memory: the store asked
        coord.results.download("job0")
    coord.close()


def test_an_unsettled_jobs_c_is_refused(tmp_path: Path) -> None:
    coord, _, job_id, _ = _job(tmp_path)
    with pytest.raises(ShardStateError, match="not settled"):
        coord.results.download(job_id)
    assert coord.settler.busy is False
    coord.settler.maybe_settle(job_id)  # nothing is revealed: nothing happens
    assert coord.store.get_job(job_id).state == "sharded"
    coord.close()


def test_a_jobs_parties_never_judge_it(tmp_path: Path) -> None:
    coord, workers, job_id, _ = _job(tmp_path)
    assert parties(coord.store, job_id) == set()
    for w in workers:
        coord.claim(w)
    assert parties(coord.store, job_id) == set(workers)
    assert draw(coord.store, job_id, 0) is None  # no validator registered
    coord.register(workers[0], RegisterRequest(bond=0, validator=True))  # a party: never drawn
    assert draw(coord.store, job_id, 0) is None
    validator = NodeKey.generate().node_id
    coord.register(validator, RegisterRequest(bond=0, validator=True))
    assert draw(coord.store, job_id, 0) == validator
    coord.close()


# ---- the rules the service's decisions moved into ------------------------------------------


def test_a_jobs_price_counts_every_copy_and_the_fee() -> None:
    plan = plan_shards(b"job", (3, 3, 2), 6, audit_per_triad=1, audit_salt=b"salt")
    computed = sum(plan.load.values())
    assert job_price(plan, range(0), 2, 10) == 2 * computed + 10
    assert (
        job_price(plan, range(3), 2, 10)
        == 2 * (computed + sum(plan.load[s] for s in range(3))) + 10
    )


def test_earnings_sum_a_nodes_copies() -> None:
    assert earnings({0: 3, 3: 2, 1: 4}, {0: "a", 3: "a", 1: "b"}) == {"a": 5, "b": 4}
    assert earnings({}, {0: "a"}) == {}


def test_a_dispute_contests_failed_and_disagreeing_blocks() -> None:
    failed = [(0, BlockProduct(1, 0, 0)), (5, BlockProduct(0, 0, 0))]
    disagreements = [(BlockProduct(0, 1, 0), (0, 1))]
    claims, blocks = contested(failed, disagreements, {0: "n0", 1: "n1"})
    assert claims == [("n0", (1, 0, 0))]  # copy 5 has no known node: no claim
    assert blocks == [(0, 0, 0), (0, 1, 0), (1, 0, 0)]


def test_a_shards_partials_are_named_by_block() -> None:
    x = np.zeros((2, 2), np.int32)
    partials = named_partials([(0, 1, 2)], {"p/0/1/2": x, "other": x})
    assert list(partials) == [BlockProduct(0, 1, 2)] and partials[BlockProduct(0, 1, 2)] is x
    with pytest.raises(InvalidInputError, match="p/1/1/2"):
        named_partials([(1, 1, 2)], {"p/0/1/2": x})


def test_a_spot_check_of_every_partial_catches_a_wrong_one() -> None:
    a, b = orchid.random_operands(8, 6, 4, "int8", seed=1)
    tiles_a, tiles_b = {(0, 0): a[:4], (1, 0): a[4:]}, {(0, 0): b}
    blocks = [BlockProduct(0, 0, 0), BlockProduct(1, 0, 0)]
    good = compute_shard(blocks, tiles_a, tiles_b)
    rng = np.random.default_rng(0)
    assert spot_check({0: good}, tiles_a, tiles_b, 1.0, rng)
    bad = {**good, blocks[1]: good[blocks[1]] + 1}
    assert not spot_check({0: good, 1: bad}, tiles_a, tiles_b, 1.0, rng)
    # At least one partial per copy, however small the fraction: a one-block copy is checked.
    assert not spot_check({1: {blocks[1]: bad[blocks[1]]}}, tiles_a, tiles_b, 0.0, rng)
