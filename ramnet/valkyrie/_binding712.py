"""Wallet binding: an EIP-712 statement tying a node's Ed25519 key to an Ethereum payout address.

A node is paid at an Ethereum address (``0x`` and 40 hex digits). Both keys sign one statement,
the EIP-712 typed data ``RamnetNodeBinding``::

    RamnetNodeBinding(bytes32 nodeId, address payoutAddress, uint256 nonce, uint256 issuedAt)

in the domain ``EIP712Domain(string name, string version)`` with name ``"RAMNET"`` and version
``"1"``. ``nodeId`` is the node's 32-byte Ed25519 public key, ``nonce`` a random 64-bit number
that makes each statement distinct, ``issuedAt`` unix seconds. ``binding_typed_data`` returns the
JSON object that a wallet's ``eth_signTypedData_v4`` takes; the wallet signs its EIP-712 digest
``keccak256(0x1901 || domainSeparator || hashStruct(message))`` with the address's secp256k1 key
(so the address owner agrees), and ``make_binding`` adds the node key's Ed25519 signature over the
same 32-byte digest (so the node agrees). Neither key leaves its owner.

The domain has no ``chainId`` and no ``verifyingContract``: the statement is off-chain. No chain is
involved, reachable or named, and RAMNET deploys no contract; the binding is a proof that a
contract or an operator can check later on whatever chain they choose (the digest is the same
everywhere, as the statement's meaning is). Its domain name and version, and the 0x1901 prefix,
already keep the signature from being valid for any other EIP-712 statement or transaction.

The binding document (a JSON object, written by ``ramnet keys bind --wallet-signature``)::

    {
      "version": 1,
      "typedData": {...the typed data above, canonical...},
      "walletSignature": "0x" + 130 hex digits (r || s || v, 65 bytes; v is 27 or 28, s low),
      "nodeSignature": "0x" + 128 hex digits (Ed25519 over the 32-byte EIP-712 digest)
    }

``check_binding`` reads such a document from untrusted JSON. It sorts what can be wrong in two:
a value that is not a binding document at all (not an object, no ``version`` 1 or one of the three
other fields missing or of the wrong JSON type) raises ``BindingFormatError`` ("unreadable",
``ramnet keys check-binding`` exits 2); anything else (a field with a wrong value, size or hex, a
different domain or types, a signature that does not check) is reported in ``BindingCheck.problems``
with ``valid`` False (exit 1). A wallet signature must be in the form a contract's ``ecrecover``
helpers accept (OpenZeppelin's ECDSA: v 27 or 28, s in the lower half of the curve order).

nonce is written as a decimal string: a 64-bit number does not survive JavaScript's numbers on its
way to a browser wallet; both forms are accepted when reading (EIP-712 wallets accept both too).
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ramnet._errors import InvalidInputError, TraceFormatError
from ramnet.valkyrie._keys import NodeKey, verify_signature

if TYPE_CHECKING:
    from eth_account.messages import SignableMessage

__all__ = [
    "BINDING_VERSION",
    "DOMAIN",
    "PRIMARY_TYPE",
    "TYPES",
    "BindingCheck",
    "BindingFormatError",
    "binding_digest",
    "binding_typed_data",
    "check_binding",
    "checksum_address",
    "load_eth_account",
    "make_binding",
    "read_binding",
]

BINDING_VERSION = 1
PRIMARY_TYPE = "RamnetNodeBinding"
DOMAIN: dict[str, str] = {"name": "RAMNET", "version": "1"}
TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
    ],
    PRIMARY_TYPE: [
        {"name": "nodeId", "type": "bytes32"},
        {"name": "payoutAddress", "type": "address"},
        {"name": "nonce", "type": "uint256"},
        {"name": "issuedAt", "type": "uint256"},
    ],
}
_DOCUMENT_KEYS = frozenset({"version", "typedData", "walletSignature", "nodeSignature"})
_TYPED_DATA_KEYS = frozenset({"types", "primaryType", "domain", "message"})
_MESSAGE_KEYS = frozenset(name["name"] for name in TYPES[PRIMARY_TYPE])
_OLD_STATEMENT = "ramnet-payout-binding-v1"  # ramnet.valkyrie._keys.bind_payout's document

MAX_DOCUMENT_BYTES = 1 << 16
_UINT256_LIMIT = 1 << 256
_ISSUED_AT_LIMIT = 1 << 64  # unix seconds beyond this are no date
# secp256k1's group order: a signature's r and s lie in [1, n), and s at most n/2 (EIP-2).
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_NODE_ID = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_WALLET_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}")
_NODE_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{128}")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,77}")


class BindingFormatError(TraceFormatError):
    """A value that is not a wallet binding document at all (``check-binding`` exit 2)."""


@dataclass(frozen=True)
class BindingCheck:
    """What ``check_binding`` found.

    Attributes:
        valid: Both signatures check and every field is well formed.
        node_id: The node id the statement names (64 lowercase hex digits), "" if unreadable.
        payout_address: The payout address (EIP-55 checksummed), "" if unreadable.
        problems: One sentence per problem found; empty when valid.
        nonce: The statement's nonce, None if unreadable.
        issued_at: The statement's issuedAt (unix seconds), None if unreadable.
    """

    valid: bool
    node_id: str
    payout_address: str
    problems: list[str] = field(default_factory=list)
    nonce: int | None = None
    issued_at: int | None = None


def _shown(text: str, limit: int = 60) -> str:
    """``text`` made safe for a one-line message: printable, clipped."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def checksum_address(address: object) -> str:
    """Check an Ethereum address and return it in its EIP-55 checksummed form.

    All-lowercase and all-uppercase hex carry no checksum and are accepted; mixed case must be a
    valid EIP-55 checksum (a typo in one digit then changes the case pattern and is caught).

    Args:
        address: ``0x`` and 40 hex digits (any JSON value is checked, not trusted).

    Returns:
        The address with its EIP-55 capitalisation.

    Raises:
        InvalidInputError: Not ``0x`` and 40 hex digits, or mixed case with a bad checksum.
    """
    from eth_utils.address import is_checksum_address, to_checksum_address

    if not isinstance(address, str) or not _HEX_ADDRESS.fullmatch(address):
        shown = _shown(address) if isinstance(address, str) else type(address).__name__
        raise InvalidInputError(
            f"payout address {shown!r} is not an Ethereum address (0x and 40 hex digits)"
        )
    digits = address[2:]
    right = str(to_checksum_address(address.lower()))
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(address):
        raise InvalidInputError(
            f"payout address {address} has a bad EIP-55 checksum; did you mean {right}?"
        )
    return right


def _node_id_bytes(node_id: bytes | str) -> bytes:
    if isinstance(node_id, bytes):
        raw = node_id
    elif isinstance(node_id, str) and _NODE_ID.fullmatch(node_id):
        raw = bytes.fromhex(node_id.removeprefix("0x"))
    else:
        raise InvalidInputError("the node id must be 64 hex digits (an Ed25519 public key)")
    if len(raw) != 32:
        raise InvalidInputError("the node id must be 32 bytes (an Ed25519 public key)")
    return raw


def _typed_data(node_id: bytes, address: str, nonce: int, issued_at: int) -> dict[str, Any]:
    return {
        "types": {name: [dict(entry) for entry in entries] for name, entries in TYPES.items()},
        "primaryType": PRIMARY_TYPE,
        "domain": dict(DOMAIN),
        "message": {
            "nodeId": "0x" + node_id.hex(),
            "payoutAddress": address,
            "nonce": str(nonce),
            "issuedAt": issued_at,
        },
    }


def binding_typed_data(
    node_id: bytes | str,
    payout_address: str,
    *,
    nonce: int | None = None,
    issued_at: int | None = None,
) -> dict[str, Any]:
    """Return the EIP-712 typed data binding ``payout_address`` to the node, for a wallet to sign.

    Args:
        node_id: The node's Ed25519 public key: 32 bytes, or 64 hex digits (``0x`` optional).
        payout_address: The Ethereum address to be paid at (checked as ``checksum_address``).
        nonce: 0 <= nonce < 2**256; a random 64-bit number when None.
        issued_at: Unix seconds, 0 <= issued_at < 2**64; now when None.

    Returns:
        The JSON object ``eth_signTypedData_v4`` takes: ``types``, ``primaryType``, ``domain`` and
        ``message`` (nodeId as 0x-hex, payoutAddress checksummed, nonce as a decimal string,
        issuedAt as an integer).

    Raises:
        InvalidInputError: A bad node id, address, nonce or time.
    """
    raw = _node_id_bytes(node_id)
    address = checksum_address(payout_address)
    if nonce is None:
        nonce = secrets.randbits(64)
    if issued_at is None:
        issued_at = int(time.time())
    if isinstance(nonce, bool) or not isinstance(nonce, int) or not 0 <= nonce < _UINT256_LIMIT:
        raise InvalidInputError("the nonce must be a whole number from 0 to 2**256 - 1")
    if (
        isinstance(issued_at, bool)
        or not isinstance(issued_at, int)
        or not 0 <= issued_at < _ISSUED_AT_LIMIT
    ):
        raise InvalidInputError("issuedAt must be unix seconds from 0 to 2**64 - 1")
    return _typed_data(raw, address, nonce, issued_at)


@dataclass(frozen=True)
class _Statement:
    node_id: bytes
    address: str
    nonce: int
    issued_at: int

    def typed_data(self) -> dict[str, Any]:
        return _typed_data(self.node_id, self.address, self.nonce, self.issued_at)


def _whole(value: object, what: str, limit: int, problems: list[str]) -> int | None:
    """A uint from JSON: an integer or a decimal string, 0 <= value < limit."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _DECIMAL.fullmatch(value):
        number = int(value)
    if number is None or not 0 <= number < limit:
        problems.append(f"{what} is not a whole number below 2**{limit.bit_length() - 1}")
        return None
    return number


def _parse_statement(typed_data: object, problems: list[str]) -> _Statement | None:
    """The statement in untrusted typed data, or None with the reasons added to ``problems``."""
    if not isinstance(typed_data, dict):
        problems.append("typedData is not an object")
        return None
    if set(typed_data) != _TYPED_DATA_KEYS:
        problems.append("typedData must have exactly types, primaryType, domain and message")
    if typed_data.get("types") != TYPES:
        problems.append(f"typedData's types are not EIP712Domain and {PRIMARY_TYPE} as defined")
    if typed_data.get("primaryType") != PRIMARY_TYPE:
        problems.append(f"typedData's primaryType is not {PRIMARY_TYPE}")
    if typed_data.get("domain") != DOMAIN:
        problems.append('typedData\'s domain is not {"name": "RAMNET", "version": "1"}')
    message = typed_data.get("message")
    if not isinstance(message, dict):
        problems.append("typedData's message is not an object")
        return None
    if set(message) != _MESSAGE_KEYS:
        problems.append("the message must have exactly nodeId, payoutAddress, nonce and issuedAt")
    node_text = message.get("nodeId")
    node_id: bytes | None = None
    if isinstance(node_text, str) and node_text.startswith("0x") and _NODE_ID.fullmatch(node_text):
        node_id = bytes.fromhex(node_text[2:])
    else:
        problems.append("nodeId is not 0x and 64 hex digits")
    address: str | None = None
    try:
        address = checksum_address(message.get("payoutAddress"))
    except InvalidInputError as exc:
        problems.append(str(exc))
    nonce = _whole(message.get("nonce"), "nonce", _UINT256_LIMIT, problems)
    issued_at = _whole(message.get("issuedAt"), "issuedAt", _ISSUED_AT_LIMIT, problems)
    if node_id is None or address is None or nonce is None or issued_at is None:
        return None
    return _Statement(node_id, address, nonce, issued_at)


def load_eth_account() -> ModuleType:
    """Import eth-account, keeping the interpreter's recursion limit as it was.

    Importing eth-account imports py_ecc, which raises ``sys.setrecursionlimit`` to 100000 for
    the whole process. A JSON body nested deep enough would then overflow the C stack in the
    json module's decoder and crash the coordinator (or any process that read untrusted JSON)
    instead of raising RecursionError. Nothing RAMNET calls in eth-account needs the raised limit
    (the binding tests pass under the default one). Import eth-account through this function, in
    RAMNET and in its tests.

    Returns:
        The ``eth_account`` module.
    """
    import sys

    limit = sys.getrecursionlimit()
    try:
        import eth_account
        import eth_account.messages
    finally:
        sys.setrecursionlimit(limit)
    return eth_account


def _signable(statement: _Statement) -> SignableMessage:
    load_eth_account()  # first, so that the import below finds it loaded
    from eth_account.messages import encode_typed_data

    return encode_typed_data(full_message=statement.typed_data())


def binding_digest(typed_data: dict[str, Any]) -> bytes:
    """Return the 32-byte EIP-712 digest of binding typed data: what both keys sign.

    Args:
        typed_data: As ``binding_typed_data`` returns.

    Returns:
        ``keccak256(0x19 0x01 || domainSeparator || hashStruct(message))``.

    Raises:
        InvalidInputError: Not this statement's typed data.
    """
    problems: list[str] = []
    statement = _parse_statement(typed_data, problems)
    if statement is None or problems:
        raise InvalidInputError(f"not a RAMNET binding statement: {problems[0]}")
    return _digest(statement)


def _digest(statement: _Statement) -> bytes:
    from eth_utils.crypto import keccak

    signable = _signable(statement)
    return bytes(keccak(b"\x19" + signable.version + signable.header + signable.body))


def _wallet_signature(text: object, problems: list[str], *, lenient_v: bool) -> bytes | None:
    """65 signature bytes in the form contracts accept, or None with the reason in ``problems``."""
    if not isinstance(text, str) or not _WALLET_SIGNATURE.fullmatch(text):
        problems.append("the wallet signature is not 0x and 130 hex digits (65 bytes)")
        return None
    raw = bytearray.fromhex(text[2:])
    r, s, v = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]
    if lenient_v and v in (0, 1):  # some wallets (hardware ones) give v as 0/1
        v += 27
        raw[64] = v
    if v not in (27, 28):
        problems.append(f"the wallet signature's v is {v}, not 27 or 28")
        return None
    if not (0 < r < _SECP256K1_N and 0 < s <= _SECP256K1_N // 2):
        problems.append("the wallet signature is not canonical (r or s out of range, or high s)")
        return None
    return bytes(raw)


def _recover(statement: _Statement, signature: bytes) -> str | None:
    load_eth_account()
    from eth_account import Account
    from eth_keys.exceptions import BadSignature
    from eth_utils.exceptions import ValidationError

    try:
        return str(Account.recover_message(_signable(statement), signature=signature))
    except (BadSignature, ValidationError, ValueError):
        return None


def make_binding(key: NodeKey, typed_data: dict[str, Any], wallet_signature: str) -> dict[str, Any]:
    """Check a wallet's signature of binding typed data and add the node's: the binding document.

    Args:
        key: The node key the statement's nodeId must be.
        typed_data: The statement (as ``binding_typed_data`` returned it, or read back from JSON).
        wallet_signature: The wallet's ``eth_signTypedData_v4`` result: ``0x`` and 130 hex digits
            (a v of 0 or 1 is written as 27 or 28).

    Returns:
        ``{"version": 1, "typedData", "walletSignature", "nodeSignature"}`` (module docstring).

    Raises:
        InvalidInputError: The typed data is not a binding statement for this key, or the
            signature is malformed or does not recover the payout address.
    """
    problems: list[str] = []
    statement = _parse_statement(typed_data, problems)
    if statement is None or problems:
        raise InvalidInputError(f"not a RAMNET binding statement: {problems[0]}")
    if statement.node_id != key.public_key:
        raise InvalidInputError(
            f"the statement binds node {statement.node_id.hex()[:16]}..., "
            f"not this key's node {key.node_id[:16]}..."
        )
    signature = _wallet_signature(wallet_signature, problems, lenient_v=True)
    if signature is None:
        raise InvalidInputError(problems[0])
    signer = _recover(statement, signature)
    if signer != statement.address:
        raise InvalidInputError(
            f"the wallet signature was made by {signer or 'no address'}, not by the payout "
            f"address {statement.address}; sign the typed data with that address's wallet"
        )
    node_signature = key.sign(_digest(statement))
    return {
        "version": BINDING_VERSION,
        "typedData": statement.typed_data(),
        "walletSignature": "0x" + signature.hex(),
        "nodeSignature": "0x" + node_signature.hex(),
    }


_JSON_SIGNIFICANT = re.compile(r'["\\\[\]{}]')  # what strings and nesting are made of
_MAX_DEPTH = 16  # a binding document nests 5 deep


def _too_deep(text: str) -> bool:
    """Whether JSON ``text`` nests arrays and objects more than ``_MAX_DEPTH`` deep.

    Checked before parsing, so that the parser's recursion never meets a deep document: its
    guard is the interpreter's recursion limit, which a library may have raised (py_ecc does,
    see ``load_eth_account``) beyond what the C stack holds.
    """
    # One pass, linear in the text whatever it holds (a regular expression for strings
    # backtracks quadratically on unterminated ones).
    depth, in_string, escaped_at = 0, False, -1
    for match in _JSON_SIGNIFICANT.finditer(text):
        at = match.start()
        if at == escaped_at:
            continue
        char = text[at]
        if in_string:
            if char == "\\":
                escaped_at = at + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > _MAX_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False


def read_binding(text: str | bytes) -> dict[str, Any]:
    """Parse a binding document's JSON text (at most 64 KiB, nested at most 16 deep).

    Returns:
        The JSON object, to give to ``check_binding``.

    Raises:
        BindingFormatError: Too large or too deep, not JSON, or not a JSON object.
    """
    import json

    if len(text) > MAX_DOCUMENT_BYTES:
        raise BindingFormatError("not a wallet binding: larger than 64 KiB")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BindingFormatError("not a wallet binding: not UTF-8 text") from exc
    if _too_deep(text):
        raise BindingFormatError("not a wallet binding: nested too deep")
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BindingFormatError(f"not a wallet binding: not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise BindingFormatError("not a wallet binding: not a JSON object")
    return value


def check_binding(document: object) -> BindingCheck:
    """Check a binding document from untrusted JSON: its fields and both signatures.

    Args:
        document: The parsed JSON value (``read_binding`` parses text).

    Returns:
        A ``BindingCheck``; ``valid`` only when everything checks.

    Raises:
        BindingFormatError: Not a binding document at all: not an object, or ``version`` 1,
            ``typedData`` (an object) or the two signatures (strings) missing. Every other fault
            is reported in the result, never raised.
    """
    if not isinstance(document, dict):
        raise BindingFormatError("not a wallet binding: not a JSON object")
    if document.get("statement") == _OLD_STATEMENT:
        raise BindingFormatError(
            "an old payout binding signed by the node key only, without a wallet signature; "
            "make a new one with 'ramnet keys bind'"
        )
    version = document.get("version")
    if isinstance(version, bool) or version != BINDING_VERSION:
        raise BindingFormatError("not a wallet binding: no version 1")
    if not isinstance(document.get("typedData"), dict):
        raise BindingFormatError("not a wallet binding: no typedData object")
    for name in ("walletSignature", "nodeSignature"):
        if not isinstance(document.get(name), str):
            raise BindingFormatError(f"not a wallet binding: no {name} string")
    problems: list[str] = []
    extra = sorted(str(k) for k in set(document) - _DOCUMENT_KEYS)
    if extra:
        problems.append(f"unexpected field(s): {_shown(', '.join(extra))}")
    statement = _parse_statement(document["typedData"], problems)
    wallet_signature = _wallet_signature(document["walletSignature"], problems, lenient_v=False)
    node_text = document["nodeSignature"]
    node_signature: bytes | None = None
    if _NODE_SIGNATURE.fullmatch(node_text):
        node_signature = bytes.fromhex(node_text[2:])
    else:
        problems.append("the node signature is not 0x and 128 hex digits (64 bytes)")
    if statement is None:
        return BindingCheck(False, "", "", problems)
    if wallet_signature is not None:
        signer = _recover(statement, wallet_signature)
        if signer != statement.address:
            problems.append(
                f"the wallet signature was made by {signer or 'no address'}, "
                f"not by the payout address {statement.address}"
            )
    if node_signature is not None and not verify_signature(
        statement.node_id, _digest(statement), node_signature
    ):
        problems.append("the node signature is not the node key's signature of the statement")
    return BindingCheck(
        valid=not problems,
        node_id=statement.node_id.hex(),
        payout_address=statement.address,
        problems=problems,
        nonce=statement.nonce,
        issued_at=statement.issued_at,
    )
