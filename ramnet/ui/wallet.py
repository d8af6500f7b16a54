"""The identity page's work: the node key, and its payout binding signed by a browser wallet.

The server makes the EIP-712 statement (``ramnet.valkyrie._binding712``) and keeps it under a
random token until the wallet's signature comes back; the page only carries the token and the
signature, so what is bound is what the server proposed.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from ramnet._errors import InputFileError, InvalidInputError
from ramnet.ui.forms import FieldError

#: Statements waiting for a signature, at most this many (the oldest go first).
PENDING = 32


def binding_path(key_file: Path) -> Path:
    """Where the node's binding document is saved: beside its key, ``<key stem>.binding.json``."""
    return key_file.with_name(key_file.stem + ".binding.json")


class Identity:
    """The node key this UI signs with, and its binding.

    Args:
        key_file: The node key's path (it need not exist yet).
    """

    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self.binding_file = binding_path(key_file)
        self._pending: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def node_id(self) -> str | None:
        """The node id, or None when there is no key yet.

        Raises:
            RamnetError: The key file exists but cannot be read.
        """
        from ramnet.valkyrie import load_key

        if not self.key_file.exists():
            return None
        return str(load_key(self.key_file).node_id)

    def create_key(self) -> str:
        """Create the node key if there is none; returns the node id.

        Raises:
            RamnetError: It cannot be written or read.
        """
        from ramnet.valkyrie import load_or_create_key

        key, _ = load_or_create_key(self.key_file)
        return str(key.node_id)

    def binding(self) -> dict[str, Any] | None:
        """The saved binding and its check: ``valid``, ``payout_address``, ``problems``,
        ``issued_at``, ``path``; None when none is saved."""
        from ramnet.valkyrie._binding712 import BindingFormatError, check_binding, read_binding

        try:
            text = self.binding_file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return {"valid": False, "problems": [f"cannot read it: {exc.strerror}"]}
        try:
            check = check_binding(read_binding(text))
        except BindingFormatError as exc:
            return {"valid": False, "problems": [str(exc)], "path": str(self.binding_file)}
        return {
            "valid": check.valid,
            "payout_address": check.payout_address,
            "node_id": check.node_id,
            "problems": list(check.problems),
            "issued_at": check.issued_at,
            "path": str(self.binding_file),
        }

    def prepare(self, payout_address: str) -> tuple[str, dict[str, Any]]:
        """Make the statement for a wallet to sign.

        Args:
            payout_address: The Ethereum address to be paid at.

        Returns:
            A token naming it, and the typed data (``eth_signTypedData_v4``'s argument).

        Raises:
            FieldError: No key yet (field ``form``), or a bad address (field ``payout_address``).
        """
        from ramnet.valkyrie._binding712 import binding_typed_data

        node_id = self.node_id()
        if node_id is None:
            raise FieldError("form", "Create the node key first: the binding names its node id.")
        if not payout_address:
            raise FieldError("payout_address", "Give the Ethereum address to be paid at (0x…).")
        try:
            typed = binding_typed_data(node_id, payout_address)
        except InvalidInputError as exc:
            raise FieldError("payout_address", _sentence(str(exc))) from exc
        token = secrets.token_hex(16)
        with self._lock:
            while len(self._pending) >= PENDING:
                self._pending.pop(next(iter(self._pending)))
            self._pending[token] = typed
        return token, typed

    def pending(self, token: str) -> dict[str, Any] | None:
        """The statement prepared under ``token`` and not bound yet, or None."""
        with self._lock:
            return self._pending.get(token)

    def bind(self, token: str, signature: str) -> dict[str, Any]:
        """Check the wallet's signature of a prepared statement, add the node key's, save it.

        Args:
            token: What ``prepare`` returned.
            signature: The wallet's ``eth_signTypedData_v4`` result (0x and 130 hex digits).

        Returns:
            The saved binding's check (as ``binding``).

        Raises:
            FieldError: An unknown token (field ``form``), or a signature that is malformed or
                made by another address (field ``signature``).
            InputFileError: The binding file cannot be written.
        """
        from ramnet.valkyrie import load_key
        from ramnet.valkyrie._binding712 import make_binding

        typed = self.pending(token)
        if typed is None:
            raise FieldError("form", "This statement has expired: prepare the binding again.")
        if not signature:
            raise FieldError("signature", "Paste the wallet's signature (0x and 130 hex digits).")
        try:
            document = make_binding(load_key(self.key_file), typed, signature.strip())
        except FieldError:
            raise
        except InvalidInputError as exc:
            raise FieldError("signature", _sentence(str(exc))) from exc
        self._save(document)
        with self._lock:
            self._pending.pop(token, None)
        found = self.binding()
        assert found is not None
        return found

    def _save(self, document: dict[str, Any]) -> None:
        # Written whole under a temporary name, then renamed: never a half-written binding.
        temporary = self.binding_file.with_name(self.binding_file.name + f".{os.getpid()}.tmp")
        try:
            self.binding_file.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(document, indent=2) + "\n")
            os.replace(temporary, self.binding_file)
        except OSError as exc:
            raise InputFileError(
                f"cannot write the binding to {self.binding_file}: {exc.strerror}"
            ) from exc


def _sentence(message: str) -> str:
    """A library's one-line error as a sentence: capital first letter, a full stop."""
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "?", "!")) else message + "."
