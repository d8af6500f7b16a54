"""Waits that explain themselves, and `ramnet job list/status/cancel`, with real processes: a run
with no coordinator fails in seconds (or waits with --wait, saying so), a run with no workers says
why it waits, Ctrl-C names the job and how to resume, and the job is listed and cancelled by a
prefix of its id."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.mesh_procs import Mesh, free_port


def _run_args(url: str, *extra: str) -> list[str]:
    return ["run", "--mode", "mesh", "--nodes", "3", "--random", "48x40x32", "--dtype", "int8",
            "--out", "C.npy", "--coordinator", url, *extra]  # fmt: skip


def test_no_coordinator_fails_in_seconds_with_the_ledgers_error(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path)  # nothing started: its port is free
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    run = mesh.popen(*_run_args(url))
    _, err = run.communicate(timeout=120)
    took = time.monotonic() - started
    ledger = mesh.popen("ledger", "show", "--coordinator", url)
    _, ledger_err = ledger.communicate(timeout=120)
    assert run.returncode == 1 == ledger.returncode
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, lines
    expected = f"error: cannot reach the coordinator at {url} ("
    assert lines[0].startswith(expected)
    assert ledger_err.decode().startswith(expected)
    assert took < 60  # seconds, not the 300 s it kept retrying before
    assert not (tmp_path / "C.npy").exists()


def test_wait_keeps_trying_and_says_what_it_waits_for(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path)
    try:
        run = mesh.popen(*_run_args(mesh.url, "--wait", "--detach"))
        deadline = time.monotonic() + 60
        said = b""
        assert run.stderr is not None
        while b"waiting for the coordinator" not in said and time.monotonic() < deadline:
            said += run.stderr.readline()
        assert b"waiting for the coordinator: cannot reach the coordinator at" in said
        assert run.poll() is None  # still trying
        mesh.start_coordinator()
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err.decode()
        job_id = out.decode().strip()
        assert len(job_id) == 32
    finally:
        mesh.stop()


def test_a_job_without_workers_says_why_and_ctrl_c_says_how_to_resume(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path)
    try:
        mesh.start_coordinator()
        run = mesh.popen(*_run_args(mesh.url))
        assert run.stderr is not None
        deadline = time.monotonic() + 90
        said = b""
        while b"waiting for nodes" not in said and time.monotonic() < deadline:
            said += run.stderr.readline()
        line = said.decode().strip().splitlines()[-1]
        assert "waiting for nodes: the job needs 3 distinct nodes, 0 registered and live" in line
        run.send_signal(signal.SIGINT)
        _, rest = run.communicate(timeout=60)
        assert run.returncode == 130
        job_id = line.split()[1].rstrip(":")
        assert len(job_id) == 32
        hint = rest.decode()
        assert f"interrupted: job {job_id} goes on at the coordinator" in hint
        assert f"ramnet job result {job_id} --out C.npy --coordinator {mesh.url}" in hint

        def cli(*args: str) -> str:
            proc = mesh.popen(*args, "--coordinator", mesh.url)
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err.decode()
            return out.decode()

        (listed,) = json.loads(cli("job", "list", "--json"))["jobs"]
        assert listed["job_id"] == job_id and listed["state"] == "sharded"
        assert listed["shape"] == [48, 40, 32]
        # The table never cuts the id, even 80 columns wide (what Rich gives a pipe).
        assert job_id in cli("job", "list")
        status = cli("job", "status", job_id[:8])
        assert f"job {job_id}: sharded" in status
        assert "waiting for nodes: the job needs 3 distinct nodes" in status
        cancelled = cli("job", "cancel", job_id[:6])
        assert cancelled.strip() == f"job {job_id} cancelled: {listed['price']} refunded"
        assert cli("job", "cancel", job_id) == cancelled  # idempotent
        after = json.loads(cli("job", "status", job_id[:6], "--json"))
        assert after["state"] == "cancelled" and after["waiting"] is None
        assert after["reason"] == "cancelled by its consumer"
        totals = json.loads(cli("ledger", "show", "--json"))["totals"]
        assert totals["escrow"] == 0 and totals["conserved"] is True
    finally:
        mesh.stop()


def test_a_short_or_unknown_job_id_is_one_line(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path)
    try:
        mesh.start_coordinator()
        for job_id, expected in (("ab12", "too short"), ("abcdef12", "no job abcdef12")):
            proc = mesh.popen("job", "status", job_id, "--coordinator", mesh.url)
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 2
            lines = [x for x in err.decode().splitlines() if "created a new node key" not in x]
            assert len(lines) == 1 and expected in lines[0], lines
    finally:
        mesh.stop()


def test_the_live_view_shows_the_full_id_and_why_the_job_waits() -> None:
    from rich.console import Console

    from ramnet.commands._shards import shard_table

    job_id = "0123456789abcdef" * 2
    info = {
        "job_id": job_id,
        "state": "dispatched",
        "shards": {"pending": 2, "assigned": 1, "expired": 0},
        "waiting": "2 shards pending, not yet taken by a node",
    }
    console = Console(record=True, width=60)
    console.print(shard_table(info))
    text = console.export_text()
    assert f"job {job_id}: dispatched" in text
    assert "2 shards pending, not yet taken by a node" in text
    assert "expired" not in text
    console = Console(record=True, width=60)
    console.print(shard_table({**info, "state": "cancelled", "waiting": None, "reason": "why"}))
    assert "reason: why" in console.export_text()


@pytest.mark.parametrize("flag", ["--wait"])
def test_run_documents_its_wait_flag(flag: str) -> None:
    proc = subprocess.run(
        ["python", "-m", "ramnet.cli", "run", "--help"], capture_output=True, text=True, check=True
    )
    assert flag in proc.stdout
