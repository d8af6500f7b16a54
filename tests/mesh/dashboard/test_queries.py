"""The dashboard's read-only queries and its plots' data."""

from __future__ import annotations

from pathlib import Path

from ramnet.mesh.coordinator.dashboard.plots import plot_data
from ramnet.mesh.state.dashboard_queries import Timeline, fingerprint, read_job, read_overview
from ramnet.mesh.state.ledger import Ledger
from ramnet.mesh.state.store import Store
from tests.mesh.dashboard.filled_store import _job, fill_store, hex_id


def test_overview_counts_what_was_stored(tmp_path: Path) -> None:
    filled = fill_store(tmp_path, nodes=10, jobs=12, now=1_000_000.0)
    with Store(tmp_path / "state.sqlite") as store:
        overview = read_overview(store, jobs_limit=5)
        assert len(overview.nodes) == 10
        assert overview.jobs_total == 12 and len(overview.jobs) == 5
        assert overview.jobs[0].created_at >= overview.jobs[-1].created_at  # newest first
        assert overview.job_states["settled"] == len(filled.settled)
        cheater = next(n for n in overview.nodes if n.node_id == filled.cheater)
        assert cheater.banned and cheater.slashed == 100 and cheater.bond == 0
        done = sum(n.shards_done for n in overview.nodes)
        assert done == sum(j.done_shards for j in read_overview(store, jobs_limit=100).jobs)
        # No binding recorded (None: a store without the column, before bindings existed).
        assert all(n.payout_bound in (None, False) for n in overview.nodes)
        assert len(overview.timeline.settled) == len(filled.settled)
        assert len(overview.timeline.disputes) == 2 and len(overview.timeline.slashes) == 1
        detail = read_job(store, filled.disputed)
        assert [s.blocks for s in detail.shards] == [2, 2, 2]
        assert detail.job.state == "settled" and detail.job.ops == 2 * 512**3
        assert len(detail.disputes) == 1
        assert {"escrow", "pay", "slash"} <= {m["kind"] for m in detail.movements}


def test_fingerprint_changes_with_what_is_shown_only(tmp_path: Path) -> None:
    fill_store(tmp_path, nodes=8, jobs=6)
    with Store(tmp_path / "state.sqlite") as store:
        before = fingerprint(store)
        assert fingerprint(store) == before
        # A replay nonce is not shown: recording one changes nothing on the dashboard.
        store.record_nonce(hex_id("node 5"), "n" * 32)
        assert fingerprint(store) == before
        Ledger(store).grant(hex_id("node 5"), 7)
        granted = fingerprint(store)
        assert granted != before
        job = read_overview(store).jobs[0]
        store.set_job_state(job.job_id, "cancelled")
        assert fingerprint(store) != granted


def test_plot_data_buckets_events() -> None:
    timeline = Timeline(
        settled=[(100.0, 2 * 10**9), (101.0, 2 * 10**9), (150.0, 4 * 10**9)],
        disputes=[120.0],
        slashes=[(121.0, 100)],
    )
    data = plot_data(timeline, now=160.0, buckets=60)
    assert data["width_s"] == 1.0
    assert len(data["t"]) == len(data["settled"]) == len(data["gops"]) == 60
    assert data["settled"][-1] == 3 and data["disputes"][-1] == 1 and data["slashes"][-1] == 1
    assert max(data["gops"]) == 4.0 and sum(data["gops"]) == 8.0
    assert data["settled"] == sorted(data["settled"])  # running totals
    empty = plot_data(Timeline(), now=1000.0)
    assert empty["settled"][-1] == 0 and empty["t"][-1] == 1000.0


def test_an_overview_read_since_another_equals_a_whole_read(tmp_path: Path) -> None:
    # What read_overview(since=...) takes from the earlier overview must be what a whole read
    # finds, after every kind of change a mesh makes.
    from ramnet.mesh.state import node_queries
    from ramnet.mesh.state.records import DisputeClaims

    filled = fill_store(tmp_path, nodes=8, jobs=8, now=1_000_000.0)
    with Store(tmp_path / "state.sqlite") as store:
        ledger = Ledger(store)
        running = filled.running[0]
        shard = store.list_shards(running)[0]
        changes = {
            "a shard moves": lambda: store.set_shard_state(
                shard.shard_id, "accepted", now=1_000_001.0
            ),
            "a job settles": lambda: store.set_job_state(running, "settled", now=1_000_002.0),
            "a node is paid": lambda: ledger.pay(running, filled.nodes[5], 3, now=1_000_003.0),
            # Its shards are pending, on no node: no node's row is read again for them.
            "a job is submitted": lambda: _job(store, ledger, filled, 900, 1_000_003.2),
            # Its node is no longer named by the shard: every node is read again.
            "a shard goes back to pending": lambda: store.set_shard_state(
                store.list_shards(filled.running[1])[0].shard_id, "pending", now=1_000_003.5
            ),
            "a node is banned": lambda: store.set_banned(filled.nodes[6], True, now=1_000_004.0),
            "a node is seen": lambda: _seen(store, node_queries, filled.nodes[4], 1_000_050.0),
            "a dispute opens": lambda: store.open_dispute(
                filled.running[1],
                DisputeClaims(round=0, failed=[], blocks=[(0, 0, 0)], slots={}),
                validator=filled.nodes[1],
                now=1_000_060.0,
            ),
            "a node registers": lambda: store.register_node(hex_id("new"), now=1_000_070.0),
            "a node is slashed": lambda: ledger.slash(
                filled.nodes[5], filled.validator, 0.5, running, now=1_000_080.0
            ),
            # Settled at a time older than the newest settled job: the plots' events since
            # the newest would miss it, and the count says so.
            "a job settles in the past": lambda: store.set_job_state(
                filled.open_dispute, "settled", now=1.0
            ),
            # Its C stored: a settled job updated again is drawn at its new time.
            "a settled job's C is stored": lambda: store.set_job_result(
                running, "c" * 64, now=1_000_090.0
            ),
        }
        before = read_overview(store, jobs_limit=5, movements_limit=7)
        for what, change in changes.items():
            change()
            since = read_overview(store, jobs_limit=5, movements_limit=7, since=before)
            whole = read_overview(store, jobs_limit=5, movements_limit=7)
            assert since == whole, what
            assert since.fingerprint != before.fingerprint, what
            if what == "a shard moves":  # only the jobs and the nodes were read again
                assert since.movements is before.movements
                assert since.timeline is before.timeline and since.disputes is before.disputes
                assert since.jobs is not before.jobs and since.nodes is not before.nodes
                # Only the job whose shard moved was read again (and the one updated last
                # before: what changed is looked for from just before the newest time).
                kept = [a is b for a, b in zip(since.jobs, before.jobs, strict=True)]
                assert kept.count(False) <= 2 and len(kept) == 5
            if what == "a node is paid":  # a movement, but nothing the plots draw
                assert since.timeline is before.timeline
                assert since.movements[1] is before.movements[0]  # the new one alone was read
                kept = [a is b for a, b in zip(since.nodes, before.nodes, strict=True)]
                assert kept.count(False) == 1  # the node paid
            if what == "a job is submitted":
                # Not every node: the consumer (its escrow left its balance) and at most the
                # holder of the shard updated last before (looked for from the newest time).
                read = [
                    a.node_id for a, b in zip(since.nodes, before.nodes, strict=True) if a is not b
                ]
                assert filled.consumer in read and len(read) <= 2 < len(since.nodes)
                assert since.jobs[0].job_id.startswith("job-0900-")
            if what == "a job settles":  # the plots' events grew by one, read alone
                assert since.timeline.settled[:-1] == before.timeline.settled
                assert since.timeline.settled_jobs[-1] == running
            if what == "a node is slashed":
                assert since.timeline.slashes[:-1] == before.timeline.slashes
            before = since
        # Nothing changed: everything is taken from the overview before.
        again = read_overview(store, jobs_limit=5, movements_limit=7, since=before)
        assert again == before and again.jobs is before.jobs and again.nodes is before.nodes


def _seen(store: Store, node_queries: object, node: str, when: float) -> None:
    with store.transaction() as conn:
        node_queries.record_seen(conn, {node: when})  # type: ignore[attr-defined]


def test_a_page_context_read_since_another_equals_a_whole_one(tmp_path: Path) -> None:
    from ramnet.mesh.coordinator.dashboard.view import Reader
    from ramnet.mesh.state.blobs import BlobStore

    filled = fill_store(tmp_path, nodes=8, jobs=8, now=1_000_000.0)
    with Store(tmp_path / "state.sqlite") as store:
        ledger = Ledger(store)
        reader = Reader(store, ledger, BlobStore(tmp_path / "blobs"))
        before = reader.overview(now=1_000_100.0)
        shard = store.list_shards(filled.running[0])[0]
        store.set_shard_state(shard.shard_id, "accepted", now=1_000_001.0)
        since = reader.overview(now=1_000_100.0, since=before)
        assert since == reader.overview(now=1_000_100.0)
        assert since["ledger"] is before["ledger"] and since["plots"] is before["plots"]
        ledger.pay(filled.running[0], filled.nodes[5], 3, now=1_000_003.0)  # a movement
        paid = reader.overview(now=1_000_100.0, since=since)
        assert paid == reader.overview(now=1_000_100.0)
        assert paid["ledger"] != since["ledger"]


def test_what_a_change_reads_uses_indexes_not_every_job(tmp_path: Path) -> None:
    # Each job's row holds its spec: a query that scans the jobs or the shards reads the
    # coordinator's whole past at each change, and a dashboard costs more the longer it serves.
    from ramnet.mesh.state import dashboard_queries as q

    fill_store(tmp_path, nodes=8, jobs=8)
    from ramnet.mesh.state import counts

    # What a whole read does: a scan in index order is allowed where it stops early (LIMIT).
    whole = [
        ("SELECT job_id FROM jobs ORDER BY created_at DESC, job_id LIMIT 50", ()),
    ]
    # What the poller and a read since an earlier one do (bound parameters, as the reads run
    # them): search by time or number, or read a count the triggers keep; never scan a table
    # that grows with every job.
    since = [
        (q._FINGERPRINT_SQL, ()),
        (counts._JOB_STATES_SQL, ()),
        (counts._ESCROW_HELD_SQL, ()),
        (q._SETTLED_SQL + " AND updated_at > ? ORDER BY updated_at", (1.0,)),
        (q._CHANGED_JOBS_SQL, (1.0, 1.0)),
        (q._SHARD_HOLDERS_SQL, (1.0, 1.0)),
        (q._SLASHES_SQL + " AND movement_id > ? ORDER BY movement_id", (1,)),
    ]
    with Store(tmp_path / "state.sqlite") as store, store.snapshot() as conn:
        for sql, params in whole + since:
            plan = [str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
            scans = [p for p in plan if p.split()[:2] in (["SCAN", "jobs"], ["SCAN", "shards"])]
            assert all("INDEX" in p for p in scans), (sql, plan)
            assert not any("B-TREE FOR ORDER BY" in p for p in plan), (sql, plan)
            if (sql, params) in since:
                # The tables that grow with every job; the nodes, accounts and disputes are few.
                grow = ("jobs", "shards", "escrows", "movements", "counts")
                assert not any(p.split()[:2] in [["SCAN", t] for t in grow] for p in plan), (
                    sql,
                    plan,
                )


def test_a_read_since_one_with_other_limits_reads_the_lists_whole(tmp_path: Path) -> None:
    filled = fill_store(tmp_path, nodes=8, jobs=8, now=1_000_000.0)
    with Store(tmp_path / "state.sqlite") as store:
        short = read_overview(store, jobs_limit=3, movements_limit=4)
        shard = store.list_shards(filled.running[0])[0]
        store.set_shard_state(shard.shard_id, "accepted", now=1_000_001.0)
        Ledger(store).pay(filled.running[0], filled.nodes[5], 3, now=1_000_002.0)
        since = read_overview(store, jobs_limit=6, movements_limit=9, since=short)
        assert since == read_overview(store, jobs_limit=6, movements_limit=9)
        assert len(since.jobs) == 6 and len(since.movements) == 9
