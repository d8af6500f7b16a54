"""Certificates made in the test, with trustme: a private CA, a server certificate it signed for
127.0.0.1 and localhost, and a second CA nobody trusts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsFiles:
    """PEM files in one folder.

    Attributes:
        ca: The CA that signed ``cert`` (what a client passes as ``--ca-file``).
        cert: The server's certificate chain, for 127.0.0.1, ::1 and localhost.
        key: Its private key.
        other_ca: A CA that signed nothing here (trusting it must refuse ``cert``).
    """

    ca: Path
    cert: Path
    key: Path
    other_ca: Path


def make_tls_files(folder: Path, *names: str) -> TlsFiles:
    """Write a CA, a server certificate (for ``names``, default 127.0.0.1, ::1 and localhost) and
    its key, and an unrelated CA, into ``folder``."""
    import trustme

    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert(*(names or ("127.0.0.1", "::1", "localhost")))
    files = TlsFiles(
        ca=folder / "ca.pem",
        cert=folder / "cert.pem",
        key=folder / "key.pem",
        other_ca=folder / "other-ca.pem",
    )
    ca.cert_pem.write_to_path(str(files.ca))
    server.private_key_pem.write_to_path(str(files.key))
    with open(files.cert, "wb") as chain:
        for pem in server.cert_chain_pems:
            chain.write(pem.bytes())
    trustme.CA().cert_pem.write_to_path(str(files.other_ca))
    return files
