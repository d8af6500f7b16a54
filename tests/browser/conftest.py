"""Browser tests: the shared Chromium fixtures (tests/browser_support.py)."""

from tests.browser_support import browser, page

__all__ = ["browser", "page"]
