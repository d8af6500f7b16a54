"""The mesh end to end, with real processes on 127.0.0.1: a coordinator, three workers and a
validator, a consumer's `ramnet run --mode mesh`; the result is numpy's and the ledger pays."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

DEADLINE = 90.0  # seconds for the whole scenario; CI must never hang on it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ramnet(*args: str) -> list[str]:
    return [sys.executable, "-m", "ramnet.cli", *args]


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "RAMNET_COORDINATOR": url, "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, log: str) -> None:
        out = open(tmp_path / log, "wb")  # noqa: SIM115 - closed with the process below
        procs.append(
            subprocess.Popen(_ramnet(*args), cwd=tmp_path, env=env, stdout=out, stderr=out)
        )

    start("coordinator", "start", "--port", str(port), "--data-dir", "state", log="coord.log")
    try:
        import httpx

        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or procs[0].poll() is not None:
                pytest.fail(
                    "the coordinator did not start: " + (tmp_path / "coord.log").read_text()
                )
            time.sleep(0.1)
        for w in range(2):
            start("worker", "start", "--key-file", f"w{w}.key", "--bond", "10", log=f"w{w}.log")
        # A worker configured by its environment alone, as in a container.
        worker_env = {
            **env,
            "RAMNET_MODE": "worker",
            "RAMNET_KEY_FILE": str(tmp_path / "w2.key"),
            "STAKED_BOND": "10",
            "RAMNET_PAYOUT_ADDRESS": "acct-w2",
        }
        out = open(tmp_path / "w2.log", "wb")  # noqa: SIM115
        procs.append(
            subprocess.Popen(_ramnet(), cwd=tmp_path, env=worker_env, stdout=out, stderr=out)
        )
        start("worker", "start", "--key-file", "v.key", "--validator", "--bond", "10", log="v.log")
        yield url, tmp_path
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = []
        for proc in procs:
            try:
                codes.append(proc.wait(timeout=15))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                codes.append(None)
        # Every process stops cleanly on SIGTERM.
        assert codes == [0] * len(procs), codes


def test_mesh_job_matches_numpy_and_pays_workers(mesh: tuple[str, Path]) -> None:
    url, tmp = mesh
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp / "cfg")}
    results = []
    for dtype, shape in (("int8", "150x130x110"), ("int16", "64x50x40")):
        run = subprocess.run(
            _ramnet(
                "run", "--mode", "mesh", "--nodes", "3", "--coordinator", url,
                "--random", shape, "--dtype", dtype, "--seed", "5", "--save-inputs", f"in-{dtype}",
                "--out", f"C-{dtype}.npy", "--key-file", "consumer.key", "--json",
            ),
            cwd=tmp, env=env, capture_output=True, text=True, timeout=DEADLINE,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        report = json.loads(run.stdout)
        assert report["state"] == "settled" and report["nodes"] == 3
        a = np.load(tmp / f"in-{dtype}" / "A.npy")
        b = np.load(tmp / f"in-{dtype}" / "B.npy")
        c = np.load(tmp / f"C-{dtype}.npy")
        np.testing.assert_array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
        results.append(report)
    ledger = subprocess.run(
        _ramnet("ledger", "show", "--coordinator", url, "--json"),
        cwd=tmp, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert ledger.returncode == 0, ledger.stderr
    info = json.loads(ledger.stdout)
    assert info["totals"]["conserved"] is True
    assert info["totals"]["escrow"] == 0
    accounts = {a["node_id"]: a for a in info["accounts"]}
    paid = [a for a in accounts.values() if a["bond"] == 10 and a["balance"] > 1_000_000 - 10]
    assert len(paid) >= 3  # the three workers that computed were paid
    assert all(a["slashed"] == 0 for a in accounts.values())
    # The consumer paid exactly what the workers earned (the unused validator fee came back).
    spent = 1_000_000 - min(a["balance"] for a in accounts.values())
    earned = sum(a["balance"] + a["bond"] - 1_000_000 for a in accounts.values() if a["bond"])
    assert spent == earned > 0
    assert spent <= sum(r["price"] for r in results)


def test_mesh_refuses_node_counts_not_multiple_of_three(tmp_path: Path) -> None:
    # Refused before anything is sent: no coordinator is needed.
    url, tmp = f"http://127.0.0.1:{_free_port()}", tmp_path
    run = subprocess.run(
        _ramnet(
            "run", "--mode", "mesh", "--nodes", "4", "--coordinator", url,
            "--random", "8x8x8", "--dtype", "int8", "--out", "C.npy", "--key-file", "c.key",
        ),
        cwd=tmp, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert run.returncode == 2
    assert "multiple of 3" in run.stderr
    assert not (tmp / "C.npy").exists()
