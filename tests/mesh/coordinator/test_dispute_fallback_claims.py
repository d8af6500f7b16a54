"""Who may claim what (issue 17): a job's slots go to distinct nodes; a node that lost a slot and
a validator that would leave a job without an eligible validator take a shard only after others
had ``claim_yield`` seconds to; who is eligible to judge a job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ramnet.mesh.state.records import JobSpec, NewShard
from ramnet.mesh.state.store import Store

H = "1" * 64
CONSUMER = "c" * 64
T0 = 1000.0  # every node registers then; claims come soon after, within the node timeout


def node(i: int) -> str:
    return f"{i + 1:064x}"


def validator(i: int) -> str:
    return f"{i + 1:x}".rjust(64, "a")


def spec(nodes: int) -> JobSpec:
    return JobSpec(
        m=8,
        k=8,
        n=8,
        dtype="int8",
        out_dtype="int32",
        nodes=nodes,
        plan_nodes=3,
        edges=((0, 8), (0, 8), (0, 8)),
        tiles_a={"0/0": H},
        tiles_b={"0/0": H},
        commit_a=H,
        commit_b=H,
        audit_salt="00" * 16,
        price=10,
        request_id="r",
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state.db", node_timeout=15.0, claim_yield=5.0)
    for i in range(8):
        s.register_node(node(i), now=T0)
    s.register_node(CONSUMER, now=T0)
    yield s
    s.close()


def three_slots(store: Store, job_id: str = "j", now: float = T0) -> None:
    store.create_job(
        job_id, CONSUMER, spec(3), [NewShard(s, [(s, 0, 0)]) for s in range(3)], now=now
    )


def mirrored(store: Store, job_id: str = "m", now: float = T0) -> None:
    shards = [NewShard(s, [(s, 0, 0)]) for s in range(3)]
    shards += [NewShard(s, [(s, 0, 0)], role="mirror") for s in range(3)]
    store.create_job(job_id, CONSUMER, spec(6), shards, now=now)


def test_a_mirrored_job_waits_for_six_distinct_nodes(store: Store) -> None:
    mirrored(store)
    got = [store.next_shard_for(node(i), now=T0 + 1) for i in range(4)]
    assert all(g is not None for g in got)
    for i in range(4):  # each of the four holds one copy, and is offered no other
        committed = store.list_shards("m", node_id=node(i))[0]
        store.record_commit(committed.shard_id, node(i), H, now=T0 + 2)
        assert store.next_shard_for(node(i), now=T0 + 3) is None
    assert len(store.list_shards("m", state="pending")) == 2
    # Long after, still not doubled up: the job waits for two more nodes.
    assert all(store.next_shard_for(node(i), now=T0 + 9) is None for i in range(4))
    last = [store.next_shard_for(node(i), now=T0 + 9) for i in (4, 5)]
    assert all(x is not None for x in last)
    holders = [s.node_id for s in store.list_shards("m")]
    assert len(set(holders)) == 6


def test_a_node_takes_back_a_slot_it_lost_only_when_nobody_else_did(store: Store) -> None:
    three_slots(store)
    lost = store.next_shard_for(node(0), lease_s=5.0, now=T0)
    for i in (1, 2):
        held = store.next_shard_for(node(i), lease_s=1e6, now=T0)
        assert held is not None
        store.record_commit(held.shard_id, node(i), H, now=T0 + 1)
    assert lost is not None and store.expire_overdue(now=T0 + 6) == [lost.shard_id]
    # Back at once (a crashed worker restarted): the slot waits for another node first.
    assert store.next_shard_for(node(0), now=T0 + 7) is None
    assert store.next_shard_for(node(1), now=T0 + 7) is None  # holds another slot of the job
    # Nobody took it for claim_yield seconds: the node that lost it takes it.
    again = store.next_shard_for(node(0), now=T0 + 6 + 5)
    assert again is not None and (again.slot, again.attempt) == (lost.slot, 1)
    # Had another node asked in time, it would have had it.
    store.expire_overdue(now=T0 + 10_000)
    fresh = store.next_shard_for(node(3), now=T0 + 10_001)
    assert fresh is not None and fresh.slot == lost.slot


def test_a_node_never_takes_back_a_slot_it_had_rejected(store: Store) -> None:
    three_slots(store)
    bad = store.next_shard_for(node(0), now=T0)
    assert bad is not None
    store.record_commit(bad.shard_id, node(0), H, now=T0 + 1)
    store.set_shard_state(bad.shard_id, "rejected")
    store.add_shards("j", [NewShard(bad.slot, bad.blocks)], now=T0 + 2)
    for i in (1, 2):
        store.next_shard_for(node(i), lease_s=1e6, now=T0 + 2)
    # Slots 1 and 2 are taken; slot 0's new copy is never node 0's, however long it waits.
    assert store.next_shard_for(node(0), now=T0 + 1000) is None
    assert store.next_shard_for(node(3), now=T0 + 1000) is not None


def test_the_only_validator_is_kept_out_of_a_jobs_shards(store: Store) -> None:
    store.register_node(validator(0), validator=True, now=T0)
    three_slots(store)
    assert store.eligible_validators("j", now=T0 + 1) == [validator(0)]
    # It asks first, and is refused: taking a shard would leave the job no validator.
    assert store.next_shard_for(validator(0), now=T0 + 1) is None
    for i in range(3):
        assert store.next_shard_for(node(i), now=T0 + 1) is not None
    assert store.eligible_validators("j", now=T0 + 2) == [validator(0)]


def test_one_of_two_validators_may_compute_and_the_other_stays_eligible(store: Store) -> None:
    for v in (0, 1):
        store.register_node(validator(v), validator=True, now=T0)
    three_slots(store)
    first = store.next_shard_for(validator(0), now=T0 + 1)
    assert first is not None  # the other validator remains eligible
    assert store.next_shard_for(validator(1), now=T0 + 1) is None  # it would be the last one
    assert store.eligible_validators("j", now=T0 + 2) == [validator(1)]


def test_a_silent_validator_leaves_no_one_eligible(store: Store) -> None:
    store.register_node(validator(0), validator=True, now=T0)
    store.register_node(validator(1), validator=True, now=T0 - 100)  # not seen for 100 s
    three_slots(store)
    assert store.eligible_validators("j", now=T0 + 1) == [validator(0)]
    assert store.next_shard_for(validator(0), now=T0 + 1) is None
    # A banned one does not count either.
    store.register_node(validator(2), validator=True, now=T0)
    store.set_banned(validator(2), True)
    assert store.eligible_validators("j", now=T0 + 1) == [validator(0)]
    assert store.next_shard_for(validator(0), now=T0 + 1) is None


def test_a_shard_nobody_else_takes_goes_to_the_last_validator_in_the_end(store: Store) -> None:
    store.register_node(validator(0), validator=True, now=T0)
    three_slots(store)
    for i in range(2):  # only two workers: the third slot has nobody else
        assert store.next_shard_for(node(i), now=T0) is not None
    assert store.next_shard_for(validator(0), now=T0 + 4) is None
    late = store.next_shard_for(validator(0), now=T0 + 5)
    assert late is not None and late.slot == 2
    # Now a party: a dispute of this job has no eligible validator (the coordinator's fallback).
    assert store.eligible_validators("j", now=T0 + 11) == []
