"""``ramnet keys bind`` and ``keys check-binding``: the EIP-712 wallet binding from the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ramnet.cli import app
from ramnet.valkyrie import NodeKey, load_key, save_key
from ramnet.valkyrie._binding712 import binding_typed_data
from tests.eth_wallet import OTHER_WALLET_KEY, WALLET_ADDRESS, address_of, sign

pytestmark = pytest.mark.usefixtures("clean_env")

NONCE, ISSUED_AT = "81985529216486895", "1767225600"
# The node key of tests/valkyrie/test_binding712.py (seed 00 01 .. 1f): the same pinned answers.
SEED = bytes(range(32)).hex()
WALLET_SIGNATURE = (
    "0xe1e6906ef0006cd6cef92b881873e9aca00d23c5ad385eff4ce6f7e7d4bee189"
    "3da84d0abb6d6b187066f82a3cdc4271ff87522268898aa6aabbd660352eeb7a1b"
)
NODE_SIGNATURE = (
    "0x9d0f7740b29bdd2721adcc00c907e6c44e2c8cda46fa278a6fae247d53ea3ad0"
    "8ea96b0c71169b6ea0eb7118e2c9c8ac83a49d80cfe6128425b9d0673b4dbd09"
)


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    return CliRunner()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "node.key"
    path.write_text(f"ramnet-ed25519-seed-v1 {SEED}\n")
    path.chmod(0o600)
    return path


def invoke(runner: CliRunner, *args: str, input: str | None = None) -> Any:
    result = runner.invoke(app, list(args), input=input)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result


def one_line_error(result: Any) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    text = result.stderr.replace("\n", "")  # Rich wraps long lines at the terminal's width
    assert text.startswith("error: ")
    return text


def print_typed_data(runner: CliRunner, key_file: Path, *extra: str) -> dict[str, Any]:
    result = invoke(
        runner,
        "keys",
        "bind",
        "--payout-address",
        WALLET_ADDRESS.lower(),
        "--key-file",
        str(key_file),
        "--json",
        *extra,
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and result.stderr == ""
    typed: dict[str, Any] = json.loads(lines[0])
    return typed


def test_typed_data_printed(runner: CliRunner, key_file: Path) -> None:
    typed = print_typed_data(runner, key_file, "--nonce", NONCE, "--issued-at", ISSUED_AT)
    assert typed == binding_typed_data(
        load_key(key_file).public_key, WALLET_ADDRESS, nonce=int(NONCE), issued_at=int(ISSUED_AT)
    )
    fresh = print_typed_data(runner, key_file)
    assert fresh["message"]["nonce"] != typed["message"]["nonce"]
    # Without --json the next step is said on stderr; stdout is still the typed data.
    result = invoke(
        runner, "keys", "bind", "--payout-address", WALLET_ADDRESS, "--key-file", str(key_file)
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout)["primaryType"] == "RamnetNodeBinding"
    assert "--wallet-signature" in result.stderr


def bind(runner: CliRunner, key_file: Path, signature: str, *extra: str) -> Any:
    return invoke(
        runner,
        "keys",
        "bind",
        "--payout-address",
        WALLET_ADDRESS,
        "--key-file",
        str(key_file),
        "--nonce",
        NONCE,
        "--issued-at",
        ISSUED_AT,
        "--wallet-signature",
        signature,
        *extra,
    )


def test_bind_writes_the_known_binding_and_checks(
    runner: CliRunner, key_file: Path, tmp_path: Path
) -> None:
    typed = print_typed_data(runner, key_file, "--nonce", NONCE, "--issued-at", ISSUED_AT)
    assert sign(typed) == WALLET_SIGNATURE
    result = bind(runner, key_file, WALLET_SIGNATURE)
    assert result.exit_code == 0, result.stderr
    assert f"wrote binding.json: node {load_key(key_file).node_id}" in result.stderr
    document = json.loads((tmp_path / "binding.json").read_text())
    assert document == {
        "version": 1,
        "typedData": typed,
        "walletSignature": WALLET_SIGNATURE,
        "nodeSignature": NODE_SIGNATURE,
    }
    checked = invoke(runner, "keys", "check-binding", "binding.json")
    assert checked.exit_code == 0, checked.stderr
    assert checked.stdout.replace("\n", "") == (
        f"valid: node {load_key(key_file).node_id} is paid at {WALLET_ADDRESS}"
    )
    as_json = invoke(runner, "keys", "check-binding", "--json", "-", input=json.dumps(document))
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == {
        "valid": True,
        "node_id": load_key(key_file).node_id,
        "payout_address": WALLET_ADDRESS,
        "nonce": NONCE,
        "issued_at": int(ISSUED_AT),
        "problems": [],
    }


def test_bind_from_the_typed_data_file(runner: CliRunner, key_file: Path, tmp_path: Path) -> None:
    typed = print_typed_data(runner, key_file)
    (tmp_path / "typed.json").write_text(json.dumps(typed))
    result = invoke(
        runner,
        "keys",
        "bind",
        "--typed-data",
        "typed.json",
        "--wallet-signature",
        sign(typed),
        "--key-file",
        str(key_file),
        "--out",
        "mine.json",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == json.loads((tmp_path / "mine.json").read_text())
    assert invoke(runner, "keys", "check-binding", "mine.json").exit_code == 0


def test_overwrite_needs_force(runner: CliRunner, key_file: Path, tmp_path: Path) -> None:
    (tmp_path / "binding.json").write_text("keep me")
    text = one_line_error(bind(runner, key_file, WALLET_SIGNATURE))
    assert "already exists; use --force" in text
    assert (tmp_path / "binding.json").read_text() == "keep me"
    assert bind(runner, key_file, WALLET_SIGNATURE, "--force").exit_code == 0
    assert json.loads((tmp_path / "binding.json").read_text())["nodeSignature"] == NODE_SIGNATURE


def test_signature_of_another_wallet_refused(
    runner: CliRunner, key_file: Path, tmp_path: Path
) -> None:
    typed = binding_typed_data(
        load_key(key_file).public_key, WALLET_ADDRESS, nonce=int(NONCE), issued_at=int(ISSUED_AT)
    )
    text = one_line_error(bind(runner, key_file, sign(typed, OTHER_WALLET_KEY)))
    other = address_of(OTHER_WALLET_KEY)
    assert f"made by {other}, not by the payout address {WALLET_ADDRESS}" in text
    assert not (tmp_path / "binding.json").exists()


def test_signature_over_other_numbers_refused(runner: CliRunner, key_file: Path) -> None:
    result = invoke(
        runner,
        "keys",
        "bind",
        "--payout-address",
        WALLET_ADDRESS,
        "--key-file",
        str(key_file),
        "--nonce",
        "1",
        "--issued-at",
        ISSUED_AT,
        "--wallet-signature",
        WALLET_SIGNATURE,
    )
    assert "not by the payout address" in one_line_error(result)


def test_typed_data_of_another_node_refused(
    runner: CliRunner, key_file: Path, tmp_path: Path
) -> None:
    other = NodeKey.generate()
    typed = binding_typed_data(other.public_key, WALLET_ADDRESS)
    (tmp_path / "typed.json").write_text(json.dumps(typed))
    result = invoke(
        runner,
        "keys",
        "bind",
        "--typed-data",
        "typed.json",
        "--wallet-signature",
        sign(typed),
        "--key-file",
        str(key_file),
    )
    assert "not this key's node" in one_line_error(result)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--payout-address", WALLET_ADDRESS.replace("E", "e", 1)], "mean " + WALLET_ADDRESS),
        (["--payout-address", "0xPAYOUT"], "is not an Ethereum address"),
        (["--payout-address", ""], "is not an Ethereum address"),
        ([], "give --payout-address"),
        (["--payout-address", WALLET_ADDRESS, "--wallet-signature", "0x00"], "--nonce"),
        (
            [
                "--payout-address",
                WALLET_ADDRESS,
                "--nonce",
                "1",
                "--issued-at",
                "2",
                "--wallet-signature",
                "0x00",
            ],
            "wallet signature is not 0x and 130 hex digits",
        ),
        (["--typed-data", "missing.json", "--wallet-signature", "0x00"], "cannot read missing"),
        (["--payout-address", WALLET_ADDRESS, "--nonce", "-1"], "error: "),
    ],
    ids=[
        "checksum",
        "not-hex",
        "empty",
        "no-address",
        "no-nonce",
        "short-signature",
        "no-typed-data-file",
        "negative-nonce",
    ],
)
def test_bind_refusals(runner: CliRunner, key_file: Path, args: list[str], said: str) -> None:
    result = invoke(runner, "keys", "bind", "--key-file", str(key_file), *args)
    assert said in one_line_error(result)


def test_check_binding_verdicts(runner: CliRunner, key_file: Path, tmp_path: Path) -> None:
    assert bind(runner, key_file, WALLET_SIGNATURE).exit_code == 0
    document = json.loads((tmp_path / "binding.json").read_text())
    document["typedData"]["message"]["issuedAt"] += 1
    (tmp_path / "tampered.json").write_text(json.dumps(document))
    result = invoke(runner, "keys", "check-binding", "tampered.json")
    assert result.exit_code == 1 and result.stdout == ""
    text = result.stderr.replace("\n", "")
    assert text.startswith("invalid: the wallet signature was made by")
    assert "the node signature is not the node key's signature" in text
    as_json = invoke(runner, "keys", "check-binding", "--json", "tampered.json")
    assert as_json.exit_code == 1
    verdict = json.loads(as_json.stdout)
    assert verdict["valid"] is False and len(verdict["problems"]) == 2


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[1]", '{"version": 2}', '{"version": 1, "typedData": {}}', "x" * 70000],
)
def test_check_binding_unreadable(runner: CliRunner, tmp_path: Path, text: str) -> None:
    (tmp_path / "b.json").write_text(text)
    for args in (["b.json"], ["--json", "b.json"]):
        one_line_error(invoke(runner, "keys", "check-binding", *args))
    one_line_error(invoke(runner, "keys", "check-binding", "missing.json"))
    (tmp_path / "bytes.json").write_bytes(b"\xff\xfe")
    one_line_error(invoke(runner, "keys", "check-binding", "bytes.json"))


def test_bind_does_not_replace_a_bad_key(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    save_key(NodeKey.generate(), path)
    path.chmod(0o644)
    result = invoke(
        runner, "keys", "bind", "--payout-address", WALLET_ADDRESS, "--key-file", str(path)
    )
    assert "readable by others" in one_line_error(result)
