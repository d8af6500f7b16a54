"""The coordinator's HTTP protocol that reads wire bodies straight into their buffers
(ramnet.mesh.transport.direct_body, ``http_protocol``) and its wire replies (``wire_response``),
under
real uvicorn on 127.0.0.1: bodies arrive intact however the bytes are cut, kept-alive and
pipelined requests still parse, a client that goes away mid-body or mid-reply is noticed and the
server goes on, and other bodies take uvicorn's path."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import blake3
import numpy as np
import pytest

from ramnet.mesh.coordinator.app import body_buffer, http_protocol, wire_response
from ramnet.mesh.protocol.wire import WIRE_CONTENT_TYPE
from ramnet.mesh.transport.direct_body import MAX_READ, SCRATCH, direct_body
from ramnet.mesh.transport.server import BadLength, BodyTooLarge, read_body
from tests.mesh_procs import free_port
from tests.mesh_server import serve_app

MAX_BODY = 16 << 20
_REPLY = np.random.default_rng(99).integers(0, 256, (9 << 20) + 7, dtype=np.uint8).tobytes()


class _Seen:
    def __init__(self) -> None:
        self.lost = 0


@contextlib.contextmanager
def _server() -> Iterator[tuple[int, _Seen]]:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    seen = _Seen()

    async def post(request: Request) -> Response:
        direct = direct_body(request.scope) is not None
        try:
            body = await read_body(request, MAX_BODY, body_buffer)
        except BodyTooLarge:
            return JSONResponse({"error": "too large"}, status_code=413)
        except BadLength:
            seen.lost += 1
            return JSONResponse({"error": "length"}, status_code=400)
        view = memoryview(body).cast("B")
        return JSONResponse(
            {"direct": direct, "size": view.nbytes, "digest": blake3.blake3(view).hexdigest()}
        )

    async def get(request: Request) -> Response:
        return JSONResponse({"path": request.url.path})

    async def big(request: Request) -> Response:
        return wire_response([_REPLY[:100], memoryview(_REPLY)[100:]])  # two parts, one body

    app = Starlette(
        routes=[
            Route("/post", post, methods=["POST", "PUT"]),
            Route("/get/{x}", get),
            Route("/big", big),
        ]
    )
    with serve_app(app, http_protocol(MAX_BODY)) as port:
        yield port, seen


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[int, _Seen]]:
    with _server() as found:
        yield found


def _request(
    method: str, path: str, body: bytes = b"", content_type: str = WIRE_CONTENT_TYPE, **extra: str
) -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {content_type}"]
    head += [f"Content-Length: {len(body)}"] if "chunked" not in extra.values() else []
    head += [f"{name.replace('_', '-')}: {value}" for name, value in extra.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _replies(sock: socket.socket, count: int, timeout: float = 20) -> list[tuple[int, bytes]]:
    """Read ``count`` HTTP replies (with Content-Length) from ``sock``; skips 100 Continue."""
    sock.settimeout(timeout)
    data, out = b"", []
    while len(out) < count:
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            assert piece, f"connection closed after {len(out)} replies"
            data += piece
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        if status == 100:
            continue
        length = next(
            int(v) for n, _, v in (x.partition(b":") for x in lines[1:])
            if n.strip().lower() == b"content-length"
        )  # fmt: skip
        while len(data) < length:
            piece = sock.recv(65536)
            assert piece
            data += piece
        out.append((status, data[:length]))
        data = data[length:]
    return out


def _body(size: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def _expect(reply: tuple[int, bytes], body: bytes, direct: bool = True) -> None:
    status, text = reply
    assert status == 200, text
    got = json.loads(text)
    assert got == {"direct": direct, "size": len(body), "digest": blake3.blake3(body).hexdigest()}


@pytest.mark.parametrize(
    "size",
    [1, SCRATCH - 200, SCRATCH + 1, MAX_READ - 1, MAX_READ + 1, 2 * MAX_READ + 12345],
)
def test_a_wire_body_arrives_intact_whatever_its_size(server: tuple[int, _Seen], size: int) -> None:
    port, _ = server
    body = _body(size, size)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_request("POST", "/post", body))
        _expect(_replies(sock, 1)[0], body)


_CUTS = {
    "request line": lambda head: [5],
    "headers": lambda head: [60],
    "headers alone, one body byte, the rest": lambda head: [head, head + 1],
    "odd body pieces": lambda head: [head + 70_000, head + 70_001],
    "blank line cut": lambda head: [head - 3, head + 300_000],
}


@pytest.mark.parametrize("case", list(_CUTS))
def test_the_bytes_may_come_in_any_pieces(server: tuple[int, _Seen], case: str) -> None:
    port, _ = server
    body = _body(600_000, 7)
    request = _request("POST", "/post", body)
    points = _CUTS[case](request.index(b"\r\n\r\n") + 4)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = 0
        for point in [*points, len(request)]:
            sock.sendall(request[start:point])
            time.sleep(0.02)  # so that the server reads each piece on its own
            start = point
        _expect(_replies(sock, 1)[0], body)


def test_kept_alive_and_pipelined_requests_still_parse(server: tuple[int, _Seen]) -> None:
    port, _ = server
    bodies = [_body(n, n) for n in (3, 900_000, 5_000_000)]
    # All in one send: each body must end exactly where the next request begins.
    burst = b"".join(
        [
            _request("POST", "/post", bodies[0]),
            _request("GET", "/get/one"),
            _request("POST", "/post", bodies[1]),
            _request("PUT", "/post", bodies[2]),
            _request("GET", "/get/two"),
        ]
    )
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(burst)
        replies = _replies(sock, 5)
        _expect(replies[0], bodies[0])
        assert json.loads(replies[1][1]) == {"path": "/get/one"}
        _expect(replies[2], bodies[1])
        _expect(replies[3], bodies[2])
        assert json.loads(replies[4][1]) == {"path": "/get/two"}
        # And the connection stays usable.
        sock.sendall(_request("POST", "/post", bodies[1]))
        _expect(_replies(sock, 1)[0], bodies[1])


def test_expect_100_continue_is_answered(server: tuple[int, _Seen]) -> None:
    port, _ = server
    body = _body(1_000_000, 3)
    request = _request("POST", "/post", body, Expect="100-continue")
    head = request.index(b"\r\n\r\n") + 4
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(10)
        sock.sendall(request[:head])
        assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue")  # before any body byte
        sock.sendall(request[head:])
        _expect(_replies(sock, 1)[0], body)


def test_a_client_gone_mid_body_is_noticed_and_the_server_goes_on(
    server: tuple[int, _Seen],
) -> None:
    port, seen = server
    before = seen.lost
    body = _body(3_000_000, 5)
    request = _request("POST", "/post", body)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request[: len(request) - len(body) // 2])
        time.sleep(0.1)
    deadline = time.monotonic() + 10
    while seen.lost == before:
        assert time.monotonic() < deadline, "the endpoint never learnt the body was lost"
        time.sleep(0.02)
    assert seen.lost == before + 1
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_request("POST", "/post", body))
        _expect(_replies(sock, 1)[0], body)


@pytest.mark.parametrize(
    ("content_type", "extra"),
    [
        ("application/json", {}),  # not a wire body
        (WIRE_CONTENT_TYPE, {"Transfer_Encoding": "chunked"}),  # no length to read to
    ],
)
def test_other_bodies_take_uvicorns_path(
    server: tuple[int, _Seen], content_type: str, extra: dict[str, str]
) -> None:
    port, _ = server
    body = _body(400_000, 11)
    if extra:
        chunked = b"".join(
            b"%x\r\n" % len(body[i : i + 70_000]) + body[i : i + 70_000] + b"\r\n"
            for i in range(0, len(body), 70_000)
        )
        request = _request("POST", "/post", b"", content_type, **extra) + chunked + b"0\r\n\r\n"
    else:
        request = _request("POST", "/post", body, content_type)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request)
        _expect(_replies(sock, 1)[0], body, direct=False)


def test_a_body_over_the_limit_is_refused_as_before(server: tuple[int, _Seen]) -> None:
    port, _ = server
    head = _request("POST", "/post").replace(
        b"Content-Length: 0", f"Content-Length: {MAX_BODY + 1}".encode()
    )
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head)
        assert _replies(sock, 1)[0][0] == 413


def test_a_wire_reply_arrives_whole_and_a_head_gets_none(server: tuple[int, _Seen]) -> None:
    port, _ = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_request("GET", "/big") + _request("GET", "/get/after"))
        replies = _replies(sock, 2)
        assert replies[0] == (200, _REPLY)
        assert json.loads(replies[1][1]) == {"path": "/get/after"}
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"HEAD /big HTTP/1.1\r\nHost: x\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert f"content-length: {len(_REPLY)}".encode() in head.lower()
        assert head.endswith(b"\r\n\r\n")  # and no body follows
        sock.sendall(_request("GET", "/get/next"))
        assert json.loads(_replies(sock, 1)[0][1]) == {"path": "/get/next"}


def test_a_client_gone_mid_reply_leaves_the_server_serving(server: tuple[int, _Seen]) -> None:
    port, _ = server
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(_request("GET", "/big"))
            sock.recv(1000)
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_request("GET", "/big"))
        assert _replies(sock, 1)[0] == (200, _REPLY)
    assert time.monotonic() - t0 < 10


def test_the_coordinator_serves_with_this_protocol_on_asyncio(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The receive path is built and measured on asyncio's loop; uvicorn's "auto" would pick
    # uvloop wherever it is installed.
    import uvicorn

    from ramnet.mesh import CoordinatorConfig
    from ramnet.mesh.coordinator.server import serve

    seen: list[Any] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *a, **k: seen.append(self.config))
    serve(CoordinatorConfig(data_dir=tmp_path), port=free_port())
    (config,) = seen
    assert config.loop == "asyncio"
    # The direct-body protocol, with every connection's limits (transport.guard) on top.
    assert [c.__name__ for c in config.http.__mro__[:2]] == [
        "GuardedProtocol",
        "DirectBodyProtocol",
    ]
