"""Signed mesh requests (``verify_request``) and ``MeshClient`` against a real HTTP server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ramnet._errors import InvalidInputError
from ramnet.mesh.nodes.client import (
    MeshClient,
    MeshError,
    MeshProtocolError,
    MeshRequestError,
    MeshUnavailableError,
)
from ramnet.mesh.protocol.auth import (
    AUTH_HEADERS,
    HEADER_NODE,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    AuthError,
    ReplayCache,
    asgi_target,
    body_digest,
    sign_request,
    verify_request,
)
from ramnet.mesh.protocol.wire import WIRE_CONTENT_TYPE, pack, unpack
from ramnet.valkyrie import NodeKey
from tests.mesh_procs import free_port

KEY = NodeKey.generate()
OTHER = NodeKey.generate()
NOW = 1_700_000_000


def never_seen(node: str, nonce: str) -> bool:
    return False


def verify(
    method: str = "POST",
    path: str = "/jobs/7?wait=1",
    headers: Any = None,
    body: bytes = b'{"x": 1}',
    *,
    now: float = NOW,
    seen: Any = never_seen,
) -> str:
    return verify_request(method, path, headers, body, now=now, seen=seen)


def signed(**kw: Any) -> dict[str, str]:
    kw.setdefault("timestamp", NOW)
    return sign_request(KEY, "POST", "/jobs/7?wait=1", b'{"x": 1}', **kw)


def status_of(call: Any) -> int:
    with pytest.raises(AuthError) as info:
        call()
    assert isinstance(info.value, InvalidInputError)
    assert "\n" not in str(info.value)
    return info.value.http_status


# -- signing and verifying -----------------------------------------------------------------------


def test_round_trip() -> None:
    headers = signed()
    assert set(headers) == set(AUTH_HEADERS)
    assert headers[HEADER_NODE] == KEY.node_id
    assert len(headers[HEADER_NONCE]) == 32 and len(headers[HEADER_SIGNATURE]) == 128
    assert verify(headers=headers) == KEY.node_id
    # Names are case-insensitive; a list of pairs works too.
    assert verify(headers={k.lower(): v for k, v in headers.items()}) == KEY.node_id
    assert verify(headers=list(headers.items())) == KEY.node_id
    # Fresh nonces each time.
    assert signed()[HEADER_NONCE] != headers[HEADER_NONCE]
    # A server that hashed the body already passes its hash; a body-like buffer works too.
    body = bytearray(b'{"x": 1}')
    hashed = body_digest(body)
    assert (
        verify_request(
            "POST", "/jobs/7?wait=1", headers, body, now=NOW, seen=never_seen, body_hash=hashed
        )
        == KEY.node_id
    )
    with pytest.raises(AuthError, match="signature"):
        verify_request(
            "POST", "/jobs/7?wait=1", headers, body, now=NOW, seen=never_seen,
            body_hash=body_digest(b"other"),
        )  # fmt: skip


def _flip_hex(text: str, index: int = 0) -> str:
    c = text[index]
    return text[:index] + ("1" if c != "1" else "2") + text[index + 1 :]


TAMPERS: dict[str, Any] = {
    "method": lambda h: verify("PUT", headers=h),
    "path": lambda h: verify(path="/jobs/8?wait=1", headers=h),
    "query": lambda h: verify(path="/jobs/7?wait=2", headers=h),
    "query dropped": lambda h: verify(path="/jobs/7", headers=h),
    "body byte": lambda h: verify(body=b'{"x": 2}', headers=h),
    "body dropped": lambda h: verify(body=b"", headers=h),
    "nonce": lambda h: verify(headers={**h, HEADER_NONCE: _flip_hex(h[HEADER_NONCE], 5)}),
    "timestamp": lambda h: verify(headers={**h, HEADER_TIMESTAMP: str(NOW + 1)}),
    "node id": lambda h: verify(headers={**h, HEADER_NODE: OTHER.node_id}),
    "signature bit": lambda h: verify(
        headers={
            **h,
            HEADER_SIGNATURE: (
                bytes.fromhex(h[HEADER_SIGNATURE])[:10]
                + bytes([bytes.fromhex(h[HEADER_SIGNATURE])[10] ^ 4])
                + bytes.fromhex(h[HEADER_SIGNATURE])[11:]
            ).hex(),
        }
    ),
    "garbage signature": lambda h: verify(
        headers={**h, HEADER_SIGNATURE: h[HEADER_SIGNATURE][::-1]}
    ),
    "another key's signature": lambda h: verify(
        headers={
            **h,
            HEADER_SIGNATURE: sign_request(
                OTHER, "POST", "/jobs/7?wait=1", b'{"x": 1}', nonce=h[HEADER_NONCE], timestamp=NOW
            )[HEADER_SIGNATURE],
        }
    ),
}


@pytest.mark.parametrize("what", sorted(TAMPERS))
def test_tampering_is_refused(what: str) -> None:
    headers = signed()
    assert status_of(lambda: TAMPERS[what](headers)) == 401


def test_replay_is_refused() -> None:
    cache = ReplayCache()
    calls: list[tuple[str, str]] = []

    def seen(node: str, nonce: str) -> bool:
        calls.append((node, nonce))
        return cache(node, nonce)

    headers = signed()
    assert verify(headers=headers, seen=seen) == KEY.node_id
    assert status_of(lambda: verify(headers=headers, seen=seen)) == 409
    # A bad signature never reaches the replay store.
    bad = {**signed(), HEADER_SIGNATURE: "0" * 128}
    assert status_of(lambda: verify(headers=bad, seen=seen)) == 401
    assert len(calls) == 2
    # The same nonce from another node is another request.
    other = sign_request(
        OTHER, "POST", "/jobs/7?wait=1", b'{"x": 1}', nonce=headers[HEADER_NONCE], timestamp=NOW
    )
    assert verify(headers=other, seen=seen) == OTHER.node_id


def test_clock_skew() -> None:
    for delta in (-300, 0, 300):
        assert verify(headers=signed(timestamp=NOW + delta)) == KEY.node_id
    for delta in (-301, 301, -(10**6)):
        assert status_of(lambda d=delta: verify(headers=signed(timestamp=NOW + d))) == 401
    with pytest.raises(AuthError, match="behind"):
        verify(headers=signed(timestamp=NOW - 1000))
    assert verify_request(
        "POST",
        "/jobs/7?wait=1",
        signed(timestamp=NOW - 50),
        b'{"x": 1}',
        now=NOW,
        max_skew=60,
        seen=never_seen,
    )
    assert status_of(lambda: verify(headers=signed(), now=float("nan"))) == 401


@pytest.mark.parametrize(
    ("header", "value"),
    [
        (HEADER_NODE, KEY.node_id.upper()),
        (HEADER_NODE, KEY.node_id[:-1]),
        (HEADER_NODE, KEY.node_id + "0"),
        (HEADER_NODE, "g" * 64),
        (HEADER_NODE, " " + KEY.node_id[1:]),
        (HEADER_NONCE, "ab" * 15),
        (HEADER_NONCE, "ab" * 65),
        (HEADER_NONCE, "a" * 33),
        (HEADER_NONCE, "zz" * 16),
        (HEADER_NONCE, "AB" * 16),
        (HEADER_TIMESTAMP, "-1"),
        (HEADER_TIMESTAMP, "+1700000000"),
        (HEADER_TIMESTAMP, " 1700000000"),
        (HEADER_TIMESTAMP, "01700000000"),
        (HEADER_TIMESTAMP, "1700000000.5"),
        (HEADER_TIMESTAMP, "1e9"),
        (HEADER_TIMESTAMP, "1" * 13),
        (HEADER_TIMESTAMP, ""),
        (HEADER_SIGNATURE, "0" * 127),
        (HEADER_SIGNATURE, "0" * 129),
        (HEADER_SIGNATURE, "A" * 128),
        (HEADER_SIGNATURE, "x" * 128),
    ],
)
def test_malformed_headers(header: str, value: str) -> None:
    assert status_of(lambda: verify(headers={**signed(), header: value})) == 400


def test_missing_and_repeated_headers() -> None:
    headers = signed()
    assert status_of(lambda: verify(headers={})) == 401
    assert status_of(lambda: verify(headers={"Content-Type": "x"})) == 401
    for name in AUTH_HEADERS:
        partial = {k: v for k, v in headers.items() if k != name}
        with pytest.raises(AuthError, match=name) as info:
            verify(headers=partial)
        assert info.value.http_status == 401
    pairs = [*headers.items(), (HEADER_NONCE.lower(), headers[HEADER_NONCE])]
    assert status_of(lambda: verify(headers=pairs)) == 400


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/jobs/7?wait=1"),
        ("P OST", "/x"),
        ("POST", "jobs"),
        ("POST", "/a b"),
        ("POST", "/a\nb"),
        ("POST", "/é"),
    ],
)
def test_malformed_method_or_path(method: str, path: str) -> None:
    assert status_of(lambda: verify(method, path, headers=signed())) == 400
    with pytest.raises(AuthError):
        sign_request(KEY, method, path, b"")


def test_sign_refuses_bad_nonce() -> None:
    with pytest.raises(AuthError):
        sign_request(KEY, "GET", "/", b"", nonce="abc")


@settings(max_examples=60, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40).map(
        lambda s: "/" + s
    ),
    body=st.binary(max_size=200),
    index=st.integers(min_value=0),
)
def test_any_request_round_trips_and_any_body_change_fails(
    method: str, path: str, body: bytes, index: int
) -> None:
    headers = sign_request(KEY, method, path, body, timestamp=NOW)
    assert verify(method, path, headers, body) == KEY.node_id
    if body:
        i = index % len(body)
        changed = body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]
        assert status_of(lambda: verify(method, path, headers, changed)) == 401
    assert status_of(lambda: verify(method, path, headers, body + b"\0")) == 401


def test_replay_cache_forgets_old_entries() -> None:
    clock = [0.0]
    cache = ReplayCache(retain=10, max_entries=3, clock=lambda: clock[0])
    assert not cache("n", "a")
    assert cache("n", "a")
    clock[0] = 11
    assert not cache("n", "b")
    assert len(cache) == 1  # "a" expired
    assert not cache("n", "a")
    assert not cache("n", "c")
    assert not cache("n", "d")  # over max_entries: the oldest goes
    assert len(cache) == 3


def test_asgi_target() -> None:
    assert (
        asgi_target({"raw_path": b"/a%20b", "path": "/a b", "query_string": b"x=1"}) == "/a%20b?x=1"
    )
    assert asgi_target({"path": "/a", "query_string": b""}) == "/a"


# -- MeshClient against a real server ------------------------------------------------------------


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def bump(self, key: str) -> int:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            return self.counts[key]


def _make_app(state: _State) -> Starlette:
    replay = ReplayCache()

    async def node_of(request: Request) -> tuple[str, bytes]:
        body = await request.body()
        node = verify_request(
            request.method,
            asgi_target(request.scope),
            request.headers,
            body,
            now=time.time(),
            seen=replay,
        )
        return node, body

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                node, body = await node_of(request)
            except AuthError as exc:
                return JSONResponse({"error": str(exc)}, status_code=exc.http_status)
            reply: Response = await handler(request, node, body)
            return reply

        return endpoint

    async def echo(request: Request, node: str, body: bytes) -> Response:
        return JSONResponse({"node": node, "target": asgi_target(request.scope)})

    async def post_json(request: Request, node: str, body: bytes) -> Response:
        return JSONResponse({"node": node, "got": json.loads(body)})

    async def post_wire(request: Request, node: str, body: bytes) -> Response:
        if request.headers.get("content-type") != WIRE_CONTENT_TYPE:
            return JSONResponse({"error": "want a wire body"}, status_code=415)
        meta, arrays = unpack(body, max_bytes=1 << 20)
        return JSONResponse({"meta": meta, "sums": {k: float(v.sum()) for k, v in arrays.items()}})

    async def get_wire(request: Request, node: str, body: bytes) -> Response:
        data = pack({"node": node}, {"eye": np.eye(3, dtype=np.int32)})
        return Response(data, media_type=WIRE_CONTENT_TYPE)

    async def get_bytes(request: Request, node: str, body: bytes) -> Response:
        return Response(b"x" * 1000, media_type="application/octet-stream")

    async def flaky(request: Request, node: str, body: bytes) -> Response:
        tag = request.path_params["tag"]
        fails = int(request.query_params.get("fail", "2"))
        code = int(request.query_params.get("code", "503"))
        if state.bump(tag) <= fails:
            return JSONResponse({"error": "starting up\nplease wait"}, status_code=code)
        return JSONResponse({"ok": True, "calls": state.counts[tag]})

    async def not_found(request: Request, node: str, body: bytes) -> Response:
        return JSONResponse({"error": "no such job: 'j9'"}, status_code=404)

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/echo", guarded(echo)),
            Route("/echo/{name}", guarded(echo)),
            Route("/json", guarded(post_json), methods=["POST"]),
            Route("/wire", guarded(post_wire), methods=["POST"]),
            Route("/wire", guarded(get_wire), methods=["GET"]),
            Route("/bytes", guarded(get_bytes)),
            Route("/flaky/{tag}", guarded(flaky), methods=["GET", "POST"]),
            Route("/jobs/j9", guarded(not_found)),
        ]
    )


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, _State]]:
    state = _State()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        _make_app(state), log_level="warning", lifespan="off", timeout_graceful_shutdown=2
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "test server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        srv.should_exit = True
        thread.join(timeout=5)
        sock.close()


def client(url: str, key: NodeKey | None = KEY, **kw: Any) -> MeshClient:
    kw.setdefault("timeout", 5.0)
    kw.setdefault("backoff", 0.01)
    kw.setdefault("retry_for", 5.0)
    return MeshClient(url, key, **kw)


def test_signed_calls(server: tuple[str, _State]) -> None:
    url, _ = server
    with client(url) as c:
        assert c.get_json("/echo") == {"node": KEY.node_id, "target": "/echo"}
        # httpx encodes the path and query; the signature covers exactly what was sent.
        got = c.get_json("/echo/caf\u00e9 x?q=a b&z=%2F")
        assert got["node"] == KEY.node_id
        assert got["target"].startswith("/echo/caf%C3%A9%20x?q=a")
        assert c.post_json("/json", {"a": [1, 2]}) == {"node": KEY.node_id, "got": {"a": [1, 2]}}
        reply = c.post_wire(
            "/wire", {"job": "j"}, {"a": np.arange(5, dtype=np.int8), "b": np.ones((2, 2))}
        )
        assert reply == {"meta": {"job": "j"}, "sums": {"a": 10.0, "b": 4.0}}
        meta, arrays = c.get_wire("/wire")
        assert meta == {"node": KEY.node_id}
        np.testing.assert_array_equal(arrays["eye"], np.eye(3))
        assert not arrays["eye"].flags.writeable
        assert c.get_bytes("/bytes") == b"x" * 1000
        assert c.get_json("/health") == {"ok": True}
    with pytest.raises(InvalidInputError):
        client(url).post_json("/json", {"x": float("nan")})


def test_unsigned_and_refused_calls(server: tuple[str, _State]) -> None:
    url, _ = server
    with client(url, None) as c:
        assert c.get_json("/health") == {"ok": True}
        with pytest.raises(MeshRequestError) as info:
            c.get_json("/echo")
        assert info.value.status == 401
        assert "not signed" in str(info.value) and "GET /echo" in str(info.value)
    r = httpx.get(url + "/echo", timeout=5)
    assert r.status_code == 401
    with client(url) as c, pytest.raises(MeshRequestError) as info:
        c.get_json("/jobs/j9")
    assert info.value.status == 404 and "no such job" in str(info.value)
    assert isinstance(info.value, InvalidInputError)


def test_server_refuses_tampered_and_replayed(server: tuple[str, _State]) -> None:
    url, _ = server
    body = b'{"a": 1}'
    headers = sign_request(KEY, "POST", "/json", body)
    with httpx.Client(base_url=url, timeout=5) as h:
        assert h.post("/json", content=body, headers=headers).status_code == 200
        assert h.post("/json", content=body, headers=headers).status_code == 409
        fresh = sign_request(KEY, "POST", "/json", body)
        assert h.post("/json", content=b'{"a": 2}', headers=fresh).status_code == 401
        assert h.post("/json?x=1", content=body, headers=fresh).status_code == 401
        bad = {**sign_request(KEY, "POST", "/json", body), HEADER_NODE: "zz"}
        r = h.post("/json", content=body, headers=bad)
        assert r.status_code == 400 and "X-Ramnet-Node" in r.json()["error"]
        stale = sign_request(KEY, "POST", "/json", body, timestamp=int(time.time()) - 1000)
        assert h.post("/json", content=body, headers=stale).status_code == 401


def test_retries_on_503_then_succeed(server: tuple[str, _State]) -> None:
    url, state = server
    with client(url, retries=5) as c:
        assert c.get_json("/flaky/a?fail=2") == {"ok": True, "calls": 3}
        # 503 means "did nothing": a POST is retried too.
        assert c.post_json("/flaky/b?fail=1", {}) == {"ok": True, "calls": 2}
        # Other 5xx: GET retried, POST not.
        assert c.get_json("/flaky/c?fail=1&code=502")["calls"] == 2
        with pytest.raises(MeshError) as info:
            c.post_json("/flaky/d?fail=1&code=500", {})
        assert info.value.status == 500 and state.counts["d"] == 1
        assert "\n" not in str(info.value) and "starting up please wait" in str(info.value)
        assert c.post_json("/flaky/e?fail=1&code=502", {}, idempotent=True)["calls"] == 2
    with client(url, retries=2) as c, pytest.raises(MeshUnavailableError) as info2:
        c.get_json("/flaky/f?fail=10")
    assert state.counts["f"] == 3 and info2.value.status == 503
    assert "gave up after 3 attempts" in str(info2.value)


def test_retry_budget_when_server_is_down() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with client(url, retries=None, retry_for=1.0, backoff=0.05, max_backoff=0.2) as c:
        with pytest.raises(MeshUnavailableError) as info:
            c.get_json("/echo")
        # A POST is retried too: the connection was never opened.
        with pytest.raises(MeshUnavailableError):
            c.post_json("/json", {})
    elapsed = time.monotonic() - start
    assert 1.0 <= elapsed < 5.0
    message = str(info.value)
    assert "cannot reach the coordinator" in message and "gave up after" in message
    assert "\n" not in message
    assert isinstance(info.value, ConnectionError) and info.value.status is None
    with client(url, retries=0) as c, pytest.raises(MeshUnavailableError) as info3:
        c.get_json("/echo")
    assert "gave up" not in str(info3.value)


def test_a_stopping_node_does_not_retry() -> None:
    """Once the node's stop event is set, a failed request is reported at once: a worker told to
    stop must not spend its 30 s retry budget on a coordinator that stopped with it."""
    url = f"http://127.0.0.1:{free_port()}"
    stop = threading.Event()
    stop.set()
    start = time.monotonic()
    with (
        client(url, retries=None, retry_for=30.0, stop=stop) as c,
        pytest.raises(MeshUnavailableError, match="not retried: stopping"),
    ):
        c.get_json("/echo")
    assert time.monotonic() - start < 5.0
    # Set while the client waits between attempts: the wait ends, one last attempt, no more.
    stop = threading.Event()
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    start = time.monotonic()
    slow = {"backoff": 10.0, "max_backoff": 10.0}
    with (
        client(url, retries=None, retry_for=30.0, stop=stop, **slow) as c,
        pytest.raises(MeshUnavailableError, match="not retried: stopping"),
    ):
        c.get_json("/echo")
    assert 0.4 <= time.monotonic() - start < 5.0


def test_server_comes_back_within_budget() -> None:
    """A consumer keeps retrying while the coordinator restarts."""
    state = _State()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(_make_app(state), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    timer = threading.Timer(0.5, thread.start)  # nothing listens for half a second
    timer.start()
    try:
        with client(f"http://127.0.0.1:{port}", retries=None, retry_for=8.0, max_backoff=0.1) as c:
            assert c.get_json("/echo")["node"] == KEY.node_id
    finally:
        timer.cancel()
        srv.should_exit = True
        if thread.is_alive():
            thread.join(timeout=5)
        sock.close()


def test_response_size_cap(server: tuple[str, _State]) -> None:
    url, _ = server
    with client(url, max_response_bytes=100) as c, pytest.raises(MeshProtocolError, match="limit"):
        c.get_bytes("/bytes")
    with client(url, max_response_bytes=100) as c, pytest.raises(MeshProtocolError):
        c.get_wire("/bytes")


def test_client_settings_are_checked() -> None:
    for bad in ("ftp://x", "127.0.0.1:9000", ""):
        with pytest.raises(InvalidInputError):
            MeshClient(bad, KEY)
    with pytest.raises(InvalidInputError):
        MeshClient("http://127.0.0.1:1", KEY, timeout=0)
    with pytest.raises(InvalidInputError):
        MeshClient("http://127.0.0.1:1", KEY, retries=-1)
    with MeshClient("http://127.0.0.1:1", KEY) as c:
        for path in ("echo", "//evil.example/x", "http://evil.example/"):
            with pytest.raises(InvalidInputError):
                c.get_json(path)
