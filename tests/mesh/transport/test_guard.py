"""Every server connection keeps to its limits (``transport.guard``): headers over the cap are
answered 431; headers that do not arrive in time 408 (slow-loris); a body that stops arriving
ends the connection, on uvicorn's path and on the direct-body one alike."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ramnet.mesh.transport.guard import ConnectionLimits
from ramnet.mesh.transport.server import (
    BadLength,
    direct_http_protocol,
    guarded_http,
    read_body,
)
from tests.mesh_server import serve_app

LIMITS = ConnectionLimits(header_bytes=8 << 10, header_s=0.5, body_idle_s=0.5)


def _app(seen: list[str]) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def echo(request: Any) -> Any:
        try:
            body = await read_body(request, 1 << 20, lambda kind, size: bytearray(size))
        except BadLength as exc:
            seen.append(str(exc))
            raise
        seen.append(f"{len(body)} bytes")
        return PlainTextResponse(f"{len(body)}")

    return Starlette(routes=[Route("/echo", echo, methods=["GET", "POST"])])


@pytest.fixture(params=["uvicorn", "direct"])
def server(request: Any) -> Iterator[tuple[int, list[str]]]:
    seen: list[str] = []
    base = (
        "auto"
        if request.param == "uvicorn"
        else direct_http_protocol(1 << 20, lambda kind, size: bytearray(size))
    )
    with serve_app(_app(seen), guarded_http(base, LIMITS)) as port:
        yield port, seen


def _exchange(port: int, data: bytes) -> tuple[bytes, bool]:
    """Send ``data``, then read until the server closes the connection (30 s at most): what it
    answered, and whether it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        if data:
            s.sendall(data)
        reply = b""
        with contextlib.suppress(OSError):
            while piece := s.recv(65536):
                reply += piece
            return reply, True
        return reply, False


def test_headers_over_the_cap_are_431(server: tuple[int, list[str]]) -> None:
    port, seen = server
    head = b"GET /echo HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * (9 << 10) + b"\r\n\r\n"
    reply, closed = _exchange(port, head)
    assert reply.startswith(b"HTTP/1.1 431 ") and closed
    assert b"request headers over 8192 bytes" in reply
    assert seen == []  # the application never saw it


def test_many_small_headers_over_the_cap_are_431(server: tuple[int, list[str]]) -> None:
    port, _ = server
    head = b"GET /echo HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(2000))
    reply, closed = _exchange(port, head + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 431 ") and closed


@pytest.mark.parametrize("sent", [b"", b"GET /echo HTTP/1.1\r\nHost: x\r\n"])
def test_headers_that_do_not_arrive_in_time_are_408(
    server: tuple[int, list[str]], sent: bytes
) -> None:
    port, seen = server
    reply, closed = _exchange(port, sent)  # and then nothing: a slow-loris client
    assert reply.startswith(b"HTTP/1.1 408 ") and closed
    assert seen == []


def test_a_body_that_stops_arriving_ends_the_connection(server: tuple[int, list[str]]) -> None:
    port, seen = server
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
    reply, closed = _exchange(port, head + b"Content-Length: 100\r\n\r\n" + b"x" * 10)
    assert closed and b"200 OK" not in reply
    deadline = time.monotonic() + 30
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen and ("closed" in seen[0] or "differs" in seen[0])


def test_requests_within_the_limits_are_served_on_one_connection(
    server: tuple[int, list[str]],
) -> None:
    port, seen = server
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        for size in (0, 10, 1000):
            request = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/x\r\n"
            s.sendall(request + b"Content-Length: %d\r\n\r\n" % size + b"y" * size)
            reply = b""
            while not reply.endswith(b"\r\n\r\n" + str(size).encode()):
                reply += s.recv(65536)
            assert reply.startswith(b"HTTP/1.1 200 OK")
            # Idle between requests for longer than the header clock: that is uvicorn's
            # keep-alive timeout's business (5 s), not a request that is late.
            time.sleep(0.8)
    assert seen == ["0 bytes", "10 bytes", "1000 bytes"]


class _Handle:
    def __init__(self, when: float, callback: Any) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class _Loop:
    """A clock the test moves, and the timers armed on it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.handles: list[_Handle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any) -> _Handle:
        handle = _Handle(when, callback)
        self.handles.append(handle)
        return handle

    def armed(self) -> list[float]:
        return [h.when for h in self.handles if not h.cancelled]

    def run_until(self, now: float) -> None:
        self.now = now
        for handle in [h for h in self.handles if not h.cancelled and h.when <= now]:
            handle.cancelled = True
            handle.callback()


class _Transport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def is_closing(self) -> bool:
        return self.closed

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True


class _Base:
    """The parts of uvicorn's protocol that the guard calls."""

    flow = None

    def __init__(self, loop: _Loop) -> None:
        self.loop = loop

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None: ...

    def data_received(self, data: Any) -> None: ...

    def on_message_begin(self) -> None: ...

    def on_url(self, url: bytes) -> None: ...

    def on_header(self, name: bytes, value: bytes) -> None: ...

    def on_headers_complete(self) -> None: ...

    def on_message_complete(self) -> None: ...


def _connection() -> tuple[Any, _Loop, _Transport]:
    from ramnet.mesh.transport.guard import guarded_protocol

    loop, transport = _Loop(), _Transport()
    protocol = guarded_protocol(_Base, LIMITS)(loop)
    protocol.connection_made(transport)
    return protocol, loop, transport


def test_a_connection_between_requests_or_being_answered_holds_no_timer() -> None:
    # An open dashboard's event stream, a long poll, an idle keep-alive connection: nothing
    # awaited from the client, so nothing ticks on the event loop for it.
    protocol, loop, transport = _connection()
    assert loop.armed() == [100.0 + LIMITS.header_s]  # its first request's headers awaited
    protocol.data_received(b"GET / HTTP/1.1\r\n")
    protocol.on_message_begin()
    protocol.on_headers_complete()
    protocol.on_message_complete()
    assert loop.armed() == []
    loop.run_until(1000.0)  # an hour later: still open, nothing written
    assert not transport.closed and transport.written == b""
    loop.now = 1001.0
    protocol.on_message_begin()  # the next request's first byte: its headers are awaited
    assert loop.armed() == [1001.0 + LIMITS.header_s]
    protocol.connection_lost(None)
    assert loop.armed() == []


def test_the_header_deadline_fires_once_at_its_time() -> None:
    _, loop, transport = _connection()
    loop.run_until(100.0 + LIMITS.header_s - 0.01)
    assert transport.written == b""
    loop.run_until(100.0 + LIMITS.header_s)
    assert transport.written.startswith(b"HTTP/1.1 408 ") and transport.closed
    assert loop.armed() == []


def test_a_body_arriving_slowly_moves_its_deadline_and_a_silent_one_ends() -> None:
    protocol, loop, transport = _connection()
    protocol.on_message_begin()
    protocol.on_headers_complete()  # a body is awaited from now (100.0)
    assert loop.armed() == [100.0 + LIMITS.body_idle_s]
    loop.now = 100.3
    protocol.data_received(b"x")  # a byte: the deadline moves, re-armed when it fires
    loop.run_until(100.0 + LIMITS.body_idle_s)
    assert not transport.closed and loop.armed() == [100.3 + LIMITS.body_idle_s]
    loop.run_until(100.3 + LIMITS.body_idle_s)
    assert transport.closed
