"""The dashboard's read-only queries and its plots' data."""

from __future__ import annotations

from pathlib import Path

from ramnet.mesh.coordinator.dashboard.plots import plot_data
from ramnet.mesh.state.dashboard_queries import Timeline, fingerprint, read_job, read_overview
from ramnet.mesh.state.ledger import Ledger
from ramnet.mesh.state.store import Store
from tests.mesh.dashboard.filled_store import fill_store, hex_id


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
