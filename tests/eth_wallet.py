"""A test wallet: eth-account with its well-known test key, signing EIP-712 typed data.

eth-account is imported through ``load_eth_account``: imported directly, py_ecc beneath it raises
the interpreter's recursion limit to 100000 for the whole test session, and a later test that
feeds deeply nested JSON to the C decoder then crashes the session instead of getting a
RecursionError.
"""

from __future__ import annotations

from typing import Any

from ramnet.valkyrie._binding712 import load_eth_account

load_eth_account()

from eth_account import Account  # noqa: E402 - after load_eth_account, on purpose
from eth_account.messages import encode_typed_data  # noqa: E402

__all__ = [
    "OTHER_WALLET_KEY",
    "WALLET_ADDRESS",
    "WALLET_KEY",
    "Account",
    "address_of",
    "encode_typed_data",
    "sign",
]

# eth-account's documented test key, and its address.
WALLET_KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
WALLET_ADDRESS = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
OTHER_WALLET_KEY = "0x" + "11" * 32


def sign(typed_data: dict[str, Any], private_key: str = WALLET_KEY) -> str:
    """What a wallet's ``eth_signTypedData_v4`` returns for ``typed_data``: 0x and 130 hex."""
    signed = Account.sign_message(encode_typed_data(full_message=typed_data), private_key)
    return "0x" + bytes(signed.signature).hex()


def address_of(private_key: str) -> str:
    """The EIP-55 address of a private key."""
    return str(Account.from_key(private_key).address)
