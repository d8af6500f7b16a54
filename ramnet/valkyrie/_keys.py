"""Node identity: an Ed25519 key pair (PyNaCl) in a file readable by its owner only.

The node id is the public key, written as 64 lowercase hex digits. The key file is a small text
file::

    # RAMNET node key (Ed25519 seed). Keep it secret.
    ramnet-ed25519-seed-v1 <64 hex digits>

created with mode 0600 and never overwritten without ``force``. A node binds a payout address by
signing a statement with its key (``bind_payout``); anyone checks it with ``check_binding``.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.signing

from ramnet._errors import KeyFileError, TraceFormatError

_TAG = "ramnet-ed25519-seed-v1"
_MAX_KEY_FILE = 4096
_BINDING_TAG = "ramnet-payout-binding-v1"


@dataclass(frozen=True)
class NodeKey:
    """A node's Ed25519 signing key.

    Attributes:
        signing_key: The PyNaCl signing key (secret).
        path: The file it was loaded from or written to, if any.
    """

    signing_key: nacl.signing.SigningKey
    path: Path | None = None

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return bytes(self.signing_key.verify_key)

    @property
    def node_id(self) -> str:
        """The node id: the public key as 64 lowercase hex digits."""
        return self.public_key.hex()

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message``."""
        return bytes(self.signing_key.sign(message).signature)

    @classmethod
    def generate(cls) -> NodeKey:
        """Return a new random key (not saved)."""
        return cls(nacl.signing.SigningKey.generate())


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Return whether ``signature`` is ``public_key``'s valid Ed25519 signature of ``message``."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


def _serialise(key: NodeKey) -> bytes:
    seed = bytes(key.signing_key).hex()
    return f"# RAMNET node key (Ed25519 seed). Keep it secret.\n{_TAG} {seed}\n".encode("ascii")


def save_key(key: NodeKey, path: str | os.PathLike[str], *, force: bool = False) -> NodeKey:
    """Write ``key`` to ``path`` with mode 0600.

    Args:
        key: The key to save.
        path: The key file; its folder is created (mode 0700) if missing.
        force: Replace an existing file (atomically). Without it an existing file is left as is.

    Returns:
        The key, with ``path`` set.

    Raises:
        KeyFileError: The file exists and ``force`` is False, or it cannot be written.
    """
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = _serialise(key)
        if not force:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        else:
            # mkstemp creates the file with mode 0600.
            fd, tmp = tempfile.mkstemp(prefix=".node-key.", dir=p.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, p)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
    except FileExistsError:
        raise KeyFileError(f"key file {p} already exists; use --force to replace it") from None
    except OSError as exc:
        raise KeyFileError(f"cannot write key file {p}: {exc.strerror or exc}") from exc
    return NodeKey(key.signing_key, p)


def load_key(path: str | os.PathLike[str]) -> NodeKey:
    """Load a node key.

    Raises:
        KeyFileError: The file is missing, unreadable, malformed, or readable by others (POSIX).
    """
    p = Path(path)
    try:
        info = p.stat()
        if info.st_size > _MAX_KEY_FILE:
            raise KeyFileError(f"key file {p} is too large to be a RAMNET key")
        raw = p.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"no key file at {p}; create one with 'ramnet keys init'") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {p}: {exc.strerror or exc}") from exc
    if sys.platform != "win32" and stat.S_IMODE(info.st_mode) & 0o077:
        raise KeyFileError(f"key file {p} is readable by others; run 'chmod 600 {p}'")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFileError(f"key file {p} is not a RAMNET key") from None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == _TAG:
            try:
                seed = bytes.fromhex(parts[1])
            except ValueError:
                break
            if len(seed) == 32:
                return NodeKey(nacl.signing.SigningKey(seed), p)
            break
    raise KeyFileError(f"key file {p} is not a RAMNET key")


def load_or_create_key(path: str | os.PathLike[str]) -> tuple[NodeKey, bool]:
    """Load the key at ``path``, creating one if there is none.

    Returns:
        (key, created): created is True when a new key was written.

    Raises:
        KeyFileError: As ``load_key`` and ``save_key``.
    """
    p = Path(path)
    if p.exists():
        return load_key(p), False
    try:
        return save_key(NodeKey.generate(), p), True
    except KeyFileError:
        if p.exists():  # another process created it meanwhile
            return load_key(p), False
        raise


def _binding_message(node_id: str, address: str) -> bytes:
    return f"{_BINDING_TAG}\nnode: {node_id}\npayout-address: {address}\n".encode()


def bind_payout(key: NodeKey, address: str) -> dict[str, str]:
    """Return a signed statement binding ``address`` to the node.

    Returns:
        ``{"statement": "ramnet-payout-binding-v1", "node_id", "payout_address", "signature"}``,
        the signature in hex, over the statement's canonical text.

    Raises:
        KeyFileError: The address is empty or has line breaks.
    """
    if not address or any(c in address for c in "\r\n") or len(address) > 512:
        raise KeyFileError("the payout address must be one line of at most 512 characters")
    signature = key.sign(_binding_message(key.node_id, address))
    return {
        "statement": _BINDING_TAG,
        "node_id": key.node_id,
        "payout_address": address,
        "signature": signature.hex(),
    }


def check_binding(binding: dict[str, str] | str | bytes) -> bool:
    """Check the signature of a payout binding (the dict, or its JSON text).

    Returns:
        True when the node's signature over the statement is valid, False otherwise.

    Raises:
        TraceFormatError: Not a well-formed binding.
    """
    if isinstance(binding, (str, bytes)):
        try:
            binding = json.loads(binding)
        except (ValueError, UnicodeDecodeError) as exc:
            raise TraceFormatError(f"not a payout binding: {exc}") from exc
    if not isinstance(binding, dict) or binding.get("statement") != _BINDING_TAG:
        raise TraceFormatError("not a RAMNET payout binding")
    try:
        node = bytes.fromhex(str(binding["node_id"]))
        signature = bytes.fromhex(str(binding["signature"]))
        address = str(binding["payout_address"])
    except (KeyError, ValueError) as exc:
        raise TraceFormatError(f"malformed payout binding ({exc})") from exc
    return verify_signature(node, _binding_message(node.hex(), address), signature)
