"""The mesh end to end, with real processes on 127.0.0.1: a coordinator, three workers and a
validator, a consumer's `ramnet run --mode mesh`; the result is numpy's and the ledger pays."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.mesh_procs import Mesh, free_port, ramnet

DEADLINE = 90.0  # seconds for the whole scenario; CI must never hang on it


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    procs = Mesh(tmp_path)
    try:
        procs.start_coordinator()
        for w in range(2):
            procs.start(f"w{w}", "worker", "start", "--key-file", f"w{w}.key", "--bond", "10")
        # A worker configured by its environment alone, as in a container.
        worker_env = {
            **procs.env,
            "RAMNET_MODE": "worker",
            "RAMNET_KEY_FILE": str(tmp_path / "w2.key"),
            "STAKED_BOND": "10",
            "RAMNET_PAYOUT_ADDRESS": "acct-w2",
        }
        procs.start("w2", env=worker_env)
        procs.start("v", "worker", "start", "--key-file", "v.key", "--validator", "--bond", "10")
        yield procs.url, tmp_path
    finally:
        codes = procs.stop()
        # Every process stops cleanly on SIGTERM.
        assert codes == [0] * len(codes), codes


def test_mesh_job_matches_numpy_and_pays_workers(mesh: tuple[str, Path]) -> None:
    url, tmp = mesh
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp / "cfg")}
    results = []
    for dtype, shape in (("int8", "150x130x110"), ("int16", "64x50x40")):
        run = subprocess.run(
            ramnet(
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
        ramnet("ledger", "show", "--coordinator", url, "--json"),
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
    url, tmp = f"http://127.0.0.1:{free_port()}", tmp_path
    run = subprocess.run(
        ramnet(
            "run", "--mode", "mesh", "--nodes", "4", "--coordinator", url,
            "--random", "8x8x8", "--dtype", "int8", "--out", "C.npy", "--key-file", "c.key",
        ),
        cwd=tmp, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert run.returncode == 2
    assert "multiple of 3" in run.stderr
    assert not (tmp / "C.npy").exists()


@pytest.mark.parametrize(
    ("nodes", "redundancy", "message"),
    [("3", "mirror", "6 or more"), ("6", "triple", "--redundancy")],
)
def test_mesh_refuses_bad_redundancy(
    tmp_path: Path, nodes: str, redundancy: str, message: str
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    run = subprocess.run(
        ramnet(
            "run", "--mode", "mesh", "--nodes", nodes, "--redundancy", redundancy,
            "--coordinator", url, "--random", "8x8x8", "--dtype", "int8", "--out", "C.npy",
            "--key-file", "c.key",
        ),
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert run.returncode == 2
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "C.npy").exists()


def test_a_detached_job_is_finished_by_job_status_and_job_result(
    mesh: tuple[str, Path],
) -> None:
    url, tmp = mesh
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp / "cfg")}
    consumer = ["--coordinator", url, "--key-file", "consumer.key"]

    def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ramnet(*args), cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout
        )

    run = cli(
        "run", "--mode", "mesh", "--nodes", "3", "--random", "96x80x72", "--dtype", "int8",
        "--seed", "7", "--save-inputs", "in", "--out", "unused.npy", "--detach", "--json",
        *consumer, timeout=DEADLINE,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    job_id = json.loads(run.stdout)["job_id"]
    assert not (tmp / "unused.npy").exists()
    deadline = time.monotonic() + DEADLINE
    while True:
        status = cli("job", "status", job_id, "--json", *consumer)
        assert status.returncode == 0, status.stderr
        if json.loads(status.stdout)["state"] == "settled":
            break
        assert time.monotonic() < deadline, status.stdout
        time.sleep(0.2)
    (tmp / "C.npy").write_bytes(b"an earlier file, replaced whole")
    result = cli("job", "result", job_id, "--out", "C.npy", *consumer)
    assert result.returncode == 0, result.stderr
    a, b = np.load(tmp / "in" / "A.npy"), np.load(tmp / "in" / "B.npy")
    np.testing.assert_array_equal(np.load(tmp / "C.npy"), a.astype(np.int64) @ b.astype(np.int64))
    assert not [p.name for p in tmp.iterdir() if p.name.startswith(".C.npy.")]  # no leftovers
    missing = cli("job", "result", "f" * 32, "--out", "D.npy", *consumer)
    assert missing.returncode != 0 and not (tmp / "D.npy").exists()
    assert "Traceback" not in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
