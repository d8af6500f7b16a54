"""The HTTP exchange under MeshClient (ramnet.mesh.transport.client), against scripted servers on
127.0.0.1:
kept-alive connections the server dropped, replies without a length, size caps, threads."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from ramnet.mesh import MeshClient
from ramnet.mesh.nodes.client import MeshRequestError
from ramnet.mesh.protocol.wire import is_wire, pack, unpack
from ramnet.mesh.transport.client import (
    HttpConnectionPool,
    ReplyTooLarge,
    TransportError,
    split_base_url,
)
from tests.scripted_http import Script, read_request, scripted_servers


def _read_request(conn: socket.socket) -> bytes:
    head, body = read_request(conn)
    return head.split(b"\r\n")[0] + b"\n" + body if head else b""


@pytest.fixture
def scripted() -> Iterator[Callable[[Script], tuple[str, list[int]]]]:
    """Start a server that runs ``script(conn, n)`` for its n-th connection; returns its URL and
    the list of connection numbers seen."""
    yield from scripted_servers()


def _reply(body: bytes, extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def test_a_connection_the_server_closed_while_idle_is_replaced(scripted) -> None:  # type: ignore[no-untyped-def]
    # Every connection answers one request, then the server closes it without saying so. The next
    # request (a POST, which must not be sent twice) goes on a fresh connection, not a dead one.
    def one_then_close(conn: socket.socket, n: int) -> None:
        request = _read_request(conn)
        conn.sendall(_reply(b"conn %d: " % n + request.split(b"\n", 1)[1]))

    url, seen = scripted(one_then_close)
    pool = HttpConnectionPool(url, timeout=5)
    for i in range(4):
        reply = pool.send("POST", "/x", b"body %d" % i, {}, 1 << 20)
        assert reply.status == 200
        assert bytes(reply.content) == b"conn %d: body %d" % (i, i)
        # Let the close reach the client before the next request.
        threading.Event().wait(0.05)
    assert seen == [0, 1, 2, 3]
    pool.close()


def test_a_kept_alive_connection_is_reused(scripted) -> None:  # type: ignore[no-untyped-def]
    def keep_alive(conn: socket.socket, n: int) -> None:
        while request := _read_request(conn):
            conn.sendall(_reply(request.split(b"\n", 1)[1]))

    url, seen = scripted(keep_alive)
    pool = HttpConnectionPool(url, timeout=5)
    big = bytes(range(256)) * (12 << 12)  # 12 MiB, sent from memory and read into one buffer
    for _ in range(3):
        assert bytes(pool.send("PUT", "/echo", big, {}, 1 << 30).content) == big
    # A body in pieces (a wire container: header, then each array) arrives as their concatenation.
    pieces = [b"head", memoryview(big)[:5000], b"", bytearray(b"tail")]
    assert bytes(pool.send("POST", "/echo", pieces, {}, 1 << 30).content) == b"".join(pieces)
    assert seen == [0]
    pool.close()


def test_a_reply_without_a_length_is_read_whole_and_capped(scripted) -> None:  # type: ignore[no-untyped-def]
    def chunked(conn: socket.socket, n: int) -> None:
        _read_request(conn)
        pieces = [b"a" * 1000, b"b" * 70000, b"c"]
        out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Thing: 1\r\n\r\n"
        for piece in pieces:
            out += b"%x\r\n%s\r\n" % (len(piece), piece)
        conn.sendall(out + b"0\r\n\r\n")

    url, _ = scripted(chunked)
    reply = HttpConnectionPool(url, timeout=5).send("GET", "/", b"", {}, 1 << 20)
    assert bytes(reply.content) == b"a" * 1000 + b"b" * 70000 + b"c"
    assert reply.headers.get("x-thing") == "1" and reply.headers["X-THING"] == "1"
    with pytest.raises(ReplyTooLarge) as caught:
        HttpConnectionPool(url, timeout=5).send("GET", "/", b"", {}, 50000)
    assert caught.value.declared is None and caught.value.status == 200


def test_a_declared_length_over_the_cap_is_refused_unread(scripted) -> None:  # type: ignore[no-untyped-def]
    def huge(conn: socket.socket, n: int) -> None:
        _read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\nxx")

    url, _ = scripted(huge)
    with pytest.raises(ReplyTooLarge) as caught:
        HttpConnectionPool(url, timeout=5).send("GET", "/", b"", {}, 1 << 30)
    assert caught.value.declared == 999999999999


def test_a_reply_cut_short_is_a_transport_error(scripted) -> None:  # type: ignore[no-untyped-def]
    def short(conn: socket.socket, n: int) -> None:
        _read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")

    url, _ = scripted(short)
    with pytest.raises(TransportError) as caught:
        HttpConnectionPool(url, timeout=5).send("GET", "/", b"", {}, 1 << 20)
    assert caught.value.never_sent is False


def test_a_wire_reply_is_read_in_place_and_text_replies_stay_text(scripted) -> None:  # type: ignore[no-untyped-def]
    # A wire reply lands in an unzeroed buffer, whole; a reply labelled wire that holds an error
    # text still gives MeshClient its message, not a traceback.
    wire = "Content-Type: application/vnd.ramnet.wire\r\n"
    body = pack({"x": 1}, {"A": np.arange(3000, dtype=np.int32).reshape(60, 50)})

    def replies(conn: socket.socket, n: int) -> None:
        while request := _read_request(conn):
            if request.startswith(b"GET /bad"):
                error = b'{"error": "no such job"}'
                conn.sendall(_reply(error, wire).replace(b"200 OK", b"404 Not Found"))
            else:
                conn.sendall(_reply(body, wire))

    url, _ = scripted(replies)
    pool = HttpConnectionPool(url, timeout=5, in_place=is_wire)
    reply = pool.send("GET", "/", b"", {}, 1 << 20)
    assert isinstance(reply.content, memoryview) and bytes(reply.content) == body
    meta, arrays = unpack(reply.content, max_bytes=1 << 20)
    assert meta == {"x": 1} and np.array_equal(arrays["A"], np.arange(3000).reshape(60, 50))
    assert not arrays["A"].flags.writeable
    client = MeshClient(url, None, retries=0)
    with pytest.raises(MeshRequestError, match="no such job"):
        client.get_json("/bad")
    pool.close()


_BUFFER_PROBE = """
import mmap, sys
from ramnet.orchid._memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
from ramnet.mesh.transport.buffers import receive_buffer
for size in (8 << 20, 1000):
    buffer = receive_buffer(size)
    zeroed = not any(bytes(buffer[:: 4096]))
    buffer[-1] = 7
    print(kept, type(buffer.obj).__name__, len(buffer), buffer[-1], zeroed,
          hasattr(mmap, "MAP_POPULATE"))
"""


@pytest.mark.parametrize("mode", ["keep", "default"])
def test_a_receive_buffer_is_left_unzeroed_only_where_freed_memory_is_kept(mode: str) -> None:
    lines = subprocess.run(
        [sys.executable, "-c", _BUFFER_PROBE, mode], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    big, small = (line.split() for line in lines)
    assert big[2:4] == [str(8 << 20), "7"] and small[2:4] == ["1000", "7"]
    if big[0] == "True":  # glibc took the setting: malloc's heap, no zeroing pass
        assert big[1] == small[1] == "ndarray"
    else:  # a fresh mapping, faulted in at once where the kernel can; zeroed either way
        assert big[1] == ("mmap" if big[5] == "True" else "bytearray") and big[4] == "True"
        assert small[1] == "bytearray" and small[4] == "True"


def test_a_refused_connection_was_never_sent() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransportError) as caught:
        HttpConnectionPool(f"http://127.0.0.1:{port}", timeout=5).send("POST", "/", b"x", {}, 10)
    assert caught.value.never_sent is True


def test_threads_get_their_own_connections(scripted) -> None:  # type: ignore[no-untyped-def]
    def keep_alive(conn: socket.socket, n: int) -> None:
        while request := _read_request(conn):
            conn.sendall(_reply(request.split(b"\n", 1)[1]))

    url, seen = scripted(keep_alive)
    pool = HttpConnectionPool(url, timeout=5)
    errors: list[BaseException] = []

    def many(t: int) -> None:
        try:
            for i in range(20):
                body = b"%d-%d" % (t, i) * 1000
                assert bytes(pool.send("POST", "/", body, {}, 1 << 20).content) == body
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=many, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(seen) == 4
    pool.close()


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("http://127.0.0.1:9000", ("http", "127.0.0.1", 9000, "")),
        ("https://c.example/api/", ("https", "c.example", 443, "/api")),
        ("http://[::1]:80/p", ("http", "::1", 80, "/p")),
    ],
)
def test_base_urls(url: str, parts: tuple[str, str, int, str]) -> None:
    assert split_base_url(url) == parts


@pytest.mark.parametrize(
    "url", ["ftp://x", "http://", "http://h:99999", "http://h/?q=1", "http://u:p@h/", "http://h/#f"]
)
def test_bad_base_urls(url: str) -> None:
    with pytest.raises(ValueError):
        split_base_url(url)


def test_a_body_in_pieces_hashes_as_its_concatenation() -> None:
    from ramnet.mesh.nodes.client import body_digest_of
    from ramnet.mesh.protocol.auth import body_digest

    pieces = [b"RNWIRE1", memoryview(bytes(range(256)) * 9000), b"", bytearray(b"x" * 70000)]
    assert body_digest_of(pieces) == body_digest(b"".join(pieces))
    assert body_digest_of(b"abc") == body_digest(b"abc")


def test_an_idempotent_post_is_retried_after_the_connection_breaks_and_others_are_not(
    scripted,  # type: ignore[no-untyped-def]
) -> None:
    # The coordinator dies while a request is on the wire: the first connection is dropped with
    # the request read and unanswered. A registration (idempotent) is sent again; a job step
    # that may have happened (not idempotent) is reported, not repeated.
    from ramnet.mesh import MeshClient, MeshUnavailableError
    from ramnet.valkyrie import NodeKey

    def drop_first(conn: socket.socket, n: int) -> None:
        while _read_request(conn):
            if n == 0:
                conn.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                return  # closed with RST, unanswered
            conn.sendall(_reply(b'{"ok": true}', "Content-Type: application/json\r\n"))

    url, seen = scripted(drop_first)
    client = MeshClient(url, NodeKey.generate(), backoff=0.01, retry_for=5)
    assert client.post_json("/v1/nodes", {"bond": 0}, idempotent=True) == {"ok": True}
    assert seen == [0, 1]
    url, seen = scripted(drop_first)
    client = MeshClient(url, NodeKey.generate(), backoff=0.01, retry_for=5)
    with pytest.raises(MeshUnavailableError):
        client.post_json("/v1/shards/1/commit", {"digest": "0" * 64})
    assert seen == [0]


def test_nodes_register_as_an_idempotent_request() -> None:
    from ramnet.mesh import Worker
    from ramnet.mesh.nodes.auditor import Auditor
    from ramnet.mesh.nodes.consumer import submit
    from ramnet.mesh.protocol.routes import url

    calls: list[tuple[str, dict[str, object]]] = []

    class Client:
        def post_json(self, path: str, obj: object, **kw: object) -> dict[str, object]:
            calls.append((path, kw))
            return {"balance": 0, "bond": 0}

        def post_wire(self, path: str, meta: object, arrays: object, **kw: object) -> object:
            calls.append((path, kw))
            return {"job_id": "j"}

    Worker(Client()).register()
    Auditor(Client()).register()
    import numpy as np

    submit(Client(), np.ones((2, 2), np.int8), np.ones((2, 2), np.int8), 3)
    registrations = [kw for path, kw in calls if path == url("register")]
    assert len(registrations) == 3 and all(kw.get("idempotent") is True for kw in registrations)
