"""The HTTP/1.1 framing under MeshClient (ramnet.mesh.transport.client) against scripted servers on
127.0.0.1 and untrusted bytes: informational replies, chunked bodies with trailers, replies that
close, malformed heads and chunks (a TransportError, never a traceback), and requests that
cannot be written."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramnet.mesh.transport.client import (
    HttpConnectionPool,
    ReplyError,
    ReplyTooLarge,
    TransportError,
    parse_head,
)
from tests.scripted_http import Script, read_request, scripted_servers


def _request(conn: socket.socket) -> bytes:
    head, body = read_request(conn)
    return head + b"\r\n\r\n" + body if head else b""


@pytest.fixture
def serve() -> Iterator[Callable[[Script], str]]:
    servers = scripted_servers()
    start = next(servers)
    yield lambda script: start(script)[0]
    next(servers, None)  # closes the listeners


def _replying(*replies: bytes) -> Script:
    """A server that answers its connection's requests with ``replies`` in turn, then closes."""

    def script(conn: socket.socket, n: int) -> None:
        for reply in replies:
            if not _request(conn):
                return
            conn.sendall(reply)

    return script


def test_informational_replies_are_skipped(serve) -> None:  # type: ignore[no-untyped-def]
    url = serve(
        _replying(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n"
            b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
        )
    )
    reply = HttpConnectionPool(url, timeout=5).send("POST", "/", b"x", {}, 100)
    assert (reply.status, bytes(reply.content)) == (201, b"ok")


def test_chunked_bodies_with_extensions_and_trailers(serve) -> None:  # type: ignore[no-untyped-def]
    body = b"3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
    url = serve(
        _replying(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body,
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext",
        )
    )
    pool = HttpConnectionPool(url, timeout=5)
    assert bytes(pool.send("GET", "/", b"", {}, 100).content) == b"abc0123456789"
    assert bytes(pool.send("GET", "/", b"", {}, 100).content) == b"next"  # same connection


def test_a_reply_that_closes_is_read_to_the_end_and_the_connection_replaced(serve) -> None:  # type: ignore[no-untyped-def]
    url = serve(_replying(b"HTTP/1.0 200 OK\r\n\r\nuntil the end"))
    pool = HttpConnectionPool(url, timeout=5)
    for _ in range(3):  # each on a new connection
        assert bytes(pool.send("GET", "/", b"", {}, 100).content) == b"until the end"
    with pytest.raises(ReplyTooLarge):
        pool.send("GET", "/", b"", {}, 5)


@pytest.mark.parametrize("closing", ["HTTP/1.1 200 OK\r\nConnection: close", "HTTP/1.0 200 OK"])
def test_a_connection_the_reply_closes_is_not_reused(serve, closing: str) -> None:  # type: ignore[no-untyped-def]
    seen: list[int] = []

    def script(conn: socket.socket, n: int) -> None:
        seen.append(n)
        _replying(f"{closing}\r\nContent-Length: 1\r\n\r\n!".encode())(conn, n)

    url = serve(script)
    pool = HttpConnectionPool(url, timeout=5)
    for _ in range(2):
        assert bytes(pool.send("GET", "/", b"", {}, 100).content) == b"!"
    assert seen == [0, 1]


def test_a_head_request_and_a_204_have_no_body(serve) -> None:  # type: ignore[no-untyped-def]
    url = serve(
        _replying(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
        )
    )
    pool = HttpConnectionPool(url, timeout=5)
    assert bytes(pool.send("HEAD", "/", b"", {}, 100).content) == b""
    assert pool.send("DELETE", "/", b"", {}, 100).status == 204
    assert bytes(pool.send("GET", "/", b"", {}, 100).content) == b"hi"


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * (70 << 10) + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Le",  # cut off
    ],
    ids=[
        "http2",
        "two-digit status",
        "not http",
        "no colon",
        "space in name",
        "two lengths",
        "negative length",
        "huge length",
        "gzip coding",
        "bad chunk size",
        "chunk too long",
        "upgrade",
        "head too long",
        "cut off",
    ],
)
def test_a_malformed_reply_is_a_transport_error(serve, reply: bytes) -> None:  # type: ignore[no-untyped-def]
    url = serve(_replying(reply))
    with pytest.raises(TransportError) as caught:
        HttpConnectionPool(url, timeout=5).send("GET", "/", b"", {}, 1 << 30)
    assert caught.value.never_sent is False


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parse_head_refuses_anything_malformed_with_its_own_error(head: bytes) -> None:
    try:
        minor, status, fields = parse_head(head)
    except ReplyError:
        return
    assert minor in (0, 1) and 0 <= status <= 999
    assert all(name == name.lower() for name in fields)


@contextlib.contextmanager
def _one_reply(data: bytes) -> Iterator[HttpConnectionPool]:
    """A pool to a server that answers one request with ``data``, whatever it is, then closes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def once() -> None:
        conn, _ = listener.accept()
        with conn:
            _request(conn)
            conn.sendall(data)

    thread = threading.Thread(target=once, daemon=True)
    thread.start()
    pool = HttpConnectionPool(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=5)
    try:
        yield pool
    finally:
        pool.close()
        thread.join(5)
        listener.close()


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_as_a_reply_give_a_reply_or_a_transport_error(data: bytes) -> None:
    with _one_reply(data) as pool, contextlib.suppress(TransportError, ReplyTooLarge):
        reply = pool.send("GET", "/", b"", {}, 1000)
        assert 100 <= reply.status <= 999 and len(bytes(reply.content)) <= 1000


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=2000),
        st.builds(
            lambda body, declared: (
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % declared + body
            ),
            st.binary(max_size=1500),
            st.integers(0, 1200),
        ),
    )
)
def test_any_bytes_as_a_reply_with_a_sink_give_a_reply_or_a_transport_error(data: bytes) -> None:
    sink = _Collect()
    with _one_reply(data) as pool, contextlib.suppress(TransportError, ReplyTooLarge):
        reply = pool.send("GET", "/", b"", {}, 1000, sink)
        assert 100 <= reply.status <= 999
        if 200 <= reply.status < 300:  # the whole body went to the sink, and only there
            assert bytes(reply.content) == b"" and sink.starts == [len(sink.data)]
            assert len(sink.data) <= 1000
        else:
            assert sink.starts == [] and len(bytes(reply.content)) <= 1000


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        ("GET", "/a b", {}),
        ("GET", "/a\r\nX: y", {}),
        ("G ET", "/", {}),
        ("GET", "/", {"X": "a\r\nInjected: 1"}),
        ("GET", "/", {"Bad Name": "x"}),
    ],
)
def test_a_request_that_cannot_be_written_is_refused_before_sending(
    method: str, target: str, headers: dict[str, str]
) -> None:
    pool = HttpConnectionPool("http://127.0.0.1:9", timeout=1)  # nothing is ever sent there
    with pytest.raises(ValueError):
        pool.send(method, target, b"", headers, 10)


def test_the_host_field(serve) -> None:  # type: ignore[no-untyped-def]
    heads: list[bytes] = []

    def script(conn: socket.socket, n: int) -> None:
        heads.append(_request(conn))
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    url = serve(script)
    HttpConnectionPool(url + "/pre", timeout=5).send("POST", "/x?y=1", b"abc", {"A": "b"}, 10)
    (head,) = heads
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /pre/x?y=1 HTTP/1.1"
    assert f"Host: {url.removeprefix('http://')}".encode() in lines
    assert b"A: b" in lines and b"Content-Length: 3" in lines and head.endswith(b"\r\n\r\nabc")
    assert HttpConnectionPool("http://[::1]:80/", timeout=1)._host_field == "[::1]"
    assert HttpConnectionPool("https://c.example:8443", timeout=1)._host_field == "c.example:8443"


def test_connections_the_server_closed_are_let_go(serve) -> None:  # type: ignore[no-untyped-def]
    url = serve(_replying(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n!"))
    pool = HttpConnectionPool(url, timeout=5)
    for _ in range(5):
        assert bytes(pool.send("GET", "/", b"", {}, 100).content) == b"!"
    assert pool._all == []  # each was closed and dropped, none kept for close()


class _Collect:
    """A BodySink that keeps what it is given, and can be told to fail."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.starts: list[int] = []
        self.data = bytearray()
        self.fail_after = fail_after

    def start(self, length: int) -> None:
        self.starts.append(length)
        self.data.clear()

    def write(self, piece: memoryview) -> None:
        self.data += piece
        if self.fail_after is not None and len(self.data) > self.fail_after:
            raise OSError("disk full")  # an OSError of the sink's, not of the transport


def test_a_sized_body_goes_to_the_sink_in_order(serve) -> None:  # type: ignore[no-untyped-def]
    body = bytes(range(256)) * 12_000  # larger than one buffer of the client's
    url = serve(
        _replying(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext",
        )
    )
    pool = HttpConnectionPool(url, timeout=5)
    sink = _Collect()
    reply = pool.send("GET", "/", b"", {}, 1 << 30, sink)
    assert (reply.status, bytes(reply.content)) == (200, b"")
    assert sink.starts == [len(body)] and bytes(sink.data) == body
    assert bytes(pool.send("GET", "/", b"", {}, 100).content) == b"next"  # same connection


def test_chunked_and_closing_bodies_go_to_the_sink_whole(serve) -> None:  # type: ignore[no-untyped-def]
    url = serve(
        _replying(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
        )
    )
    pool = HttpConnectionPool(url, timeout=5)
    for expected in (b"abcde", b"until the end"):
        sink = _Collect()
        assert bytes(pool.send("GET", "/", b"", {}, 100, sink).content) == b""
        assert sink.starts == [len(expected)] and bytes(sink.data) == expected


def test_an_error_reply_is_read_into_memory_not_the_sink(serve) -> None:  # type: ignore[no-untyped-def]
    url = serve(_replying(b"HTTP/1.1 409 Conflict\r\nContent-Length: 7\r\n\r\nnot yet"))
    sink = _Collect()
    reply = HttpConnectionPool(url, timeout=5).send("GET", "/", b"", {}, 100, sink)
    assert (reply.status, bytes(reply.content)) == (409, b"not yet")
    assert sink.starts == []


def test_a_sink_that_fails_ends_the_exchange_with_its_own_error(serve) -> None:  # type: ignore[no-untyped-def]
    body = b"x" * 300_000
    replies = _replying(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext",
    )

    def script(conn: socket.socket, n: int) -> None:
        with contextlib.suppress(ConnectionResetError):  # the client drops the connection
            replies(conn, n)

    url = serve(script)
    pool = HttpConnectionPool(url, timeout=5)
    with pytest.raises(OSError, match="disk full") as caught:
        pool.send("GET", "/", b"", {}, 1 << 20, _Collect(fail_after=1000))
    assert not isinstance(caught.value, TransportError)
    # The connection was dropped (the rest of that body is never read as a reply): the next
    # request goes on a new connection, whose first reply is that body again.
    assert bytes(pool.send("GET", "/", b"", {}, 1 << 20).content) == body


def test_a_body_cut_short_is_a_transport_error_with_a_sink(serve) -> None:  # type: ignore[no-untyped-def]
    url = serve(_replying(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"))
    sink = _Collect()
    with pytest.raises(TransportError, match="ended after 9 of 100"):
        HttpConnectionPool(url, timeout=5).send("GET", "/", b"", {}, 1000, sink)
    assert bytes(sink.data) == b"only this"


def test_a_body_over_the_limit_never_reaches_the_sink(serve) -> None:  # type: ignore[no-untyped-def]
    url = serve(_replying(b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n" + b"y" * 101))
    sink = _Collect()
    with pytest.raises(ReplyTooLarge):
        HttpConnectionPool(url, timeout=5).send("GET", "/", b"", {}, 100, sink)
    assert sink.starts == []
