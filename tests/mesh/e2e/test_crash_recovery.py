"""A worker killed (SIGKILL) mid-shard, at the coordinator's default settings, with real
processes on 127.0.0.1: its shard goes to another node in seconds (it fell silent, or straggled
behind its peers), not after the old fixed lease of 300 s, and the consumer gets the exact
product; the killed node earns nothing and the ledger stays conserved."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np

from tests.mesh_procs import Mesh, wait_for

OLD_LEASE = 300.0


def test_a_worker_killed_mid_shard_loses_it_in_seconds(tmp_path: Path) -> None:
    import httpx

    mesh = Mesh(tmp_path)
    try:
        mesh.start_coordinator()  # default settings: leases sized, node timeout 15 s
        # The doomed worker takes its shard and holds it without a word (as a machine that
        # died mid-computation would), two honest ones take the others.
        mesh.start("doomed", "worker", "start", "--key-file", "doomed.key", "--misbehave", "stall")
        for w in range(2):
            mesh.start(f"w{w}", "worker", "start", "--key-file", f"w{w}.key")
        for name in ("doomed", "w0", "w1"):
            wait_for(tmp_path / f"{name}.log", "registered", 60)
        consumer = mesh.popen(
            "run", "--mode", "mesh", "--nodes", "3", "--random", "96x80x64", "--dtype",
            "int8", "--save-inputs", "in", "--out", "C.npy", "--key-file", "c.key", "--json",
        )  # fmt: skip
        wait_for(tmp_path / "doomed.log", "stalling", 60)
        mesh.start("spare", "worker", "start", "--key-file", "spare.key")
        wait_for(tmp_path / "spare.log", "registered", 60)
        mesh.procs["doomed"].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        out, err = consumer.communicate(timeout=OLD_LEASE / 2)
        recovered = time.monotonic() - killed
        assert consumer.returncode == 0, err.decode()
        assert json.loads(out)["state"] == "settled"
        # A generous bound, far under the old lease: the point is that nothing waited for it.
        assert recovered < OLD_LEASE / 2.5, recovered
        a, b = np.load(tmp_path / "in" / "A.npy"), np.load(tmp_path / "in" / "B.npy")
        np.testing.assert_array_equal(
            np.load(tmp_path / "C.npy"), a.astype(np.int64) @ b.astype(np.int64)
        )
        ledger = httpx.get(f"{mesh.url}/v1/ledger", timeout=10).json()
        assert ledger["totals"]["conserved"]
        doomed_id = (tmp_path / "doomed.log").read_text().split("worker ")[1][:12]
        doomed = [x for x in ledger["accounts"] if x["node_id"].startswith(doomed_id)]
        assert doomed and doomed[0]["balance"] + doomed[0]["bond"] == 1_000_000  # never paid
        coordinator_log = (tmp_path / "coord.log").read_text()
        assert "silent for" in coordinator_log or "backup copy" in coordinator_log
    finally:
        mesh.stop()
