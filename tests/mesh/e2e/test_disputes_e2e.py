"""A cheating worker among real processes on 127.0.0.1, two jobs in a row, for each lying
``--misbehave`` strategy in turn: the validator proves the fraud, the cheater is slashed and
banned, its slot is recomputed, and both jobs give the exact product; no honest node is slashed.
(``crash`` and ``stall`` are in test_mesh_faults.py.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.mesh_procs import Mesh, ramnet, wait_for


@pytest.mark.parametrize("strategy", ["off-by-one", "random", "zeros", "replay"])
def test_cheater_is_slashed_and_jobs_settle(tmp_path: Path, strategy: str) -> None:
    import httpx

    mesh = Mesh(tmp_path)

    def node_id(name: str) -> str:
        out = subprocess.run(
            ramnet("keys", "show", "--key-file", f"{name}.key"),
            cwd=tmp_path, env=mesh.env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return out.stdout.strip()

    try:
        # The validator joins late on purpose: the coordinator's own fallback (issue 17) must
        # not settle the dispute before it is there.
        mesh.start_coordinator("--validator-wait", "60")
        mesh.start("cheat", "worker", "start", "--key-file", "cheat.key", "--bond", "50",
                   "--misbehave", strategy)  # fmt: skip
        for w in range(2):
            mesh.start(f"w{w}", "worker", "start", "--key-file", f"w{w}.key", "--bond", "50")
        reports = []
        for seed in (1, 2):
            consumer = mesh.popen(
                "run", "--mode", "mesh", "--nodes", "3", "--random", "96x80x64",
                "--dtype", "int8", "--seed", str(seed), "--save-inputs", f"in{seed}",
                "--out", f"C{seed}.npy", "--key-file", "c.key", "--json",
            )  # fmt: skip
            if seed == 1:
                # The validator joins once the three workers hold the job's three shards, so it
                # is not a party to the job and can be drawn.
                for name in ("cheat", "w0", "w1"):
                    wait_for(tmp_path / f"{name}.log", "block products", 60)
                mesh.start("val", "worker", "start", "--key-file", "val.key", "--bond", "50",
                           "--validator")  # fmt: skip
            out, err = consumer.communicate(timeout=120)
            assert consumer.returncode == 0, err.decode()
            reports.append(json.loads(out))
            a = np.load(tmp_path / f"in{seed}" / "A.npy")
            b = np.load(tmp_path / f"in{seed}" / "B.npy")
            c = np.load(tmp_path / f"C{seed}.npy")
            np.testing.assert_array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
        ledger = httpx.get(f"{mesh.url}/v1/ledger", timeout=10).json()
        assert ledger["totals"]["conserved"]
        accounts = {x["node_id"]: x for x in ledger["accounts"]}
        cheat, val = node_id("cheat"), node_id("val")
        honest = [node_id("w0"), node_id("w1")]
        # The cheater held a shard of the first job: it was caught and slashed.
        assert accounts[cheat]["slashed"] == 50 and accounts[cheat]["bond"] == 0
        assert accounts[val]["balance"] + accounts[val]["bond"] > 1_000_000  # bounty and fee
        assert all(accounts[h]["slashed"] == 0 for h in honest)
        assert accounts[val]["slashed"] == 0
    finally:
        mesh.stop()


def test_a_lying_validator_is_caught(tmp_path: Path) -> None:
    import httpx

    mesh = Mesh(tmp_path)
    try:
        # The validator joins late on purpose: the coordinator's own fallback (issue 17) must
        # not settle the dispute before it is there.
        mesh.start_coordinator("--validator-wait", "60")
        mesh.start("cheat", "worker", "start", "--key-file", "cheat.key", "--bond", "50",
                   "--misbehave", "off-by-one")  # fmt: skip
        for w in range(2):
            mesh.start(f"w{w}", "worker", "start", "--key-file", f"w{w}.key", "--bond", "50")
        consumer = mesh.popen(
            "run", "--mode", "mesh", "--nodes", "3", "--random", "96x80x64", "--dtype", "int8",
            "--save-inputs", "in", "--out", "C.npy", "--key-file", "c.key", "--json",
        )  # fmt: skip
        for name in ("cheat", "w0", "w1"):
            wait_for(tmp_path / f"{name}.log", "block products", 60)
        # The only validator at first lies (clears the cheater, accuses an honest node): it is
        # drawn, caught and slashed; the dispute is drawn again once an honest validator joins.
        mesh.start("liar", "worker", "start", "--key-file", "liar.key", "--bond", "50",
                   "--validator", "--misbehave", "lie")  # fmt: skip
        wait_for(tmp_path / "liar.log", "validator lied", 60)
        mesh.start("val", "worker", "start", "--key-file", "val.key", "--bond", "50",
                   "--validator")  # fmt: skip
        out, err = consumer.communicate(timeout=120)
        assert consumer.returncode == 0, err.decode()
        assert json.loads(out)["state"] == "settled"
        a, b = np.load(tmp_path / "in" / "A.npy"), np.load(tmp_path / "in" / "B.npy")
        np.testing.assert_array_equal(
            np.load(tmp_path / "C.npy"), a.astype(np.int64) @ b.astype(np.int64)
        )
        assert "upheld" in (tmp_path / "val.log").read_text()
        ledger = httpx.get(f"{mesh.url}/v1/ledger", timeout=10).json()
        assert ledger["totals"]["conserved"]
        by_prefix = {x["node_id"][:12]: x for x in ledger["accounts"]}

        def account(name: str) -> dict[str, int]:
            return by_prefix[(tmp_path / f"{name}.log").read_text().split("worker ")[1][:12]]

        assert account("liar")["slashed"] == 50 and account("cheat")["slashed"] == 50
        assert all(account(name)["slashed"] == 0 for name in ("w0", "w1", "val"))
    finally:
        mesh.stop()
