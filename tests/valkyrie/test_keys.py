"""Node keys: ``ramnet keys init/show/bind/check-binding`` and the key-file rules behind them."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ramnet._errors import KeyFileError, TraceFormatError
from ramnet.cli import app
from ramnet.valkyrie import (
    NodeKey,
    bind_payout,
    check_binding,
    load_key,
    load_or_create_key,
    save_key,
    verify_signature,
)

pytestmark = pytest.mark.usefixtures("clean_env")

HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def invoke(runner: CliRunner, *args: str, env: dict[str, str] | None = None, input=None):  # type: ignore[no-untyped-def]
    result = runner.invoke(app, list(args), env=env, input=input)
    assert "Traceback" not in result.stdout
    assert "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result


def said(result) -> str:  # type: ignore[no-untyped-def]
    """stderr with Rich's line wrapping undone (see test_init_message_path_not_wrapped)."""
    return result.stderr.replace("\n", "")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def node_id_of(result) -> str:  # type: ignore[no-untyped-def]
    out = result.stdout.strip()
    assert HEX64.match(out), out
    return out


# ---- keys init / show ----


def test_init_writes_0600_and_prints_node_id(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "sub" / "node.key"
    result = invoke(runner, "keys", "init", "--key-file", str(path))
    assert result.exit_code == 0, result.stderr
    node_id = node_id_of(result)
    assert mode(path) == 0o600
    assert str(path) in said(result)
    assert load_key(path).node_id == node_id
    show = invoke(runner, "keys", "show", "--key-file", str(path))
    assert show.exit_code == 0
    assert node_id_of(show) == node_id


def test_init_message_path_not_wrapped(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / ("d" * 90) / "node.key"
    result = invoke(runner, "keys", "init", "--key-file", str(path))
    assert result.exit_code == 0
    assert str(path) in result.stderr


def test_init_refuses_to_overwrite_without_force(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    first = invoke(runner, "keys", "init", "--key-file", str(path))
    assert first.exit_code == 0
    before = path.read_bytes()
    stamp = path.stat().st_mtime_ns
    again = invoke(runner, "keys", "init", "--key-file", str(path))
    assert again.exit_code == 2
    assert again.stdout == ""
    assert "--force" in again.stderr
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == stamp
    assert mode(path) == 0o600
    assert node_id_of(invoke(runner, "keys", "show", "--key-file", str(path))) == node_id_of(first)


def test_init_force_replaces(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    first = node_id_of(invoke(runner, "keys", "init", "--key-file", str(path)))
    forced = invoke(runner, "keys", "init", "--key-file", str(path), "--force")
    assert forced.exit_code == 0
    second = node_id_of(forced)
    assert second != first
    assert mode(path) == 0o600
    assert node_id_of(invoke(runner, "keys", "show", "--key-file", str(path))) == second
    # No temporary file left next to the key.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.key"]


def test_env_key_file_overrides_default(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "from-env.key"
    env = {"RAMNET_KEY_FILE": str(path)}
    result = invoke(runner, "keys", "init", env=env)
    assert result.exit_code == 0, result.stderr
    node_id = node_id_of(result)
    assert path.is_file() and mode(path) == 0o600
    assert not (Path(os.environ["XDG_CONFIG_HOME"]) / "ramnet" / "node.key").exists()
    assert node_id_of(invoke(runner, "keys", "show", env=env)) == node_id


def test_default_path_under_xdg_config_home(runner: CliRunner, tmp_path: Path) -> None:
    xdg = tmp_path / "xdg-home"
    env = {"XDG_CONFIG_HOME": str(xdg)}
    result = invoke(runner, "keys", "init", env=env)
    assert result.exit_code == 0, result.stderr
    path = xdg / "ramnet" / "node.key"
    assert path.is_file()
    assert mode(path) == 0o600
    assert str(path) in said(result)
    assert load_key(path).node_id == node_id_of(result)
    assert node_id_of(invoke(runner, "keys", "show", env=env)) == node_id_of(result)


def test_show_without_key_is_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "keys", "show", "--key-file", str(tmp_path / "none.key"))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "keys init" in result.stderr


def test_key_readable_by_others_refused(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    save_key(NodeKey.generate(), path)
    path.chmod(0o644)
    result = invoke(runner, "keys", "show", "--key-file", str(path))
    assert result.exit_code == 2
    assert "chmod 600" in result.stderr
    with pytest.raises(KeyFileError):
        load_key(path)
    # A trace run refuses to sign with it too, and leaves it alone.
    run = invoke(
        runner,
        "run",
        "--random",
        "4x4x4",
        "--dtype",
        "int8",
        "--out",
        str(tmp_path / "C.npy"),
        "--trace",
        str(tmp_path / "t.bin"),
        "--key-file",
        str(path),
    )
    assert run.exit_code == 2
    assert not (tmp_path / "t.bin").exists()
    assert mode(path) == 0o644


GOOD_SEED = "ab" * 32


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x00\xff\xfe garbage \x80",
        b"hello world\n",
        f"ramnet-ed25519-seed-v1 {GOOD_SEED[:-2]}\n".encode(),  # 31 bytes
        f"ramnet-ed25519-seed-v1 {GOOD_SEED}ab\n".encode(),  # 33 bytes
        f"ramnet-ed25519-seed-v1 {GOOD_SEED[:-1]}\n".encode(),  # odd hex length
        f"ramnet-ed25519-seed-v1 {'zz' * 32}\n".encode(),  # not hex
        f"other-tag {GOOD_SEED}\n".encode(),
        f"ramnet-ed25519-seed-v1 {GOOD_SEED} extra\n".encode(),
        b"#" * 5000,  # too large to be a key
    ],
    ids=[
        "empty",
        "binary",
        "text",
        "short",
        "long",
        "odd",
        "nothex",
        "tag",
        "extra",
        "huge",
    ],
)
def test_malformed_key_files_refused(runner: CliRunner, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "node.key"
    path.write_bytes(content)
    path.chmod(0o600)
    result = invoke(runner, "keys", "show", "--key-file", str(path))
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    with pytest.raises(KeyFileError):
        load_key(path)
    # A command that needs the key refuses it and does not replace it.
    bind = invoke(runner, "keys", "bind", "--payout-address", "addr", "--key-file", str(path))
    assert bind.exit_code == 2
    assert path.read_bytes() == content


def test_well_formed_key_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    path.write_text(f"# comment\nramnet-ed25519-seed-v1 {GOOD_SEED}\n")
    path.chmod(0o600)
    key = load_key(path)
    assert bytes(key.signing_key) == bytes.fromhex(GOOD_SEED)
    assert HEX64.match(key.node_id)


def test_library_save_load_round_trip(tmp_path: Path) -> None:
    key = NodeKey.generate()
    path = save_key(key, tmp_path / "a" / "b" / "k").path
    assert path is not None and mode(path) == 0o600
    assert load_key(path).node_id == key.node_id
    with pytest.raises(KeyFileError):
        save_key(NodeKey.generate(), path)
    assert load_key(path).node_id == key.node_id
    other = NodeKey.generate()
    save_key(other, path, force=True)
    assert load_key(path).node_id == other.node_id
    loaded, created = load_or_create_key(path)
    assert (loaded.node_id, created) == (other.node_id, False)
    fresh, created = load_or_create_key(tmp_path / "new.key")
    assert created and mode(tmp_path / "new.key") == 0o600
    message = b"message"
    assert verify_signature(fresh.public_key, message, fresh.sign(message))
    assert not verify_signature(fresh.public_key, message + b"!", fresh.sign(message))
    assert not verify_signature(other.public_key, message, fresh.sign(message))
    assert not verify_signature(b"short", message, fresh.sign(message))


# ---- bind / check-binding ----


# The Ed25519-only statement (bind_payout / check_binding in the library). Issue 19 replaced what
# `ramnet keys bind` writes and `check-binding` accepts by the EIP-712 wallet binding (tests in
# tests/cli/test_keys_binding.py): the command line now names such a statement as an old binding
# without a wallet signature (exit 2); the library functions keep their contract.


@pytest.fixture
def binding(runner: CliRunner, tmp_path: Path) -> dict[str, str]:
    key = tmp_path / "node.key"
    invoke(runner, "keys", "init", "--key-file", str(key))
    data = bind_payout(load_key(key), "0xPAYOUT")
    assert data["payout_address"] == "0xPAYOUT"
    assert data["node_id"] == load_key(key).node_id
    return data


def assert_old_binding_named(result) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "without a wallet signature" in said(result)


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_binding_accepted(runner: CliRunner, tmp_path: Path, binding: dict[str, str]) -> None:
    file = write_json(tmp_path / "b.json", binding)
    assert_old_binding_named(invoke(runner, "keys", "check-binding", str(file)))
    stdin = invoke(runner, "keys", "check-binding", "-", input=json.dumps(binding))
    assert_old_binding_named(stdin)
    assert check_binding(binding) and check_binding(json.dumps(binding))


def _flip_hex(text: str) -> str:
    return ("1" if text[0] == "0" else "0") + text[1:]


@pytest.mark.parametrize(
    "change",
    [
        {"payout_address": "0xTHIEF"},
        {"payout_address": "0xPAYOUT "},
        {"node_id": "node"},
        {"signature": "signature"},
        {"signature": "short"},
    ],
    ids=["address", "address-space", "node", "signature", "signature-truncated"],
)
def test_altered_binding_refused(
    runner: CliRunner, tmp_path: Path, binding: dict[str, str], change: dict[str, str]
) -> None:
    altered = dict(binding)
    for field, what in change.items():
        if what in ("node", "signature"):
            altered[field] = _flip_hex(binding[field])
        elif what == "short":
            altered[field] = binding[field][:-2]
        else:
            altered[field] = what
    file = write_json(tmp_path / "b.json", altered)
    assert_old_binding_named(invoke(runner, "keys", "check-binding", str(file)))
    assert not check_binding(altered)


def test_binding_signed_by_another_key_refused(binding: dict[str, str]) -> None:
    other = bind_payout(NodeKey.generate(), binding["payout_address"])
    forged = {**binding, "signature": other["signature"]}
    assert not check_binding(forged)


@pytest.mark.parametrize(
    "text",
    [
        "not json at all",
        "",
        "[1, 2, 3]",
        '{"statement": "something else"}',
        '{"statement": "ramnet-payout-binding-v1"}',
        '{"statement": "ramnet-payout-binding-v1", "node_id": "zz", "signature": "00", '
        '"payout_address": "x"}',
    ],
    ids=["text", "empty", "list", "statement", "missing", "nothex"],
)
def test_unreadable_binding_exit_2(runner: CliRunner, tmp_path: Path, text: str) -> None:
    file = tmp_path / "b.json"
    file.write_text(text)
    result = invoke(runner, "keys", "check-binding", str(file))
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ")
    with pytest.raises(TraceFormatError):
        check_binding(text)


def test_check_binding_missing_file_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "keys", "check-binding", str(tmp_path / "missing.json"))
    assert result.exit_code == 2


@pytest.mark.parametrize("address", ["", "a\nb", "x" * 513])
def test_bind_refuses_bad_address(runner: CliRunner, tmp_path: Path, address: str) -> None:
    key = tmp_path / "node.key"
    save_key(NodeKey.generate(), key)
    result = invoke(runner, "keys", "bind", "--payout-address", address, "--key-file", str(key))
    assert result.exit_code == 2
    assert result.stdout == ""
    with pytest.raises(KeyFileError):
        bind_payout(load_key(key), address)


# ---- a command that needs a key creates one ----


def test_run_trace_creates_key_and_says_where(runner: CliRunner, tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    env = {"XDG_CONFIG_HOME": str(xdg)}
    args = ["run", "--random", "6x5x4", "--dtype", "int8", "--out", "C.npy", "--trace", "t.bin"]
    result = invoke(runner, *args, "--json", env=env)
    assert result.exit_code == 0, result.stderr
    path = xdg / "ramnet" / "node.key"
    assert path.is_file() and mode(path) == 0o600
    node_id = load_key(path).node_id
    assert str(path) in said(result)
    assert node_id in said(result)
    assert json.loads(result.stdout)["trace"]["node_id"] == node_id
    # The second run reuses it and says nothing about keys.
    again = invoke(runner, *args, "--json", env=env)
    assert again.exit_code == 0
    assert "key" not in again.stderr
    assert json.loads(again.stdout)["trace"]["node_id"] == node_id
    # An explicit --key-file that does not exist is created there.
    explicit = tmp_path / "explicit.key"
    third = invoke(runner, *args, "--key-file", str(explicit), env=env)
    assert third.exit_code == 0
    assert explicit.is_file() and str(explicit) in said(third)
