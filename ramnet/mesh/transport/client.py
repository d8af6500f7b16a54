"""The HTTP/1.1 exchange under ``MeshClient``: one kept-alive connection per thread, bodies sent
from and read into memory without extra copies.

Why not an HTTP client package: the mesh moves tens of MiB per request, and httpx (which this
replaced) copies every body several times on the way (httpcore re-slices the unsent rest of an
upload after each send; a reply arrives as 64 KiB chunks parsed by h11 in Python, then joined). Here
an upload goes to ``socket.sendall`` as a memoryview, and a reply with a Content-Length is read
with ``recv_into`` straight into one buffer of that size, or handed on to a sink through a small
buffer (a download that goes to a file, never all in memory).

Why not the standard library's ``http.client`` (which this replaced in turn): importing it loads
``email`` and ``ssl``, about 12 ms of every ``ramnet`` command that talks to a coordinator
(``python -X importtime``), and it parses each reply's headers through ``email``. The subset of
HTTP/1.1 a client needs is small: a request line and headers; a reply's status line and headers
(size-capped, informational replies skipped), and a body framed by Content-Length, chunked
transfer coding, or the end of the connection. TLS is loaded only for an https coordinator
(``tls``); a handshake it refuses (an untrusted certificate) is a ``TlsFailure``, not a blip.
This module adds connection reuse, the reply size cap, and a split of failures into "nothing was
sent" and "may have been sent".
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ramnet._errors import RamnetError
from ramnet.mesh.transport.buffers import receive_buffer

__all__ = [
    "Body",
    "BodySink",
    "HttpConnectionPool",
    "ReplyError",
    "ReplyTooLarge",
    "TlsFailure",
    "TransportError",
    "body_pieces",
    "parse_head",
]

#: A request body: bytes, or a sequence of bytes-like pieces sent one after another.
Body = bytes | bytearray | memoryview | Sequence[bytes | bytearray | memoryview]


def body_pieces(body: Body) -> list[memoryview]:
    """The body as byte views, in order (one view for a plain bytes-like body)."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return [memoryview(body).cast("B")]
    return [memoryview(piece).cast("B") for piece in body]


class BodySink(Protocol):
    """Where a successful reply's body goes instead of into memory (``HttpConnectionPool.send``).

    ``start`` is called once per reply, before its first byte; the bytes then come in order
    through ``write``, each piece valid only during that call. Whatever either raises ends the
    exchange (the connection is dropped) and reaches ``send``'s caller as it is.
    """

    def start(self, length: int) -> None:
        """A body of ``length`` bytes begins (anything from an earlier attempt is dropped)."""

    def write(self, piece: memoryview) -> None:
        """The body's next bytes."""


class _SinkFailed(RamnetError):
    # A sink's own exception on its way out of the exchange (not a transport failure).
    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


#: The buffer a body handed to a sink is read through.
_SINK_PIECE = 1 << 20


class TransportError(RamnetError):
    """No reply: the connection failed or broke.

    Attributes:
        never_sent: True when the connection could not be opened, so nothing was sent (a POST
            is then safe to repeat).
    """

    def __init__(self, message: str, *, never_sent: bool) -> None:
        super().__init__(message)
        self.never_sent = never_sent


class TlsFailure(TransportError):
    """The TLS handshake was refused (an untrusted or mismatched certificate, no protocol in
    common, a server that does not speak TLS): trying again will not help. Nothing was sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, never_sent=True)


class ReplyTooLarge(RamnetError):
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


#: Bytes of a reply's status line and headers accepted (a longer head is refused).
MAX_HEAD = 64 << 10
_RECV = 64 << 10
_STATUS_RE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: [^\r\n]*)?")
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FIELD_VALUE_RE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")
_TARGET_RE = re.compile(r"[!-~]+")  # visible ASCII: no spaces or control characters


class ReplyError(RamnetError):
    """A reply that breaks HTTP/1.1 framing, or the connection closing in the middle of one."""


class _Connection:
    """A socket and the bytes read from it past the reply parsed so far."""

    __slots__ = ("pending", "sock")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.pending = bytearray()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def _fill(self) -> None:
        piece = self.sock.recv(_RECV)
        if not piece:
            raise ReplyError("the connection closed before the reply ended")
        self.pending += piece

    def read_until(self, marker: bytes, limit: int) -> bytes:
        """The bytes up to ``marker`` (which is consumed too), at most ``limit`` of them."""
        start = 0
        while True:
            at = self.pending.find(marker, start)
            if at > limit:
                raise ReplyError(f"no end of line within {limit} bytes")
            if at >= 0:
                found = bytes(self.pending[:at])
                del self.pending[: at + len(marker)]
                return found
            if len(self.pending) > limit:
                raise ReplyError(f"no end of line within {limit} bytes")
            start = max(0, len(self.pending) - len(marker) + 1)
            self._fill()

    def read_into(self, view: memoryview) -> None:
        """Fill ``view`` with the next bytes of the connection."""
        filled = min(len(self.pending), view.nbytes)
        view[:filled] = self.pending[:filled]
        del self.pending[:filled]
        while filled < view.nbytes:
            got = self.sock.recv_into(view[filled:])
            if not got:
                raise ReplyError(f"the reply's body ended after {filled} of {view.nbytes} bytes")
            filled += got

    def stream(self, length: int, sink: BodySink) -> None:
        """Hand the next ``length`` bytes of the connection to ``sink``, a buffer at a time."""
        _to_sink(sink.start, length)
        take = min(len(self.pending), length)
        if take:
            _to_sink(sink.write, memoryview(bytes(self.pending[:take])))
            del self.pending[:take]
        left = length - take
        buffer = memoryview(bytearray(min(left, _SINK_PIECE)))
        while left:
            got = self.sock.recv_into(buffer, min(left, buffer.nbytes))
            if not got:
                raise ReplyError(f"the reply's body ended after {length - left} of {length} bytes")
            _to_sink(sink.write, buffer[:got])
            left -= got

    def read_to_end(self, max_bytes: int, status: int) -> bytes:
        """Every byte until the server closes the connection, at most ``max_bytes``."""
        pieces = [bytes(self.pending)]
        size = len(self.pending)
        self.pending.clear()
        while piece := self.sock.recv(_RECV):
            size += len(piece)
            if size > max_bytes:
                raise ReplyTooLarge(status, None)
            pieces.append(piece)
        if size > max_bytes:
            raise ReplyTooLarge(status, None)
        return b"".join(pieces)


class HttpConnectionPool:
    """Kept-alive connections to one server, one per calling thread.

    Args:
        base_url: ``http(s)://host[:port][/prefix]``; request targets are appended to the prefix.
        timeout: Seconds allowed to connect, and for each send and each read.
        in_place: Whether a reply with this Content-Type is parsed in place, so its body is read
            into a ``receive_buffer`` (not zeroed first in a node) instead of a bytearray.
        tls: The ``ssl.SSLContext`` of an https server (``tls.client_context``); None: the
            system's trust store, loaded at the first https connection. Unused for http.

    Raises:
        ValueError: A base URL ``split_base_url`` refuses.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float,
        in_place: Callable[[str | None], bool] = lambda content_type: False,
        tls: Any = None,
    ) -> None:
        self.scheme, self.host, self.port, self.prefix = split_base_url(base_url)
        self.timeout = timeout
        self.in_place = in_place
        self._local = threading.local()
        self._all: list[_Connection] = []
        self._lock = threading.Lock()
        self._tls: Any = tls  # an ssl.SSLContext, else made at the first https connection
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        self._host_field = host if self.port == default else f"{host}:{self.port}"

    def _connection(self) -> _Connection:
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is not None and (conn.pending or _dropped(conn.sock)):
            self._drop(conn)  # the server closed it while idle: a send on it would fail half-way
            conn = None
        if conn is None:
            tls = self._context() if self.scheme == "https" else None
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            except OSError as exc:
                raise TransportError(_describe(exc), never_sent=True) from None
            try:
                # Small requests (commits, polls) must not wait for Nagle's delayed ACK.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if tls is not None:
                    sock = tls.wrap_socket(sock, server_hostname=self.host)
            except OSError as exc:  # ssl.SSLError is an OSError
                sock.close()
                if tls is not None:
                    from ramnet.mesh.transport import tls as _tls

                    if _tls.is_handshake_refusal(exc):
                        where = f"{self.scheme}://{self._host_field}"
                        raise TlsFailure(_tls.describe_handshake_error(exc, where)) from None
                raise TransportError(_describe(exc), never_sent=True) from None
            conn = self._local.conn = _Connection(sock)
            with self._lock:
                self._all.append(conn)
        return conn

    def _context(self) -> Any:
        if self._tls is None:
            from ramnet.mesh.transport.tls import client_context

            # Certificates are checked; the CA bundle is loaded only for https.
            self._tls = client_context()
        return self._tls

    def _drop(self, conn: _Connection) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:  # a server that closes every connection must not grow this list
            if conn in self._all:
                self._all.remove(conn)

    def send(
        self,
        method: str,
        target: str,
        body: Body,
        headers: Mapping[str, str],
        max_bytes: int,
        sink: BodySink | None = None,
    ) -> Reply:
        """Send one request and read its whole reply.

        Args:
            method: The HTTP method.
            target: The path and query (appended to the base URL's prefix).
            body: The body, or the pieces that make it up (sent as they lie in memory).
            headers: Request headers (Host and Content-Length are set here).
            max_bytes: The largest reply body accepted.
            sink: Where the body of a 2xx reply goes (the reply's ``content`` is then empty);
                other replies are read into memory as usual.

        Raises:
            ValueError: A method, target or header that cannot go into a request.
            TransportError: No reply.
            ReplyTooLarge: The reply's body is over ``max_bytes`` (the connection is dropped).
            Exception: Whatever ``sink`` raised (the connection is dropped).
        """
        pieces = body_pieces(body)
        length = sum(p.nbytes for p in pieces)
        head = _request_head(method, self.prefix + target, self._host_field, headers, length)
        conn = self._connection()
        try:
            if length <= _RECV:  # one packet for a small request
                conn.sock.sendall(b"".join([head, *pieces]))
            else:
                conn.sock.sendall(head)
                for piece in pieces:
                    if piece.nbytes:
                        conn.sock.sendall(piece)
            status, fields, keep = _read_head(conn)
            sink_ = sink if 200 <= status < 300 else None
            content, keep = _read_body(
                conn, method, status, fields, max_bytes, keep, sink_, self.in_place
            )
        except ReplyTooLarge:
            self._drop(conn)
            raise
        except _SinkFailed as failed:
            self._drop(conn)
            raise failed.error from None
        except (OSError, ReplyError) as exc:
            self._drop(conn)
            raise TransportError(_describe(exc), never_sent=False) from None
        if not keep:
            self._drop(conn)
        return Reply(status, fields, content)

    def close(self) -> None:
        """Close every connection this pool opened."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


def _request_head(
    method: str, target: str, host: str, headers: Mapping[str, str], length: int
) -> bytes:
    if _TOKEN_RE.fullmatch(method) is None:
        raise ValueError(f"bad HTTP method {method!r}")
    if _TARGET_RE.fullmatch(target) is None:
        raise ValueError(f"bad request target {target!r}")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if _TOKEN_RE.fullmatch(name) is None or _FIELD_VALUE_RE.fullmatch(value) is None:
            raise ValueError(f"bad header {name!r}: {value!r}")
        if name.lower() not in ("host", "content-length"):
            lines.append(f"{name}: {value}")
    lines += [f"Content-Length: {length}", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def parse_head(head: bytes) -> tuple[int, int, _Headers]:
    """A reply's HTTP minor version, status and headers, from its head (without the blank line).

    Raises:
        ReplyError: A malformed status line or header field.
    """
    lines = head.split(b"\r\n")
    found = _STATUS_RE.fullmatch(lines[0])
    if found is None:
        raise ReplyError(f"not an HTTP/1.x status line: {bytes(lines[0][:80])!r}")
    fields = _Headers()
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or _TOKEN_RE.fullmatch(name.decode("latin-1")) is None:
            raise ReplyError(f"bad header line {bytes(line[:80])!r}")
        key = name.decode("latin-1").lower()
        text = value.strip(b" \t").decode("latin-1")
        if _FIELD_VALUE_RE.fullmatch(text) is None:
            raise ReplyError(f"bad value of header {key}")
        if key in fields:
            if key == "content-length" and fields[key] != text:
                raise ReplyError("conflicting Content-Length headers")
            text = fields[key] if key == "content-length" else f"{fields[key]}, {text}"
        fields[key] = text
    return int(found.group(1)), int(found.group(2)), fields


def _read_head(conn: _Connection) -> tuple[int, _Headers, bool]:
    # The final reply's status, headers, and whether the connection may carry another request.
    while True:
        minor, status, fields = parse_head(conn.read_until(b"\r\n\r\n", MAX_HEAD))
        if status == 101 or status < 100:
            raise ReplyError(f"unexpected status {status}")
        if status >= 200:
            break
        # An informational reply (100 Continue, 103 Early Hints): the final one follows.
    tokens = {t.strip().lower() for t in (fields.get("connection") or "").split(",")}
    keep = "close" not in tokens if minor == 1 else "keep-alive" in tokens
    return status, fields, keep


def _read_body(
    conn: _Connection,
    method: str,
    status: int,
    fields: _Headers,
    max_bytes: int,
    keep: bool,
    sink: BodySink | None = None,
    in_place: Callable[[str | None], bool] = lambda content_type: False,
) -> tuple[bytes | bytearray | memoryview, bool]:
    # The reply's body (empty when it went to ``sink``), and whether the connection is still
    # usable after it.
    if method == "HEAD" or status in (204, 304):
        content: bytes | bytearray | memoryview = b""
    elif (coding := fields.get("transfer-encoding")) is not None:
        if coding.strip().lower() != "chunked":
            raise ReplyError(f"unsupported transfer coding {coding!r}")
        content = _read_chunked(conn, status, max_bytes)
    elif (declared := fields.get("content-length")) is None:  # delimited by the connection's end
        content, keep = conn.read_to_end(max_bytes, status), False
    else:
        if not declared.isdigit() or len(declared) > 19:
            raise ReplyError(f"bad Content-Length {declared!r}")
        length = int(declared)
        if length > max_bytes:
            raise ReplyTooLarge(status, length)
        if sink is not None:
            conn.stream(length, sink)
            return b"", keep
        content = _read_sized(conn, fields, length, in_place)
    if sink is not None:  # framed otherwise (not by our coordinator): read whole, handed on
        _to_sink(sink.start, len(content))
        if len(content):
            _to_sink(sink.write, memoryview(content).cast("B"))
        content = b""
    return content, keep


def _to_sink(call: Any, *args: Any) -> None:
    try:
        call(*args)
    except Exception as exc:
        raise _SinkFailed(exc) from None


def _read_sized(
    conn: _Connection, fields: _Headers, length: int, in_place: Callable[[str | None], bool]
) -> bytearray | memoryview:
    # A body parsed in place (a wire body: unpack) need not be zeroed first in a node (see
    # receive_buffer). Other bodies are small and stay a bytearray, which json.loads accepts.
    content: bytearray | memoryview = (
        receive_buffer(length) if in_place(fields.get("content-type")) else bytearray(length)
    )
    conn.read_into(memoryview(content).cast("B"))
    return content


def _read_chunked(conn: _Connection, status: int, max_bytes: int) -> bytes:
    pieces: list[bytes] = []
    size = 0
    while True:
        line = conn.read_until(b"\r\n", 4096)
        digits = line.split(b";", 1)[0].strip()
        if not digits or len(digits) > 16 or re.fullmatch(rb"[0-9A-Fa-f]+", digits) is None:
            raise ReplyError(f"bad chunk size {bytes(line[:40])!r}")
        chunk = int(digits, 16)
        if chunk == 0:
            while conn.read_until(b"\r\n", 4096):  # trailer fields, up to the blank line
                pass
            return b"".join(pieces)
        size += chunk
        if size > max_bytes:
            raise ReplyTooLarge(status, None)
        piece = bytearray(chunk)
        conn.read_into(memoryview(piece))
        pieces.append(bytes(piece))
        if conn.read_until(b"\r\n", 2) != b"":
            raise ReplyError("a chunk is longer than its size")


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
