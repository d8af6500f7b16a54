"""The browser fixtures themselves: JavaScript errors and off-host requests are caught, and the
``page`` fixture fails a test that has either."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import GuardedPage, is_local_url, open_guarded_page

REPO = Path(__file__).resolve().parents[2]
ICON = '<link rel="icon" href="data:,">'  # no /favicon.ico request (its 404 is a console error)

PAGES = {
    "ok.html": f"<!doctype html><title>ok</title>{ICON}<h1>fine</h1>",
    "console.html": f"<!doctype html><title>c</title>{ICON}<script>console.error('boom')</script>",
    "throw.html": f"<!doctype html><title>t</title>{ICON}<script>null.nothing()</script>",
    "offhost.html": (
        f"<!doctype html><title>o</title>{ICON}<h1>away</h1>"
        '<img alt="" src="http://example.invalid/pixel.png">'
        "<script>fetch('https://cdn.example.com/lib.js').catch(() => {});</script>"
    ),
}


@contextlib.contextmanager
def static_site(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 in a thread; yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("site")
    for name, html in PAGES.items():
        (folder / name).write_text(html)
    with static_site(folder) as url:
        yield url


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def visit(browser: Any, tmp_path: Path, url: str) -> GuardedPage:
    with open_guarded_page(browser, tmp_path) as guarded:
        guarded.page.goto(url)
        guarded.page.wait_for_load_state("load")
        return guarded


def test_local_urls() -> None:
    assert is_local_url("http://127.0.0.1:8765/dashboard")
    assert is_local_url("http://localhost/x")
    assert is_local_url("http://[::1]:80/")
    assert is_local_url("data:image/png;base64,AAAA")
    assert not is_local_url("https://cdn.jsdelivr.net/npm/htmx.org")
    assert not is_local_url("http://127.0.0.1.example.com/")
    assert not is_local_url("http://10.0.0.1/")


def test_clean_page_passes_and_screenshots(page: GuardedPage, site: str) -> None:
    page.page.goto(f"{site}/ok.html")
    assert page.page.get_by_role("heading", name="fine").is_visible()
    desktop, phone = page.screenshot("ok", phone=True)
    assert desktop.name == "ok.png" and phone.name == "ok-375.png"
    assert png_size(desktop) == (1280, 800)
    assert png_size(phone) == (375, 812)
    assert page.page.viewport_size == {"width": 1280, "height": 800}
    assert page.phone_overflow() == 0
    page.page.evaluate("document.body.insertAdjacentHTML('beforeend', '<pre>' + 'x'.repeat(200))")
    assert page.phone_overflow() > 0
    assert page.page.viewport_size == {"width": 1280, "height": 800}
    assert page.problems() == []
    assert any(u.endswith("/ok.html") for u in page.requests)


def test_console_error_is_reported(browser: Any, tmp_path: Path, site: str) -> None:
    guarded = visit(browser, tmp_path, f"{site}/console.html")
    assert any("boom" in e for e in guarded.errors), guarded.errors
    with pytest.raises(pytest.fail.Exception, match="JavaScript error: boom"):
        guarded.check()


def test_uncaught_exception_is_reported(browser: Any, tmp_path: Path, site: str) -> None:
    guarded = visit(browser, tmp_path, f"{site}/throw.html")
    assert any(e.startswith("uncaught:") for e in guarded.errors), guarded.errors
    with pytest.raises(pytest.fail.Exception, match="uncaught"):
        guarded.check()


def test_request_to_another_host_is_blocked_and_reported(
    browser: Any, tmp_path: Path, site: str
) -> None:
    with open_guarded_page(browser, tmp_path) as guarded:
        guarded.page.goto(f"{site}/offhost.html")
        # The fetch is asynchronous: wait (generously) until the route has seen both.
        for _ in range(300):
            if len(set(guarded.blocked)) >= 2:
                break
            guarded.page.wait_for_timeout(100)
        blocked = list(guarded.blocked)
    assert "http://example.invalid/pixel.png" in blocked
    assert "https://cdn.example.com/lib.js" in blocked
    with pytest.raises(pytest.fail.Exception, match="another host"):
        guarded.check()


def test_page_fixture_fails_a_misbehaving_test(tmp_path: Path, site: str) -> None:
    """The ``page`` fixture itself fails tests, in a separate pytest run (its own Chromium)."""
    (tmp_path / "conftest.py").write_text("from tests.browser_support import browser, page\n")
    (tmp_path / "test_bad.py").write_text(
        f"def test_console(page):\n    page.page.goto('{site}/console.html')\n\n"
        f"def test_offhost(page):\n    page.page.goto('{site}/offhost.html')\n"
        "    page.page.wait_for_timeout(500)\n\n"
        f"def test_ok(page):\n    page.page.goto('{site}/ok.html')\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", tmp_path,
         str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "3 passed, 2 errors" in out, out
    assert "ERROR at teardown of test_console" in out, out
    assert "JavaScript error: boom" in out, out
    assert "ERROR at teardown of test_offhost" in out, out
    assert "request to another host (blocked): http://example.invalid/pixel.png" in out, out


def test_without_chromium_browser_tests_are_skipped_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "import tests.browser_support as support\n"
        "support.chromium_path = lambda: None\n"
        "from tests.browser_support import browser, page\n"
    )
    (tmp_path / "test_any.py").write_text("def test_page(page):\n    raise AssertionError\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--rootdir",
         tmp_path, str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "1 skipped" in out, out
    assert "no Chromium: install Debian's chromium" in out, out
