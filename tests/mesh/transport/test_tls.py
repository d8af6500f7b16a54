"""TLS on the mesh's transport: the server runner serving HTTPS only (``run_http`` with a
certificate), the nodes' HTTP/1.1 client over it (kept-alive connections, bodies read in place,
sent from memory and streamed to a sink), trust in a private CA, and the one-line refusals of an
untrusted or mismatched certificate, which are not retried. Certificates are made in the test."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import numpy as np
import pytest

from ramnet._errors import ConfigError
from ramnet.mesh import MeshClient
from ramnet.mesh.nodes.client import MeshUnavailableError
from ramnet.mesh.transport.client import HttpConnectionPool, TlsFailure, TransportError
from ramnet.mesh.transport.guard import ConnectionLimits
from ramnet.mesh.transport.server import (
    direct_http_protocol,
    listen_tcp,
    parts_response,
    read_body,
    run_http,
)
from ramnet.mesh.transport.tls import (
    TlsFileError,
    check_server_files,
    client_context,
    describe_handshake_error,
    is_handshake_refusal,
)
from tests.tls_files import TlsFiles, make_tls_files

PAYLOAD = np.random.default_rng(7).integers(0, 256, 9 << 20, dtype=np.uint8).tobytes()
BINARY = "application/octet-stream"
MAX_BODY = 64 << 20


def _app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def echo(request: Any) -> Any:
        body = await read_body(request, MAX_BODY)
        return JSONResponse({"size": len(body), "digest": blake3.blake3(body).hexdigest()})

    async def blob(request: Any) -> Any:
        size = int(request.query_params["n"])
        return parts_response([PAYLOAD[: size // 2], PAYLOAD[size // 2 : size]], BINARY)

    async def small(request: Any) -> Any:
        return JSONResponse({"scheme": request.url.scheme})

    return Starlette(
        routes=[
            Route("/echo", echo, methods=["POST"]),
            Route("/blob", blob),
            Route("/small", small),
        ]
    )


def _direct_buffer(content_type: str, length: int) -> Any:
    return bytearray(length) if content_type == BINARY else None


@contextlib.contextmanager
def _serving(files: TlsFiles | None, limits: ConnectionLimits | None = None) -> Iterator[int]:
    # The production runner, with the coordinator's receive path (bodies read straight into
    # their buffer), in a thread; yields the port.
    sock = listen_tcp("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    stop = threading.Event()
    tls = {} if files is None else {"tls_cert": str(files.cert), "tls_key": str(files.key)}
    thread = threading.Thread(
        target=run_http,
        args=(_app(), sock, stop),
        kwargs={"http": direct_http_protocol(MAX_BODY, _direct_buffer), "limits": limits, **tls},
        daemon=True,
    )
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(20)
        sock.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def https_port(files: TlsFiles) -> Iterator[int]:
    with _serving(files) as port:
        yield port


class _Collect:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def start(self, length: int) -> None:
        self.parts.clear()

    def write(self, piece: memoryview) -> None:
        self.parts.append(bytes(piece))


def test_the_client_talks_https_to_the_runner_with_a_private_ca(
    files: TlsFiles, https_port: int
) -> None:
    client = MeshClient(f"https://127.0.0.1:{https_port}", None, ca_file=files.ca)
    try:
        assert client.get_json("/small") == {"scheme": "https"}
        first = client._http._local.conn
        for _ in range(20):  # one kept-alive TLS connection carries them all
            assert client.get_json("/small") == {"scheme": "https"}
        assert client._http._local.conn is first and len(client._http._all) == 1
        # An upload sent from memory in pieces, read by the server straight into its buffer.
        pieces = [memoryview(PAYLOAD)[: 3 << 20], memoryview(PAYLOAD)[3 << 20 :]]
        reply = client.request("POST", "/echo", content=pieces, content_type=BINARY).json()
        assert reply == {"size": len(PAYLOAD), "digest": blake3.blake3(PAYLOAD).hexdigest()}
        # A download read into one buffer (recv_into on the TLS socket), then one to a sink.
        got = client.request("GET", f"/blob?n={len(PAYLOAD)}").content
        assert bytes(got) == PAYLOAD
        sink = _Collect()
        client.request("GET", f"/blob?n={5 << 20}", sink=sink)
        assert b"".join(sink.parts) == PAYLOAD[: 5 << 20]
        assert client._http._local.conn is first
    finally:
        client.close()


def test_host_names_in_the_certificate_are_accepted(files: TlsFiles, https_port: int) -> None:
    with MeshClient(f"https://localhost:{https_port}", None, ca_file=files.ca) as client:
        assert client.get_json("/small") == {"scheme": "https"}


def test_an_untrusted_certificate_is_one_line_and_not_retried(
    files: TlsFiles, https_port: int
) -> None:
    url = f"https://127.0.0.1:{https_port}"
    client = MeshClient(url, None, ca_file=files.other_ca, retries=5, backoff=0.01)
    sends: list[str] = []
    send = client._http.send

    def counted(*args: Any, **kwargs: Any) -> Any:
        sends.append(args[1])
        return send(*args, **kwargs)

    client._http.send = counted  # type: ignore[method-assign]
    with pytest.raises(MeshUnavailableError) as caught:
        client.get_json("/small")
    message = str(caught.value)
    assert message.startswith("TLS: certificate verify failed: ")
    assert f"({url})" in message and "--ca-file" in message
    assert "\n" not in message
    assert sends == ["/small"]  # refused once, never tried again


def test_the_system_store_does_not_trust_a_private_ca(https_port: int) -> None:
    with (
        MeshClient(f"https://127.0.0.1:{https_port}", None) as client,
        pytest.raises(MeshUnavailableError, match=r"^TLS: certificate verify failed: "),
    ):
        client.get_json("/small")


def test_a_name_the_certificate_does_not_hold_is_refused(tmp_path: Path) -> None:
    other = make_tls_files(tmp_path, "coordinator.example")
    with _serving(other) as port:
        client = MeshClient(f"https://127.0.0.1:{port}", None, ca_file=other.ca)
        with pytest.raises(MeshUnavailableError) as caught:
            client.get_json("/small")
    message = str(caught.value)
    assert message.startswith("TLS: certificate verify failed: ")
    assert "mismatch" in message and f"(https://127.0.0.1:{port})" in message


def test_a_handshake_that_never_comes_is_dropped(files: TlsFiles) -> None:
    # The handshake happens before the HTTP protocol's clock for headers starts: it has its own
    # bound, as long as the headers' (asyncio's default would hold the connection for 60 s).
    with (
        _serving(files, ConnectionLimits(header_s=1.0)) as port,
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
    ):
        try:
            closed = raw.recv(1) == b""  # nothing sent: the server gives up and closes
        except ConnectionResetError:
            closed = True
        assert closed
        # A client that does its handshake is served as usual by the same server.
        with MeshClient(f"https://127.0.0.1:{port}", None, ca_file=files.ca) as client:
            assert client.get_json("/small") == {"scheme": "https"}


def test_the_server_speaks_only_https(https_port: int) -> None:
    # A plain request to the TLS port gets no HTTP reply.
    pool = HttpConnectionPool(f"http://127.0.0.1:{https_port}", timeout=10)
    with pytest.raises(TransportError):
        pool.send("GET", "/small", b"", {}, 1 << 20)
    pool.close()


def test_https_to_a_plain_server_is_a_refusal_that_says_so() -> None:
    with _serving(None) as port:
        pool = HttpConnectionPool(f"https://127.0.0.1:{port}", timeout=10)
        with pytest.raises(TlsFailure, match=r"^TLS: .*\(https://127\.0\.0\.1:\d+\)"):
            pool.send("GET", "/small", b"", {}, 1 << 20)


def test_plain_http_still_works_and_loads_no_tls_context() -> None:
    with _serving(None) as port, MeshClient(f"http://127.0.0.1:{port}", None) as client:
        assert client.get_json("/small") == {"scheme": "http"}
        reply = client.request("POST", "/echo", content=PAYLOAD, content_type=BINARY).json()
        assert reply["digest"] == blake3.blake3(PAYLOAD).hexdigest()
        assert client._http._tls is None


def test_a_ca_file_is_checked_when_the_client_is_made(tmp_path: Path, files: TlsFiles) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(TlsFileError, match=rf"^CA file {missing}: cannot read it: "):
        MeshClient("https://127.0.0.1:1", None, ca_file=missing)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(TlsFileError, match=rf"^CA file {junk}: no PEM certificate in it$"):
        client_context(junk)
    assert isinstance(TlsFileError("x"), ConfigError)  # exit 2, as any bad setting
    # An http coordinator needs no CA: the file is not read.
    MeshClient("http://127.0.0.1:1", None, ca_file=missing).close()
    context = client_context(files.ca)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_server_files_are_checked_with_one_line_naming_the_file(
    tmp_path: Path, files: TlsFiles
) -> None:
    check_server_files(files.cert, files.key)
    missing = tmp_path / "missing.pem"
    with pytest.raises(TlsFileError, match=rf"^TLS certificate {missing}: cannot read it: "):
        check_server_files(missing, files.key)
    with pytest.raises(TlsFileError, match=rf"^TLS key {missing}: cannot read it: "):
        check_server_files(files.cert, missing)
    with pytest.raises(TlsFileError, match=rf"^TLS certificate {files.key}: no PEM certificate"):
        check_server_files(files.key, files.key)
    with pytest.raises(TlsFileError, match=rf"^TLS key {files.cert}: no PEM private key"):
        check_server_files(files.cert, files.cert)
    other = make_tls_files(tmp_path / "other")
    with pytest.raises(TlsFileError, match=rf"^TLS key {other.key} does not match the cert"):
        check_server_files(files.cert, other.key)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(_encrypted(files.key))
    with pytest.raises(TlsFileError, match=rf"^TLS key {encrypted}: it is encrypted"):
        check_server_files(files.cert, encrypted)


def _encrypted(key_file: Path) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )


def test_only_handshakes_that_would_fail_again_are_refusals() -> None:
    verify = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] x (_ssl.c:1)")
    verify.verify_message = "self-signed certificate"
    assert is_handshake_refusal(verify)
    assert is_handshake_refusal(ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version"))
    assert not is_handshake_refusal(ssl.SSLEOFError(8, "EOF occurred in violation of protocol"))
    assert not is_handshake_refusal(ssl.SSLZeroReturnError(6, "TLS/SSL connection closed"))
    assert not is_handshake_refusal(ConnectionResetError(104, "reset"))
    assert describe_handshake_error(verify, "https://127.0.0.1:9443").startswith(
        "TLS: certificate verify failed: self-signed certificate (https://127.0.0.1:9443)"
    )
