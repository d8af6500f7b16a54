"""The dashboard in a real browser (Debian's Chromium through Playwright), on a real coordinator
process with three workers: the nodes appear and a job settles on the page without a reload,
one job's page lists its shards, every page is usable by keyboard, no page logs a JavaScript
error or asks for a host other than 127.0.0.1, and ``--no-dashboard`` gives 404. Screenshots
go under the test's tmp_path."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ramnet.mesh.protocol.routes import page_url
from tests.browser_support import PHONE, GuardedPage, open_guarded_page
from tests.mesh.dashboard.filled_store import Filled
from tests.mesh_procs import Mesh, ramnet

DEADLINE = 120.0  # seconds for a mesh job on a loaded machine; CI must never hang on it
WORKERS = 3


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    procs = Mesh(tmp_path)
    try:
        procs.start_coordinator()
        yield procs
    finally:
        codes = procs.stop()
        assert codes == [0] * len(codes), codes  # every process stops cleanly on SIGTERM


def _only_127(guarded: GuardedPage) -> None:
    hosts = {
        urlsplit(u).hostname for u in guarded.requests if urlsplit(u).scheme in ("http", "https")
    }
    assert hosts <= {"127.0.0.1"}, hosts


def _workers(mesh: Mesh) -> None:
    for w in range(WORKERS):
        mesh.start(f"w{w}", "worker", "start", "--key-file", f"w{w}.key", "--bond", "10")


def _submit(mesh: Mesh) -> subprocess.Popen[str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(mesh.folder / "cfg")}
    return subprocess.Popen(
        ramnet(
            "run", "--mode", "mesh", "--nodes", "3", "--coordinator", mesh.url,
            "--random", "96x80x64", "--dtype", "int8", "--seed", "3",
            "--out", "C.npy", "--key-file", "consumer.key", "--json",
        ),
        cwd=mesh.folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


# The live tables' text, row by row; a node's "last seen" left out: the fingerprint moves with
# it only every 10 s, so a page updated live may show an older one than a page loaded now.
_TABLES = """() => [
  ...[...document.querySelectorAll('#nodes-rows tr')].map(
    (r) => [...r.children].filter((c, i) => i !== 6).map((c) => c.textContent.trim()).join('|')),
  ...[...document.querySelectorAll('#jobs-rows tr, #movements-rows tr')].map(
    (r) => r.textContent.replace(/\\s+/g, ' ').trim()),
  document.getElementById('ledger-totals').textContent.replace(/\\s+/g, ' ').trim(),
  ...[...document.querySelectorAll('.cards .value')].map((c) => c.textContent.trim()),
]"""


def _same_as_a_fresh_page(live: Any, url: str) -> None:
    # A change may land between the two reads: compared again, a few times, before failing.
    fresh = live.context.new_page()
    try:
        for _ in range(5):
            fresh.goto(url)
            time.sleep(1.0)  # the live page's next poll
            shown, loaded = live.evaluate(_TABLES), fresh.evaluate(_TABLES)
            if shown == loaded:
                return
        assert shown == loaded
    finally:
        fresh.close()


def test_dashboard_shows_nodes_and_a_job_settling_live(
    browser: Any, mesh: Mesh, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with open_guarded_page(browser, tmp_path) as guarded:
        page = guarded.page
        page.goto(mesh.url + page_url("dashboard"))
        expect(page.locator("#live-status")).to_contain_text("Live")
        expect(page.locator("#count-nodes")).to_have_text("0")
        page.evaluate("window.__notReloaded = true")
        # Workers register after the page loaded: they appear without a reload.
        _workers(mesh)
        expect(page.locator("#nodes-table tbody tr")).to_have_count(WORKERS)
        run = _submit(mesh)
        try:
            _, err = run.communicate(timeout=DEADLINE)
        finally:
            if run.poll() is None:
                run.kill()
        assert run.returncode == 0, err
        settled = page.locator('#jobs-table tr[data-state="settled"]')
        expect(settled).to_have_count(1)
        expect(page.locator("#count-settled")).to_have_text("1")
        assert page.evaluate("window.__notReloaded === true")  # live, not reloaded
        expect(page.locator("#jobs-table tbody tr")).to_have_count(1)
        expect(page.locator("#plot-settled canvas").first).to_be_visible()
        # The workers, and the consumer that registered to submit.
        expect(page.locator("#nodes-table tbody tr")).to_have_count(WORKERS + 1)
        done = page.locator("#nodes-table tbody tr td:nth-child(8)").all_inner_texts()
        assert sum(int(t) for t in done) >= 3  # three shards accepted, at least
        # The live page, built from reads of only what changed since, shows what the page
        # loaded afresh (one whole read) shows.
        _same_as_a_fresh_page(page, mesh.url + page_url("dashboard"))
        guarded.screenshot("dashboard", phone=True)
        # Keyboard: the first Tab reaches the skip link, which is visible when focused.
        page.keyboard.press("Tab")
        skip = page.locator(".skip-link")
        expect(skip).to_be_focused()
        expect(skip).to_be_in_viewport()
        # The job's own page, reached by keyboard from its link.
        link = page.locator("#jobs-table tbody a").first
        link.focus()
        page.keyboard.press("Enter")
        expect(page.locator("#shards-table tbody tr")).to_have_count(3)
        expect(page.locator("#job-state")).to_have_text("settled")
        expect(page.locator("#live-status")).to_contain_text("Live")
        guarded.screenshot("job", phone=True)
        page.set_viewport_size(PHONE)
        # At phone width the page does not scroll sideways: wide tables scroll in their box.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        guarded.check()
        _only_127(guarded)
    # A stream still open while the coordinator stops must not hold the shutdown (the fixture
    # asserts every process exits 0 within its 15 s).
    _hold_a_stream_open(mesh)


def _hold_a_stream_open(mesh: Mesh) -> None:
    import httpx

    opened = threading.Event()

    def listen() -> None:
        try:
            with httpx.stream("GET", mesh.url + page_url("dashboard_events"), timeout=60) as r:
                opened.set()
                for _ in r.iter_bytes():
                    pass
        except httpx.HTTPError:
            pass

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert opened.wait(30)


@contextlib.contextmanager
def _live_page_on_filled_store(
    browser: Any, tmp_path: Path, jobs: int
) -> Iterator[tuple[GuardedPage, Filled]]:
    """A coordinator on a store with a past (``fill_store``, nothing running) and its dashboard
    open and live in a guarded page that counts each section's events (``window.__events``)."""
    from playwright.sync_api import expect

    from tests.mesh.dashboard.filled_store import fill_store

    filled = fill_store(tmp_path / "s", nodes=8, jobs=jobs, live=False)
    mesh = Mesh(tmp_path)
    try:
        mesh.start_coordinator()
        with open_guarded_page(browser, tmp_path) as guarded:
            page = guarded.page
            page.goto(mesh.url + page_url("dashboard"))
            expect(page.locator("#live-status")).to_contain_text("Live")
            page.evaluate(
                "window.__notReloaded = true; window.__events = {};"
                " document.body.addEventListener('htmx:sseMessage', e => {"
                " window.__events[e.target.id] = (window.__events[e.target.id] || 0) + 1; })"
            )
            yield guarded, filled
            assert page.evaluate("window.__notReloaded === true")  # live, not reloaded
            assert page.locator("#row-patches").inner_html() == ""  # swapped out, not in
            guarded.check()
            _only_127(guarded)
    finally:
        codes = mesh.stop()
        assert codes == [0] * len(codes), codes


def test_a_row_that_changed_is_swapped_in_place(browser: Any, tmp_path: Path) -> None:
    # Only a node's row changes (it is banned): the page gets that row alone (a "patch", not
    # the table) and swaps it in place of the old one, without a reload or a JavaScript error.
    from playwright.sync_api import expect

    from ramnet.mesh.state.store import Store

    with _live_page_on_filled_store(browser, tmp_path, jobs=6) as (guarded, filled):
        page = guarded.page
        node = filled.nodes[6]
        row = page.locator(f"#node-{node}")
        expect(row).not_to_contain_text("banned")
        with Store(tmp_path / "s" / "state.sqlite") as store:
            store.set_banned(node, True)
        expect(row).to_contain_text("banned")
        assert page.evaluate("window.__events['row-patches']") >= 1
        assert page.evaluate("window.__events['nodes'] || 0") == 0  # the table not resent
        expect(page.locator("#nodes-table tbody tr")).to_have_count(8)
        expect(page.locator(f"#node-{node}")).to_have_count(1)


def test_a_new_job_is_added_on_top_and_the_oldest_shown_leaves(
    browser: Any, tmp_path: Path
) -> None:
    # The jobs table lists the newest 50: a job submitted adds its row on top, the 50th row
    # leaves and the caption counts one more, all from one patch (no table sent whole).
    from playwright.sync_api import expect

    from ramnet.mesh.state.ledger import Ledger
    from ramnet.mesh.state.store import Store
    from tests.mesh.dashboard.filled_store import _job

    with _live_page_on_filled_store(browser, tmp_path, jobs=52) as (guarded, filled):
        page = guarded.page
        rows = page.locator("#jobs-table tbody tr")
        expect(rows).to_have_count(50)
        last = rows.nth(49).get_attribute("data-job")
        with Store(tmp_path / "s" / "state.sqlite") as store:
            newest = _job(store, Ledger(store), filled, 99, time.time())
        expect(rows.first).to_have_attribute("data-job", newest)
        expect(rows).to_have_count(50)
        expect(page.locator(f'#jobs-table tr[data-job="{last}"]')).to_have_count(0)
        expect(page.locator("#jobs-caption")).to_have_text("The newest 50 of 53 jobs")
        expect(page.locator("#movements-rows tr").first).to_contain_text("escrow")
        assert page.evaluate("window.__events['jobs'] || 0") == 0  # patched, not resent
        assert page.evaluate("window.__events['ledger'] || 0") == 0


def test_no_dashboard_gives_404(tmp_path: Path) -> None:
    import httpx

    mesh = Mesh(tmp_path)
    try:
        mesh.start_coordinator("--no-dashboard")
        for path in (page_url("dashboard"), page_url("dashboard_events")):
            assert httpx.get(mesh.url + path, timeout=10).status_code == 404
        assert httpx.get(mesh.url + "/health", timeout=10).status_code == 200
    finally:
        assert mesh.stop() == [0]
    log = (tmp_path / "coord.log").read_text()
    assert "dashboard on" not in log
