"""The server side of HTTP: reading request bodies, sending replies in pieces, running uvicorn.

Bytes only: what a body means (JSON, the wire format) is the caller's. ``run_http`` is the one
runner of every RAMNET server (the coordinator, the sidecar daemon, the proxy).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ramnet._errors import InvalidInputError, RamnetError
from ramnet.mesh.transport.direct_body import BodyLostError, direct_body, direct_body_protocol
from ramnet.mesh.transport.guard import ConnectionLimits, guarded_protocol


class ListenError(RamnetError):
    """A server's address cannot be bound."""


async def read_body(
    request: Any, max_body: int, buffer_for: Callable[[str | None, int], Any] | None = None
) -> bytes:
    """A request's body, refused past ``max_body`` bytes.

    Args:
        request: A Starlette ``Request``.
        max_body: The largest body accepted, in bytes.
        buffer_for: ``(content_type, length)`` -> the writable buffer a body of a declared length
            is gathered into (a body parsed in place need not be zeroed), or None to join its
            pieces as they come; None: always join them. Nothing is allocated for bytes that
            have not arrived (a declared length is only a claim).

    Returns:
        The body, bytes-like.

    Raises:
        BodyTooLarge: Over ``max_body`` (declared or as it arrives).
        BadLength: Longer or shorter than its Content-Length, or the client went away before
            all of it arrived.
    """
    from starlette.requests import ClientDisconnect

    try:
        return await _read_body(request, max_body, buffer_for)
    except ClientDisconnect:
        raise BadLength("the connection closed before the whole body arrived") from None


async def _read_body(
    request: Any, max_body: int, buffer_for: Callable[[str | None, int], Any] | None
) -> bytes:
    arriving = direct_body(request.scope)
    if arriving is not None:  # read by the socket straight into its buffer (http_protocol)
        try:
            return await arriving.read()  # type: ignore[no-any-return]
        except BodyLostError:
            raise BadLength() from None
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_body):
        raise BodyTooLarge(f"body over {max_body} bytes")
    length = None if declared is None else int(declared)
    content_type = request.headers.get("content-type")
    body = None if buffer_for is None or length is None else buffer_for(content_type, length)
    if body is not None and length is not None:
        # Gathered straight into one buffer of the declared size: joining the pieces would copy
        # every byte once more.
        view, size = memoryview(body), 0
        async for chunk in request.stream():
            if size + len(chunk) > length:
                raise BadLength()
            view[size : size + len(chunk)] = chunk
            size += len(chunk)
        if size != length:
            raise BadLength()
        return body  # type: ignore[no-any-return]  # bytes-like; nobody writes to it
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body or (length is not None and size > length):
            raise BodyTooLarge(f"body over {max_body} bytes") if size > max_body else BadLength()
        chunks.append(chunk)
    if length is not None and size != length:
        raise BadLength()
    return b"".join(chunks)


class BodyTooLarge(InvalidInputError):
    """A request body over the route's limit."""

    http_status = 413


class BadLength(InvalidInputError):
    """A request body longer or shorter than its Content-Length."""

    http_status = 400

    def __init__(self, message: str = "body length differs from its Content-Length") -> None:
        super().__init__(message)


_SEND_PIECE = 1 << 20


def pieces(parts: Sequence[bytes | bytearray | memoryview]) -> Iterator[memoryview]:
    # At most 1 MiB per write: uvicorn waits for the socket to drain between writes, so what the
    # kernel does not take at once is never more than a piece.
    for part in parts:
        view = memoryview(part).cast("B")
        for start in range(0, view.nbytes, _SEND_PIECE):
            yield view[start : start + _SEND_PIECE]


@functools.cache
def _parts_response_class() -> Any:
    from starlette.responses import Response

    class PartsResponse(Response):
        """A body sent piece by piece straight from the buffers it was packed from.

        Starlette's StreamingResponse would do it too, but it runs each reply in a task group
        with a task listening for a disconnect, and pulls every piece from an async iterator:
        about 0.05 ms of the coordinator's CPU per MiB sent (``bench/bench_transport.py``). A
        client that goes away is noticed by uvicorn, whose ``send`` then drops the rest.
        """

        def __init__(
            self, parts: Sequence[bytes | bytearray | memoryview], media_type: str
        ) -> None:
            size = sum(memoryview(part).nbytes for part in parts)
            super().__init__(media_type=media_type, headers={"content-length": str(size)})
            self.parts = parts

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            start = {"type": "http.response.start", "status": self.status_code}
            await send({**start, "headers": self.raw_headers})
            for piece in pieces(self.parts):
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    return PartsResponse


def parts_response(parts: Sequence[bytes | bytearray | memoryview], media_type: str) -> Any:
    """A Starlette response that sends ``parts`` as one body without joining them."""
    return _parts_response_class()(parts, media_type)


#: Bytes of a request body uvicorn buffers per connection before it stops reading the socket.
READ_BUFFER = 4 << 20


def raise_read_buffer() -> bool:
    """Let uvicorn buffer ``READ_BUFFER`` bytes of a request body instead of 64 KiB.

    uvicorn pauses reading at a module-level high-water mark of 64 KiB and resumes once the app
    takes the bytes: a 64 MiB reveal makes a thousand pause/resume round trips through the event
    loop. At 4 MiB a 64 MiB body costs the coordinator about 60 ms of CPU instead of 105 ms
    (``bench/bench_transport.py``); memory stays bounded, 4 MiB per connection.

    Returns:
        Whether the installed uvicorn has the setting (a test pins that it does).
    """
    import importlib

    found = False
    for name in ("httptools_impl", "h11_impl"):
        try:
            module = importlib.import_module(f"uvicorn.protocols.http.{name}")
        except ImportError:  # httptools is optional for uvicorn
            continue
        limit = getattr(module, "HIGH_WATER_LIMIT", None)
        if isinstance(limit, int):
            setattr(module, "HIGH_WATER_LIMIT", max(limit, READ_BUFFER))  # noqa: B010
            found = True
    return found


def direct_http_protocol(
    max_body: int,
    buffer_for: Callable[[str, int], Any | None],
    admits: Callable[[Mapping[str, Any]], bool] | None = None,
) -> Any:
    """uvicorn's ``http`` setting: a protocol that reads chosen bodies (a coordinator's uploads
    and reveals) from the socket straight into the buffer they are parsed from
    (``direct_body``), or "auto" where uvicorn's httptools protocol is missing.

    Args:
        max_body: The largest body read that way; a larger one takes uvicorn's path, where
            ``read_body`` refuses it.
        buffer_for: ``(content_type, length)`` -> the buffer to read a POST or PUT body into,
            or None to leave it to uvicorn.
        admits: The request's ASGI scope -> whether its body may be read at all (its route's
            limit, its sender); a body it refuses is left to uvicorn, which buffers at most
            ``READ_BUFFER`` of it while the application answers the refusal (and closes the
            connection). None: every body may be.

    Returns:
        A protocol class, or "auto".
    """

    def choose(scope: Mapping[str, Any]) -> Any:
        if scope.get("method") not in ("POST", "PUT"):
            return None
        content_type = length = None
        for name, value in scope.get("headers", ()):
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                return None
        if content_type is None or length is None or not length.isdigit():
            return None
        size = int(length)
        if not 0 < size <= max_body or (admits is not None and not admits(scope)):
            return None
        return buffer_for(content_type.decode("latin-1"), size)

    return direct_body_protocol(choose) or "auto"


def listen_tcp(host: str, port: int) -> socket.socket:
    """Open the HTTP port before serving, so that a busy port is a clear error, not an exit.

    The socket is made as TCP by name (``IPPROTO_TCP``), with ``TCP_NODELAY``: asyncio turns
    Nagle's algorithm off only on connections whose socket says it is TCP, and one accepted from
    a socket made with protocol 0 (as ``socket.create_server`` makes it) kept Nagle on. A small
    reply written in two pieces then waited for the client's delayed ACK: a 2048 int8 mesh job
    took 0.37 s instead of 0.13 s (``bench/bench_mesh.py --n 2048``, ``mesh_inproc_wall_s``).

    Args:
        host: The address to bind (IPv6 when it holds a colon).
        port: The port (0: any free one).

    Returns:
        A listening socket, inheritable, for ``run_http``.

    Raises:
        ListenError: The address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM or SIGINT while in the block (main thread only; elsewhere a no-op).
    The previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGTERM, signal.SIGINT)
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in sigs}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_http(
    app: Any,
    sock: socket.socket,
    stop: threading.Event,
    *,
    http: Any = "auto",
    graceful_s: int = 5,
    loop: str = "auto",
    tls_cert: str | None = None,
    tls_key: str | None = None,
    limits: ConnectionLimits | None = None,
) -> None:
    """Serve ``app`` with uvicorn on an open socket until ``stop`` is set, then shut down cleanly.

    The one server runner of the coordinator, the sidecar daemon and the proxy. Signals are left
    to the caller (``stop_on_signals``): uvicorn would re-raise them after its shutdown, and the
    process would end "killed by SIGTERM" instead of exiting 0.

    Args:
        app: The ASGI application.
        sock: A listening socket (``listen_tcp``).
        stop: Set to shut down.
        http: uvicorn's ``http`` setting (``direct_http_protocol``).
        graceful_s: Seconds open requests get to finish at shutdown.
        loop: uvicorn's ``loop`` setting.
        tls_cert, tls_key: PEM certificate chain and key: serve HTTPS only (both or neither;
            check them first with ``tls.check_server_files``).
        limits: The header cap and read timeouts of every connection (``guard``); None: the
            defaults.
    """
    import uvicorn

    from ramnet.mesh.transport.tls import SERVER_CIPHERS, bound_handshakes

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        async def serve(self, sockets: list[socket.socket] | None = None) -> None:
            if tls_cert is not None:  # a handshake has as long as a request's headers have
                handshake_s = (limits or ConnectionLimits()).header_s
                bound_handshakes(asyncio.get_running_loop(), handshake_s)
            await super().serve(sockets)

        async def on_tick(self, counter: int) -> bool:
            if stop.is_set():
                return True
            return await super().on_tick(counter)

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=graceful_s,
        http=guarded_http(http, limits or ConnectionLimits()),
        loop=loop,
        # h11 (where httptools is missing) caps headers itself, at this size.
        h11_max_incomplete_event_size=(limits or ConnectionLimits()).header_bytes,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        ssl_ciphers=SERVER_CIPHERS,
    )
    _Server(config).run(sockets=[sock])


def guarded_http(http: Any, limits: ConnectionLimits) -> Any:
    """uvicorn's ``http`` setting ``http`` (a protocol class, or "auto") with ``limits`` enforced
    on every connection (``guard.guarded_protocol``); "auto" becomes uvicorn's httptools
    protocol, guarded, where httptools is installed (otherwise h11, which caps headers itself)."""
    if isinstance(http, type):
        return guarded_protocol(http, limits)
    if http in ("auto", "httptools"):
        try:
            from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
        except ImportError:
            return http
        return guarded_protocol(HttpToolsProtocol, limits)
    return http
