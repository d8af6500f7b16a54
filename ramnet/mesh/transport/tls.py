"""TLS for the mesh: the client's trust (system store or a private CA), the server's certificate
files checked before it listens, and one-line descriptions of what went wrong.

Only an https coordinator loads ``ssl`` (importing it and loading the system's CA bundle cost a
short command about 100 ms): this module imports it inside each function.

A failed handshake is a configuration problem, not a network blip: an untrusted certificate, a
name the certificate does not cover, or a server that does not speak TLS stays that way however
often the client tries. The client reports it at once (``TlsFailure``) instead of retrying.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from ramnet._errors import ConfigError

__all__ = [
    "SERVER_CIPHERS",
    "TlsFileError",
    "bound_handshakes",
    "check_server_files",
    "client_context",
    "describe_handshake_error",
    "is_handshake_refusal",
]

#: The TLS 1.2 cipher suites a coordinator offers (TLS 1.3's are OpenSSL's, all strong): forward
#: secret, authenticated encryption only. uvicorn's own default ("TLSv1") would also offer RSA key
#: exchange and CBC suites.
SERVER_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"

#: What a PEM certificate and a PEM private key begin with.
_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
_PEM_KEY_END = b"PRIVATE KEY-----"
_PEM_ENCRYPTED = (b"-----BEGIN ENCRYPTED PRIVATE KEY-----", b"Proc-Type: 4,ENCRYPTED")


class TlsFileError(ConfigError):
    """A certificate, key or CA file that cannot be used (missing, unreadable, not PEM, or a key
    that does not match its certificate). The message names the file and the problem."""


def _read_pem(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsFileError(f"{what} {path}: cannot read it: {exc.strerror or exc}") from None


def client_context(ca_file: str | os.PathLike[str] | None = None) -> Any:
    """The ``ssl.SSLContext`` a node connects to an https coordinator with.

    Certificates and host names are always checked. Without ``ca_file`` the system's trust store
    is used; with it, only the CA certificates in that file (a private CA).

    Args:
        ca_file: A PEM file of CA certificates to trust instead of the system store.

    Returns:
        An ``ssl.SSLContext`` for clients (TLS 1.2 or later).

    Raises:
        TlsFileError: ``ca_file`` is unreadable or holds no PEM certificate.
    """
    import ssl

    if ca_file is None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:
        path = Path(ca_file)
        if _PEM_CERT not in _read_pem(path, "CA file"):
            raise TlsFileError(f"CA file {path}: no PEM certificate in it")
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(path))
        except ssl.SSLError as exc:
            raise TlsFileError(f"CA file {path}: {_reason(exc)}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def check_server_files(cert_file: str | os.PathLike[str], key_file: str | os.PathLike[str]) -> None:
    """Check a server's certificate chain and private key before it listens, so that a bad file is
    one line naming it, not a traceback from the server's start.

    Args:
        cert_file: The PEM certificate (the server's first, then any intermediates).
        key_file: The PEM private key of the first certificate, unencrypted.

    Raises:
        TlsFileError: A file is unreadable, not PEM, an encrypted key (a server started
            unattended has nobody to type its passphrase), or the key does not match.
    """
    import ssl

    cert, key = Path(cert_file), Path(key_file)
    if _PEM_CERT not in _read_pem(cert, "TLS certificate"):
        raise TlsFileError(f"TLS certificate {cert}: no PEM certificate in it")
    key_text = _read_pem(key, "TLS key")
    if any(marker in key_text for marker in _PEM_ENCRYPTED):
        raise TlsFileError(f"TLS key {key}: it is encrypted; give the key without a passphrase")
    if _PEM_KEY_END not in key_text:
        raise TlsFileError(f"TLS key {key}: no PEM private key in it")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(cert), str(key), password=_no_password)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise TlsFileError(f"TLS key {key} does not match the certificate {cert}") from None
        raise TlsFileError(f"TLS certificate {cert} or key {key}: {_reason(exc)}") from None


def bound_handshakes(loop: Any, seconds: float) -> None:
    """Make the TLS servers ``loop`` creates from now on drop a connection whose handshake is not
    done within ``seconds``.

    The handshake runs in asyncio's TLS layer, before the HTTP protocol (and its clock for a
    request's headers) sees the connection: without this, a client that opens a connection and
    never finishes its handshake holds it for asyncio's default of 60 s. uvicorn passes no such
    setting, so the loop's ``create_server`` is given it here.

    Args:
        loop: The running asyncio event loop, before the server starts.
        seconds: The longest handshake allowed.
    """
    create_server = loop.create_server
    loop.create_server = functools.partial(create_server, ssl_handshake_timeout=seconds)


def _no_password() -> bytes:
    # Never prompt on the terminal: an encrypted key was refused above, anything else is an error.
    raise TlsFileError("the TLS key asks for a passphrase")


def is_handshake_refusal(exc: BaseException) -> bool:
    """Whether a failed TLS handshake will fail again the same way: an untrusted or mismatched
    certificate, a protocol or version the two ends do not share, a server that does not speak
    TLS. A connection that broke or closed mid-handshake (a restart, a blip) is not one."""
    import ssl

    if isinstance(exc, ssl.CertificateError):  # SSLCertVerificationError is one
        return True
    transient = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
    return isinstance(exc, ssl.SSLError) and not isinstance(exc, transient)


def describe_handshake_error(exc: BaseException, where: str) -> str:
    """One line for a refused handshake, naming the certificate problem and the server, e.g.
    ``TLS: certificate verify failed: self-signed certificate (https://127.0.0.1:9443)``.

    Args:
        exc: The ``ssl.SSLError`` (or ``ssl.CertificateError``) of the handshake.
        where: The server, as the user named it.

    Returns:
        The line, with a hint of the fix where there is an obvious one.
    """
    import ssl

    if isinstance(exc, ssl.SSLCertVerificationError):
        problem = (exc.verify_message or _reason(exc)).rstrip(".")
        hint = "; trust its CA with --ca-file PEM (or RAMNET_CA_FILE)"
        if "mismatch" in problem.lower():
            hint = "; connect by a name the certificate holds"
        return f"TLS: certificate verify failed: {problem} ({where}){hint}"
    if isinstance(exc, ssl.CertificateError):
        return f"TLS: certificate verify failed: {_reason(exc)} ({where})"
    text = f"TLS: {_reason(exc)} ({where})"
    if getattr(exc, "reason", None) in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE"):
        text += "; does it serve https, not http?"
    return text


def _reason(exc: BaseException) -> str:
    # "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: x (_ssl.c:1006)" -> the words.
    text = str(getattr(exc, "strerror", None) or exc)
    if text.startswith("[") and "]" in text:
        text = text.split("]", 1)[1]
    if text.endswith(")") and "(_ssl.c:" in text:
        text = text[: text.rindex("(_ssl.c:")]
    return " ".join(text.split()) or type(exc).__name__
