"""The coordinator's HTTP API: health, OpenAPI, and refusals (unsigned, badly signed, replayed,
oversized, malformed) that change nothing. A real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from ramnet.mesh import MeshClient
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.nodes.client import MeshRequestError
from ramnet.mesh.protocol.auth import sign_request
from ramnet.mesh.protocol.wire import pack
from ramnet.valkyrie import NodeKey
from tests.mesh_server import served


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, Coordinator]]:
    max_body = getattr(request, "param", 1 << 20)
    coordinator = Coordinator(CoordinatorConfig(data_dir=tmp_path / "state", max_body=max_body))
    with served(coordinator) as url:
        yield url, coordinator


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
        # A node that never registered is refused before its body (issue 17) but registering.
        assert response.status_code == (400 if path == "/v1/nodes" else 403), response.text
        assert response.json()["error"]
    assert _ledger(url) == before
    assert coordinator.store.list_nodes() == []
    # A good request, then its replay.
    headers = sign_request(key, "POST", "/v1/nodes", body)
    assert httpx.post(f"{url}/v1/nodes", content=body, headers=headers).status_code == 200
    after = _ledger(url)
    assert httpx.post(f"{url}/v1/nodes", content=body, headers=headers).status_code == 409
    assert _ledger(url) == after
    # Registered, its malformed upload is read and refused, and changes nothing either.
    junk = b"RNWIRE1\x00junk"
    headers = sign_request(key, "POST", "/v1/jobs", junk)
    response = httpx.post(f"{url}/v1/jobs", content=junk, headers=headers)
    assert response.status_code == 400, response.text
    assert _ledger(url) == after


def test_job_refusals_are_clear(server: tuple[str, Coordinator]) -> None:
    url, coordinator = server
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
    # Refused before its upload is read (issue 17): it is told to register first.
    with pytest.raises(MeshRequestError, match="is not registered: register first"):
        poor.post_wire("/v1/jobs", {"nodes": 3}, {"A": a, "B": np.ones((5, 7), np.int8)})
    # Registered with all its credit staked as its bond, its job is refused for its balance.
    poor.post_json("/v1/nodes", {"bond": coordinator.config.default_credit})
    with pytest.raises(MeshRequestError, match="balance"):
        poor.post_wire("/v1/jobs", {"nodes": 3}, {"A": a, "B": np.ones((5, 7), np.int8)})
    assert _ledger(url)["totals"]["conserved"] is True  # type: ignore[index]
    raw = pack({"nodes": 3}, {"A": a, "B": np.ones((5, 7), np.int8)})
    assert httpx.post(f"{url}/v1/jobs", content=raw).status_code == 401


@pytest.mark.parametrize("server", [16 << 20], indirect=True)
def test_a_large_body_arrives_whole(server: tuple[str, Coordinator]) -> None:
    # The client sends a body straight from memory and the server reads it in pieces; the
    # signature covers the whole body, so it must arrive exact.
    url, coordinator = server
    client = MeshClient(url, NodeKey.generate(), retry_for=5)
    client.post_json("/v1/nodes", {"bond": 0})
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (1500, 1100), dtype=np.int8)
    b = rng.integers(-128, 128, (1100, 1300), dtype=np.int8)
    job_id = client.post_wire("/v1/jobs", {"nodes": 3}, {"A": a, "B": b})["job_id"]
    spec = coordinator.store.get_job(job_id).spec
    tiles_a, tiles_b = coordinator.inputs.tiles(job_id, spec)
    grid = coordinator.inputs.plan(job_id, spec)[1]
    for (i, k), tile in tiles_a.items():
        assert np.array_equal(tile, a[grid.rows(i), grid.inner(k)])
    for (k, j), tile in tiles_b.items():
        assert np.array_equal(tile, b[grid.inner(k), grid.cols(j)])


def test_a_body_labelled_wire_is_judged_by_what_it_holds(server: tuple[str, Coordinator]) -> None:
    # Wire bodies are read into an unzeroed buffer; JSON sent under the wire Content-Type is
    # still parsed as JSON (or refused with 400), never an internal error.
    url, coordinator = server
    key = NodeKey.generate()
    wire = {"Content-Type": "application/vnd.ramnet.wire"}
    for body, status in ((b'{"bond": 0}', 200), (b"", 200), (b"not json", 400)):
        headers = {**sign_request(key, "POST", "/v1/nodes", body), **wire}
        response = httpx.post(f"{url}/v1/nodes", content=body, headers=headers)
        assert response.status_code == status, response.text
    assert [n.node_id for n in coordinator.store.list_nodes()] == [key.node_id]
    # A wire body shorter than its Content-Length is refused whole: nothing of the buffer's
    # uninitialised rest is ever read.
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as conn:
        body = pack({"nodes": 3}, {"A": np.ones((4, 4), np.int8), "B": np.ones((4, 4), np.int8)})
        head = (
            "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.ramnet.wire\r\n"
            f"Content-Length: {len(body) + 100}\r\n\r\n"
        )
        conn.sendall(head.encode() + body)
        conn.shutdown(socket.SHUT_WR)
        reply = b""
        while piece := conn.recv(65536):
            reply += piece
    assert not reply.startswith(b"HTTP/1.1 200")
    assert coordinator.store.list_jobs() == []


def test_the_coordinator_raises_uvicorns_read_buffer() -> None:
    # A renamed uvicorn setting would silently bring back 64 KiB reads (a third slower uploads).
    import importlib

    from ramnet.mesh.transport.server import READ_BUFFER, raise_read_buffer

    assert raise_read_buffer() is True
    # httptools is a dependency: uvicorn parses with it, and its protocol has the raised mark.
    import httptools  # noqa: F401

    for name in ("httptools_impl", "h11_impl"):
        module = importlib.import_module(f"uvicorn.protocols.http.{name}")
        assert module.HIGH_WATER_LIMIT >= READ_BUFFER


def test_only_an_https_coordinator_loads_certificates() -> None:
    # A plain http client skips loading the CA bundle (about 100 ms per command); an https one
    # checks the coordinator's certificate and name.
    import ssl

    from ramnet.mesh import MeshUnavailableError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connecting is refused
    secure = MeshClient(f"https://127.0.0.1:{port}", None, retries=0, retry_for=0)
    with pytest.raises(MeshUnavailableError):
        secure.get_json("/health")
    context = secure._http._tls
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    plain = MeshClient(f"http://127.0.0.1:{port}", None, retries=0, retry_for=0)
    with pytest.raises(MeshUnavailableError):
        plain.get_json("/health")
    assert plain._http._tls is None
