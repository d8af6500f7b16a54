"""The lend page: a local ``ramnet worker start`` against a real coordinator, its account live
from the coordinator's ledger, stopped with nothing left behind; and when ``ramnet ui`` itself
ends (SIGTERM, or killed), its worker ends too."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import HTMX


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait(condition: Any, what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[str]:
    from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
    from tests.mesh_server import served

    with served(Coordinator(CoordinatorConfig(tmp_path / "state"))) as url:
        yield url


def _account(url: str, node_id: str) -> dict[str, Any] | None:
    from ramnet.ui.lending import read_ledger

    for account in read_ledger(url)["accounts"]:
        if account["node_id"] == node_id:
            return dict(account)
    return None


WALLET_KEY = "0x" + "4c" * 32


def _bind(key_file: Path, out: Path) -> str:
    """A wallet binding of the key at ``key_file`` (made if missing), signed by a test wallet;
    returns the wallet's address."""
    import json

    from ramnet.valkyrie import load_or_create_key
    from ramnet.valkyrie._binding712 import binding_typed_data, make_binding
    from tests.eth_wallet import Account, encode_typed_data

    key, _ = load_or_create_key(key_file)
    wallet = Account.from_key(WALLET_KEY)
    typed = binding_typed_data(key.node_id, wallet.address)
    signature = Account.sign_message(encode_typed_data(full_message=typed), WALLET_KEY).signature
    document = make_binding(key, typed, "0x" + signature.hex().removeprefix("0x"))
    out.write_text(json.dumps(document))
    return str(wallet.address)


def test_a_worker_is_started_watched_and_stopped(
    app: Any, client: Any, coordinator: str, tmp_path: Path
) -> None:
    address = _bind(tmp_path / "w.key", tmp_path / "w.binding.json")
    form = {"coordinator": coordinator, "bond": "50", "key_file": str(tmp_path / "w.key")}
    form["binding"] = str(tmp_path / "w.binding.json")
    started = client.post("/lend/start", data={**form, "validator": "on"}, headers=HTMX)
    assert started.status_code == 200 and "Stop the worker" in started.text
    worker = app.state.ui.worker
    status = worker.status()
    pid, node_id = status["pid"], status["node_id"]
    assert status["running"] and node_id
    account = _wait(lambda: _account(coordinator, node_id), "the worker's registration")
    assert account["bond"] == 50
    assert account["payout_address"] == address and account["payout_bound"] is True
    # The page's live view: its account as the ledger shows it, the bound address included.
    with client.stream("GET", "/lend/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data: ") and "bound by a checked wallet binding" in line:
                assert address in line
                break
    shown = worker.status({"accounts": [account]})
    assert shown["account"]["bond"] == 50 and shown["earned"] == 0
    # One worker per UI.
    again = client.post("/lend/start", data=form, headers=HTMX)
    assert 'id="form-error"' in again.text and "already running" in again.text
    stopped = client.post("/lend/stop", headers=HTMX)
    assert "Start the worker" in stopped.text
    assert not _alive(pid)
    assert worker.status()["returncode"] == 0
    assert any("registered" in line for line in worker.status()["log"])


def test_a_binding_of_another_key_is_refused_next_to_its_field(client: Any, tmp_path: Path) -> None:
    _bind(tmp_path / "other.key", tmp_path / "other.binding.json")
    form = {"coordinator": "http://127.0.0.1:9", "bond": "1", "key_file": str(tmp_path / "w.key")}
    reply = client.post(
        "/lend/start", data={**form, "binding": str(tmp_path / "other.binding.json")}, headers=HTMX
    )
    assert 'id="binding-error" role="alert"' in reply.text
    assert "not this worker&#39;s key" in reply.text
    missing = client.post(
        "/lend/start", data={**form, "binding": str(tmp_path / "none.json")}, headers=HTMX
    )
    assert 'id="binding-error"' in missing.text and "Cannot read" in missing.text


def test_a_bad_worker_form_is_one_sentence_next_to_its_field(client: Any) -> None:
    reply = client.post("/lend/start", data={"coordinator": "x", "bond": "1"}, headers=HTMX)
    assert 'id="coordinator-error" role="alert"' in reply.text
    reply = client.post(
        "/lend/start", data={"coordinator": "http://127.0.0.1:9", "bond": "-1"}, headers=HTMX
    )
    assert 'id="bond-error" role="alert"' in reply.text and "at least 0" in reply.text


def _ui_process(tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "ramnet.cli", "ui", "--no-browser", "--port", "0",
         "--work-dir", str(tmp_path / "ui"), "--key-file", str(tmp_path / "node.key")],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
    assert found, line
    return process, found.group(1)


@pytest.mark.parametrize("ending", [signal.SIGTERM, signal.SIGKILL])
def test_the_worker_ends_with_the_ui(coordinator: str, tmp_path: Path, ending: int) -> None:
    import httpx

    process, base = _ui_process(tmp_path)
    try:
        form = {"coordinator": coordinator, "bond": "10", "key_file": str(tmp_path / "w.key")}
        with httpx.Client(base_url=base, headers={"origin": base}, timeout=30) as http:
            assert http.post("/lend/start", data=form, headers=HTMX).status_code == 200
            page = http.get("/lend").text
        pid = int(re.search(r"pid (\d+)", page).group(1))  # type: ignore[union-attr]
        assert _alive(pid)
        process.send_signal(ending)
        process.wait(60)
        _wait(lambda: not _alive(pid), "the worker to end with the UI", timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
