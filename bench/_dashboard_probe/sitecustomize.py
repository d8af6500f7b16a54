"""bench_dashboard.py --attribute: the CPU a coordinator spends in the dashboard's own code,
counted inside it. Python imports this module at start-up when its folder is on PYTHONPATH; it
does something only in a `coordinator` process with RAMNET_BENCH_PROBE set (a file path).

It wraps, with the calling thread's CPU clock (``time.thread_time``, to the nanosecond):
the poller's read of the state's fingerprint, the reads of what changed, the renders, each
stream's batch of events, and the writes of the event streams' bytes (uvicorn's ``send`` for
/dashboard/events, which returns without waiting while the socket takes the bytes). What it
does not see: the event loop waking each stream's task and the thread hand-offs, which the
whole-process comparison includes. Every 0.2 s it writes {name: [calls, seconds]} to the file.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
from typing import Any

_COUNTS: dict[str, list[float]] = {}


def _count(name: str, seconds: float) -> None:
    found = _COUNTS.setdefault(name, [0, 0.0])
    found[0] += 1
    found[1] += seconds


def _wrap(owner: Any, attribute: str, name: str) -> None:
    original = getattr(owner, attribute)

    @functools.wraps(original)
    def counted(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            _count(name, time.thread_time() - start)

    setattr(owner, attribute, counted)


def _install(path: str) -> None:
    from uvicorn.protocols.http import httptools_impl

    from ramnet.mesh.coordinator.dashboard import feed, render, view
    from ramnet.mesh.protocol.routes import page_url

    _wrap(view.Reader, "fingerprint", "fingerprint")
    _wrap(view.Reader, "overview", "read")
    _wrap(render.SectionCache, "render", "render")
    _wrap(feed.Feed, "_batch", "batch")
    events = page_url("dashboard_events")
    cycle = httptools_impl.RequestResponseCycle
    send = cycle.send

    async def counted_send(self: Any, message: Any) -> None:
        if self.scope.get("path") != events:
            return await send(self, message)
        start = time.thread_time()
        try:
            return await send(self, message)
        finally:
            _count("send", time.thread_time() - start)

    cycle.send = counted_send  # type: ignore[method-assign]

    def dump() -> None:
        while True:
            time.sleep(0.2)
            with open(path + ".tmp", "w") as out:
                json.dump(_COUNTS, out)
            os.replace(path + ".tmp", path)

    threading.Thread(target=dump, name="bench-probe", daemon=True).start()


if "coordinator" in sys.argv and os.environ.get("RAMNET_BENCH_PROBE"):
    _install(os.environ["RAMNET_BENCH_PROBE"])
