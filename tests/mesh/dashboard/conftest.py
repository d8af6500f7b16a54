"""The dashboard's browser tests use the shared Chromium fixture (tests/browser_support.py)."""

from tests.browser_support import browser

__all__ = ["browser"]
