"""The coordinator refuses what it can from a request's headers, before any of its body: a size
over its route's limit (413), an unsigned request to a signed route (401), a node that never
registered (403); a declared body takes memory only as it arrives; malformed JSON of any depth is
a 400; a failure of the coordinator (5xx) is logged with its cause."""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ramnet.mesh.coordinator.admission import SMALL_BODY, Admission
from ramnet.mesh.coordinator.app import create_app, http_protocol
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.nodes.client import MeshClient, MeshRequestError
from ramnet.mesh.protocol.auth import sign_request
from ramnet.mesh.protocol.routes import url
from ramnet.mesh.protocol.wire import WIRE_CONTENT_TYPE
from ramnet.mesh.state.errors import StoreError
from ramnet.mesh.transport.buffers import receive_buffer
from ramnet.valkyrie import NodeKey
from tests.mesh_server import serve_app

GIB = 1 << 30


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[tuple[str, Coordinator]]:
    coord = Coordinator(CoordinatorConfig(data_dir=tmp_path / "state"))
    protocol = http_protocol(coord.config.max_body, Admission(coord.store, coord.config.max_body))
    try:
        with serve_app(create_app(coord), protocol) as port:
            yield f"http://127.0.0.1:{port}", coord
    finally:
        coord.close()


def _registered(base: str) -> NodeKey:
    key = NodeKey.generate()
    with MeshClient(base, key) as client:
        client.post_json(url("register"), {"bond": 0}, idempotent=True)
    return key


def _declare(base: str, head: str) -> tuple[bytes, bool]:
    """Send only ``head`` (a request's line and headers); the reply, and whether the server then
    closed the connection."""
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head.encode("latin-1"))
        reply = b""
        while b"\r\n\r\n" not in reply:
            piece = s.recv(65536)
            if not piece:
                break
            reply += piece
        head_end = reply.find(b"\r\n\r\n") + 4
        length = 0
        for line in reply[:head_end].split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(reply) < head_end + length:
            reply += s.recv(65536)
        closed = False
        with contextlib.suppress(OSError):
            closed = s.recv(1) == b""
        return reply, closed


def _post_head(path: str, length: int, content_type: str, signed: dict[str, str]) -> str:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
    head += f"Content-Length: {length}\r\n"
    return head + "".join(f"{k}: {v}\r\n" for k, v in signed.items()) + "\r\n"


def test_a_json_route_refuses_a_declared_body_over_its_small_limit_unread(
    coordinator: tuple[str, Coordinator],
) -> None:
    base, _ = coordinator
    key = _registered(base)
    path = url("register")
    signed = sign_request(key, "POST", path, body_hash="0" * 64)
    # Nothing of the body is sent: the reply comes from the headers alone.
    reply, closed = _declare(base, _post_head(path, GIB, "application/json", signed))
    assert reply.startswith(b"HTTP/1.1 413")
    assert f"body over {SMALL_BODY} bytes".encode() in reply
    assert closed
    # Within the limit, the route still works (the signature checked after the body, as before).
    with MeshClient(base, key) as client:
        assert client.post_json(path, {"bond": 0}, idempotent=True)["node_id"] == key.node_id


def test_a_wire_route_takes_up_to_max_body_and_refuses_more(
    coordinator: tuple[str, Coordinator],
) -> None:
    base, coord = coordinator
    key = _registered(base)
    path = url("submit_job")
    too_big = coord.config.max_body + 1
    signed = sign_request(key, "POST", path, body_hash="0" * 64)
    reply, closed = _declare(base, _post_head(path, too_big, WIRE_CONTENT_TYPE, signed))
    assert reply.startswith(b"HTTP/1.1 413") and closed


def test_an_unregistered_node_is_refused_before_its_body(
    coordinator: tuple[str, Coordinator],
) -> None:
    base, coord = coordinator
    stranger = NodeKey.generate()
    path = url("submit_job")
    signed = sign_request(stranger, "POST", path, body_hash="0" * 64)
    reply, closed = _declare(base, _post_head(path, GIB, WIRE_CONTENT_TYPE, signed))
    assert reply.startswith(b"HTTP/1.1 403")
    text = json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]
    assert text.startswith(f"node {stranger.node_id[:16]} is not registered: register first")
    assert closed
    # Nothing was stored for it, and it is told the same on every signed route but registration.
    assert coord.store.list_nodes() == []
    with MeshClient(base, stranger, retries=0) as client:
        for request in (
            lambda: client.get_wire(url("claim")),
            lambda: client.get_json(url("job_status", job_id="0" * 32)),
        ):
            with pytest.raises(MeshRequestError, match="is not registered") as caught:
                request()
            assert caught.value.status == 403
        client.post_json(url("register"), {"bond": 0}, idempotent=True)
        assert client.get_wire(url("claim"))[0]["shard_id"] is None


def test_an_unsigned_request_to_a_signed_route_is_refused_unread(
    coordinator: tuple[str, Coordinator],
) -> None:
    base, _ = coordinator
    reply, closed = _declare(base, _post_head(url("submit_job"), GIB, WIRE_CONTENT_TYPE, {}))
    assert reply.startswith(b"HTTP/1.1 401") and closed
    assert b"request is not signed" in reply
    # The public routes need no registration.
    for path in ("/health", "/openapi.json"):
        assert httpx.get(base + path).status_code == 200


def test_a_banned_node_is_refused_before_its_body(coordinator: tuple[str, Coordinator]) -> None:
    base, coord = coordinator
    key = _registered(base)
    with coord.store.transaction() as conn:
        conn.execute("UPDATE nodes SET banned = 1 WHERE node_id = ?", (key.node_id,))
    path = url("submit_job")
    signed = sign_request(key, "POST", path, body_hash="0" * 64)
    reply, closed = _declare(base, _post_head(path, GIB, WIRE_CONTENT_TYPE, signed))
    assert reply.startswith(b"HTTP/1.1 403") and b"is banned" in reply and closed


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_a_declared_body_s_buffer_takes_memory_only_as_bytes_arrive() -> None:
    before = _rss()
    buffers = [receive_buffer(GIB, populate=False) for _ in range(4)]
    assert all(b.nbytes == GIB for b in buffers)
    assert _rss() - before < 64 << 20  # 4 GiB declared, nothing written: nothing taken
    buffers[0][: 8 << 20] = b"\1" * (8 << 20)
    assert _rss() - before >= 8 << 20  # what arrives is what is held


@pytest.mark.parametrize("depth", [64, 10_000, 1_000_000])
def test_malformed_or_deep_json_is_a_400_on_a_signed_route(
    coordinator: tuple[str, Coordinator], depth: int
) -> None:
    base, _ = coordinator
    key = _registered(base)
    for body in (b"[" * depth, b"[" * depth + b"]" * depth, b'{"bond": ' + b"[" * depth):
        if len(body) > SMALL_BODY:
            body = body[:SMALL_BODY]
        path = url("register")
        headers = sign_request(key, "POST", path, body)
        reply = httpx.post(
            base + path, content=body, headers={**headers, "content-type": "application/json"}
        )
        assert reply.status_code == 400, reply.text
        assert "internal error" not in reply.text


def test_deep_json_in_wire_metadata_is_a_400(coordinator: tuple[str, Coordinator]) -> None:
    import struct

    from ramnet.mesh.protocol.wire import WIRE_MAGIC

    base, _ = coordinator
    key = _registered(base)
    for depth in (50, 100_000):
        # Built by hand: pack_parts refuses to write such metadata.
        head = b'{"meta": {"nodes": ' + b"[" * depth + b"3" + b"]" * depth + b'}, "arrays": []}'
        head += b" " * (-(len(head) + 12) % 64)
        body = struct.pack("<8sI", WIRE_MAGIC, len(head)) + head
        _post_wire(base, key, body)


def _post_wire(base: str, key: NodeKey, body: bytes) -> None:
    path = url("submit_job")
    headers = sign_request(key, "POST", path, body)
    reply = httpx.post(
        base + path, content=body, headers={**headers, "content-type": WIRE_CONTENT_TYPE}
    )
    assert reply.status_code == 400, reply.text


def test_a_coordinator_failure_is_logged_once_with_its_cause(
    coordinator: tuple[str, Coordinator],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    base, coord = coordinator
    key = _registered(base)

    def broken(job_id: str, wait: float = 0.0) -> Any:
        try:
            raise OSError("disk gone")
        except OSError as exc:
            raise StoreError("cannot read the job") from exc

    monkeypatch.setattr(coord, "status", broken)
    path = url("job_status", job_id="0" * 32)
    reply = httpx.get(base + path, headers=sign_request(key, "GET", path))
    assert reply.status_code == 500
    assert reply.json() == {"error": "cannot read the job"}
    time.sleep(0.2)
    err = capfd.readouterr().err
    line = f"coordinator: GET {path} failed 500: StoreError: cannot read the job"
    assert err.count(line) == 1
    assert "(cause: OSError: disk gone)" in err
