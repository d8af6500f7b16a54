"""Wallet binding with EIP-712: the statement, both signatures, and strict reading of a document."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import nacl.signing
import pytest
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ramnet._errors import InvalidInputError, TraceFormatError
from ramnet.valkyrie import NodeKey, bind_payout
from ramnet.valkyrie._binding712 import (
    BindingCheck,
    BindingFormatError,
    binding_digest,
    binding_typed_data,
    check_binding,
    checksum_address,
    make_binding,
    read_binding,
)
from tests.eth_wallet import (
    OTHER_WALLET_KEY,
    WALLET_ADDRESS,
    WALLET_KEY,
    Account,
    encode_typed_data,
)
from tests.eth_wallet import sign as wallet_sign

NODE_SEED = bytes(range(32))
NONCE = 0x0123456789ABCDEF
ISSUED_AT = 1767225600  # 2026-01-01T00:00:00Z

# Pinned: a change to the statement, its encoding or the signing changes these.
NODE_ID = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
DIGEST = "7b27c849795b7d1940b552f6d342dfd740551c3ba1124717d07e7bb8802e323d"
WALLET_SIGNATURE = (
    "0xe1e6906ef0006cd6cef92b881873e9aca00d23c5ad385eff4ce6f7e7d4bee189"
    "3da84d0abb6d6b187066f82a3cdc4271ff87522268898aa6aabbd660352eeb7a1b"
)
NODE_SIGNATURE = (
    "0x9d0f7740b29bdd2721adcc00c907e6c44e2c8cda46fa278a6fae247d53ea3ad0"
    "8ea96b0c71169b6ea0eb7118e2c9c8ac83a49d80cfe6128425b9d0673b4dbd09"
)
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def node_key() -> NodeKey:
    return NodeKey(nacl.signing.SigningKey(NODE_SEED))


def fixed_typed_data() -> dict[str, Any]:
    return binding_typed_data(
        node_key().public_key, WALLET_ADDRESS, nonce=NONCE, issued_at=ISSUED_AT
    )


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    typed = fixed_typed_data()
    return make_binding(node_key(), typed, wallet_sign(typed))


def _hand_digest(node_id: bytes, address: str, nonce: int, issued_at: int) -> bytes:
    """EIP-712 written out from the specification, independent of eth-account's encoder."""

    def word(n: int) -> bytes:
        return n.to_bytes(32, "big")

    domain_type = keccak(b"EIP712Domain(string name,string version)")
    domain = keccak(domain_type + keccak(b"RAMNET") + keccak(b"1"))
    struct_type = keccak(
        b"RamnetNodeBinding(bytes32 nodeId,address payoutAddress,uint256 nonce,uint256 issuedAt)"
    )
    struct = keccak(
        struct_type
        + node_id
        + bytes(12)
        + bytes.fromhex(address[2:])
        + word(nonce)
        + word(issued_at)
    )
    return keccak(b"\x19\x01" + domain + struct)


# ---- known answers ----


def test_known_answer() -> None:
    key = node_key()
    assert key.node_id == NODE_ID
    typed = fixed_typed_data()
    assert typed == {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
            ],
            "RamnetNodeBinding": [
                {"name": "nodeId", "type": "bytes32"},
                {"name": "payoutAddress", "type": "address"},
                {"name": "nonce", "type": "uint256"},
                {"name": "issuedAt", "type": "uint256"},
            ],
        },
        "primaryType": "RamnetNodeBinding",
        "domain": {"name": "RAMNET", "version": "1"},
        "message": {
            "nodeId": "0x" + NODE_ID,
            "payoutAddress": WALLET_ADDRESS,
            "nonce": str(NONCE),
            "issuedAt": ISSUED_AT,
        },
    }
    digest = binding_digest(typed)
    assert digest.hex() == DIGEST
    # eth-account's own encoding and hash of the same typed data, and EIP-712 by hand.
    signable = encode_typed_data(full_message=typed)
    assert keccak(b"\x19" + signable.version + signable.header + signable.body) == digest
    assert _hand_digest(key.public_key, WALLET_ADDRESS, NONCE, ISSUED_AT) == digest
    assert Account.from_key(WALLET_KEY).address == WALLET_ADDRESS
    assert wallet_sign(typed) == WALLET_SIGNATURE
    assert Account.unsafe_sign_hash(digest, WALLET_KEY).signature.hex().removeprefix(
        "0x"
    ) == WALLET_SIGNATURE.removeprefix("0x")
    doc = make_binding(key, typed, WALLET_SIGNATURE)
    assert doc == {
        "version": 1,
        "typedData": typed,
        "walletSignature": WALLET_SIGNATURE,
        "nodeSignature": NODE_SIGNATURE,
    }


def test_valid_document(document: dict[str, Any]) -> None:
    check = check_binding(document)
    assert check == BindingCheck(
        valid=True,
        node_id=NODE_ID,
        payout_address=WALLET_ADDRESS,
        problems=[],
        nonce=NONCE,
        issued_at=ISSUED_AT,
    )
    assert check_binding(read_binding(json.dumps(document))).valid
    assert check_binding(read_binding(json.dumps(document).encode())).valid


def test_defaults_random_nonce_and_now() -> None:
    a = binding_typed_data(NODE_ID, WALLET_ADDRESS)
    b = binding_typed_data("0x" + NODE_ID, WALLET_ADDRESS.lower())
    assert a["message"]["nonce"] != b["message"]["nonce"]
    assert 0 <= int(a["message"]["nonce"]) < 2**64
    assert abs(a["message"]["issuedAt"] - b["message"]["issuedAt"]) <= 5
    assert b["message"]["payoutAddress"] == WALLET_ADDRESS  # checksummed on the way in


def test_nonce_survives_javascript_numbers() -> None:
    # A 64-bit nonce is written as a decimal string: JSON numbers become doubles in a browser.
    typed = binding_typed_data(NODE_ID, WALLET_ADDRESS, nonce=2**64 - 1, issued_at=ISSUED_AT)
    assert typed["message"]["nonce"] == str(2**64 - 1)
    doc = make_binding(node_key(), typed, wallet_sign(typed))
    as_number = copy.deepcopy(doc)
    as_number["typedData"]["message"]["nonce"] = 2**64 - 1
    assert check_binding(as_number).valid


# ---- tampering ----


def _set(path: tuple[str, ...], value: object) -> Any:
    def change(doc: dict[str, Any]) -> dict[str, Any]:
        doc = copy.deepcopy(doc)
        target = doc
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        return doc

    return change


def _flip_hex_digit(text: str, at: int) -> str:
    digit = text[at]
    return text[:at] + ("1" if digit != "1" else "2") + text[at + 1 :]


OTHER_ADDRESS = Account.from_key(OTHER_WALLET_KEY).address
TAMPERINGS = {
    "nodeId": _set(("typedData", "message", "nodeId"), "0x" + NodeKey.generate().node_id),
    "payoutAddress": _set(("typedData", "message", "payoutAddress"), OTHER_ADDRESS),
    "nonce": _set(("typedData", "message", "nonce"), str(NONCE + 1)),
    "issuedAt": _set(("typedData", "message", "issuedAt"), ISSUED_AT + 1),
    "domain-name": _set(("typedData", "domain", "name"), "RAMNET2"),
    "domain-version": _set(("typedData", "domain", "version"), "2"),
    "domain-chain": _set(("typedData", "domain", "chainId"), 1),
    "primaryType": _set(("typedData", "primaryType"), "Other"),
    "types": _set(("typedData", "types", "RamnetNodeBinding"), []),
    "extra-message-field": _set(("typedData", "message", "extra"), 1),
    "extra-field": _set(("extra",), 1),
    "walletSignature": lambda d: _set(
        ("walletSignature",), _flip_hex_digit(d["walletSignature"], 10)
    )(d),
    "walletSignature-v": lambda d: _set(
        ("walletSignature",),
        d["walletSignature"][:-2] + ("1c" if d["walletSignature"].endswith("1b") else "1b"),
    )(d),
    "nodeSignature": lambda d: _set(("nodeSignature",), _flip_hex_digit(d["nodeSignature"], 10))(d),
    "nodeSignature-short": lambda d: _set(("nodeSignature",), d["nodeSignature"][:-2])(d),
    "nonce-negative": _set(("typedData", "message", "nonce"), -1),
    "nonce-leading-zero": _set(("typedData", "message", "nonce"), "0" + str(NONCE)),
    "issuedAt-bool": _set(("typedData", "message", "issuedAt"), True),
    "nodeId-short": _set(("typedData", "message", "nodeId"), "0x" + NODE_ID[:-2]),
    "nodeId-no-0x": _set(("typedData", "message", "nodeId"), NODE_ID),
    "address-bad-checksum": _set(
        ("typedData", "message", "payoutAddress"), WALLET_ADDRESS.replace("E", "e", 1)
    ),
}


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_tampered_field_invalid(document: dict[str, Any], name: str) -> None:
    tampered = TAMPERINGS[name](document)
    assert tampered != document
    check = check_binding(tampered)
    assert not check.valid
    assert check.problems and all("\n" not in p for p in check.problems)


def test_address_case_does_not_matter_to_the_signature(document: dict[str, Any]) -> None:
    lower = _set(("typedData", "message", "payoutAddress"), WALLET_ADDRESS.lower())(document)
    assert check_binding(lower).valid


def test_high_s_signature_refused(document: dict[str, Any]) -> None:
    raw = bytes.fromhex(document["walletSignature"][2:])
    s = int.from_bytes(raw[32:64], "big")
    flipped = raw[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - raw[64]])
    # The same wallet's signature in its other (malleable) form: ecrecover accepts it, contracts
    # that follow EIP-2 do not, and neither does RAMNET.
    assert Account._recover_hash(bytes.fromhex(DIGEST), signature=flipped) == WALLET_ADDRESS
    check = check_binding(_set(("walletSignature",), "0x" + flipped.hex())(document))
    assert not check.valid and "high s" in check.problems[0]


def test_v_zero_one_normalised_by_make_binding() -> None:
    typed = fixed_typed_data()
    raw = bytes.fromhex(WALLET_SIGNATURE[2:])
    zero_one = "0x" + (raw[:64] + bytes([raw[64] - 27])).hex()
    doc = make_binding(node_key(), typed, zero_one)
    assert doc["walletSignature"] == WALLET_SIGNATURE
    # In a document the form contracts accept is required.
    assert not check_binding({**doc, "walletSignature": zero_one}).valid


# ---- wrong signer, wrong node ----


def test_wallet_signature_of_another_address_refused() -> None:
    typed = fixed_typed_data()
    other = wallet_sign(typed, OTHER_WALLET_KEY)
    with pytest.raises(InvalidInputError, match=f"made by {OTHER_ADDRESS}, not by the payout"):
        make_binding(node_key(), typed, other)


def test_signature_for_another_address_in_a_document_invalid(document: dict[str, Any]) -> None:
    # A wallet that signed a statement for its own address, pasted on ours.
    theirs = binding_typed_data(NODE_ID, OTHER_ADDRESS, nonce=NONCE, issued_at=ISSUED_AT)
    forged = {**document, "walletSignature": wallet_sign(theirs, OTHER_WALLET_KEY)}
    check = check_binding(forged)
    assert not check.valid
    assert any("not by the payout address" in p for p in check.problems)


def test_statement_for_another_node_refused(document: dict[str, Any]) -> None:
    other = NodeKey.generate()
    with pytest.raises(InvalidInputError, match="not this key's node"):
        make_binding(other, fixed_typed_data(), WALLET_SIGNATURE)
    # Another node's signature over the same statement does not pass as the named node's.
    stolen = {**document, "nodeSignature": "0x" + other.sign(bytes.fromhex(DIGEST)).hex()}
    assert not check_binding(stolen).valid


def test_make_binding_refuses_malformed_signature() -> None:
    for bad in (
        "",
        "0x",
        WALLET_SIGNATURE[:-2],
        WALLET_SIGNATURE + "00",
        "zz" + WALLET_SIGNATURE[2:],
    ):
        with pytest.raises(InvalidInputError, match="wallet signature"):
            make_binding(node_key(), fixed_typed_data(), bad)


def test_make_binding_refuses_non_canonical_typed_data() -> None:
    typed = fixed_typed_data()
    typed["domain"]["chainId"] = 1
    with pytest.raises(InvalidInputError, match="domain"):
        make_binding(node_key(), typed, WALLET_SIGNATURE)


# ---- addresses ----


def test_checksum_address_forms() -> None:
    assert checksum_address(WALLET_ADDRESS) == WALLET_ADDRESS
    assert checksum_address(WALLET_ADDRESS.lower()) == WALLET_ADDRESS
    assert checksum_address("0x" + WALLET_ADDRESS[2:].upper()) == WALLET_ADDRESS


def test_bad_checksum_says_what_was_meant() -> None:
    typo = WALLET_ADDRESS.replace("E", "e", 1)
    with pytest.raises(InvalidInputError) as caught:
        binding_typed_data(NODE_ID, typo)
    assert str(caught.value) == (
        f"payout address {typo} has a bad EIP-55 checksum; did you mean {WALLET_ADDRESS}?"
    )


@pytest.mark.parametrize(
    "address",
    [
        "",
        "0xPAYOUT",
        WALLET_ADDRESS[2:],
        WALLET_ADDRESS[:-1],
        WALLET_ADDRESS + "0",
        "0x" + "g" * 40,
        "a\nb",
        "x" * 513,
        " " + WALLET_ADDRESS,
    ],
)
def test_not_an_address(address: str) -> None:
    with pytest.raises(InvalidInputError, match="is not an Ethereum address") as caught:
        binding_typed_data(NODE_ID, address)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 160


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"nonce": -1}, "nonce"),
        ({"nonce": 2**256}, "nonce"),
        ({"issued_at": -1}, "issuedAt"),
        ({"issued_at": 2**64}, "issuedAt"),
    ],
)
def test_bad_numbers(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        binding_typed_data(NODE_ID, WALLET_ADDRESS, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("node_id", ["", "zz" * 32, NODE_ID[:-2], b"\x00" * 31])
def test_bad_node_id(node_id: str | bytes) -> None:
    with pytest.raises(InvalidInputError, match="node id"):
        binding_typed_data(node_id, WALLET_ADDRESS)


# ---- what is no binding at all ----


@pytest.mark.parametrize(
    "value",
    [
        None,
        [1, 2],
        "text",
        {},
        {"version": 2, "typedData": {}, "walletSignature": "", "nodeSignature": ""},
        {"version": True, "typedData": {}, "walletSignature": "", "nodeSignature": ""},
        {"version": 1, "typedData": [], "walletSignature": "", "nodeSignature": ""},
        {"version": 1, "typedData": {}, "walletSignature": 1, "nodeSignature": ""},
        {"version": 1, "typedData": {}, "walletSignature": ""},
    ],
)
def test_not_a_binding_raises(value: object) -> None:
    with pytest.raises(BindingFormatError):
        check_binding(value)


def test_old_ed25519_only_binding_named() -> None:
    old = bind_payout(node_key(), WALLET_ADDRESS)
    with pytest.raises(BindingFormatError, match="without a wallet signature"):
        check_binding(old)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[1]",
        "1" * 70000,
        "[" * 60000,
        "[" * 17 + "]" * 17,
        '{"a": ["\\\\", ' + "[" * 16 + "]" * 16 + "]}",  # an escaped backslash, then 17 deep
        '"\\' * 21000,  # unterminated strings: linear to scan
        b"\xff\xfe",
    ],
)
def test_read_binding_refuses(text: str | bytes) -> None:
    with pytest.raises(BindingFormatError):
        read_binding(text)


def test_format_error_is_a_trace_format_error() -> None:
    # The CLI maps it to exit 2 (InvalidInputError), as it does unreadable traces.
    assert issubclass(BindingFormatError, TraceFormatError)


# ---- fuzzing: untrusted JSON gives a verdict or BindingFormatError, nothing else ----

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**300)
    | st.floats(allow_nan=False)
    | st.text(max_size=140)
    | st.sampled_from(["0x" + NODE_ID, WALLET_ADDRESS, WALLET_SIGNATURE, NODE_SIGNATURE, "0x"])
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=14), inner, max_size=5)
    ),
    max_leaves=20,
)


def _outcome(value: object) -> BindingCheck | None:
    try:
        check = check_binding(value)
    except BindingFormatError as exc:
        assert "\n" not in str(exc)
        return None
    assert isinstance(check, BindingCheck)
    assert check.valid == (not check.problems)
    assert all(isinstance(p, str) and "\n" not in p for p in check.problems)
    return check


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values)
def test_random_json(value: object) -> None:
    check = _outcome(value)
    assert check is None or not check.valid


def _leaf_paths(value: object, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaf_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaf_paths(v, (*path, i))]
    return [path]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), replacement=json_values)
def test_random_leaf_replaced(
    document: dict[str, Any], data: st.DataObject, replacement: object
) -> None:
    path = data.draw(st.sampled_from(_leaf_paths(document)))
    changed = copy.deepcopy(document)
    target: Any = changed
    for step in path[:-1]:
        target = target[step]
    original = target[path[-1]]
    target[path[-1]] = replacement
    check = _outcome(changed)
    if check is not None and check.valid:
        # Only the forms that mean the same statement may pass: the address in other case,
        # the nonce as a number.
        assert str(replacement).lower() == str(original).lower(), (path, replacement)
    # The document given is never modified.
    assert check_binding(document).valid


def test_deep_json_refused_under_a_raised_recursion_limit() -> None:
    # Whatever raised the limit (eth-account imported directly, say), a deep document is refused
    # before the parser recurses: the process does not crash.
    code = (
        "import sys\n"
        "sys.setrecursionlimit(100000)\n"
        "from ramnet.valkyrie._binding712 import BindingFormatError, read_binding\n"
        "for text in ('[' * 60000, '{\"a\":' * 13000, '[\"]\", ' * 20 + '1' + ']' * 20):\n"
        "    try:\n"
        "        read_binding(text)\n"
        "    except BindingFormatError as exc:\n"
        "        print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["not a wallet binding: nested too deep"] * 3


def test_strings_do_not_count_as_nesting() -> None:
    deep_text = {"version": 1, "x": "[" * 100 + "{" * 100}
    assert read_binding(json.dumps(deep_text)) == deep_text


def test_recursion_limit_kept() -> None:
    # py_ecc, imported by eth-account, raises the limit for the whole process; a coordinator
    # that checked a binding would then crash on deeply nested JSON instead of refusing it.
    code = (
        "import json, sys\n"
        "from ramnet.valkyrie._binding712 import binding_digest, binding_typed_data\n"
        f"binding_digest(binding_typed_data('{NODE_ID}', '{WALLET_ADDRESS}'))\n"
        "assert 'py_ecc' in sys.modules and sys.getrecursionlimit() == 1000\n"
        "try:\n"
        "    json.loads('[' * 200000)\n"
        "except RecursionError:\n"
        "    print('refused')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "refused\n", done.stderr
