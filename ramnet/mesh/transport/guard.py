"""Limits every server connection keeps to: a cap on a request's headers, and read timeouts.

uvicorn's httptools protocol parses headers of any size (a 400 MiB header was read whole) and
times out nothing but an idle keep-alive connection after a response: a connection that opens and
sends nothing, or sends its headers a byte at a time, or declares a body and stops sending it,
is held for ever (slow-loris). ``guarded_protocol`` subclasses the protocol a server runs with
(uvicorn's, or the coordinator's ``direct_body`` one) so that:

- a request's line and headers over ``ConnectionLimits.header_bytes`` are answered 431 and the
  connection closed, before the rest is parsed;
- headers not complete ``header_s`` seconds after the connection opened (or the request began)
  are answered 408 and the connection closed;
- a body from which no byte arrived for ``body_idle_s`` seconds (while the server was reading
  it) ends the connection; the application sees the client gone.

Between requests uvicorn's own keep-alive timeout applies; while the application works on a
request (a long poll, a dashboard's event stream) no timeout runs. A connection's timer is armed
for its next deadline only while a request's headers or body are awaited, not ticked: an idle
or streaming connection costs the event loop nothing (five open dashboards hold about thirty
connections while their pages load).
"""

from __future__ import annotations

import http
from dataclasses import dataclass
from typing import Any

from ramnet._errors import RamnetError

__all__ = ["ConnectionLimits", "guarded_protocol"]


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may take of a server.

    Attributes:
        header_bytes: Most bytes of a request line and its headers (431 beyond).
        header_s: Seconds from a connection's start, or a request's first byte, to the end of
            its headers (408 beyond).
        body_idle_s: Seconds a body being read may go without a byte (the connection is closed).
    """

    header_bytes: int = 64 << 10
    header_s: float = 10.0
    body_idle_s: float = 30.0


class HeadersTooLarge(RamnetError):
    """Raised in a parser callback to stop parsing a request whose headers are over the cap (the
    protocol answers 431 itself)."""

    http_status = 431


def _refusal(status: int, reason: str) -> bytes:
    text = reason.encode("ascii")
    head = (
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
        "content-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(text)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + text


def guarded_protocol(base: type, limits: ConnectionLimits) -> type:
    """``base`` (uvicorn's httptools protocol or a subclass) with ``limits`` enforced.

    Args:
        base: The protocol class.
        limits: The header cap and timeouts.

    Returns:
        A subclass of ``base``, for ``uvicorn.Config(http=...)``.
    """

    class GuardedProtocol(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            now = self.loop.time()
            self._head_since: float | None = now  # headers awaited since then; None: not now
            self._head_bytes = 0
            self._in_body = False
            self._last_data = now
            self._refused: bytes | None = None
            self._watch: Any = None
            self._arm(now + limits.header_s)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self, when: float) -> None:
            self._disarm()
            self._watch = self.loop.call_at(when, self._watchdog)

        def _disarm(self) -> None:
            if self._watch is not None:
                self._watch.cancel()
                self._watch = None

        def data_received(self, data: Any) -> None:
            self._last_data = self.loop.time()
            super().data_received(data)

        def buffer_updated(self, nbytes: int) -> None:
            self._last_data = self.loop.time()
            super().buffer_updated(nbytes)

        def on_message_begin(self) -> None:
            self._head_since = self.loop.time()
            self._head_bytes = 0
            self._arm(self._head_since + limits.header_s)
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._head_since = None
            self._in_body = True
            self._arm(self._last_data + limits.body_idle_s)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            # The request is whole: until the next one begins, nothing is awaited from the client.
            self._in_body = False
            self._disarm()
            super().on_message_complete()

        def send_400_response(self, msg: str) -> None:
            # uvicorn answers any parser error 400; a request stopped by a limit gets its own.
            if self._refused is None:
                super().send_400_response(msg)
                return
            if not self.transport.is_closing():
                self.transport.write(self._refused)
                self.transport.close()

        def _count(self, size: int) -> None:
            self._head_bytes += size
            if self._head_bytes > limits.header_bytes:
                reason = f"request headers over {limits.header_bytes} bytes"
                self._refused = _refusal(431, reason)
                raise HeadersTooLarge(reason)

        def _refuse(self, status: int, reason: str) -> None:
            if not self.transport.is_closing():
                self.transport.write(_refusal(status, reason))
                self.transport.close()

        def _watchdog(self) -> None:
            self._watch = None
            if self.transport.is_closing():
                return
            now = self.loop.time()
            if self._head_since is not None:
                if now - self._head_since >= limits.header_s:
                    self._refuse(408, f"request headers not received within {limits.header_s:g} s")
                else:
                    self._arm(self._head_since + limits.header_s)
                return
            if not self._in_body:
                return
            if self.flow is not None and self.flow.read_paused:
                # The application is not reading: the client is not to blame for the silence.
                self._arm(now + limits.body_idle_s)
            elif now - self._last_data >= limits.body_idle_s:
                # The application reading the body sees the client gone (a 400 of its own).
                self.transport.close()
            else:
                self._arm(self._last_data + limits.body_idle_s)

    return GuardedProtocol
