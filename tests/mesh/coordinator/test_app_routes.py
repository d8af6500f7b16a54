"""The app serves exactly the routes the OpenAPI document lists, and each path ``url`` builds
reaches its route in the app."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ramnet.mesh.coordinator.app import create_app
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.protocol.routes import PAGES, ROUTES, openapi, url

SAMPLE = {"job_id": "job7", "shard_id": "12", "dispute_id": 3}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    coordinator = Coordinator(CoordinatorConfig(data_dir=tmp_path))
    yield create_app(coordinator)
    coordinator.close()


def test_the_document_lists_exactly_the_routes_the_app_serves(app: Any) -> None:
    # Besides the API, the app serves the dashboard's pages (issue 19): HTML for people, outside
    # the document on purpose (routes.PAGES).
    pages = {page.name for page in PAGES}
    assert {route.name for route in app.routes if route.name in pages} == pages
    served = set()
    for route in (r for r in app.routes if r.name not in pages):
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # OpenAPI has no convertors
        served |= {(path, method.lower()) for method in route.methods if method != "HEAD"}
    documented = {(path, method) for path, ops in openapi()["paths"].items() for method in ops}
    assert served == documented
    assert len(app.routes) == len(ROUTES) + len(PAGES)


def test_each_url_reaches_its_route(app: Any) -> None:
    from starlette.routing import Match

    for spec in ROUTES:
        target = url(spec.name, **{name: SAMPLE[name] for name in spec.params})
        scope = {"type": "http", "method": spec.method, "path": target, "root_path": ""}
        matches = [r for r in app.routes if r.matches(scope)[0] == Match.FULL]
        assert [r.name for r in matches] == [spec.name], target
        params = matches[0].matches(scope)[1]["path_params"]
        assert params == {name: SAMPLE[name] for name in spec.params}
