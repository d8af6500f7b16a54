"""What keeps another web page from driving the UI: the page can run jobs and start workers,
so only this machine's own pages may post to it.

- ``Host`` must be one the UI listens as (a DNS-rebinding page arrives under another name);
- a request that changes anything must come from the UI's own origin (``Sec-Fetch-Site``,
  which browsers set and pages cannot, else ``Origin``): no cross-site form posts;
- every reply carries a strict Content-Security-Policy: the pages load scripts, styles and
  events from the UI itself only, and no inline script runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


def local_hosts(host: str, port: int) -> frozenset[str]:
    """The ``Host`` header values a UI bound to ``host:port`` answers to.

    Args:
        host: The bound address.
        port: The bound port.

    Returns:
        ``host:port`` and, for a loopback address, ``localhost:port``, ``127.0.0.1:port`` and
        ``[::1]:port``.
    """
    names = {host}
    if host in ("127.0.0.1", "localhost", "::1"):
        names |= {"127.0.0.1", "localhost", "::1"}
    return frozenset(f"[{n}]:{port}" if ":" in n else f"{n}:{port}" for n in names)


class LocalOnly:
    """ASGI middleware: the checks above, and the security headers on every reply.

    Args:
        app: The application.
        hosts: The accepted ``Host`` values; None accepts any (tests, ``--allow-remote``).
    """

    def __init__(self, app: Any, hosts: Iterable[str] | None) -> None:
        self.app = app
        self.hosts = None if hosts is None else frozenset(h.lower() for h in hosts)

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "").lower()
        refusal = None
        if self.hosts is not None and host not in self.hosts:
            refusal = "this page answers on its own address only"
        elif scope["method"] not in _SAFE and not _same_origin(headers, host):
            refusal = "only the RAMNET UI's own pages may send this"
        if refusal is not None:
            await _refuse(send, refusal)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)


def _same_origin(headers: dict[str, str], host: str) -> bool:
    # Sec-Fetch-Site is set by the browser itself (no page can forge it): trust it where sent.
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is not None and origin != "null":
        return origin.lower() in (f"http://{host}", f"https://{host}")
    # No Origin and no Sec-Fetch-Site: not a browser that a web page could drive (curl, tests).
    return origin is None


async def _refuse(send: Any, message: str) -> None:
    body = f"403 Forbidden: {message}\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
