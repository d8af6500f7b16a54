"""Real-browser tests: Debian's Chromium driven by Playwright, watched for errors and off-host
requests.

Any test package can use the fixtures by importing them into its conftest.py::

    from tests.browser_support import browser, page  # noqa: F401

``browser`` (one Chromium per test module) is skipped with its reason when the ``playwright``
package or a Chromium binary is missing (``.ci/run`` installs Debian's ``chromium``; never
``playwright install``: it downloads browsers from a CDN). ``page`` is a fresh 1280x800 page,
a :class:`GuardedPage`, whose teardown fails the test when the page logged a JavaScript error
(a console message of type error, including a resource that failed to load, or an uncaught
exception) or asked for any host but 127.0.0.1 / localhost (such requests are aborted, so an
offline page stays offline in tests too). Tests that need several pages open their own with
:func:`open_guarded_page` and call :meth:`GuardedPage.check` themselves.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}

# Schemes that never leave the browser: they cannot reach another host.
_LOCAL_SCHEMES = frozenset({"data", "blob", "about", "javascript"})
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

# Generous waits: the test machine is shared and loaded.
DEFAULT_TIMEOUT_MS = 30_000


def chromium_path() -> str | None:
    """The system Chromium to drive: ``$RAMNET_TEST_CHROMIUM``, /usr/bin/chromium, or
    ``chromium`` / ``chromium-browser`` on the PATH.

    Returns:
        The executable's path, or None when there is none.
    """
    candidates = [os.environ.get("RAMNET_TEST_CHROMIUM", ""), "/usr/bin/chromium"]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    return shutil.which("chromium") or shutil.which("chromium-browser")


def is_local_url(url: str) -> bool:
    """Whether a request for ``url`` stays on this machine (127.0.0.1, localhost, ::1, or a
    scheme such as data: that never reaches a network)."""
    parts = urlsplit(url)
    if parts.scheme in _LOCAL_SCHEMES:
        return True
    return (parts.hostname or "") in _LOCAL_HOSTS


@dataclass
class GuardedPage:
    """A Playwright page with what it did wrong recorded.

    Attributes:
        page: the Playwright ``Page``.
        folder: where :meth:`screenshot` saves its files.
        errors: console messages of type error and uncaught exceptions, in order.
        blocked: URLs of requests to another host, all aborted.
        requests: every URL the page asked for (local or not), in order.
    """

    page: Any
    folder: Path
    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Every JavaScript error and off-host request so far, one line each."""
        lines = [f"JavaScript error: {e}" for e in self.errors]
        lines += [f"request to another host (blocked): {u}" for u in self.blocked]
        return lines

    def check(self) -> None:
        """Fail the test when the page logged a JavaScript error or asked for another host.

        Raises:
            pytest.fail.Exception: naming every problem.
        """
        found = self.problems()
        if found:
            pytest.fail("the page misbehaved:\n" + "\n".join(found), pytrace=False)

    def phone_overflow(self) -> int:
        """How many pixels the page is wider than a 375 px phone screen (0: it fits; wide
        tables should scroll inside their own box, not the page); the viewport is put back.

        Returns:
            The page's width beyond the phone's, in CSS pixels.
        """
        previous = self.page.viewport_size or DESKTOP
        self.page.set_viewport_size(PHONE)
        excess = int(self.page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))
        self.page.set_viewport_size(previous)
        return max(0, excess)

    def screenshot(self, name: str, *, phone: bool = False) -> list[Path]:
        """Save the page as ``<name>.png`` at 1280x800 (and ``<name>-375.png`` at 375x812 with
        ``phone``) in :attr:`folder`; the viewport is put back afterwards.

        Args:
            name: the file name without extension.
            phone: also save a phone-width capture.

        Returns:
            The saved files.
        """
        saved = []
        previous = self.page.viewport_size or DESKTOP
        sizes = [("", DESKTOP)] + ([("-375", PHONE)] if phone else [])
        for suffix, size in sizes:
            self.page.set_viewport_size(size)
            path = self.folder / f"{name}{suffix}.png"
            self.page.screenshot(path=str(path), full_page=False)
            saved.append(path)
        self.page.set_viewport_size(previous)
        return saved


@contextlib.contextmanager
def open_guarded_page(browser: Any, folder: Path) -> Iterator[GuardedPage]:
    """Open a fresh 1280x800 page in its own browser context, recording its errors and
    aborting (and recording) every request to another host; closed when the block ends.

    Args:
        browser: a Playwright ``Browser``.
        folder: where the page's screenshots go.

    Yields:
        The :class:`GuardedPage`; the caller decides when to :meth:`~GuardedPage.check` it.
    """
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    guarded = GuardedPage(page, folder)

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            where = msg.location.get("url", "") if isinstance(msg.location, dict) else ""
            guarded.errors.append(f"{msg.text}" + (f" ({where})" if where else ""))

    def block(route: Any) -> None:
        guarded.blocked.append(route.request.url)
        route.abort("blockedbyclient")

    def block_socket(ws: Any) -> None:
        guarded.blocked.append(ws.url)
        ws.close()

    page.on("console", on_console)
    page.on("pageerror", lambda exc: guarded.errors.append(f"uncaught: {exc}"))
    context.on("request", lambda request: guarded.requests.append(request.url))
    # The context's route covers pages the page opens too; only off-host URLs are intercepted.
    context.route(lambda url: not is_local_url(url), block)
    # Web sockets are not HTTP requests: route them as well.
    context.route_web_socket(lambda url: not is_local_url(url), block_socket)
    try:
        yield guarded
    finally:
        context.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless system Chromium per test module (skipped when the playwright package or a
    Chromium binary is missing). Per module, not per session: Playwright's sync API keeps an
    event loop on the main thread while it runs, which must not outlive the browser tests."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -e '.[test]')")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium: install Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import expect

    # expect()'s retrying assertions wait as long as any other wait here (5 s by default).
    expect.set_options(timeout=DEFAULT_TIMEOUT_MS)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, tmp_path: Path) -> Iterator[GuardedPage]:
    """A fresh guarded 1280x800 page; fails the test at teardown when it logged a JavaScript
    error or asked for another host. Screenshots go to the test's ``tmp_path``."""
    with open_guarded_page(browser, tmp_path) as guarded:
        yield guarded
        guarded.check()
