"""Workers that crash or stall mid-shard, with real processes on 127.0.0.1: the shard moves to
another node after its lease, the consumer still gets the exact product (and again for a second
job in a row), the faulty node earns nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.mesh_procs import Mesh, wait_for


@pytest.mark.parametrize("strategy", ["crash", "stall"])
def test_a_faulty_worker_loses_its_shard(tmp_path: Path, strategy: str) -> None:
    import httpx

    mesh = Mesh(tmp_path)
    try:
        mesh.start_coordinator("--lease", "2")
        mesh.start("bad", "worker", "start", "--key-file", "bad.key", "--misbehave", strategy)
        wait_for(tmp_path / "bad.log", "registered", 30)
        consumer = mesh.popen(
            "run", "--mode", "mesh", "--nodes", "3", "--random", "90x70x50", "--dtype",
            "int8", "--save-inputs", "in", "--out", "C.npy", "--key-file", "c.key", "--json",
        )  # fmt: skip
        wait_for(tmp_path / "bad.log", "crashing" if strategy == "crash" else "stalling", 30)
        for w in range(3):
            mesh.start(f"w{w}", "worker", "start", "--key-file", f"w{w}.key")
        out, err = consumer.communicate(timeout=90)
        assert consumer.returncode == 0, err.decode()
        assert json.loads(out)["state"] == "settled"
        a, b = np.load(tmp_path / "in" / "A.npy"), np.load(tmp_path / "in" / "B.npy")
        c = np.load(tmp_path / "C.npy")
        np.testing.assert_array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
        ledger = httpx.get(f"{mesh.url}/v1/ledger", timeout=10).json()
        assert ledger["totals"]["conserved"]
        bad_id = (tmp_path / "bad.log").read_text().split("worker ")[1][:12]
        bad = [x for x in ledger["accounts"] if x["node_id"].startswith(bad_id)]
        assert bad and bad[0]["balance"] + bad[0]["bond"] == 1_000_000  # granted, never paid
        if strategy == "crash":
            assert mesh.procs["bad"].wait(timeout=10) == 3
        # A second job in a row runs on the honest workers alone.
        second = mesh.popen(
            "run", "--mode", "mesh", "--nodes", "3", "--random", "64x48x40", "--dtype",
            "int16", "--seed", "2", "--save-inputs", "in2", "--out", "C2.npy", "--key-file",
            "c.key", "--json",
        )  # fmt: skip
        out, err = second.communicate(timeout=90)
        assert second.returncode == 0, err.decode()
        a, b = np.load(tmp_path / "in2" / "A.npy"), np.load(tmp_path / "in2" / "B.npy")
        np.testing.assert_array_equal(
            np.load(tmp_path / "C2.npy"), a.astype(np.int64) @ b.astype(np.int64)
        )
    finally:
        mesh.stop()
