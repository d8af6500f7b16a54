"""Wallet binding with real processes on 127.0.0.1: `ramnet keys bind` makes the binding, `ramnet
worker start --binding` presents it, the coordinator checks it and `ramnet ledger show` shows the
bound address; a forged binding is refused in one line and its worker exits non-zero."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ramnet.valkyrie import NodeKey, save_key
from ramnet.valkyrie._binding712 import binding_typed_data, make_binding
from tests.eth_wallet import OTHER_WALLET_KEY as OTHER_KEY
from tests.eth_wallet import WALLET_ADDRESS as WALLET
from tests.eth_wallet import address_of, sign
from tests.mesh_procs import Mesh, ramnet, wait_for


def cli(mesh: Mesh, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ramnet(*args), cwd=mesh.folder, env=mesh.env, input=input, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip


def refused_worker(mesh: Mesh, key_file: str, binding_file: str) -> str:
    """Start a worker with a binding the coordinator must refuse; return its one error line."""
    proc = mesh.popen("worker", "start", "--key-file", key_file, "--binding", binding_file)
    _, err = proc.communicate(timeout=120)
    text = err.decode(errors="replace")
    assert proc.returncode == 2, text
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, text
    return errors[0]


def test_worker_presents_its_binding(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path)
    try:
        mesh.start_coordinator()
        # The binding made with the CLI, as an operator would: typed data, a wallet signs it.
        assert cli(mesh, "keys", "init", "--key-file", "w0.key").returncode == 0
        shown = cli(mesh, "keys", "bind", "--key-file", "w0.key", "--payout-address",
                    WALLET.lower(), "--json")  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        typed = json.loads(shown.stdout)
        message = typed["message"]
        made = cli(
            mesh, "keys", "bind", "--key-file", "w0.key", "--payout-address", WALLET,
            "--nonce", message["nonce"], "--issued-at", str(message["issuedAt"]),
            "--wallet-signature", sign(typed), "--out", "w0-binding.json",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        mesh.start("w0", "worker", "start", "--key-file", "w0.key", "--bond", "10",
                   "--binding", "w0-binding.json")  # fmt: skip
        wait_for(tmp_path / "w0.log", "registered", 60)
        node_id = cli(mesh, "keys", "show", "--key-file", "w0.key").stdout.strip()

        ledger = cli(mesh, "ledger", "show", "--json")
        assert ledger.returncode == 0, ledger.stderr
        account = {a["node_id"]: a for a in json.loads(ledger.stdout)["accounts"]}[node_id]
        assert (account["payout_address"], account["payout_bound"]) == (WALLET, True)
        assert account["bond"] == 10
        wide = {**mesh.env, "COLUMNS": "200"}  # the table's address is not wrapped then
        table = subprocess.run(
            ramnet("ledger", "show"), cwd=tmp_path, env=wide, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert table.returncode == 0 and f"{WALLET} bound" in table.stdout

        # Another node presenting w0's binding.
        save_key(NodeKey.generate(), tmp_path / "w1.key")
        line = refused_worker(mesh, "w1.key", "w0-binding.json")
        assert "wallet binding refused: it binds node " + node_id[:16] in line

        # A binding whose wallet signature is another address's.
        w2 = save_key(NodeKey.generate(), tmp_path / "w2.key")
        typed2 = binding_typed_data(w2.public_key, WALLET)
        forged = {**make_binding(w2, typed2, sign(typed2)), "walletSignature": "0x"}
        forged["walletSignature"] = sign(typed2, OTHER_KEY)
        (tmp_path / "w2-binding.json").write_text(json.dumps(forged))
        line = refused_worker(mesh, "w2.key", "w2-binding.json")
        other = address_of(OTHER_KEY)
        assert f"made by {other}, not by the payout address {WALLET}" in line

        # Neither forger got an account; w0 is still bound.
        accounts = json.loads(cli(mesh, "ledger", "show", "--json").stdout)["accounts"]
        assert {a["node_id"] for a in accounts if a["payout_bound"]} == {node_id}
        assert w2.node_id not in {a["node_id"] for a in accounts}
    finally:
        codes = mesh.stop()
    assert codes == [0, 0], codes  # the worker and the coordinator stopped cleanly
