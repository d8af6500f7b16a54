"""The coordinator killed with SIGKILL in the middle of a job and restarted on the same data folder:
the consumer, which keeps retrying, still gets the exact product; nothing is paid twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np

from tests.test_mesh_e2e import _free_port, _ramnet
from tests.test_mesh_faults import _wait_for


def _healthy(url: str, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "coordinator did not come up"
        time.sleep(0.1)


def test_coordinator_killed_mid_job_resumes(tmp_path: Path) -> None:
    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "RAMNET_COORDINATOR": url, "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str, *args: str) -> None:
        log = open(tmp_path / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        procs[name] = subprocess.Popen(
            _ramnet(*args), cwd=tmp_path, env=env, stdout=log, stderr=log
        )

    coordinator = ("coordinator", "start", "--port", str(port), "--data-dir", "s", "--lease", "3")
    try:
        start("coord", *coordinator)
        _healthy(url, 30)
        for w in range(3):
            start(f"w{w}", "worker", "start", "--key-file", f"w{w}.key")
        consumer = subprocess.Popen(
            _ramnet(
                "run", "--mode", "mesh", "--nodes", "3", "--random", "120x100x80", "--dtype",
                "int16", "--save-inputs", "in", "--out", "C.npy", "--key-file", "c.key", "--json",
            ),
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        _wait_for(tmp_path / "w0.log", "block products", 60)
        procs["coord"].send_signal(signal.SIGKILL)
        procs["coord"].wait(timeout=10)
        time.sleep(0.5)
        start("coord", *coordinator)
        _healthy(url, 30)
        out, err = consumer.communicate(timeout=120)
        assert consumer.returncode == 0, err.decode()
        assert json.loads(out)["state"] == "settled"
        a, b = np.load(tmp_path / "in" / "A.npy"), np.load(tmp_path / "in" / "B.npy")
        np.testing.assert_array_equal(np.load(tmp_path / "C.npy"), a.astype(np.int64) @ b)
        ledger = httpx.get(f"{url}/v1/ledger", timeout=10).json()
        assert ledger["totals"]["conserved"] and ledger["totals"]["escrow"] == 0
        spent = sum(1_000_000 - x["balance"] for x in ledger["accounts"] if x["bond"] == 0)
        earned = sum(x["balance"] + x["bond"] - 1_000_000 for x in ledger["accounts"] if x["bond"])
        assert spent == earned > 0  # paid once, in full
    finally:
        # Workers first, while the coordinator still answers their long polls.
        ordered = [p for name, p in procs.items() if name != "coord"] + [procs["coord"]]
        for proc in ordered:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in ordered:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
