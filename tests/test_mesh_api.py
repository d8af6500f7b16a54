"""The coordinator's HTTP API: health, OpenAPI, and refusals (unsigned, badly signed, replayed,
oversized, malformed) that change nothing. A real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from ramnet.mesh import Coordinator, CoordinatorConfig, MeshClient, create_app, pack, sign_request
from ramnet.mesh._client import MeshRequestError
from ramnet.valkyrie import NodeKey


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Coordinator]]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    coordinator = Coordinator(CoordinatorConfig(data_dir=tmp_path / "state", max_body=1 << 20))
    server = uvicorn.Server(
        uvicorn.Config(create_app(coordinator), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", coordinator
    finally:
        server.should_exit = True
        thread.join(10)
        coordinator.close()


def test_health_and_openapi(server: tuple[str, Coordinator]) -> None:
    url, _ = server
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    spec = httpx.get(f"{url}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert {"/v1/jobs", "/v1/work", "/v1/nodes", "/v1/ledger"} <= set(spec["paths"])


def _ledger(url: str) -> dict[str, object]:
    info: dict[str, object] = httpx.get(f"{url}/v1/ledger").json()
    return info


def test_refused_requests_change_nothing(server: tuple[str, Coordinator]) -> None:
    url, coordinator = server
    key = NodeKey.generate()
    body = b'{"bond": 0}'
    before = _ledger(url)
    # Unsigned.
    assert httpx.post(f"{url}/v1/nodes", content=body).status_code == 401
    # Badly signed: the signature of another body.
    headers = sign_request(key, "POST", "/v1/nodes", b'{"bond": 1}')
    assert httpx.post(f"{url}/v1/nodes", content=body, headers=headers).status_code == 401
    # Signed by one key, claiming another node id.
    other = NodeKey.generate()
    headers = {**sign_request(key, "POST", "/v1/nodes", body), "X-Ramnet-Node": other.node_id}
    assert httpx.post(f"{url}/v1/nodes", content=body, headers=headers).status_code == 401
    # Oversized: refused before it is read whole.
    big = b"x" * ((1 << 20) + 1)
    headers = sign_request(key, "POST", "/v1/jobs", big)
    assert httpx.post(f"{url}/v1/jobs", content=big, headers=headers).status_code == 413
    # Malformed bodies, properly signed.
    for path, junk in (("/v1/nodes", b"not json"), ("/v1/jobs", b"RNWIRE1\x00junk")):
        headers = sign_request(key, "POST", path, junk)
        response = httpx.post(f"{url}{path}", content=junk, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["error"]
    assert _ledger(url) == before
    assert coordinator.store.list_nodes() == []
    # A good request, then its replay.
    headers = sign_request(key, "POST", "/v1/nodes", body)
    assert httpx.post(f"{url}/v1/nodes", content=body, headers=headers).status_code == 200
    after = _ledger(url)
    assert httpx.post(f"{url}/v1/nodes", content=body, headers=headers).status_code == 409
    assert _ledger(url) == after


def test_job_refusals_are_clear(server: tuple[str, Coordinator]) -> None:
    url, _ = server
    client = MeshClient(url, NodeKey.generate(), retry_for=5)
    client.post_json("/v1/nodes", {"bond": 0})
    a = np.ones((8, 5), np.int8)
    with pytest.raises(MeshRequestError, match="multiple of 3"):
        client.post_wire("/v1/jobs", {"nodes": 4}, {"A": a, "B": np.ones((5, 7), np.int8)})
    with pytest.raises(MeshRequestError, match="B's rows"):
        client.post_wire("/v1/jobs", {"nodes": 3}, {"A": a, "B": np.ones((6, 7), np.int8)})
    with pytest.raises(MeshRequestError, match="needs arrays"):
        client.post_wire("/v1/jobs", {"nodes": 3}, {"A": a})
    with pytest.raises(MeshRequestError, match="no job"):
        client.get_json("/v1/jobs/nosuchjob")
    poor = MeshClient(url, NodeKey.generate(), retry_for=5)  # never registered: no credit
    with pytest.raises(MeshRequestError, match="balance"):
        poor.post_wire("/v1/jobs", {"nodes": 3}, {"A": a, "B": np.ones((5, 7), np.int8)})
    assert _ledger(url)["totals"]["conserved"] is True  # type: ignore[index]
    raw = pack({"nodes": 3}, {"A": a, "B": np.ones((5, 7), np.int8)})
    assert httpx.post(f"{url}/v1/jobs", content=raw).status_code == 401
