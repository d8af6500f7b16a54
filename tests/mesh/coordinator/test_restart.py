"""The coordinator killed with SIGKILL in the middle of a job and restarted on the same data folder:
the consumer, which keeps retrying, still gets the exact product; nothing is paid twice."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np

from tests.mesh_procs import Mesh, wait_for


def test_coordinator_killed_mid_job_resumes(tmp_path: Path) -> None:
    import httpx

    mesh = Mesh(tmp_path)
    try:
        mesh.start_coordinator("--lease", "3")
        for w in range(3):
            mesh.start(f"w{w}", "worker", "start", "--key-file", f"w{w}.key")
        consumer = mesh.popen(
            "run", "--mode", "mesh", "--nodes", "3", "--random", "120x100x80", "--dtype",
            "int16", "--save-inputs", "in", "--out", "C.npy", "--key-file", "c.key", "--json",
        )  # fmt: skip
        wait_for(tmp_path / "w0.log", "block products", 60)
        mesh.procs["coord"].send_signal(signal.SIGKILL)
        mesh.procs["coord"].wait(timeout=10)
        time.sleep(0.5)
        mesh.start_coordinator("--lease", "3")
        out, err = consumer.communicate(timeout=120)
        assert consumer.returncode == 0, err.decode()
        assert json.loads(out)["state"] == "settled"
        a, b = np.load(tmp_path / "in" / "A.npy"), np.load(tmp_path / "in" / "B.npy")
        np.testing.assert_array_equal(np.load(tmp_path / "C.npy"), a.astype(np.int64) @ b)
        ledger = httpx.get(f"{mesh.url}/v1/ledger", timeout=10).json()
        assert ledger["totals"]["conserved"] and ledger["totals"]["escrow"] == 0
        spent = sum(1_000_000 - x["balance"] for x in ledger["accounts"] if x["bond"] == 0)
        earned = sum(x["balance"] + x["bond"] - 1_000_000 for x in ledger["accounts"] if x["bond"])
        assert spent == earned > 0  # paid once, in full
    finally:
        mesh.stop()
