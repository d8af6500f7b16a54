"""A signed HTTP client for the coordinator's API, with retries and ramnet errors.

The HTTP exchange itself is ``ramnet.mesh.transport.client`` (HTTP/1.1 over a kept-alive socket,
bodies moved without extra copies). Every request is signed with the node's key
(``ramnet.mesh.protocol.auth``), over the request target exactly as it is sent. Bodies are JSON or
RNWIRE1 (``ramnet.mesh.protocol.wire``); replies are read with a size cap.
HTTP failures become one-line ramnet errors:

- ``MeshRequestError`` (an ``InvalidInputError``): the coordinator refused the request (4xx);
  ``status`` says why (401 unsigned or bad signature, 404 unknown, 409 replay or conflict, ...).
- ``MeshUnavailableError`` (a ``ConnectionError``): the coordinator could not be reached, or kept
  answering 5xx, until the retry budget ran out; or an https coordinator's certificate is not
  trusted (reported at once, naming the certificate problem: retrying would not change it).
- ``MeshError``: any other server failure (a 5xx not retried); ``MeshProtocolError``: a reply that
  is not what was asked for (bad JSON or RNWIRE1, too large).

Retries. A request is tried again, after an exponential backoff with jitter (``backoff`` doubling up
to ``max_backoff``, or the server's ``Retry-After`` up to ``max_backoff``), while both the attempt
count (``retries``; None for no count limit) and the time budget (``retry_for`` seconds from the
first attempt) allow:

- always when the connection could not be opened (nothing was sent, so even a POST is safe), on
  503 (the coordinator's contract: 503 means it did nothing, e.g. it is starting or shutting down)
  and on 429 (too many long polls open: nothing was done, wait the ``Retry-After`` it gives);
- for idempotent requests (GET, HEAD, PUT, DELETE, OPTIONS, or ``idempotent=True``) also on other
  transport errors and on 500, 502 and 504.

Each attempt is signed afresh (new nonce and timestamp), since the coordinator refuses replays. A
consumer that must ride out a coordinator restart uses for example ``retries=None, retry_for=120``.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import blake3
import numpy as np

from ramnet._errors import ConfigError, InvalidInputError, RamnetError
from ramnet.mesh.protocol.auth import AuthError, body_digest, check_target, sign_request
from ramnet.mesh.protocol.wire import (
    WIRE_CONTENT_TYPE,
    WireFormatError,
    is_wire,
    pack_parts,
    unpack,
)
from ramnet.mesh.transport.client import (
    Body,
    BodySink,
    HttpConnectionPool,
    ReplyTooLarge,
    TlsFailure,
    TransportError,
    body_pieces,
)
from ramnet.valkyrie import NodeKey

__all__ = [
    "MeshClient",
    "MeshError",
    "MeshProtocolError",
    "MeshRequestError",
    "MeshResponse",
    "MeshUnavailableError",
]

JSON_CONTENT_TYPE = "application/json"
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_RETRY_IDEMPOTENT = frozenset({500, 502, 503, 504})
_MAX_MESSAGE = 240
# Characters a request target carries unencoded (RFC 3986 reserved and unreserved, and '%' so that
# a target already encoded stays as it is).
_TARGET_SAFE = "/?&=%:@!$'()*+,;~-._[]"


class MeshError(RamnetError):
    """A mesh API call failed.

    Attributes:
        status: The HTTP status of the reply, or None when there was no reply.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class MeshRequestError(MeshError, InvalidInputError):
    """The coordinator refused the request (HTTP 4xx); ``status`` is the code."""


class MeshUnavailableError(MeshError, ConnectionError):
    """The coordinator could not be reached, or kept failing, within the retry budget."""


class MeshProtocolError(MeshError):
    """The coordinator's reply is not what was asked for (malformed, or over the size cap)."""


def _one_line(text: str, limit: int = _MAX_MESSAGE) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


@dataclass(frozen=True)
class MeshResponse:
    """A reply, fully read.

    Attributes:
        status: The HTTP status code.
        headers: The reply headers (names case-insensitive).
        content: The body (an RNWIRE1 body as a memoryview, parsed in place).
    """

    status: int
    headers: Mapping[str, str]
    content: bytes | bytearray | memoryview

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            MeshProtocolError: The body is not JSON.
        """
        try:
            return json.loads(_text_bytes(self.content))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise MeshProtocolError(
                f"coordinator reply is not valid JSON: {_one_line(str(exc), 120)}", self.status
            ) from None

    def wire(self, max_bytes: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The body parsed as RNWIRE1 (read-only arrays).

        Raises:
            MeshProtocolError: The body is not a well-formed RNWIRE1 container.
        """
        try:
            return unpack(self.content, max_bytes=max_bytes)
        except WireFormatError as exc:
            raise MeshProtocolError(f"coordinator reply is malformed: {exc}", self.status) from None


def _text_bytes(content: bytes | bytearray | memoryview) -> bytes | bytearray:
    # json.loads takes no memoryview (a body sent as wire but holding text).
    return bytes(content) if isinstance(content, memoryview) else content


def _error_text(response: MeshResponse) -> str:
    text = ""
    try:
        body = json.loads(_text_bytes(response.content))
    except (ValueError, UnicodeDecodeError, RecursionError):
        text = bytes(response.content[:1024]).decode("utf-8", "replace")
    else:
        if isinstance(body, dict):
            for field in ("error", "detail", "message"):
                if isinstance(body.get(field), str):
                    text = body[field]
                    break
        if not text:
            text = bytes(response.content[:1024]).decode("utf-8", "replace")
    return _one_line(text) or "(no message)"


class MeshClient:
    """A client of the coordinator's HTTP API that signs every request with a node key.

    Args:
        base_url: The coordinator, ``http://host:port`` or ``https://host:port`` (a path prefix
            is allowed).
        key: The node's key; None sends unsigned requests (only for public endpoints such as
            ``/health``).
        timeout: Seconds allowed for each of connecting, sending, and waiting for each read.
        retries: The most retries after the first attempt; None for no count limit (the time
            budget still applies).
        retry_for: The time budget, seconds from the first attempt, beyond which no retry starts.
        backoff: The first retry delay in seconds; it doubles each retry, with jitter.
        max_backoff: The longest delay between attempts.
        max_response_bytes: The largest reply body read (larger: ``MeshProtocolError``).
        stop: An event that, once set, ends retrying: a failed request is then reported at
            once (a stopping node must not spend ``retry_for`` on a coordinator that is gone).
        ca_file: For an https coordinator, a PEM file of the CA certificates to trust instead of
            the system's store (a private CA). Ignored for http.
        tls: For an https coordinator, the ``ssl.SSLContext`` to connect with (it overrides
            ``ca_file``).

    Raises:
        ConfigError: A base URL that is not http(s), or a bad setting.
        TlsFileError: An https coordinator and a ``ca_file`` that cannot be used.
    """

    def __init__(
        self,
        base_url: str,
        key: NodeKey | None,
        *,
        timeout: float = 30.0,
        retries: int | None = 3,
        retry_for: float = 30.0,
        backoff: float = 0.25,
        max_backoff: float = 5.0,
        max_response_bytes: int = 1 << 30,
        stop: threading.Event | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        tls: Any = None,
    ) -> None:
        url = str(base_url).strip()
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"coordinator URL must start with http:// or https://, not {url!r}")
        if not timeout > 0 or not retry_for >= 0 or not backoff >= 0 or not max_backoff >= 0:
            raise ConfigError("timeout must be > 0; retry_for, backoff, max_backoff >= 0")
        if retries is not None and retries < 0:
            raise ConfigError("retries must be >= 0 (or None for no count limit)")
        if tls is None and ca_file is not None and url.startswith("https://"):
            from ramnet.mesh.transport.tls import client_context

            tls = client_context(ca_file)  # a bad CA file is an error now, not at the first call
        try:
            # Only an https coordinator needs certificates (checked); loading the CA bundle costs
            # about 100 ms, a third of a short command's run, so a plain http pool never does.
            self._http = HttpConnectionPool(url.rstrip("/"), timeout, in_place=is_wire, tls=tls)
        except ValueError as exc:
            raise ConfigError(f"bad coordinator URL {url!r}: {exc}") from None
        self.base_url = url.rstrip("/")
        self.key = key
        self.retries = retries
        self.retry_for = float(retry_for)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.max_response_bytes = int(max_response_bytes)
        self.stop = stop

    # -- life cycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the client's connections."""
        self._http.close()

    def __enter__(self) -> MeshClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the generic call -----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        content: Body = b"",
        content_type: str | None = None,
        accept: str | None = None,
        idempotent: bool | None = None,
        signed_body: str | None = None,
        sink: BodySink | None = None,
    ) -> MeshResponse:
        """Send a signed request, retrying as the policy allows; return the successful reply.

        Args:
            method: The HTTP method.
            path: The path from the base URL, starting with ``/`` (a query is allowed).
            content: The body, or the pieces that make it up (sent one after another, as they
                lie in memory; keep them unchanged until the call returns).
            content_type: Its Content-Type.
            accept: The Accept header.
            idempotent: Whether the request may be repeated on ambiguous failures (default:
                by method; see the module docstring).
            signed_body: What the signature covers in place of the body's hash, for a body the
                coordinator checks against an earlier commitment (``bound_by``); the body is
                then not hashed.

        Returns:
            The reply, when its status is below 400.

        Raises:
            MeshRequestError: A 4xx reply.
            MeshUnavailableError: No reply, or 5xx replies, until the retry budget ran out.
            MeshError: A 5xx reply that is not retried.
            MeshProtocolError: A reply over ``max_response_bytes``.
            InvalidInputError: A bad method or path.
            Exception: Whatever ``sink`` raised.
        """
        method = method.upper()
        if not isinstance(path, str) or not path.startswith("/") or path.startswith("//"):
            raise InvalidInputError(f"mesh API paths start with a single '/', not {path!r}")
        if idempotent is None:
            idempotent = method in _IDEMPOTENT
        headers: dict[str, str] = {}
        if content_type:
            headers["Content-Type"] = content_type
        if accept:
            headers["Accept"] = accept
        # Percent-encode what may not go on the wire as is (spaces, non-ASCII, ...), as URLs
        # are; the signature covers the encoded target.
        path = urllib.parse.quote(path, safe=_TARGET_SAFE)
        try:
            check_target(path)
        except AuthError as exc:
            raise InvalidInputError(f"bad mesh API path {path!r}: {exc}") from None
        what = f"{method} {path.split('?', 1)[0]}"
        # Hashed once, however many attempts sign it.
        body_hash = signed_body
        if body_hash is None and self.key is not None:
            body_hash = body_digest_of(content)
        start = time.monotonic()
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = self._once(method, path, content, headers, body_hash, sink)
            except TlsFailure as exc:
                raise MeshUnavailableError(str(exc)) from None
            except TransportError as exc:
                retryable = exc.never_sent or idempotent
                failure = f"cannot reach the coordinator at {self.base_url} ({exc})"
                status: int | None = None
            else:
                status = response.status
                if status < 300:
                    return response
                if status < 400:
                    raise MeshProtocolError(
                        f"coordinator answered {what} with an unexpected redirect ({status})",
                        status,
                    )
                message = _error_text(response)
                if status < 500 and status != 429:
                    raise MeshRequestError(
                        f"coordinator refused {what}: {status} {message}", status
                    )
                retryable = status in (429, 503) or (idempotent and status in _RETRY_IDEMPOTENT)
                failure = f"coordinator failed {what}: {status} {message}"
                retry_after = _retry_after(response.headers.get("retry-after"))
                if not retryable:
                    raise MeshError(failure, status)
            attempt += 1
            delay = self._delay(attempt, retry_after)
            elapsed = time.monotonic() - start
            stopping = self.stop is not None and self.stop.is_set()
            if (
                not retryable
                or stopping
                or (self.retries is not None and attempt > self.retries)
                or elapsed + delay > self.retry_for
            ):
                if stopping:
                    failure += "; not retried: stopping"
                elif attempt > 1:
                    failure += f"; gave up after {attempt} attempts in {elapsed:.1f} s"
                raise MeshUnavailableError(failure, status)
            if self.stop is not None:
                self.stop.wait(delay)  # a stop cuts the wait short: one last attempt, then no more
            else:
                time.sleep(delay)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        base = min(self.max_backoff, self.backoff * 2.0 ** min(attempt - 1, 30))
        return base * random.uniform(0.5, 1.0)

    def _once(
        self,
        method: str,
        path: str,
        content: Body,
        headers: dict[str, str],
        body_hash: str | None,
        sink: BodySink | None = None,
    ) -> MeshResponse:
        if self.key is not None:
            # Signed over exactly the target that is sent (it was checked to need no encoding).
            headers = {
                **headers,
                **sign_request(self.key, method, path, body_hash=body_hash),
            }
        try:
            reply = self._http.send(method, path, content, headers, self.max_response_bytes, sink)
        except ReplyTooLarge as exc:
            size = f"of {exc.declared} bytes " if exc.declared is not None else ""
            raise MeshProtocolError(
                f"coordinator reply {size}is over the limit of {self.max_response_bytes} bytes",
                exc.status,
            ) from None
        return MeshResponse(reply.status, reply.headers, reply.content)

    # -- conveniences ---------------------------------------------------------------------------

    def get_json(self, path: str) -> Any:
        """GET ``path``; return the JSON reply."""
        return self.request("GET", path, accept=JSON_CONTENT_TYPE).json()

    def post_json(self, path: str, obj: Any, *, idempotent: bool = False) -> Any:
        """POST ``obj`` as JSON; return the JSON reply.

        Raises:
            InvalidInputError: ``obj`` is not JSON-serialisable (NaN and Inf are refused).
        """
        return self.request(
            "POST",
            path,
            content=_json_bytes(obj),
            content_type=JSON_CONTENT_TYPE,
            accept=JSON_CONTENT_TYPE,
            idempotent=idempotent,
        ).json()

    def put_json(self, path: str, obj: Any) -> Any:
        """PUT ``obj`` as JSON (idempotent); return the JSON reply."""
        return self.request(
            "PUT", path, content=_json_bytes(obj), content_type=JSON_CONTENT_TYPE
        ).json()

    def post_wire(
        self,
        path: str,
        meta: Mapping[str, Any],
        arrays: Mapping[str, np.ndarray],
        *,
        idempotent: bool = False,
        signed_body: str | None = None,
    ) -> Any:
        """POST metadata and arrays as RNWIRE1; return the JSON reply (``signed_body``: as for
        ``request``)."""
        return self.request(
            "POST",
            path,
            content=pack_parts(meta, arrays),  # no packed copy of the arrays
            content_type=WIRE_CONTENT_TYPE,
            accept=JSON_CONTENT_TYPE,
            idempotent=idempotent,
            signed_body=signed_body,
        ).json()

    def get_wire(self, path: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """GET ``path``; return the RNWIRE1 reply as (meta, read-only arrays)."""
        response = self.request("GET", path, accept=WIRE_CONTENT_TYPE)
        return response.wire(self.max_response_bytes)

    def get_wire_into(self, path: str, sink: BodySink) -> None:
        """GET ``path``, an RNWIRE1 reply, handing its body to ``sink`` as it arrives (for a body
        that goes to a file: see ``ArrayStream``).

        Raises:
            As ``request``.
        """
        self.request("GET", path, accept=WIRE_CONTENT_TYPE, sink=sink)

    def get_bytes(self, path: str) -> bytes:
        """GET ``path``; return the raw reply body."""
        return bytes(self.request("GET", path).content)


def _json_bytes(obj: Any) -> bytes:
    try:
        return json.dumps(obj, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"request body is not JSON-serialisable: {exc}") from None


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    value = value.strip()
    if value.isdigit() and len(value) <= 6:
        return float(value)
    return None


def body_digest_of(content: Body) -> str:
    """``body_digest`` of a body given whole or in pieces."""
    pieces = body_pieces(content)
    if len(pieces) == 1:
        return body_digest(pieces[0])
    hasher = blake3.blake3()
    for piece in pieces:
        hasher.update(piece)
    return str(hasher.hexdigest())
