"""The work behind ``ramnet keys bind`` and ``ramnet keys check-binding`` (wallet binding, EIP-712).

``keys bind`` runs twice: once to print the typed data for a wallet to sign, then with the
wallet's signature (and the same nonce and issuedAt, or the printed typed data) to check it, add
the node key's signature and write the binding document. ``check-binding`` reads a document and
exits 0 (valid), 1 (invalid) or 2 (unreadable).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ramnet._errors import InputFileError, InvalidInputError, OutputFileError

_MAX_JSON = 1 << 16


def _read_text(source: str) -> str:
    """A small text file's content, or stdin's for ``-``."""
    try:
        if source == "-":
            return sys.stdin.read(_MAX_JSON + 1)
        with open(source, encoding="utf-8") as f:
            return f.read(_MAX_JSON + 1)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise InputFileError(f"cannot read {source}: {reason}") from exc


def _typed_data_from_file(source: str) -> dict[str, Any]:
    text = _read_text(source)
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"{source} is not JSON typed data ({exc})") from exc
    if not isinstance(value, dict):
        raise InvalidInputError(f"{source} is not JSON typed data (not an object)")
    return value


def write_new_file(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` to ``path``; an existing file is replaced (atomically) only with ``force``.

    Raises:
        OutputFileError: The file exists without ``force``, or cannot be written.
    """
    data = text.encode()
    try:
        if not force:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return
        fd, tmp = tempfile.mkstemp(prefix=".binding.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except FileExistsError:
        raise OutputFileError(f"{path} already exists; use --force to replace it") from None
    except OSError as exc:
        raise OutputFileError(f"cannot write {path}: {exc.strerror or exc}") from exc


def statement(
    key: Any,
    payout_address: str | None,
    *,
    nonce: int | None,
    issued_at: int | None,
    typed_data_file: str | None,
) -> dict[str, Any]:
    """The typed data to sign or signed: from ``typed_data_file``, else built from the options.

    Raises:
        InvalidInputError: A bad address or number, typed data that is not this node's statement,
            or an address that differs from the typed data's.
    """
    from ramnet.valkyrie._binding712 import binding_digest, binding_typed_data, checksum_address

    if typed_data_file is None:
        if payout_address is None:
            raise InvalidInputError("give --payout-address ADDR (an Ethereum address, 0x...)")
        return binding_typed_data(key.public_key, payout_address, nonce=nonce, issued_at=issued_at)
    if nonce is not None or issued_at is not None:
        raise InvalidInputError("give --typed-data or --nonce/--issued-at, not both")
    typed = _typed_data_from_file(typed_data_file)
    binding_digest(typed)  # refuses anything but a well-formed RamnetNodeBinding statement
    message = typed["message"]
    if payout_address is not None and checksum_address(payout_address) != checksum_address(
        message["payoutAddress"]
    ):
        raise InvalidInputError(
            f"--payout-address {payout_address} is not the typed data's {message['payoutAddress']}"
        )
    return binding_typed_data(
        message["nodeId"],
        message["payoutAddress"],
        nonce=int(message["nonce"]),
        issued_at=int(message["issuedAt"]),
    )


def next_step(typed: dict[str, Any]) -> str:
    """The command that finishes the binding once the wallet has signed ``typed``."""
    message = typed["message"]
    return (
        "sign this typed data with the payout address's wallet (eth_signTypedData_v4), then run: "
        f"ramnet keys bind --payout-address {message['payoutAddress']} "
        f"--nonce {message['nonce']} --issued-at {message['issuedAt']} --wallet-signature 0x..."
    )


def bind(
    key: Any, typed: dict[str, Any], wallet_signature: str, out: Path, *, force: bool
) -> dict[str, Any]:
    """Check the wallet's signature, add the node's, write the binding document to ``out``.

    Returns:
        The binding document.

    Raises:
        InvalidInputError: The signature does not recover the payout address (or is malformed).
        OutputFileError: ``out`` exists without ``force``, or cannot be written.
    """
    from ramnet.valkyrie._binding712 import make_binding

    document = make_binding(key, typed, wallet_signature.strip())
    write_new_file(out, json.dumps(document, indent=2) + "\n", force=force)
    return document


def check(source: str) -> Any:
    """Read and check a binding document (``-`` for stdin).

    Returns:
        The ``BindingCheck``.

    Raises:
        InputFileError: The file cannot be read.
        BindingFormatError: It is not a binding document.
    """
    from ramnet.valkyrie._binding712 import check_binding, read_binding

    return check_binding(read_binding(_read_text(source)))


def binding_document(path: Path) -> dict[str, Any]:
    """A binding file's document, for a worker to present (the coordinator checks it).

    Raises:
        InputFileError: The file cannot be read.
        BindingFormatError: It is not a binding document (not JSON, not an object, too large).
    """
    from ramnet.valkyrie._binding712 import read_binding

    return read_binding(_read_text(str(path)))


def check_summary(result: Any) -> dict[str, Any]:
    """A ``BindingCheck`` as JSON."""
    return {
        "valid": result.valid,
        "node_id": result.node_id,
        "payout_address": result.payout_address,
        "nonce": None if result.nonce is None else str(result.nonce),
        "issued_at": result.issued_at,
        "problems": list(result.problems),
    }
