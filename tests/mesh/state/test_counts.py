"""The counts SQLite's triggers keep (schema v7): equal to the tables after every kind of write,
the store's own and raw SQL alike; counted afresh when a version 6 store is upgraded; and a
count that drifted (a trigger dropped) refused before a coordinator serves the state."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ramnet.mesh.state.counts import count_problems, escrow_total, job_state_counts
from ramnet.mesh.state.integrity import CorruptStateError, check_state_file
from ramnet.mesh.state.ledger import Ledger
from ramnet.mesh.state.records import NewShard, Shard
from ramnet.mesh.state.schema import SCHEMA_VERSION
from ramnet.mesh.state.store import Store
from tests.mesh.dashboard.filled_store import fill_store


def _again(shard: Shard) -> NewShard:
    return NewShard(slot=shard.slot, blocks=list(shard.blocks), role=shard.role)


def _counted(conn: sqlite3.Connection) -> tuple[dict[str, int], int, int, int]:
    # What the kept counts must equal, counted from the rows.
    states = {
        str(r[0]): int(r[1])
        for r in conn.execute("SELECT state, count(*) FROM jobs GROUP BY state")
    }
    jobs = int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])
    shards = int(conn.execute("SELECT count(*) FROM shards").fetchone()[0])
    held = int(conn.execute("SELECT coalesce(sum(held), 0) FROM escrows").fetchone()[0])
    return states, jobs, shards, held


def _kept(conn: sqlite3.Connection) -> tuple[dict[str, int], int, int, int]:
    n = dict(conn.execute("SELECT name, n FROM counts").fetchall())
    return job_state_counts(conn), int(n["jobs"]), int(n["shards"]), escrow_total(conn)


def _assert_kept(store: Store) -> None:
    with store.snapshot() as conn:
        assert _kept(conn) == _counted(conn)
        assert count_problems(conn) == []


def test_a_new_store_counts_nothing(tmp_path: Path) -> None:
    with Store(tmp_path / "state.sqlite") as store:
        assert store.schema_version == SCHEMA_VERSION == 7
        _assert_kept(store)
        with store.snapshot() as conn:
            assert _kept(conn) == ({}, 0, 0, 0)


def test_the_counts_equal_the_tables_after_every_kind_of_write(tmp_path: Path) -> None:
    filled = fill_store(tmp_path, nodes=8, jobs=12, now=1_000_000.0)
    with Store(tmp_path / "state.sqlite") as store:
        ledger = Ledger(store)
        _assert_kept(store)  # jobs in every state, shards, escrows paid and refunded
        with store.snapshot() as conn:
            states, _, _, held = _kept(conn)
        assert states["settled"] == len(filled.settled) and held > 0
        job = filled.running[0]
        # The store's own writes: shards added, a job's state, its escrow refunded.
        shards = store.list_shards(job)
        store.add_shards(job, [_again(shards[0])], now=1_000_009.0)
        _assert_kept(store)
        store.set_job_state(job, "cancelled", now=1_000_010.0)
        _assert_kept(store)
        ledger.refund(job, now=1_000_011.0)
        _assert_kept(store)
        # Raw SQL is counted too (a trigger fires for any write): a state, a deleted shard, an
        # escrow changed and one deleted, a job deleted with its shards.
        with store.transaction() as conn:
            conn.execute("UPDATE jobs SET state = 'failed' WHERE job_id = ?", (filled.settled[0],))
        _assert_kept(store)
        with store.transaction() as conn:
            conn.execute("DELETE FROM shards WHERE shard_id = (SELECT max(shard_id) FROM shards)")
        _assert_kept(store)
        with store.transaction() as conn:
            conn.execute(
                "UPDATE escrows SET held = held + 5, deposited = deposited + 5 WHERE job_id = ?",
                (filled.running[1],),
            )
        _assert_kept(store)
        with store.transaction() as conn:
            conn.execute("DELETE FROM escrows WHERE job_id = ?", (filled.running[1],))
            for table in ("disputes", "shards"):
                conn.execute(f"DELETE FROM {table} WHERE job_id = ?", (filled.running[1],))
            conn.execute("DELETE FROM jobs WHERE job_id = ?", (filled.running[1],))
        _assert_kept(store)
        # A write that fails leaves the counts as they were (the triggers run in its
        # transaction).
        with pytest.raises(RuntimeError, match="rolled back"), store.transaction() as conn:
            conn.execute("UPDATE jobs SET state = 'settled' WHERE job_id = ?", (job,))
            raise RuntimeError("rolled back")
        assert store.get_job(job).state == "cancelled"
        _assert_kept(store)


def test_a_version_6_store_is_upgraded_with_its_counts(tmp_path: Path) -> None:
    filled = fill_store(tmp_path, nodes=8, jobs=10, now=1_000_000.0)
    path = tmp_path / "state.sqlite"
    raw = sqlite3.connect(path)
    # What version 6 looked like: no counts, no triggers but the movements' own.
    for (name,) in raw.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name NOT LIKE 'movements_%'"
    ).fetchall():
        raw.execute(f"DROP TRIGGER {name}")
    raw.execute("DROP TABLE counts")
    raw.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()
    with Store(path) as store:
        assert store.schema_version == 7
        _assert_kept(store)
        store.set_job_state(filled.running[0], "cancelled")
        _assert_kept(store)  # and kept from now on
    check_state_file(path)  # what `coordinator start` runs before serving


def test_a_count_that_drifted_is_refused_before_serving(tmp_path: Path) -> None:
    filled = fill_store(tmp_path, nodes=8, jobs=8, now=1_000_000.0)
    path = tmp_path / "state.sqlite"
    check_state_file(path)
    raw = sqlite3.connect(path)
    raw.execute("DROP TRIGGER jobs_state_counted")
    raw.execute("UPDATE jobs SET state = 'failed' WHERE job_id = ?", (filled.settled[0],))
    raw.commit()
    raw.close()
    with pytest.raises(CorruptStateError, match=r"kept count 'jobs:failed' is \d+, the tables"):
        check_state_file(path)
