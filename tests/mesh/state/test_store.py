"""The coordinator's state store (SQLite, WAL): schema, nodes, jobs, shards, disputes, threads,
crashes."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from ramnet._errors import InvalidInputError
from ramnet.mesh.state.errors import (
    DeadlinePassedError,
    NodeBannedError,
    NotFoundError,
    SchemaVersionError,
    ShardStateError,
    StoreConflictError,
    StoreError,
    StoreInputError,
)
from ramnet.mesh.state.records import (
    SHARD_STATES,
    DisputeClaims,
    DisputeOutcome,
    JobSpec,
    NewShard,
)
from ramnet.mesh.state.schema import SCHEMA_VERSION
from ramnet.mesh.state.store import Store

NODES = [f"{i + 1:064x}" for i in range(12)]
CONSUMER = "c" * 64
H1, H2 = "1" * 64, "2" * 64


def node(i: int) -> str:
    return NODES[i]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state.db")
    for n in NODES:
        s.register_node(n, now=1.0)
    s.register_node(CONSUMER, now=1.0)
    yield s
    s.close()


def job_spec(nodes: int = 3, m: int = 8) -> JobSpec:
    """A small job's spec (the store does not read it; the coordinator does)."""
    return JobSpec(
        m=m,
        k=8,
        n=8,
        dtype="int8",
        out_dtype="int32",
        nodes=nodes,
        plan_nodes=nodes,
        edges=((0, m), (0, 8), (0, 8)),
        tiles_a={"0/0": H1},
        tiles_b={"0/0": H2},
        commit_a=H1,
        commit_b=H2,
        audit_salt="00" * 16,
        price=10,
        request_id="r",
    )


def make_job(store: Store, job_id: str = "job1", slots: int = 3, now: float = 10.0) -> None:
    store.create_job(
        job_id,
        CONSUMER,
        job_spec(slots),
        [NewShard(s, [(s, 0, 0)]) for s in range(slots)],
        now=now,
    )


# --------------------------------------------------------------------------------------------
# Schema, reopening, transactions


def test_schema_created_in_wal_mode_and_reopened(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    s = Store(path)
    assert s.schema_version == SCHEMA_VERSION
    s.register_node(node(0), payout_address="addr0", validator=True, now=5.0)
    s.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "nodes", "jobs", "shards", "nonces", "disputes", "accounts"} <= tables
    assert {"escrows", "ledger_totals", "movements"} <= tables
    raw.close()
    with Store(path) as again:
        n = again.get_node(node(0))
        assert (n.payout_address, n.validator, n.banned, n.registered_at) == (
            "addr0",
            True,
            False,
            5.0,
        )


def test_newer_schema_and_foreign_files_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Store(path).close()
    raw = sqlite3.connect(path)
    raw.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()
    with pytest.raises(SchemaVersionError, match="version 99"):
        Store(path)

    other = tmp_path / "other.db"
    raw = sqlite3.connect(other)
    raw.execute("CREATE TABLE t (x)")
    raw.commit()
    raw.close()
    with pytest.raises(SchemaVersionError, match="not a RAMNET state store"):
        Store(other)

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        Store(garbage)


def test_transaction_rolls_back_and_savepoints_nest(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        make_job(store, "gone")
        raise RuntimeError("boom")
    with pytest.raises(NotFoundError):
        store.get_job("gone")

    with store.transaction():
        make_job(store, "kept")
        with pytest.raises(StoreConflictError), store.transaction():
            store.set_job_state("kept", "settled")
            store.set_job_state("kept", "disputed")  # settled is final: undoes this block only
    assert store.get_job("kept").state == "sharded"


def test_closed_store_refuses(tmp_path: Path) -> None:
    s = Store(tmp_path / "state.db")
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.get_node(node(0))


# --------------------------------------------------------------------------------------------
# Nodes and nonces


def test_register_node_is_idempotent_and_keeps_bans(store: Store) -> None:
    assert store.register_node(node(0), payout_address="x", now=50.0) is False
    store.set_banned(node(0), True)
    assert store.register_node(node(0), validator=True, now=60.0) is False
    n = store.get_node(node(0))
    assert (n.banned, n.validator, n.payout_address, n.registered_at) == (True, True, "x", 1.0)
    assert [v.node_id for v in store.list_nodes(validators_only=True)] == [node(0)]
    assert node(0) not in {v.node_id for v in store.list_nodes(include_banned=False)}
    store.set_banned(node(0), False)
    assert not store.get_node(node(0)).banned
    with pytest.raises(NotFoundError):
        store.get_node("f" * 64)
    with pytest.raises(NotFoundError):
        store.set_banned("f" * 64, True)
    for bad in ("ABC", "g" * 64, "a" * 63, 7, "../../etc/passwd"):
        with pytest.raises(StoreInputError):
            store.register_node(bad)  # type: ignore[arg-type]
    assert issubclass(StoreInputError, InvalidInputError)


def test_replayed_nonces_refused_and_old_ones_pruned(store: Store) -> None:
    assert store.record_nonce(node(0), "n1", now=100.0) is True
    assert store.record_nonce(node(0), "n1", now=101.0) is False
    assert store.record_nonce(node(1), "n1", now=101.0) is True  # nonces are per node
    assert store.record_nonce(node(0), "n2", now=102.0) is True
    # Past the window the entry is pruned (the signed timestamp check refuses such requests).
    assert store.record_nonce(node(0), "n3", window_s=60.0, now=200.0) is True
    with store.snapshot() as conn:
        left = {
            r[0] for r in conn.execute("SELECT nonce FROM nonces WHERE node_id = ?", (node(0),))
        }
    assert left == {"n3"}
    with pytest.raises(StoreInputError):
        store.record_nonce(node(0), "")
    with pytest.raises(StoreInputError):
        store.record_nonce(node(0), "x" * 129)


# --------------------------------------------------------------------------------------------
# Jobs


def test_create_job_idempotent_and_conflicting(store: Store) -> None:
    make_job(store)
    job = store.get_job("job1")
    assert (job.state, job.consumer, job.spec) == ("sharded", CONSUMER, job_spec(3))
    make_job(store)  # a retried submission
    assert len(store.list_shards("job1")) == 3
    with pytest.raises(StoreConflictError):
        store.create_job("job1", CONSUMER, job_spec(m=9), [])
    assert store.create_job("bare", CONSUMER, job_spec()).state == "submitted"
    with pytest.raises(StoreInputError):
        store.create_job("dup", CONSUMER, job_spec(), [NewShard(0, []), NewShard(0, [])])
    with pytest.raises(StoreInputError):
        store.create_job("nan", CONSUMER, msgspec.structs.replace(job_spec(), price=float("nan")))
    with pytest.raises(StoreInputError):
        store.create_job("bad id!", CONSUMER, job_spec())
    with pytest.raises(StoreInputError):
        store.create_job("obj", CONSUMER, msgspec.structs.replace(job_spec(), request_id=object()))
    # What is written must read back: a mistyped spec or shard is refused before it is stored.
    with pytest.raises(StoreInputError, match="spec"):
        store.create_job("typed", CONSUMER, msgspec.structs.replace(job_spec(), m="8"))
    with pytest.raises(StoreInputError, match="spec"):
        store.create_job("dict", CONSUMER, {"m": 8})  # type: ignore[arg-type]
    with pytest.raises(StoreInputError, match="blocks"):
        store.create_job("short", CONSUMER, job_spec(), [NewShard(0, [(0, 0)])])  # type: ignore[list-item]
    with pytest.raises(NotFoundError):
        store.get_job("typed")


def test_job_state_compare_and_set_and_final_settled(store: Store) -> None:
    make_job(store)
    assert store.set_job_state("job1", "committed", expect="sharded", now=20.0)
    assert not store.set_job_state("job1", "optimistic", expect=("dispatched",))
    assert store.get_job("job1").state == "committed"
    assert store.set_job_state("job1", "committed", expect="settled")  # already there
    assert store.set_job_state("job1", "settled")
    with pytest.raises(StoreConflictError):
        store.set_job_state("job1", "disputed")
    with pytest.raises(StoreInputError):
        store.set_job_state("job1", "done")  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        store.set_job_state("nope", "settled")


def test_list_jobs_and_job_status(store: Store) -> None:
    make_job(store, "a", now=10.0)
    make_job(store, "b", now=20.0)
    store.create_job("c", node(0), job_spec(), now=30.0)
    assert [j.job_id for j in store.list_jobs()] == ["c", "b", "a"]
    assert [j.job_id for j in store.list_jobs(consumer=CONSUMER, limit=1)] == ["b"]
    assert [j.job_id for j in store.list_jobs(state="submitted")] == ["c"]
    shard = store.next_shard_for(node(0), now=40.0)
    assert shard is not None and shard.job_id == "a"
    status = store.job_status("a")
    assert status["state"] == "dispatched"
    assert status["shards"] == dict.fromkeys(SHARD_STATES, 0) | {"pending": 2, "assigned": 1}
    assert status["total_shards"] == 3
    with pytest.raises(NotFoundError):
        store.job_status("zzz")


# --------------------------------------------------------------------------------------------
# Shards


def test_shard_lifecycle(store: Store) -> None:
    make_job(store)
    s = store.next_shard_for(node(0), lease_s=30.0, now=100.0)
    assert s is not None and (s.slot, s.state, s.node_id, s.deadline) == (
        0,
        "assigned",
        node(0),
        130.0,
    )
    assert store.next_shard_for(node(0), now=101.0) == s  # lost answer: same shard again
    with pytest.raises(ShardStateError, match="not assigned to node"):
        store.record_commit(s.shard_id, node(1), H1, now=102.0)
    with pytest.raises(ShardStateError, match="not committed"):
        store.record_reveal(s.shard_id, node(0), H2, now=102.0)
    c = store.record_commit(s.shard_id, node(0), H1, reveal_deadline=500.0, now=102.0)
    assert (c.state, c.commit_hash, c.committed_at, c.deadline) == ("committed", H1, 102.0, 500.0)
    assert store.record_commit(s.shard_id, node(0), H1, now=103.0) == c  # retried
    with pytest.raises(ShardStateError, match="another commit_hash"):
        store.record_commit(s.shard_id, node(0), H2, now=103.0)
    r = store.record_reveal(s.shard_id, node(0), H2, now=104.0)
    assert (r.state, r.result_digest, r.revealed_at, r.deadline) == ("revealed", H2, 104.0, None)
    assert store.record_reveal(s.shard_id, node(0), H2, now=105.0) == r
    assert store.record_commit(s.shard_id, node(0), H1, now=105.0).state == "revealed"
    assert store.set_shard_state(s.shard_id, "accepted", expect="revealed")
    assert not store.set_shard_state(s.shard_id, "rejected", expect="revealed")
    assert store.get_shard(s.shard_id).state == "accepted"
    with pytest.raises(StoreInputError):
        store.record_commit(s.shard_id, node(0), "xyz")
    with pytest.raises(NotFoundError):
        store.get_shard(999)
    # A node's next pull gives it another shard of the job only outside its triad: none here.
    assert store.next_shard_for(node(0), now=106.0) is None
    assert [x.slot for x in store.list_shards("job1", state="pending")] == [1, 2]
    assert [x.shard_id for x in store.list_shards(node_id=node(0))] == [s.shard_id]


def test_triads_get_three_distinct_nodes_and_jobs_go_in_order(store: Store) -> None:
    # Issue 17 changed this contract: a job's slots go to distinct nodes (a node took slot 3 of
    # j1 here before, besides slot 0), so that --nodes N means N machines.
    make_job(store, "j1", slots=6, now=10.0)
    make_job(store, "j2", slots=3, now=20.0)
    first = store.next_shard_for(node(0), now=100.0)
    assert first is not None and (first.job_id, first.slot) == ("j1", 0)
    store.record_commit(first.shard_id, node(0), H1, now=100.0)
    # Node 0 is free again, but it holds a live copy of j1: no other slot of j1, j2's first.
    second = store.next_shard_for(node(0), now=100.0)
    assert second is not None and (second.job_id, second.slot) == ("j2", 0)
    store.record_commit(second.shard_id, node(0), H1, now=100.0)
    assert store.next_shard_for(node(0), now=100.0) is None
    got = [store.next_shard_for(node(i), now=100.0) for i in range(1, 8)]
    assert [(g.job_id, g.slot) for g in got if g] == [
        ("j1", 1),
        ("j1", 2),
        ("j1", 3),
        ("j1", 4),
        ("j1", 5),
        ("j2", 1),
        ("j2", 2),
    ]
    for job in ("j1", "j2"):
        shards = store.list_shards(job)
        assert len({s.node_id for s in shards}) == len(shards)
        for triad in {s.triad for s in shards}:
            assert len({s.node_id for s in shards if s.triad == triad}) == 3
    assert store.get_job("j2").state == "dispatched"


def test_mirrors_never_share_a_slot_or_triad_with_the_primary(store: Store) -> None:
    shards = [NewShard(s, [(s, 0, 0)]) for s in range(3)] + [
        NewShard(s, [(s, 0, 0)], role="mirror") for s in range(3)
    ]
    store.create_job("m", CONSUMER, job_spec(), shards, now=10.0)
    got = [store.next_shard_for(node(i), now=100.0) for i in range(7)]
    assert got[6] is None
    roles: dict[str, set[str]] = {}
    for g in got[:6]:
        assert g is not None and g.node_id is not None
        roles.setdefault(g.node_id, set()).add(g.role)
    assert len(roles) == 6 and all(len(r) == 1 for r in roles.values())


def test_expired_shards_go_to_another_node(store: Store) -> None:
    make_job(store)
    late = store.next_shard_for(node(0), lease_s=10.0, now=100.0)
    assert late is not None
    others = [store.next_shard_for(node(i), now=100.0) for i in (1, 2)]
    assert all(o is not None for o in others)
    assert store.next_shard_for(node(3), now=105.0) is None
    # The deadline passes: node 3 gets a new copy of slot 0, node 0 may not commit any more.
    again = store.next_shard_for(node(3), now=111.0)
    assert again is not None and (again.slot, again.attempt, again.node_id) == (0, 1, node(3))
    assert store.get_shard(late.shard_id).state == "expired"
    with pytest.raises(DeadlinePassedError):
        store.record_commit(late.shard_id, node(0), H1, now=112.0)
    # The late node does not get the slot it failed back while another node may take it
    # (for ``claim_yield`` seconds after the slot's new copy was made).
    assert store.expire_overdue(now=10_000.0) == sorted(
        [again.shard_id] + [o.shard_id for o in others if o is not None]
    )
    retry = store.next_shard_for(node(0), now=10_001.0)
    assert retry is not None and retry.slot != 0
    # A commit at the deadline exactly is late.
    store2 = store.next_shard_for(node(4), lease_s=5.0, now=20_000.0)
    assert store2 is not None
    with pytest.raises(DeadlinePassedError):
        store.record_commit(store2.shard_id, node(4), H1, now=20_005.0)


def test_committed_shards_expire_only_with_a_reveal_deadline(store: Store) -> None:
    make_job(store)
    a = store.next_shard_for(node(0), lease_s=10.0, now=100.0)
    b = store.next_shard_for(node(1), lease_s=10.0, now=100.0)
    assert a is not None and b is not None
    store.record_commit(a.shard_id, node(0), H1, now=105.0)  # no reveal deadline
    store.record_commit(b.shard_id, node(1), H1, reveal_deadline=200.0, now=105.0)
    assert store.expire_overdue(now=300.0) == [b.shard_id]
    assert store.get_shard(a.shard_id).state == "committed"


def test_banned_unknown_and_unclaimable(store: Store) -> None:
    store.create_job("sub", CONSUMER, job_spec(), [NewShard(0, [])], state="submitted")
    assert store.next_shard_for(node(0), now=1.0) is None  # submitted jobs are not served
    store.set_job_state("sub", "sharded")
    store.set_banned(node(0), True)
    with pytest.raises(NodeBannedError):
        store.next_shard_for(node(0))
    with pytest.raises(NotFoundError):
        store.next_shard_for("e" * 64)
    assert store.get_shard(1).state == "pending"


def test_add_shards_and_set_pending(store: Store) -> None:
    make_job(store)
    s = store.next_shard_for(node(0), now=1.0)
    assert s is not None
    store.record_commit(s.shard_id, node(0), H1, now=2.0)
    store.set_shard_state(s.shard_id, "rejected")
    (redo,) = store.add_shards("job1", [NewShard(0, [(0, 0, 0)])], now=3.0)
    assert (redo.slot, redo.attempt, redo.state, redo.node_id) == (0, 1, "pending", None)
    assert redo.blocks == [(0, 0, 0)]
    with pytest.raises(NotFoundError):
        store.add_shards("nope", [NewShard(0, [])])
    t = store.next_shard_for(node(1), now=4.0)
    assert t is not None
    assert store.set_shard_state(t.shard_id, "pending")
    assert store.get_shard(t.shard_id).node_id is None


def test_disputes(store: Store) -> None:
    make_job(store)
    claims = DisputeClaims(
        round=0, failed=[(node(1), (0, 0, 0))], blocks=[(0, 0, 0)], slots={"1": node(1)}
    )
    d = store.open_dispute("job1", claims, now=5.0)
    assert (d.state, d.validator, d.outcome, d.claims) == ("open", None, None, claims)
    d = store.set_dispute_validator(d.dispute_id, node(5))
    assert d.validator == node(5)
    upheld = DisputeOutcome("upheld", [node(1)])
    r = store.resolve_dispute(d.dispute_id, upheld, verdict_digest=H1, now=6.0)
    assert (r.state, r.outcome, r.verdict_digest, r.resolved_at) == ("resolved", upheld, H1, 6.0)
    again = DisputeOutcome("upheld", [node(1)])
    assert store.resolve_dispute(d.dispute_id, again, verdict_digest=H1) == r
    with pytest.raises(StoreConflictError):
        store.resolve_dispute(d.dispute_id, DisputeOutcome("upheld", [node(2)]), verdict_digest=H1)
    with pytest.raises(StoreConflictError):
        store.set_dispute_validator(d.dispute_id, node(6))
    assert store.list_disputes("job1") == [r] and store.list_disputes(state="open") == []
    with pytest.raises(NotFoundError):
        store.open_dispute("nope", claims)
    with pytest.raises(StoreInputError, match="claims"):
        store.open_dispute("job1", {"round": 0})  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        store.get_dispute(42)


# --------------------------------------------------------------------------------------------
# Concurrency


def test_concurrent_claims_assign_each_shard_once(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    setup = Store(path, synchronous="NORMAL")
    for n in NODES:
        setup.register_node(n)
    for j in range(8):
        make_job(setup, f"job{j}", slots=6, now=float(j))
    other = Store(path, synchronous="NORMAL")  # a second handle, as another process would be
    errors: list[BaseException] = []
    taken: list[tuple[int, str]] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        s = setup if i % 2 else other
        try:
            while True:
                shard = s.next_shard_for(NODES[i], now=100.0)
                if shard is None:
                    return
                s.record_commit(shard.shard_id, NODES[i], H1, now=100.0)
                with lock:
                    taken.append((shard.shard_id, NODES[i]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(NODES))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(sid for sid, _ in taken) == list(range(1, 8 * 6 + 1))
    for shard in setup.list_shards():
        assert shard.state == "committed"
    for j in range(8):
        shards = setup.list_shards(f"job{j}")
        for triad in (0, 1):
            assert len({s.node_id for s in shards if s.triad == triad}) == 3
    setup.close()
    other.close()


# --------------------------------------------------------------------------------------------
# Crash safety

_CRASH_SCRIPT = r"""
import os, signal, sys
from ramnet.mesh.state.store import Store
from ramnet.mesh.state.records import JobSpec, NewShard
from ramnet.mesh.state.ledger import Ledger

store = Store(sys.argv[1])
ledger = Ledger(store)
consumer, w = "c" * 64, [f"{i + 1:064x}" for i in range(3)]
for n in [consumer, *w]:
    store.register_node(n)
ledger.grant(consumer, 1000, ref="welcome")
spec = JobSpec(
    m=1, k=1, n=1, dtype="int8", out_dtype="int32", nodes=3, edges=((0, 1), (0, 1), (0, 1)),
    tiles_a={}, tiles_b={}, audit_salt="00", price=300, request_id="r",
)
store.create_job("job1", consumer, spec, [NewShard(i, [(i, 0, 0)]) for i in range(3)])
ledger.escrow(consumer, "job1", 300)
shard = store.next_shard_for(w[0])
store.record_commit(shard.shard_id, w[0], "1" * 64)
with store.transaction():
    ledger.pay("job1", w[0], 100)
print("committed", flush=True)
with store.transaction():
    ledger.pay("job1", w[1], 100)
    store.set_job_state("job1", "settled")
    store.record_nonce(w[2], "late")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkill_keeps_commits_and_drops_the_open_transaction(tmp_path: Path) -> None:
    from ramnet.mesh.state.ledger import Ledger

    path = tmp_path / "state.db"
    proc = subprocess.run(
        [sys.executable, "-c", _CRASH_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.strip() == "committed"
    with Store(path) as store:
        ledger = Ledger(store)
        job = store.get_job("job1")
        assert job.state == "dispatched"
        assert store.job_status("job1")["shards"]["committed"] == 1
        assert ledger.escrow_held("job1") == 200
        assert ledger.account(f"{1:064x}")["balance"] == 100
        assert ledger.account(f"{2:064x}")["balance"] == 0
        assert store.record_nonce(f"{3:064x}", "late") is True  # that insert was rolled back
        assert ledger.show()["totals"]["conserved"] is True
        assert ledger.verify() == []
        assert ledger.pay("job1", f"{1:064x}", 100) is False  # the retry cannot pay twice
        with store.snapshot() as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# --------------------------------------------------------------------------------------------
# Settled jobs' results (schema v3)


def drop_version_5_columns(raw: sqlite3.Connection) -> None:
    """Make a store look as it did before version 5 (no payout bindings)."""
    for column in ("payout_bound", "payout_binding"):
        raw.execute(f"ALTER TABLE nodes DROP COLUMN {column}")


def test_a_version_2_store_is_upgraded_and_keeps_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    s = Store(path)
    s.register_node(CONSUMER, now=1.0)
    make_job(s)
    s.close()
    raw = sqlite3.connect(path)
    raw.execute("ALTER TABLE jobs DROP COLUMN result_blob")  # what version 2 looked like
    for table, column in (("nodes", "last_seen"), ("nodes", "instance"), ("jobs", "reason")):
        raw.execute(f"ALTER TABLE {table} DROP COLUMN {column}")  # nor version 4's columns
    drop_version_5_columns(raw)
    raw.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()
    s = Store(path)
    assert s.schema_version == SCHEMA_VERSION == 7
    assert s.get_job("job1").result_blob is None
    s.close()


def test_a_result_blob_is_recorded_only_for_a_settled_job(store: Store) -> None:
    make_job(store)
    with pytest.raises(StoreConflictError, match="not settled"):
        store.set_job_result("job1", H1)
    store.set_job_state("job1", "settled")
    with pytest.raises(StoreInputError):
        store.set_job_result("job1", "not a digest")
    with pytest.raises(NotFoundError):
        store.set_job_result("nojob", H1)
    store.set_job_result("job1", H1)
    assert store.get_job("job1").result_blob == H1


def test_jobs_holding_inputs(store: Store) -> None:
    # Unsettled jobs, and settled ones whose C is not stored, still read their tiles and partials.
    make_job(store, "live")
    shard = store.next_shard_for(node(0), lease_s=60)
    assert shard is not None and shard.job_id == "live"
    store.record_commit(shard.shard_id, node(0), H1)
    store.open_reveals("live", 1e12)
    store.record_reveal(shard.shard_id, node(0), H2)
    make_job(store, "old")
    make_job(store, "done")
    store.set_job_state("old", "settled")
    store.set_job_state("done", "settled")
    store.set_job_result("done", H1)
    holding = {job.job_id: digests for job, digests in store.jobs_holding_inputs()}
    assert holding == {"live": [H2], "old": []}
    assert {j.job_id for j, _ in store.jobs_holding_inputs(besides="live")} == {"old"}


# --------------------------------------------------------------------------------------------
# Nodes seen alive, jobs cancelled or failed (schema v4)

_V3_JOBS = """CREATE TABLE jobs (
    job_id     TEXT PRIMARY KEY,
    consumer   TEXT NOT NULL,
    spec       TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('submitted', 'sharded', 'dispatched', 'committed',
        'optimistic', 'checked', 'settled', 'disputed', 'resolved')),
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    result_blob TEXT
)"""


def test_a_version_3_store_is_upgraded_and_keeps_its_jobs_shards_and_keys(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    s = Store(path)
    s.register_node(CONSUMER, now=1.0)
    make_job(s)
    shards_before = s.list_shards(job_id="job1")
    s.close()
    raw = sqlite3.connect(path)
    # What version 3 looked like: the jobs table without the new states or a reason, nodes
    # without last_seen or instance.
    raw.execute("PRAGMA foreign_keys = OFF")
    raw.execute("PRAGMA legacy_alter_table = ON")  # the shards keep referencing "jobs"
    raw.execute("ALTER TABLE jobs RENAME TO jobs_now")
    raw.execute(_V3_JOBS)
    raw.execute(
        "INSERT INTO jobs SELECT job_id, consumer, spec, state, created_at, updated_at,"
        " result_blob FROM jobs_now"
    )
    raw.execute("DROP TABLE jobs_now")
    raw.execute("CREATE INDEX jobs_state ON jobs (state, created_at)")
    raw.execute("CREATE INDEX jobs_consumer ON jobs (consumer, created_at)")
    for column in ("last_seen", "instance"):
        raw.execute(f"ALTER TABLE nodes DROP COLUMN {column}")
    drop_version_5_columns(raw)
    raw.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()
    s = Store(path)
    assert s.schema_version == SCHEMA_VERSION == 7
    job = s.get_job("job1")
    assert (job.state, job.reason) == ("sharded", None)
    assert s.list_shards(job_id="job1") == shards_before
    assert s.get_node(CONSUMER).last_seen is None
    s.set_job_state("job1", "cancelled")
    assert s.get_job("job1").state == "cancelled"
    with s.snapshot() as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'shards'").fetchone()[0]
        assert "REFERENCES jobs (job_id)" in sql
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"jobs_state", "jobs_consumer"} <= indexes
    s.close()


def test_data_version_moves_when_another_connection_writes(tmp_path: Path) -> None:
    import threading

    s = Store(tmp_path / "state.sqlite")
    first = s.data_version()
    assert s.data_version() == first  # nothing written
    writer = threading.Thread(target=lambda: s.register_node("ab" * 32, now=1.0))
    writer.start()
    writer.join()
    assert s.data_version() != first  # another thread's connection committed
    s.close()
