"""A coordinator served by uvicorn in a thread of the test process, on 127.0.0.1."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from ramnet.mesh import Coordinator, create_app
from ramnet.mesh._coordinator import http_protocol
from tests.mesh_procs import free_port


@contextlib.contextmanager
def served(coordinator: Coordinator) -> Iterator[str]:
    """Serve ``coordinator`` until the block ends (then close it); yields its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(coordinator),
            host="127.0.0.1",
            port=port,
            log_level="error",
            http=http_protocol(coordinator.config.max_body),
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        coordinator.close()
