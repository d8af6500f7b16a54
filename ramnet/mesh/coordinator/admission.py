"""What a request must show before any of its body is read: a size its route allows, and a
registered sender.

A body's ``Content-Length`` is only a claim, but a coordinator that believed it allocated the
whole declared size before checking anything (about 1 GiB per connection that declared 1 GiB and
sent nothing). Now every request's headers are checked first, from the route table:

- its declared size against its route's limit: ``SMALL_BODY`` for a JSON route (or one without a
  body), the coordinator's ``max_body`` only for a route that takes arrays (413 beyond);
- on a signed route other than registration, that it names a node (``X-Ramnet-Node``, 401
  without it) that has registered (403 otherwise, saying to register first) and is not banned
  (403). The signature itself is checked once the body is in, as before: the node id here is
  unproven, so this only stops what an unregistered key could make the coordinator hold.

The dashboard's pages (``routes.PAGES``: ``/dashboard`` and below) are the one exception to
"registered senders only", on purpose: they are public and read-only (GETs that change nothing
and show no secret), so anyone may open them unsigned (``check_page``); they take no body.

The uvicorn protocol asks ``admits`` before it reads a body straight into a buffer; the app calls
``check`` before it reads one, and answers the refusal without reading it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ramnet._errors import RamnetError
from ramnet.mesh.protocol import routes as _api
from ramnet.mesh.protocol.auth import AUTH_HEADERS, HEADER_NODE, AuthError
from ramnet.mesh.state.errors import NodeBannedError, NotFoundError
from ramnet.mesh.state.store import Store
from ramnet.mesh.transport.server import BodyTooLarge

__all__ = ["SMALL_BODY", "Admission", "NotRegisteredError"]

#: The largest body of a route that takes no arrays (a JSON message), bytes.
SMALL_BODY = 1 << 20
#: Seconds a node found registered and not banned is taken as such without another lookup.
KNOWN_FOR = 1.0
#: Nodes remembered so at most.
MAX_KNOWN = 65536

_HEX64 = re.compile(r"[0-9a-f]{64}")
_PARAM = re.compile(r"{(\w+)(?::(\w+))?}")
_NODE = HEADER_NODE.lower().encode("latin-1")
_AUTH = {name.lower().encode("latin-1") for name in AUTH_HEADERS}


class NotRegisteredError(RamnetError):
    """A signed request from a node that never registered."""

    http_status = 403


def _pattern(path: str) -> re.Pattern[str]:
    # The route's template as a regular expression: ``{name}`` one segment, ``{name:int}`` digits.
    out, last = [], 0
    for found in _PARAM.finditer(path):
        out.append(re.escape(path[last : found.start()]))
        out.append("[0-9]+" if found.group(2) == "int" else "[^/]+")
        last = found.end()
    out.append(re.escape(path[last:]))
    return re.compile("".join(out))


class Admission:
    """The checks of a request's headers before its body (see the module's docstring).

    Args:
        store: The coordinator's state (who registered, who is banned).
        max_body: The largest body of a route that takes arrays.
    """

    def __init__(self, store: Store, max_body: int) -> None:
        self._store = store
        self._max_body = max_body
        self._routes = [(r.method, _pattern(r.path), r) for r in _api.ROUTES]
        # Nodes found registered and not banned, and when: a lookup per request would cost the
        # event loop a read transaction; a ban is seen here within KNOWN_FOR seconds (and by
        # the request's own handling at once).
        self._known: dict[str, float] = {}

    def route_of(self, method: str, path: str) -> _api.Route | None:
        """The route a request goes to (a GET route also takes HEAD), or None."""
        method = "GET" if method == "HEAD" else method
        for wanted, pattern, found in self._routes:
            if wanted == method and pattern.fullmatch(path):
                return found
        return None

    def check_page(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Admit a request to a dashboard page (``routes.PAGES``) from its raw headers: anyone
        may, unsigned and unregistered (the pages are public and read-only); only a body is
        refused, since no page reads one.

        Args:
            headers: The ASGI headers (lower-case names, bytes).

        Raises:
            BodyTooLarge: A declared body (413).
        """
        for name, value in headers:
            if name == b"content-length" and value.strip() not in (b"", b"0"):
                raise BodyTooLarge("a dashboard page takes no body")
            if name == b"transfer-encoding":
                raise BodyTooLarge("a dashboard page takes no body")

    def limit(self, spec: _api.Route) -> int:
        """The largest body ``spec`` accepts, in bytes."""
        return self._max_body if spec.size == "arrays" else SMALL_BODY

    def admits(self, scope: Mapping[str, Any]) -> bool:
        """Whether a request (its ASGI scope, headers parsed) may have its body read: its route
        exists and ``check`` passes. Never raises."""
        spec = self.route_of(str(scope.get("method")), str(scope.get("path")))
        if spec is None:
            return False
        try:
            self.check(spec, scope.get("headers") or ())
        except RamnetError:
            return False
        return True

    def check(self, spec: _api.Route, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Refuse a request to ``spec`` from its raw headers alone.

        Args:
            spec: Its route.
            headers: The ASGI headers (lower-case names, bytes).

        Raises:
            BodyTooLarge: A declared size over the route's limit (413).
            AuthError: A signed route and no node named (401), or a malformed one (400).
            NotRegisteredError: The node never registered (403).
            NodeBannedError: The node is banned (403).
        """
        length = node = None
        signed_with: set[bytes] = set()
        for name, value in headers:
            if name == b"content-length":
                length = value
            elif name in _AUTH:
                signed_with.add(name)
                if name == _NODE:
                    node = value
        limit = self.limit(spec)
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise BodyTooLarge(f"body over {limit} bytes (the limit of {spec.name})")
        if not spec.signed or spec.name == "register":
            return
        if not signed_with:
            raise AuthError("request is not signed (no X-Ramnet-* headers)", 401)
        if node is None:
            raise AuthError(f"request signature incomplete: missing {HEADER_NODE}", 401)
        text = node.decode("latin-1")
        if _HEX64.fullmatch(text) is None:
            raise AuthError(f"{HEADER_NODE} must be 64 lowercase hex digits", 400)
        now = time.monotonic()
        if now - self._known.get(text, -KNOWN_FOR) < KNOWN_FOR:
            return
        try:
            banned = self._store.get_node(text).banned
        except NotFoundError:
            raise NotRegisteredError(
                f"node {text[:16]} is not registered: register first "
                f"(POST {_api.url('register')}, as every node command does at start)"
            ) from None
        if banned:
            raise NodeBannedError(f"node {text[:16]} is banned")
        if len(self._known) >= MAX_KNOWN:
            self._known.clear()
        self._known[text] = now
