"""Request bodies the socket reads straight into their final buffer (the coordinator's uploads).

uvicorn hands a request body to the application as a stream of pieces: the socket is read into a
new ``bytes`` of at most 256 KiB, httptools copies the body's part of it into another ``bytes``,
uvicorn appends that to a ``bytearray`` and copies the ``bytearray`` into the ``bytes`` it
passes on, and the application copies that into its buffer. Four copies of every byte in user
space, and some Python work per piece: for a mesh job's 101 MiB of uploads that is most of what
the coordinator's event loop spends besides the kernel's own copy.

``direct_body_protocol`` makes uvicorn's httptools protocol an ``asyncio.BufferedProtocol``.
Headers (and whatever of the body arrives with them) are read into a scratch buffer and parsed
by httptools as before. Once the headers say a body is one the application wants whole (the
``choose`` callback returns a buffer for it), every later read of that body goes from the socket
straight into the buffer, in reads of up to ``MAX_READ`` bytes and never past the body's end, so
a pipelined next request stays in the socket. When the body is complete the parser, which never
saw those bytes, is replaced by a fresh one for the next request on the connection. The
application finds the body in the request's ASGI scope (``direct_body``) and awaits it.

Anything else (JSON, chunked bodies, bodies ``choose`` declines) takes uvicorn's own path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from ramnet._errors import RamnetError

#: The ASGI scope extension that carries a request's DirectBody.
EXTENSION = "ramnet.direct_body"

#: Bytes asked of the socket per read into a body.
MAX_READ = 4 << 20

#: Bytes of the scratch buffer that headers (and small bodies) are read into.
SCRATCH = 256 << 10


class BodyLostError(RamnetError, ConnectionError):
    """The client went away before its whole body arrived."""


class DirectBody:
    """A request body being read into its buffer.

    Attributes:
        length: The body's length (its Content-Length).
        filled: Bytes received so far.
    """

    __slots__ = ("_buffer", "_done", "_view", "filled", "length")

    def __init__(self, buffer: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._buffer = buffer
        self._view = memoryview(buffer).cast("B")
        self.length = self._view.nbytes
        self.filled = 0
        self._done: asyncio.Future[None] = loop.create_future()

    async def read(self) -> Any:
        """The whole body (the buffer ``choose`` gave), once it has arrived.

        Raises:
            BodyLostError: The connection closed first.
        """
        await self._done
        return self._buffer

    def _room(self) -> memoryview:
        # The view ends where the body does: a read never takes the next request's bytes.
        return self._view[self.filled : self.filled + MAX_READ]

    def _take(self, piece: bytes) -> None:
        # Body bytes that arrived with the headers, already parsed out by httptools.
        end = self.filled + len(piece)
        if end > self.length:  # cannot happen: the parser delivers at most Content-Length
            raise BodyLostError("more body than its Content-Length")
        self._view[self.filled : end] = piece
        self.filled = end

    def _finish(self) -> None:
        if not self._done.done():
            self._done.set_result(None)

    def _fail(self) -> None:
        if not self._done.done():
            self._done.set_exception(
                BodyLostError(f"the connection closed after {self.filled} of {self.length} bytes")
            )
            # Nobody may be awaiting it (the application answered without reading the body).
            self._done.add_done_callback(lambda f: f.exception())


def direct_body(scope: Mapping[str, Any]) -> DirectBody | None:
    """The DirectBody of a request, or None when its body comes the usual way."""
    extensions = scope.get("extensions") or {}
    found = extensions.get(EXTENSION)
    return found if isinstance(found, DirectBody) else None


def direct_body_protocol(choose: Callable[[Mapping[str, Any]], Any]) -> type | None:
    """A uvicorn protocol class (``uvicorn.Config(http=...)``) that reads chosen bodies straight
    into their buffers.

    Args:
        choose: Called with a request's ASGI scope once its headers are parsed; returns a
            writable buffer exactly the size of the body to read it into, or None to leave the
            body to uvicorn. It must not return a buffer for a body without a Content-Length.

    Returns:
        The class, or None where uvicorn's httptools protocol is not installed.
    """
    try:
        import httptools
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return None

    def new_parser(protocol: Any) -> Any:
        parser = httptools.HttpRequestParser(protocol)
        with contextlib.suppress(AttributeError):  # as uvicorn sets its own (httptools >= 0.6.3)
            parser.set_dangerous_leniencies(lenient_data_after_close=True)
        return parser

    class DirectBodyProtocol(HttpToolsProtocol, asyncio.BufferedProtocol):  # type: ignore[misc]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._scratch = memoryview(bytearray(SCRATCH))
            # The body being read into, from its headers until its last byte (nothing runs
            # between get_buffer and buffer_updated, so both see the same one).
            self._body: DirectBody | None = None

        def get_buffer(self, sizehint: int) -> memoryview:
            return self._scratch if self._body is None else self._body._room()

        def buffer_updated(self, nbytes: int) -> None:
            body = self._body
            if body is None:
                self.data_received(self._scratch[:nbytes])  # type: ignore[arg-type]
                return
            self._unset_keepalive_if_required()
            body.filled += nbytes
            if body.filled == body.length:
                # The parser still waits for these bytes: the next request gets a new one.
                self.parser = new_parser(self)
                self.on_message_complete()

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            if self.parser.should_upgrade() or self.cycle is None:
                return
            buffer = choose(self.scope)
            if buffer is None:
                return
            body = DirectBody(buffer, self.loop)
            extensions: dict[str, Any] = dict(self.scope.get("extensions") or {})
            extensions[EXTENSION] = body
            self.scope["extensions"] = extensions
            self._body = body
            if self.cycle.waiting_for_100_continue and not self.transport.is_closing():
                # The application never calls receive(), where uvicorn would say it.
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.cycle.waiting_for_100_continue = False

        def on_body(self, body: bytes) -> None:
            if self._body is not None:
                self._body._take(body)
                return
            super().on_body(body)

        def on_message_complete(self) -> None:
            if self._body is not None:
                self._body._finish()
                self._body = None
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._body is not None:
                self._body._fail()
                self._body = None
            super().connection_lost(exc)

    return DirectBodyProtocol
