"""A coordinator served by uvicorn in a thread of the test process, on 127.0.0.1."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from ramnet.mesh.coordinator.app import create_app, http_protocol
from ramnet.mesh.coordinator.service import Coordinator
from tests.mesh_procs import free_port


@contextlib.contextmanager
def serve_app(app: Any, http: Any = "auto") -> Iterator[int]:
    """Serve an ASGI ``app`` with uvicorn in a thread on 127.0.0.1 until the block ends; yields
    its port."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", http=http)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def served(coordinator: Coordinator) -> Iterator[str]:
    """Serve ``coordinator`` until the block ends (then close it); yields its URL."""
    try:
        with serve_app(create_app(coordinator), http_protocol(coordinator.config.max_body)) as port:
            yield f"http://127.0.0.1:{port}"
    finally:
        coordinator.close()
