"""A tile blob damaged on the coordinator's disk, with real processes on 127.0.0.1: the job that
needs it fails with the reason (its consumer is told, its escrow refunded), the coordinator says so
once in its log, and the workers go on to settle the next job exactly. Its C goes to its consumer
only: another key's ``job result`` is refused."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from tests.mesh.state.test_integrity_blobs import flip
from tests.mesh_procs import Mesh


def _jobs(state: Path) -> list[tuple[str, str, str]]:
    # (job id, state, spec) of every job, read beside the running coordinator (WAL allows it).
    if not state.exists():
        return []
    conn = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=10)
    try:
        return [tuple(r) for r in conn.execute("SELECT job_id, state, spec FROM jobs")]
    except sqlite3.OperationalError:
        return []  # not created yet
    finally:
        conn.close()


def _reason(state: Path, job_id: str) -> str | None:
    conn = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute("SELECT reason FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    finally:
        conn.close()
    return None if row is None else row[0]


def _wait_for_job(state: Path, timeout: float) -> tuple[str, str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = _jobs(state)
        if jobs:
            return jobs[0]
        time.sleep(0.1)
    pytest.fail("the consumer's job never reached the coordinator")


def test_a_damaged_tile_fails_its_job_and_the_workers_settle_the_next(tmp_path: Path) -> None:
    import httpx

    mesh = Mesh(tmp_path)
    try:
        mesh.start_coordinator()
        # No worker yet: the job waits, its tiles on the coordinator's disk.
        first = mesh.popen(
            "run", "--mode", "mesh", "--nodes", "3", "--random", "90x70x50", "--dtype", "int8",
            "--out", "C1.npy", "--key-file", "c.key", "--json",
        )  # fmt: skip
        state = tmp_path / "s" / "state.sqlite"
        job_id, _, spec = _wait_for_job(state, 60)
        tile = sorted(json.loads(spec)["tiles_b"].values())[0]
        mesh.procs["coord"].send_signal(signal.SIGTERM)
        assert mesh.procs["coord"].wait(timeout=30) == 0
        flip(tmp_path / "s" / "blobs" / tile[:2] / tile)
        mesh.start_coordinator()  # its tiles are read back from the disk now
        for w in range(3):
            mesh.start(f"w{w}", "worker", "start", "--key-file", f"w{w}.key")
        _, err = first.communicate(timeout=120)
        assert first.returncode != 0
        assert f"job {job_id} failed" in err.decode()  # the consumer is told, not left waiting
        reason = _reason(state, job_id)
        assert reason is not None and tile in reason and "corrupt" in reason
        # The workers were not wedged: the next job settles, exactly.
        second = mesh.popen(
            "run", "--mode", "mesh", "--nodes", "3", "--random", "64x48x40", "--dtype", "int16",
            "--seed", "2", "--save-inputs", "in2", "--out", "C2.npy", "--key-file", "c.key",
            "--json",
        )  # fmt: skip
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err.decode()
        assert json.loads(out)["state"] == "settled"
        a, b = np.load(tmp_path / "in2" / "A.npy"), np.load(tmp_path / "in2" / "B.npy")
        np.testing.assert_array_equal(
            np.load(tmp_path / "C2.npy"), a.astype(np.int64) @ b.astype(np.int64)
        )
        states = {job: s for job, s, _ in _jobs(state)}
        assert states[job_id] == "failed" and sorted(states.values()) == ["failed", "settled"]
        ledger = httpx.get(f"{mesh.url}/v1/ledger", timeout=10).json()
        assert ledger["totals"]["conserved"] and ledger["totals"]["escrow"] == 0
        # C of the settled job: its consumer fetches it again; another key is refused.
        good = next(job for job, s, _ in _jobs(state) if s == "settled")
        again = mesh.popen("job", "result", good, "--out", "again.npy", "--key-file", "c.key")
        assert again.wait(timeout=60) == 0, again.communicate()[1].decode()
        np.testing.assert_array_equal(np.load(tmp_path / "again.npy"), np.load(tmp_path / "C2.npy"))
        thief = mesh.popen("job", "result", good, "--out", "stolen.npy", "--key-file", "w0.key")
        _, err = thief.communicate(timeout=60)
        assert thief.returncode != 0 and "its consumer only" in err.decode()
        assert len(err.decode().strip().splitlines()) == 1
        assert not (tmp_path / "stolen.npy").exists()
    finally:
        mesh.stop()
    log = (tmp_path / "coord.log").read_text(errors="replace")
    lines = [line for line in log.splitlines() if job_id in line and tile in line]
    assert len(lines) == 1 and "failed" in lines[0], log
