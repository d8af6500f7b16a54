"""The dashboard's pages against a store filled through its API (``filled_store``): what each
shows, what none shows (no salt, no tile, no key), its errors as pages, its static files, and
``--no-dashboard``."""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ramnet import _static
from ramnet.mesh.coordinator.app import create_app
from ramnet.mesh.coordinator.dashboard.render import MAIN_SECTIONS, render_sections
from ramnet.mesh.coordinator.dashboard.view import Reader
from ramnet.mesh.coordinator.dashboard.web import CSP
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.protocol.routes import PAGES, openapi, page_url
from tests.mesh.dashboard.filled_store import PAYOUT, SECRET_SALT, Filled, fill_store, hex_id

NODES = 12
JOBS = 24


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Filled]:
    folder = tmp_path_factory.mktemp("dashboard") / "state"
    return folder, fill_store(folder, nodes=NODES, jobs=JOBS)


def _client(coordinator: Coordinator) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's notice about httpx in its test client
        from starlette.testclient import TestClient

    return TestClient(create_app(coordinator))


@pytest.fixture
def client(filled: tuple[Path, Filled]) -> Iterator[Any]:
    # A coordinator whose dispute watcher never judges the open dispute while a test reads it.
    coordinator = Coordinator(CoordinatorConfig(data_dir=filled[0], validator_wait=3600.0))
    try:
        yield _client(coordinator)
    finally:
        coordinator.close()


def test_main_page_shows_nodes_jobs_disputes_and_ledger(client: Any, filled: Any) -> None:
    _, f = filled
    reply = client.get(page_url("dashboard"))
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/html")
    assert reply.headers["content-security-policy"] == CSP
    page = reply.text
    assert f'id="count-nodes">{NODES}<' in page
    assert f'id="count-jobs">{JOBS}<' in page
    for node in f.nodes:
        assert f'data-node="{node}"' in page
    for job in [*f.settled, *f.running, f.disputed, f.failed, f.open_dispute]:
        assert f'data-job="{job}"' in page
    assert PAYOUT in page
    # The cheater: slashed, banned, named in the upheld dispute with its fraud proof's entry.
    row = re.search(
        rf'<tr id="node-{f.cheater}" data-node="{f.cheater}">.*?</tr>', page, flags=re.S
    )
    assert row is not None and "banned" in row.group(0)
    assert '<span class="label">Banned nodes</span><span class="value">1</span>' in page
    assert "upheld" in page
    assert "C[300, 260] claimed 7, correct -12" in page
    assert "Judged by the validator: 1 fraud proof" in page
    assert "an input tile&#39;s blob was damaged" in page
    assert "(conserved)" in page and "NOT conserved" not in page
    assert ">slash</span>" in page
    # Live sections, each swapped by its own event, and the stream to take them from.
    for name in MAIN_SECTIONS:
        assert f'sse-swap="{name}"' in page
    assert f'sse-connect="{page_url("dashboard_events")}?since=' in page


def test_no_page_shows_a_secret(client: Any, filled: Any) -> None:
    folder, f = filled
    pages = [client.get(page_url("dashboard")).text]
    pages += [
        client.get(page_url("dashboard_job", job_id=j)).text for j in (f.disputed, f.running[0])
    ]
    store, ledger, blobs = _state(folder)
    try:
        pages += list(
            render_sections(MAIN_SECTIONS, Reader(store, ledger, blobs).overview()).values()
        )
    finally:
        store.close()
    tiles = [hex_id(f"tile {i} {a} {b}") for i in range(JOBS) for a in range(2) for b in range(2)]
    for page in pages:
        assert SECRET_SALT not in page
        assert "audit_salt" not in page
        assert not any(tile in page for tile in tiles)
        # No shard's block list (which would tell audit copies apart): only counts.
        assert "[(0, 0, 0)" not in page and "(0, 0, 1)" not in page


def _state(folder: Path) -> tuple[Any, Any, Any]:
    from ramnet.mesh.state.blobs import BlobStore
    from ramnet.mesh.state.ledger import Ledger
    from ramnet.mesh.state.store import Store

    store = Store(folder / "state.sqlite")
    return store, Ledger(store), BlobStore(folder / "blobs")


def test_job_page_shows_each_shard_and_its_timings(client: Any, filled: Any) -> None:
    _, f = filled
    page = client.get(page_url("dashboard_job", job_id=f.disputed)).text
    assert f.disputed in page
    assert page.count("data-shard=") == 3
    assert 'id="job-state">settled<' in page
    # Claimed at t, committed at t + 1, revealed at t + 2 (filled_store): the steps' times.
    assert "1.00 s" in page
    assert "C[300, 260] claimed 7, correct -12" in page
    assert f'sse-connect="{page_url("dashboard_events")}?since=' in page
    assert f"job={f.disputed}" in page
    running = client.get(page_url("dashboard_job", job_id=f.running[0])).text
    assert 'id="job-state">dispatched<' in running
    assert '<span class="value">running</span>' in running  # it has not ended: no time yet


def test_errors_are_one_sentence_pages(client: Any) -> None:
    missing = client.get(page_url("dashboard_job", job_id="no-such-job"))
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "no job no-such-job" in missing.text
    assert "sse-connect" not in missing.text
    bad = client.get(page_url("dashboard_job", job_id="bad%20id"))
    assert bad.status_code == 400
    assert "not a job id" in bad.text
    events = client.get(page_url("dashboard_events") + "?job=no-such-job")
    assert events.status_code == 404


def test_pages_are_public_read_only_and_take_no_body(client: Any) -> None:
    assert client.post(page_url("dashboard")).status_code == 405
    with_body = client.request("GET", page_url("dashboard"), content=b"x" * 10)
    assert with_body.status_code == 413
    assert client.head(page_url("dashboard")).status_code == 200


def test_static_files_are_the_vendored_ones_and_nothing_else(client: Any) -> None:
    for name in _static.ASSET_NAMES:
        reply = client.get(page_url("dashboard_static", name=name))
        assert reply.status_code == 200, name
        assert reply.content == _static.asset(name)
        assert reply.headers["content-type"] == _static.content_type(name)
    own = client.get(page_url("dashboard_static", name="dashboard.js"))
    assert own.status_code == 200 and b"uPlot" in own.content
    for name in ("__init__.py", "vendor/MANIFEST.md", "../web.py", "templates/base.html"):
        reply = client.get(page_url("dashboard_static", name=name))
        assert reply.status_code == 404, name
    digest = hashlib.sha256(client.get(page_url("dashboard_static", name=_static.HTMX)).content)
    assert digest.hexdigest() in (_static.static_path() / "vendor" / "MANIFEST.md").read_text()


def test_pages_are_outside_the_openapi_document() -> None:
    paths = openapi()["paths"]
    assert not any(path.startswith("/dashboard") for path in paths)
    assert {p.name for p in PAGES} == {
        "dashboard",
        "dashboard_job",
        "dashboard_events",
        "dashboard_static",
    }
    assert page_url("dashboard_static", name="vendor/sse.js") == "/dashboard/static/vendor/sse.js"


def test_no_dashboard_gives_404(filled: Any) -> None:
    folder, _ = filled
    coordinator = Coordinator(CoordinatorConfig(data_dir=folder, dashboard=False))
    try:
        client = _client(coordinator)
        for path in (
            page_url("dashboard"),
            page_url("dashboard_events"),
            page_url("dashboard_static", name=_static.HTMX),
        ):
            assert client.get(path).status_code == 404, path
        assert client.get("/health").status_code == 200
    finally:
        coordinator.close()


def test_an_empty_coordinator_says_so(tmp_path: Path) -> None:
    coordinator = Coordinator(CoordinatorConfig(data_dir=tmp_path / "empty"))
    try:
        page = _client(coordinator).get(page_url("dashboard")).text
    finally:
        coordinator.close()
    assert "No node has registered yet." in page
    assert "No job has been submitted yet." in page
    assert "No dispute" in page


def test_table_rows_are_escaped_and_rendered_once_per_distinct_row(monkeypatch: Any) -> None:
    import jinja2

    from ramnet.mesh.coordinator.dashboard.render import rows

    evil = {"movement_id": 1, "kind": "pay", "src": None, "dst": "<script>x</script>",
            "amount": 5, "job_id": None, "at": 0.0}  # fmt: skip
    plain = {**evil, "movement_id": 2, "dst": "n2"}
    first = rows("_movement_row.html", [evil, plain], "mv", "movements-rows")
    assert "<script>" not in first and "&lt;script&gt;x&lt;/script&gt;" in first
    rendered: list[str] = []
    original = jinja2.Template.render

    def counting(self: Any, *args: Any, **kwargs: Any) -> str:
        rendered.append(str(self.name))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(jinja2.Template, "render", counting)
    changed = {**plain, "amount": 6}
    again = rows("_movement_row.html", [evil, changed], "mv", "movements-rows")
    assert rendered == ["_movement_row.html"]  # the changed row only
    assert again.split("\n</tr>")[0] == first.split("\n</tr>")[0]  # the first row as before
    assert ">6<" in again and ">5<" in again


def test_times_are_written_as_datetime_writes_them() -> None:
    # ``iso`` keeps what it wrote and ``when`` cuts its time of day from it: both as datetime
    # writes them, its rounding to the microsecond and times before 1970 included.
    import datetime as dt

    from ramnet.mesh.coordinator.dashboard.render import iso, when

    utc = dt.timezone.utc
    values: list[float] = [0.0, 1.9999999, 59.9999996, -0.5, -1e-7, 1_700_000_000.123456]
    values += [-62_135_596_800.0, 253_402_300_799.0, 86_399.9999996, 1_000_000_000]
    for value in values * 2:  # the second time from what ``iso`` kept
        stamp = dt.datetime.fromtimestamp(float(value), utc)
        assert iso(value) == stamp.isoformat(timespec="seconds").replace("+00:00", "Z")
        assert when(value) == stamp.strftime("%H:%M:%S")
    assert (iso(None), when(None)) == ("", "—")
