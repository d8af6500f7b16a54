"""Request bodies are typed: a body that is not its route's message (an unknown, mistyped or
missing field, not an object, not JSON, nested without end) is refused with 400 and one line
saying why, and changes nothing. A real uvicorn server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.protocol.auth import sign_request
from ramnet.mesh.protocol.routes import url
from ramnet.mesh.protocol.wire import WIRE_CONTENT_TYPE, pack
from ramnet.valkyrie import NodeKey
from tests.mesh_server import served

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Coordinator]]:
    coordinator = Coordinator(CoordinatorConfig(data_dir=tmp_path / "state", max_body=4 << 20))
    with served(coordinator) as base:
        yield base, coordinator


def _post(base: str, key: NodeKey, path: str, body: bytes, wire: bool = False) -> httpx.Response:
    headers = sign_request(key, "POST", path, body)
    if wire:
        headers["Content-Type"] = WIRE_CONTENT_TYPE
    return httpx.post(f"{base}{path}", content=body, headers=headers, timeout=30)


def _refused(response: httpx.Response, *words: str) -> str:
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    assert isinstance(message, str) and message and "\n" not in message
    assert set(response.json()) == {"error"}
    for word in words:
        assert word in message, message
    return message


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"bond": 0, "colour": "red"}', ("unknown field", "colour")),
        (b'{"bond": "ten"}', ("Expected `int`", "$.bond")),
        (b'{"bond": true}', ("Expected `int`", "$.bond")),
        (b'{"bond": -1}', ("$.bond",)),
        (b'{"validator": "yes"}', ("Expected `bool`", "$.validator")),
        (b"[1, 2]", ("Expected `object`, got `array`",)),
        (b'"bond"', ("Expected `object`",)),
        (b"not json", ("not JSON",)),
        (b'{"bond": 0', ("not JSON",)),
        (DEEP, ()),
        (b'{"bond": ' + DEEP + b"}", ()),
        (b'{"payout_address": ' + DEEP + b"}", ()),
    ],
    ids=lambda v: v[:24] if isinstance(v, bytes) else None,
)
def test_a_registration_that_is_not_its_message_is_refused(
    server: tuple[str, Coordinator], body: bytes, words: tuple[str, ...]
) -> None:
    base, coordinator = server
    _refused(_post(base, NodeKey.generate(), url("register"), body), *words)
    assert coordinator.store.list_nodes() == []


def test_a_commit_without_its_digest_is_refused(server: tuple[str, Coordinator]) -> None:
    base, _ = server
    key = NodeKey.generate()
    assert _post(base, key, url("register"), b"").status_code == 200
    path = url("shard_commit", shard_id="1")
    _refused(_post(base, key, path, b"{}"), "missing required field", "digest")
    _refused(_post(base, key, path, b'{"digest": 7}'), "Expected `str`", "$.digest")
    good = b"ab" * 32
    _refused(_post(base, key, path, b'{"digest": "' + good + b'", "extra": 1}'), "unknown field")
    # The digest's form is the message's too: 64 hex digits, nothing more.
    for digest in (b"ab", good + b"a", b"g" * 64, good + b"\\n"):
        _refused(_post(base, key, path, b'{"digest": "' + digest + b'"}'), "$.digest")
    # A deep body in a field typed as any JSON (a fraud proof) is refused too, not a crash.
    report = b'{"frauds": [{"node": ' + DEEP + b"}]}"
    _refused(_post(base, key, url("audit_report", job_id="j"), report), "nests too deeply")
    _refused(_post(base, key, url("verdict", dispute_id=1), b'{"frauds": {}}'), "$.frauds")
    _refused(_post(base, key, url("shard_release", shard_id="1"), b'{"why": "tired"}'))


def test_wire_metadata_is_typed(server: tuple[str, Coordinator]) -> None:
    base, coordinator = server
    key = NodeKey.generate()
    assert _post(base, key, url("register"), b"").status_code == 200
    a = np.ones((6, 5), np.int8)
    b = np.ones((5, 4), np.int8)
    for meta, words in (
        ({"nodes": 3, "priority": "high"}, ("unknown field", "priority")),
        ({"nodes": "3"}, ("Expected `int`", "$.nodes")),
        ({}, ("missing required field", "nodes")),
        ({"nodes": 3, "redundancy": "twice"}, ("$.redundancy",)),
        ({"nodes": 3, "request_id": 5}, ("$.request_id",)),
    ):
        body = pack(meta, {"A": a, "B": b})
        _refused(_post(base, key, url("submit_job"), body, wire=True), *words)
    assert coordinator.store.list_jobs() == []
    # A reveal's metadata names its shard or nothing.
    path = url("shard_reveal", shard_id="1")
    for meta in ({"shard_id": "2"}, {"shard_id": 1}, {"shard_id": "1", "job": "x"}):
        _refused(_post(base, key, path, pack(meta, {}), wire=True))
