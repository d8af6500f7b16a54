"""The HTTP/1.1 exchange under ``MeshClient``: the standard library's ``http.client``, with one
kept-alive connection per thread, bodies sent from and read into memory without extra copies.

Why not an HTTP client package: the mesh moves tens of MiB per request, and httpx (which this
replaced) copies every body several times on the way (httpcore re-slices the unsent rest of an
upload after each send; a reply arrives as 64 KiB chunks parsed by h11 in Python, then joined). Here
an upload goes to ``socket.sendall`` as a memoryview, and a reply with a Content-Length is read
with ``readinto`` straight into one buffer of that size. ``http.client`` does the protocol
(status line, headers, chunked replies, keep-alive); this module adds connection reuse, the reply
size cap, and a split of failures into "nothing was sent" and "may have been sent".
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ramnet.mesh._wire import is_wire, receive_buffer

__all__ = ["Body", "HttpConnectionPool", "ReplyTooLarge", "TransportError", "body_pieces"]

_READ_CHUNK = 1 << 20

#: A request body: bytes, or a sequence of bytes-like pieces sent one after another.
Body = bytes | bytearray | memoryview | Sequence[bytes | bytearray | memoryview]


def body_pieces(body: Body) -> list[memoryview]:
    """The body as byte views, in order (one view for a plain bytes-like body)."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return [memoryview(body).cast("B")]
    return [memoryview(piece).cast("B") for piece in body]


class TransportError(Exception):
    """No reply: the connection failed or broke.

    Attributes:
        never_sent: True when the connection could not be opened, so nothing was sent (a POST
            is then safe to repeat).
    """

    def __init__(self, message: str, *, never_sent: bool) -> None:
        super().__init__(message)
        self.never_sent = never_sent


class ReplyTooLarge(Exception):
    """The reply's body is over the size cap (declared, or as it arrived).

    Attributes:
        status: The reply's HTTP status.
        declared: The Content-Length, when the reply gave one.
    """

    def __init__(self, status: int, declared: int | None) -> None:
        super().__init__(f"reply of {declared} bytes" if declared is not None else "reply")
        self.status = status
        self.declared = declared


@dataclass(frozen=True)
class Reply:
    """A reply, fully read: ``status``, ``headers`` (names case-insensitive), ``content``."""

    status: int
    headers: Mapping[str, str]
    content: bytes | bytearray | memoryview


class _Headers(dict[str, str]):
    """Reply headers with case-insensitive lookup (names stored lower-case)."""

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


def split_base_url(url: str) -> tuple[str, str, int, str]:
    """Return (scheme, host, port, path prefix) of an ``http(s)://host[:port][/prefix]`` URL.

    Raises:
        ValueError: Not http(s), no host, a bad port, or a query or fragment.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected http(s)://host[:port][/path]")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("no query, fragment or credentials allowed")
    port = parts.port  # raises ValueError for a bad port
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/")


class HttpConnectionPool:
    """Kept-alive connections to one server, one per calling thread.

    Args:
        base_url: ``http(s)://host[:port][/prefix]``; request targets are appended to the prefix.
        timeout: Seconds allowed to connect, and for each send and each read.

    Raises:
        ValueError: A base URL ``split_base_url`` refuses.
    """

    def __init__(self, base_url: str, timeout: float) -> None:
        self.scheme, self.host, self.port, self.prefix = split_base_url(base_url)
        self.timeout = timeout
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None and _dropped(conn.sock):
            conn.close()  # the server closed it while idle: a send on it would fail half-way
        if conn is None:
            if self.scheme == "https":
                if self._tls is None:
                    # Certificates are checked; the CA bundle is loaded only for https.
                    self._tls = ssl.create_default_context()
                conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=self._tls
                )
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        if conn.sock is None:
            try:
                conn.connect()
                # Small requests (commits, polls) must not wait for Nagle's delayed ACK.
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise TransportError(_describe(exc), never_sent=True) from None
        return conn

    def send(
        self,
        method: str,
        target: str,
        body: Body,
        headers: Mapping[str, str],
        max_bytes: int,
    ) -> Reply:
        """Send one request and read its whole reply.

        Args:
            method: The HTTP method.
            target: The path and query (appended to the base URL's prefix).
            body: The body, or the pieces that make it up (sent as they lie in memory).
            headers: Request headers (Host, Content-Length and Accept-Encoding are set here).
            max_bytes: The largest reply body accepted.

        Raises:
            TransportError: No reply.
            ReplyTooLarge: The reply's body is over ``max_bytes`` (the connection is dropped).
        """
        conn = self._connection()
        try:
            conn.putrequest(method, self.prefix + target, skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            pieces = body_pieces(body)
            conn.putheader("Content-Length", str(sum(p.nbytes for p in pieces)))
            conn.endheaders()
            for piece in pieces:
                if piece.nbytes:
                    conn.send(piece)
            reply = conn.getresponse()
            try:
                content = _read(reply, max_bytes)
            except BaseException:
                conn.close()
                raise
            if reply.will_close:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise TransportError(_describe(exc), never_sent=False) from None
        fields = _Headers((name.lower(), value) for name, value in reply.getheaders())
        return Reply(reply.status, fields, content)

    def close(self) -> None:
        """Close every connection this pool opened."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


def _read(reply: http.client.HTTPResponse, max_bytes: int) -> bytes | bytearray | memoryview:
    declared = reply.getheader("content-length")
    if reply.chunked or declared is None or not declared.isdigit():
        # No length up front: read pieces, counting against the cap as they arrive.
        pieces, size = [], 0
        while piece := reply.read(_READ_CHUNK):
            size += len(piece)
            if size > max_bytes:
                raise ReplyTooLarge(reply.status, None)
            pieces.append(piece)
        return b"".join(pieces)
    length = int(declared)
    if length > max_bytes:
        raise ReplyTooLarge(reply.status, length)
    # A wire body is parsed in place (unpack): in a node it need not be zeroed first (see
    # receive_buffer). Other bodies are small and stay a bytearray, which json.loads accepts.
    wire = is_wire(reply.getheader("content-type"))
    content: bytearray | memoryview = receive_buffer(length) if wire else bytearray(length)
    view = memoryview(content)
    filled = 0
    while filled < length:
        got = reply.readinto(view[filled:])
        if not got:
            raise http.client.IncompleteRead(bytes(view[:filled]), length - filled)
        filled += got
    return content


def _dropped(sock: socket.socket) -> bool:
    # An idle kept-alive connection has nothing to read; if it is readable, the server closed it
    # (or sent something unasked): either way it must not carry the next request.
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
