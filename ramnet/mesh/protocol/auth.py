"""Signed requests: every request a node sends to the coordinator carries an Ed25519 signature.

The node signs a canonical text of the request with its key (``ramnet.valkyrie.NodeKey``)::

    ramnet-request-v1
    {METHOD}
    {target: the path and query exactly as sent on the wire, e.g. /jobs/7/shards?limit=2}
    {BLAKE3 of the body, 64 lowercase hex digits}
    {nonce}
    {timestamp}

(lines joined by ``\\n``, no trailing newline) and sends four headers:

==========================  =================================================================
``X-Ramnet-Node``           the node id: its Ed25519 public key, 64 lowercase hex digits
``X-Ramnet-Nonce``          16 to 64 random bytes, as 32 to 128 lowercase hex digits
``X-Ramnet-Timestamp``      unix time in whole seconds, decimal, no sign or leading zeros
``X-Ramnet-Signature``      the Ed25519 signature of the canonical text, 128 lowercase hex digits
==========================  =================================================================

The server checks, in this order (``verify_request``): all four headers present (else 401), each
well formed (else 400), the timestamp within ``max_skew`` seconds of its clock (else 401), the
signature (else 401), and last the nonce unseen for that node (else 409). The replay store only has
to remember a nonce for ``2 * max_skew`` seconds: older requests are refused by their timestamp.
Every field is strictly validated before it goes into the canonical text, so no field can contain a
line break and the text is unambiguous.

A request whose body the server checks against a commitment the node signed earlier (a worker's
reveal: its partials must hash to its commitment) may be signed over that commitment instead:
the body line is then ``commitment:`` and the commitment's 64 hex digits (``bound_by``). The server
verifies such a signature only where it knows the commitment, and checks the body against it;
neither side hashes the body a second time (for a 4096 job's reveals, about 16 ms of BLAKE3 on
each side).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ramnet._errors import InvalidInputError
from ramnet.mesh.state.blobs import blob_digest
from ramnet.valkyrie import NodeKey, verify_signature

__all__ = [
    "AUTH_HEADERS",
    "HEADER_NODE",
    "HEADER_NONCE",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "REQUEST_TAG",
    "AuthError",
    "ReplayCache",
    "asgi_target",
    "bound_by",
    "canonical_request",
    "sign_request",
    "verify_request",
]

REQUEST_TAG = "ramnet-request-v1"
HEADER_NODE = "X-Ramnet-Node"
HEADER_NONCE = "X-Ramnet-Nonce"
HEADER_TIMESTAMP = "X-Ramnet-Timestamp"
HEADER_SIGNATURE = "X-Ramnet-Signature"
#: The four authentication headers, in the order they are checked.
AUTH_HEADERS = (HEADER_NODE, HEADER_NONCE, HEADER_TIMESTAMP, HEADER_SIGNATURE)

#: Random bytes in a nonce made by ``sign_request``.
NONCE_BYTES = 16
_MAX_NONCE_BYTES = 64
_MAX_TARGET = 8192

_METHOD_RE = re.compile(r"[A-Z]{1,16}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_HEX128_RE = re.compile(r"[0-9a-f]{128}")
_NONCE_RE = re.compile(rf"(?:[0-9a-f]{{2}}){{{NONCE_BYTES},{_MAX_NONCE_BYTES}}}")
_TIMESTAMP_RE = re.compile(r"0|[1-9][0-9]{0,11}")
# A request target as it goes on the wire: starts with '/', printable ASCII without spaces.
_TARGET_RE = re.compile(r"/[\x21-\x7e]*")


class AuthError(InvalidInputError):
    """A request that is unsigned, badly signed, malformed, stale or replayed.

    Attributes:
        http_status: The status a server should answer: 400 malformed headers, 401 missing or bad
            signature or stale timestamp, 409 replayed nonce.
    """

    http_status = 401

    def __init__(self, message: str, http_status: int) -> None:
        super().__init__(message)
        self.http_status = http_status


def _check_method(method: str) -> str:
    if not isinstance(method, str) or _METHOD_RE.fullmatch(method) is None:
        raise AuthError(f"bad HTTP method {str(method)[:20]!r}", 400)
    return method


def check_target(target: str) -> str:
    if (
        not isinstance(target, str)
        or len(target) > _MAX_TARGET
        or _TARGET_RE.fullmatch(target) is None
    ):
        raise AuthError(
            "bad request target: a path starting with '/', printable ASCII, no spaces", 400
        )
    return target


def canonical_request(
    method: str,
    target: str,
    body: bytes | bytearray | memoryview,
    nonce: str,
    timestamp: str,
    *,
    body_hash: str | None = None,
) -> bytes:
    """Return the bytes a node signs for a request (see the module docstring).

    ``method``, ``target``, ``nonce`` and ``timestamp`` must already be validated: this function
    does not check them (``sign_request`` and ``verify_request`` do). ``body_hash``, when given,
    must be ``body_digest(body)`` (the caller computed it already).
    """
    if body_hash is None:
        body_hash = body_digest(body)
    return f"{REQUEST_TAG}\n{method}\n{target}\n{body_hash}\n{nonce}\n{timestamp}".encode("ascii")


def sign_request(
    key: NodeKey,
    method: str,
    path: str,
    body: bytes | bytearray | memoryview = b"",
    *,
    nonce: str | None = None,
    timestamp: int | None = None,
    body_hash: str | None = None,
) -> dict[str, str]:
    """Sign a request; return the four ``X-Ramnet-*`` headers to send with it.

    Args:
        key: The node's key.
        method: The HTTP method, upper case (``GET``, ``POST``, ...).
        path: The request target exactly as it goes on the wire: the path, percent-encoded, and
            the query if any (``/jobs/7?wait=1``). ``MeshClient`` signs the target it sends.
        body: The request body (empty for none).
        nonce: For tests only: the nonce to use (default: 16 fresh random bytes).
        timestamp: For tests only: the unix time to state (default: now).
        body_hash: ``body_digest`` of the body when the caller has it (a body sent in pieces,
            or signed afresh for each retry); ``body`` is then not read.

    Raises:
        AuthError: A malformed method, path, nonce or timestamp (``http_status`` 400).
    """
    _check_method(method)
    check_target(path)
    # os.urandom is what secrets.token_hex draws from; importing secrets would also load hashlib
    # and OpenSSL, about 4 ms of every consumer's start (python -X importtime).
    nonce = os.urandom(NONCE_BYTES).hex() if nonce is None else nonce
    if _NONCE_RE.fullmatch(nonce) is None:
        raise AuthError("the nonce must be 16 to 64 bytes in lowercase hex", 400)
    ts = str(int(time.time()) if timestamp is None else int(timestamp))
    if _TIMESTAMP_RE.fullmatch(ts) is None:
        raise AuthError(f"bad timestamp {ts!r}", 400)
    signature = key.sign(canonical_request(method, path, body, nonce, ts, body_hash=body_hash))
    return {
        HEADER_NODE: key.node_id,
        HEADER_NONCE: nonce,
        HEADER_TIMESTAMP: ts,
        HEADER_SIGNATURE: signature.hex(),
    }


def _header_items(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> Iterable[Any]:
    if isinstance(headers, Mapping):
        # Starlette's Headers.items() lists repeated headers once each, so duplicates are seen.
        return headers.items()
    return headers


def _auth_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    wanted = {name.lower() for name in AUTH_HEADERS}
    found: dict[str, str] = {}
    for name, value in _header_items(headers):
        if not isinstance(name, str):
            continue
        low = name.lower()
        if low not in wanted:
            continue
        if low in found:
            raise AuthError(f"header {name} is repeated", 400)
        if not isinstance(value, str):
            raise AuthError(f"header {name} is not text", 400)
        found[low] = value
    return found


def bound_by(commitment: str) -> str:
    """The body line of a request signed over ``commitment`` instead of its body's hash.

    Raises:
        AuthError: ``commitment`` is not 64 lowercase hex digits (``http_status`` 400).
    """
    if not isinstance(commitment, str) or _HEX64_RE.fullmatch(commitment) is None:
        raise AuthError("a commitment is 64 lowercase hex digits", 400)
    return f"commitment:{commitment}"


def body_digest(body: bytes | bytearray | memoryview) -> str:
    """BLAKE3-256 of a request body, 64 lowercase hex digits: what a signature covers of it. It is
    the blob store's digest (``blob_digest``), so a body the coordinator stores is named by it."""
    return blob_digest(body)


def verify_request(
    method: str,
    path: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes | bytearray | memoryview,
    *,
    now: float,
    max_skew: float = 300,
    seen: Callable[[str, str], bool],
    body_hash: str | None = None,
) -> str:
    """Check a signed request; return the node id that signed it.

    Args:
        method: The HTTP method as received.
        path: The request target as received: raw path and query (``asgi_target`` builds it
            from an ASGI scope).
        headers: The request headers (any mapping or list of pairs; names case-insensitive).
        body: The request body as received.
        now: The server's clock, unix seconds.
        max_skew: The largest accepted distance between the request's timestamp and ``now``.
        seen: The replay store: ``seen(node_id, nonce)`` returns True if that pair was seen
            before, and otherwise records it and returns False. It is called only for requests
            whose signature is valid, so unsigned traffic cannot fill it.
        body_hash: ``body_digest(body)`` when the caller has it (a server that also stores the
            body under that name); None: computed here.

    Returns:
        The node id (64 lowercase hex digits).

    Raises:
        AuthError: ``http_status`` 401 when a header is missing, the timestamp is further than
            ``max_skew`` from ``now`` or the signature is wrong; 400 when a header is malformed
            (or repeated), or the method or target is; 409 when the nonce was already used.
    """
    found = _auth_headers(headers)
    missing = [name for name in AUTH_HEADERS if name.lower() not in found]
    if len(missing) == len(AUTH_HEADERS):
        raise AuthError("request is not signed (no X-Ramnet-* headers)", 401)
    if missing:
        raise AuthError(f"request signature incomplete: missing {', '.join(missing)}", 401)
    node = found[HEADER_NODE.lower()]
    nonce = found[HEADER_NONCE.lower()]
    ts = found[HEADER_TIMESTAMP.lower()]
    sig = found[HEADER_SIGNATURE.lower()]
    if _HEX64_RE.fullmatch(node) is None:
        raise AuthError(f"{HEADER_NODE} must be 64 lowercase hex digits", 400)
    if _NONCE_RE.fullmatch(nonce) is None:
        raise AuthError(f"{HEADER_NONCE} must be 32 to 128 lowercase hex digits", 400)
    if _TIMESTAMP_RE.fullmatch(ts) is None:
        raise AuthError(f"{HEADER_TIMESTAMP} must be unix seconds in decimal", 400)
    if _HEX128_RE.fullmatch(sig) is None:
        raise AuthError(f"{HEADER_SIGNATURE} must be 128 lowercase hex digits", 400)
    _check_method(method)
    check_target(path)
    skew = int(ts) - float(now)
    if not abs(skew) <= max_skew:
        raise AuthError(
            f"request timestamp is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} "
            f"the server clock (at most {max_skew:g} s allowed); check the node's clock",
            401,
        )
    message = canonical_request(method, path, body, nonce, ts, body_hash=body_hash)
    if not verify_signature(bytes.fromhex(node), message, bytes.fromhex(sig)):
        raise AuthError("bad request signature", 401)
    if seen(node, nonce):
        raise AuthError("replayed request (nonce already used)", 409)
    return node


def asgi_target(scope: Mapping[str, Any]) -> str:
    """Return the request target to verify, from an ASGI scope: raw path, then ``?query`` if any.

    Uses ``raw_path`` (the bytes the client sent) when the server provides it, and the
    decoded ``path`` otherwise. Non-ASCII bytes (never sent by ``MeshClient``) are kept as
    Latin-1 characters, so ``verify_request`` refuses them with 400.
    """
    raw = scope.get("raw_path")
    if not isinstance(raw, (bytes, bytearray)):
        raw = str(scope.get("root_path", "") + scope.get("path", "")).encode("utf-8")
    target = bytes(raw).decode("latin-1")
    query = scope.get("query_string") or b""
    if query:
        target += "?" + bytes(query).decode("latin-1")
    return target


class ReplayCache:
    """An in-memory replay store for ``verify_request``'s ``seen``, thread-safe.

    It remembers each (node, nonce) pair for ``retain`` seconds (use ``2 * max_skew``) and at most
    ``max_entries`` pairs (the oldest go first). A coordinator that must refuse replays across a
    restart keeps the pairs in its database instead.
    """

    def __init__(
        self,
        retain: float = 600.0,
        *,
        max_entries: int = 1_000_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._retain = float(retain)
        self._max = int(max_entries)
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, node_id: str, nonce: str) -> bool:
        now = self._clock()
        with self._lock:
            entries = self._entries
            while entries:
                first_key, first_time = next(iter(entries.items()))
                if now - first_time <= self._retain and len(entries) < self._max:
                    break
                del entries[first_key]
            pair = (node_id, nonce)
            if pair in entries:
                return True
            entries[pair] = now
            return False

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
