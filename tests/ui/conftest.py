"""Fixtures of the ``ramnet ui`` tests: the app on Starlette's TestClient, with the runners of
``ramnet run`` (as ``ramnet ui`` hands them in) and a node key in the test's folder."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The shared real-browser fixtures (one system Chromium per module, guarded pages).
from tests.browser_support import browser, page

__all__ = ["browser", "page"]


def make_app(tmp_path: Path, runners: Any = None, hosts: frozenset[str] | None = None) -> Any:
    """The UI app with its files under ``tmp_path`` (``runners``: the real ones by default)."""
    from ramnet.commands import _node
    from ramnet.commands.ui import _runners
    from ramnet.ui import UiConfig, create_app

    key_file = tmp_path / "node.key"
    settings = _node.settings(key_file=str(key_file), threads=2)
    config = UiConfig(
        runners=runners or _runners(settings),
        work_dir=tmp_path / "work",
        key_file=key_file,
        ramnet_argv=[sys.executable, "-m", "ramnet.cli"],
        allowed_hosts=hosts,
    )
    return create_app(config)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    application = make_app(tmp_path)
    yield application
    application.state.ui.worker.close()


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    from starlette.testclient import TestClient

    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


HTMX = {"HX-Request": "true"}


def wait_task(app: Any, task_id: str, timeout: float = 120.0) -> Any:
    """The task once it finished (generous: the test machine is shared)."""
    task = app.state.ui.tasks.get(task_id)
    deadline = time.monotonic() + timeout
    while not task.finished:
        assert time.monotonic() < deadline, f"task {task_id} still {task.state}: {task.progress}"
        time.sleep(0.05)
    return task


def started_task_id(html: str) -> str:
    """The task id in a started task's panel."""
    import re

    found = re.search(r'id="task-([0-9a-f]{16})"', html)
    assert found, html
    return found.group(1)
