"""Workers that crash or stall mid-shard, with real processes on 127.0.0.1: the shard moves to
another node after its lease, the consumer still gets the exact product, the faulty node earns
nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.test_mesh_e2e import _free_port, _ramnet


def _wait_for(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    pytest.fail(f"{path.name} never said {text!r}: {path.read_text(errors='replace')}")


@pytest.mark.parametrize("strategy", ["crash", "stall"])
def test_a_faulty_worker_loses_its_shard(tmp_path: Path, strategy: str) -> None:
    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "RAMNET_COORDINATOR": url, "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str, *args: str) -> None:
        log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        procs[name] = subprocess.Popen(
            _ramnet(*args), cwd=tmp_path, env=env, stdout=log, stderr=log
        )

    try:
        start(
            "coord", "coordinator", "start", "--port", str(port), "--data-dir", "s", "--lease", "2"
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "coord.log").read_text()
            time.sleep(0.1)
        start("bad", "worker", "start", "--key-file", "bad.key", "--misbehave", strategy)
        _wait_for(tmp_path / "bad.log", "registered", 30)
        consumer = subprocess.Popen(
            _ramnet(
                "run", "--mode", "mesh", "--nodes", "3", "--random", "90x70x50", "--dtype",
                "int8", "--save-inputs", "in", "--out", "C.npy", "--key-file", "c.key", "--json",
            ),
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        _wait_for(tmp_path / "bad.log", "crashing" if strategy == "crash" else "stalling", 30)
        for w in range(3):
            start(f"w{w}", "worker", "start", "--key-file", f"w{w}.key")
        out, err = consumer.communicate(timeout=90)
        assert consumer.returncode == 0, err.decode()
        assert json.loads(out)["state"] == "settled"
        a, b = np.load(tmp_path / "in" / "A.npy"), np.load(tmp_path / "in" / "B.npy")
        c = np.load(tmp_path / "C.npy")
        np.testing.assert_array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
        ledger = httpx.get(f"{url}/v1/ledger", timeout=10).json()
        assert ledger["totals"]["conserved"]
        bad_id = (tmp_path / "bad.log").read_text().split("worker ")[1][:12]
        bad = [x for x in ledger["accounts"] if x["node_id"].startswith(bad_id)]
        assert bad and bad[0]["balance"] + bad[0]["bond"] == 1_000_000  # granted, never paid
        if strategy == "crash":
            assert procs["bad"].wait(timeout=10) == 3
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
