"""Nodes build every path from the route table: no path of the API is written anywhere else,
every ``url`` call names a route with its parameters, and the roles (a worker, a validator, an
unproven worker, an auditor and a consumer, against a real coordinator on 127.0.0.1) request only
what the table lists."""

from __future__ import annotations

import ast
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ramnet
from ramnet import orchid
from ramnet.mesh import Auditor, MeshClient, Worker
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.nodes import consumer
from ramnet.mesh.protocol.routes import ROUTES, Route, route, url
from ramnet.valkyrie import NodeKey
from tests.mesh_server import served

RAMNET = Path(ramnet.__file__).parent


class Recording(MeshClient):
    """A MeshClient that notes every request it sends."""

    def __init__(self, base_url: str, seen: list[tuple[str, str]]) -> None:
        super().__init__(base_url, NodeKey.generate(), retry_for=10)
        self.seen = seen

    def request(self, method: str, path: str, **kw: Any) -> Any:
        self.seen.append((method, path))
        return super().request(method, path, **kw)


def _route_of(method: str, target: str) -> Route:
    path = target.split("?", 1)[0]
    found = []
    for spec in ROUTES:
        pattern = re.sub(r"\{\w+:int\}", "[0-9]+", spec.path)
        pattern = re.sub(r"\{\w+\}", "[^/]+", pattern)
        if spec.method == method and re.fullmatch(pattern, path):
            found.append(spec)
    assert len(found) == 1, (method, target)
    return found[0]


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[str]:
    coordinator = Coordinator(CoordinatorConfig(data_dir=tmp_path / "state", max_body=16 << 20))
    with served(coordinator) as base:
        yield base


def _work(workers: list[Worker]) -> None:
    stop = threading.Event()
    threads = [
        threading.Thread(target=w.run, args=(stop,), kwargs={"max_shards": 1}) for w in workers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(w.done == 1 for w in workers)


def test_every_request_of_every_role_is_a_route_of_the_table(mesh: str) -> None:
    seen: list[tuple[str, str]] = []
    a, b = orchid.random_operands(40, 30, 20, "int8", seed=1)
    # A proven job: workers commit and reveal; a validator finds no dispute; the consumer follows
    # the job and fetches C.
    client = Recording(mesh, seen)
    job = consumer.submit(client, a, b, 3)
    _work([Worker(Recording(mesh, seen)) for _ in range(3)])
    validator = Worker(Recording(mesh, seen), validator=True)
    validator.register()  # every signed request but registration needs a registered node
    assert validator.validate() is False
    c, info = consumer.fetch_checked(client, job, a, b, timeout=60)
    assert info["state"] in ("checked", "settled") and c.shape == (40, 20)
    assert consumer.status(client, job)["job_id"] == job
    client.get_json(url("ledger"))
    # An unproven job: its workers post their results, and an auditor settles it.
    job = consumer.submit(client, a, b, 3)
    _work([Worker(Recording(mesh, seen), prove=False) for _ in range(3)])
    auditor = Auditor(Recording(mesh, seen))
    auditor.register()
    assert auditor.step() is True
    consumer.wait(client, job, timeout=60)
    # The consumer lists its jobs, and cancels one nobody works on.
    assert job in {j["job_id"] for j in consumer.list_jobs(client)}
    job = consumer.submit(client, a, b, 3)
    assert consumer.cancel(client, job)["state"] == "cancelled"
    used = {_route_of(method, target).name for method, target in seen}
    assert used == {spec.name for spec in ROUTES} - {
        "health",
        "openapi",
        "verdict",  # a verdict needs a dispute (tests/mesh/e2e)
        "shard_release",  # a stopping worker's (tests/mesh/nodes/test_worker.py)
        # Sent only while a computation outlasts a beat's interval
        # (tests/mesh/coordinator/test_liveness.py).
        "heartbeat",
    }


def _sources() -> list[Path]:
    return sorted(p for p in RAMNET.rglob("*.py") if p != RAMNET / "mesh/protocol/routes.py")


def test_no_path_of_the_api_is_written_outside_the_table() -> None:
    # The API's paths (the sidecar's own /health is another server's) live in the table alone.
    for source in _sources():
        text = source.read_text()
        for literal in ("/v1/", "/openapi.json"):
            assert literal not in text, f"{source}: {literal}"


def test_every_url_call_names_a_route_with_its_parameters() -> None:
    calls = 0
    for source in _sources():
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name != "url" or not node.args or not isinstance(node.args[0], ast.Constant):
                continue
            calls += 1
            spec = route(node.args[0].value)
            assert {k.arg for k in node.keywords} == set(spec.params), (source, spec.name)
            if len(node.args) > 1:
                query = node.args[1]
                assert isinstance(query, ast.Dict)
                keys = {k.value for k in query.keys if isinstance(k, ast.Constant)}
                assert keys <= set(spec.query), (source, spec.name)
    # The roles ask for every route a node uses (health and openapi are for people).
    assert calls >= len(ROUTES) - 2
