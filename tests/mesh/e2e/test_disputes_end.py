"""Disputes always end, with real processes on 127.0.0.1 (issue 17): the only validator, running
before the job is submitted, is kept out of its shards and judges its dispute; with no validator
at all the coordinator recomputes the contested blocks itself. Every job gives the exact product,
only the cheater is slashed, and the ledger stays conserved."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import numpy as np

from tests.mesh_procs import Mesh, ramnet, wait_for


def _node_id(mesh: Mesh, name: str) -> str:
    out = subprocess.run(
        ramnet("keys", "show", "--key-file", f"{name}.key"),
        cwd=mesh.folder, env=mesh.env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def _run(mesh: Mesh, seed: int) -> subprocess.Popen[bytes]:
    return mesh.popen(
        "run", "--mode", "mesh", "--nodes", "3", "--random", "96x80x64", "--dtype", "int8",
        "--seed", str(seed), "--save-inputs", f"in{seed}", "--out", f"C{seed}.npy",
        "--key-file", "c.key", "--json",
    )  # fmt: skip


def _check_exact(mesh: Mesh, consumer: subprocess.Popen[bytes], seed: int) -> dict[str, object]:
    out, err = consumer.communicate(timeout=180)
    assert consumer.returncode == 0, err.decode()
    report: dict[str, object] = json.loads(out)
    assert report["state"] == "settled"
    folder = mesh.folder
    a, b = np.load(folder / f"in{seed}" / "A.npy"), np.load(folder / f"in{seed}" / "B.npy")
    np.testing.assert_array_equal(
        np.load(folder / f"C{seed}.npy"), a.astype(np.int64) @ b.astype(np.int64)
    )
    return report


def _ledger(mesh: Mesh) -> dict[str, dict[str, int]]:
    import httpx

    ledger = httpx.get(f"{mesh.url}/v1/ledger", timeout=10).json()
    assert ledger["totals"]["conserved"]
    return {x["node_id"]: x for x in ledger["accounts"]}


def test_the_only_validator_running_from_the_start_judges_the_dispute(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path)
    try:
        mesh.start_coordinator()
        mesh.start("cheat", "worker", "start", "--key-file", "cheat.key", "--bond", "50",
                   "--misbehave", "off-by-one")  # fmt: skip
        for w in range(2):
            mesh.start(f"w{w}", "worker", "start", "--key-file", f"w{w}.key", "--bond", "50")
        mesh.start("val", "worker", "start", "--key-file", "val.key", "--bond", "50",
                   "--validator")  # fmt: skip
        for name in ("cheat", "w0", "w1", "val"):
            wait_for(tmp_path / f"{name}.log", "registered", 60)
        # Every node is there before the job: the validator could take a shard, and must not.
        report = _check_exact(mesh, _run(mesh, 1), 1)
        assert "upheld" in (tmp_path / "val.log").read_text()
        val, cheat = _node_id(mesh, "val"), _node_id(mesh, "cheat")
        with sqlite3.connect(tmp_path / "s" / "state.sqlite") as db:
            held = db.execute(
                "SELECT attempt FROM shards WHERE job_id = ? AND node_id = ?",
                (report["job_id"], val),
            ).fetchall()
        # At most the cheater's slot computed again, after the dispute: never a first copy.
        assert all(attempt >= 1 for (attempt,) in held)
        accounts = _ledger(mesh)
        assert accounts[cheat]["slashed"] == 50
        assert all(x["slashed"] == 0 for n, x in accounts.items() if n != cheat)
        assert accounts[val]["balance"] + accounts[val]["bond"] > 1_000_000  # bounty and fee
    finally:
        mesh.stop()


def test_with_no_validator_the_coordinator_settles_the_dispute(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path)
    try:
        mesh.start_coordinator("--validator-wait", "2")
        mesh.start("cheat", "worker", "start", "--key-file", "cheat.key", "--bond", "50",
                   "--misbehave", "off-by-one")  # fmt: skip
        for w in range(2):
            mesh.start(f"w{w}", "worker", "start", "--key-file", f"w{w}.key", "--bond", "50")
        consumer = _run(mesh, 2)
        for name in ("cheat", "w0", "w1"):
            wait_for(tmp_path / f"{name}.log", "block products", 60)
        # A spare worker, new to the job, computes the cheater's slot again.
        mesh.start("spare", "worker", "start", "--key-file", "spare.key", "--bond", "50")
        _check_exact(mesh, consumer, 2)
        assert "the coordinator recomputed the contested blocks" in (
            tmp_path / "coord.log"
        ).read_text(errors="replace")
        cheat = _node_id(mesh, "cheat")
        accounts = _ledger(mesh)
        assert accounts[cheat]["slashed"] == 50 and accounts[cheat]["bond"] == 0
        assert all(x["slashed"] == 0 for n, x in accounts.items() if n != cheat)
    finally:
        mesh.stop()
