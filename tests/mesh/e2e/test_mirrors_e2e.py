"""Mirror triads with real processes on 127.0.0.1: a worker dies mid-shard in a 6-node job and
its slot is served by its mirror, with no recompute."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

from tests.mesh_procs import Mesh, wait_for


def test_a_crashed_workers_slot_is_served_by_its_mirror(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path)
    try:
        mesh.start_coordinator("--lease", "2")
        mesh.start("bad", "worker", "start", "--key-file", "bad.key", "--misbehave", "crash")
        wait_for(tmp_path / "bad.log", "registered", 30)
        consumer = mesh.popen(
            "run", "--mode", "mesh", "--nodes", "6", "--random", "90x70x50", "--dtype",
            "int16", "--save-inputs", "in", "--out", "C.npy", "--key-file", "c.key", "--json",
        )  # fmt: skip
        wait_for(tmp_path / "bad.log", "crashing", 30)
        # Five more nodes: a job's six copies go to six distinct nodes (issue 17; three workers
        # shared them here before).
        for w in range(5):
            mesh.start(f"w{w}", "worker", "start", "--key-file", f"w{w}.key")
        out, err = consumer.communicate(timeout=90)
        assert consumer.returncode == 0, err.decode()
        report = json.loads(out)
        assert report["state"] == "settled" and report["redundancy"] == "mirror"
        a, b = np.load(tmp_path / "in" / "A.npy"), np.load(tmp_path / "in" / "B.npy")
        np.testing.assert_array_equal(
            np.load(tmp_path / "C.npy"), a.astype(np.int64) @ b.astype(np.int64)
        )
        with sqlite3.connect(tmp_path / "s" / "state.sqlite") as db:
            rows = db.execute(
                "SELECT role, slot, state FROM shards WHERE job_id = ?", (report["job_id"],)
            ).fetchall()
        # Six copies (three slots, each twice), one expired with the dead worker: none added.
        assert len(rows) == 6
        assert sorted(r[2] for r in rows).count("expired") == 1
        assert sorted(r[2] for r in rows).count("revealed") == 5
    finally:
        mesh.stop()
