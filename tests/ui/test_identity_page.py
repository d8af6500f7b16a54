"""The identity page: the node key, and a payout binding signed by a wallet (eth-account with a
test key standing in for the browser's), made and saved by the server; bad addresses and
signatures as one sentence next to their field."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import HTMX

# A throwaway test key (never holds anything).
WALLET_KEY = "0x" + "4c" * 32


def _account() -> Any:
    from tests.eth_wallet import Account

    return Account.from_key(WALLET_KEY)


def _sign(typed: dict[str, Any], key: str = WALLET_KEY) -> str:
    from tests.eth_wallet import sign

    return sign(typed, key)


def _prepare(client: Any, address: str) -> tuple[str, dict[str, Any]]:
    reply = client.post("/identity/prepare", data={"payout_address": address}, headers=HTMX)
    assert reply.status_code == 200, reply.text
    token = re.search(r'name="token" value="([0-9a-f]+)"', reply.text)
    typed = re.search(r'<script type="application/json" id="typed-data">(.*?)</script>', reply.text)
    assert token and typed, reply.text
    return token.group(1), json.loads(typed.group(1))


def test_a_key_is_created_on_request_and_shown(client: Any, tmp_path: Path) -> None:
    page = client.get("/identity").text
    assert "no key yet" in page and "Create the node key" in page
    assert client.post("/identity/key", follow_redirects=False).status_code == 303
    from ramnet.valkyrie import load_key

    node_id = load_key(tmp_path / "node.key").node_id
    page = client.get("/identity").text
    assert node_id in page and str(tmp_path / "node.key") in page


def test_a_wallet_signature_makes_a_valid_saved_binding(client: Any, tmp_path: Path) -> None:
    client.post("/identity/key")
    address = _account().address
    token, typed = _prepare(client, address.lower())
    assert typed["primaryType"] == "RamnetNodeBinding"
    assert typed["message"]["payoutAddress"] == address  # checksummed by the server
    reply = client.post(
        "/identity/bind", data={"token": token, "signature": _sign(typed)}, headers=HTMX
    )
    assert 'data-valid="true"' in reply.text and "Saved." in reply.text
    from ramnet.valkyrie._binding712 import check_binding, read_binding

    saved = tmp_path / "node.binding.json"
    check = check_binding(read_binding(saved.read_text()))
    assert check.valid and check.payout_address == address
    assert address in client.get("/identity").text
    # The statement was used up: a second post of the same token is refused.
    again = client.post("/identity/bind", data={"token": token, "signature": _sign(typed)})
    assert again.status_code == 400 and "expired" in again.text


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("0x1234", "not an Ethereum address"),
        ("", "Give the Ethereum address"),
    ],
)
def test_a_bad_address_is_one_sentence_next_to_its_field(
    client: Any, address: str, words: str
) -> None:
    client.post("/identity/key")
    reply = client.post("/identity/prepare", data={"payout_address": address}, headers=HTMX)
    assert reply.headers["HX-Retarget"] == "#bind-form"
    assert 'id="payout_address-error" role="alert"' in reply.text and words in reply.text


def test_a_bad_checksum_suggests_the_right_one(client: Any) -> None:
    client.post("/identity/key")
    address = _account().address
    first_letter = next(i for i, ch in enumerate(address) if i > 1 and ch.isalpha())
    flipped = (
        address[:first_letter] + address[first_letter].swapcase() + address[first_letter + 1 :]
    )
    reply = client.post("/identity/prepare", data={"payout_address": flipped}, headers=HTMX)
    assert "bad EIP-55 checksum" in reply.text and address in reply.text


def test_a_signature_by_another_address_is_refused_next_to_the_signature(client: Any) -> None:
    client.post("/identity/key")
    token, typed = _prepare(client, _account().address)
    other = _sign(typed, "0x" + "5d" * 32)
    reply = client.post("/identity/bind", data={"token": token, "signature": other}, headers=HTMX)
    assert reply.headers["HX-Retarget"] == "#sign-panel"
    assert 'id="signature-error" role="alert"' in reply.text
    assert "not by the payout address" in reply.text
    garbled = client.post(
        "/identity/bind", data={"token": token, "signature": "0x12"}, headers=HTMX
    )
    assert 'id="signature-error"' in garbled.text


def test_preparing_needs_a_key_first(client: Any) -> None:
    reply = client.post("/identity/prepare", data={"payout_address": _account().address})
    assert reply.status_code == 400 and "Create the node key first" in reply.text
