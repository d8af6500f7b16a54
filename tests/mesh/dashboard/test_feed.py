"""The live updates: one poller for every open dashboard, each stream sending only the sections
that changed, rendering once per state, silence kept alive, and every stream ended when the
server stops."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from ramnet.mesh.coordinator.dashboard.feed import Feed, sse_event


async def _offload(call: Callable[[], Any]) -> Any:
    return call()


class FakeState:
    def __init__(self) -> None:
        self.version = 0
        self.reads = 0
        self.renders = 0
        self.sections = {"nodes": "<p>n0</p>", "jobs": "<p>j0</p>"}

    def fingerprint(self) -> str:
        self.reads += 1
        return f"v{self.version}"

    def render(self, view: str | None) -> tuple[str, dict[str, str]]:
        self.renders += 1
        return f"v{self.version}", dict(self.sections)


def _parse(event: bytes) -> tuple[str, str]:
    lines = event.decode().strip().split("\n")
    name = next(line[len("event: ") :] for line in lines if line.startswith("event: "))
    data = "\n".join(line[len("data: ") :] for line in lines if line.startswith("data: "))
    return name, data


def test_sse_event_frames_every_line() -> None:
    event = sse_event("jobs", "<ul>\n<li>a</li>\r\n</ul>", "f00")
    assert event == b"event: jobs\nid: f00\ndata: <ul>\ndata: <li>a</li>\ndata: </ul>\n\n"


def test_streams_get_changed_sections_and_share_one_render() -> None:
    state = FakeState()
    stopping = threading.Event()

    async def scenario() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        feed = Feed(state.fingerprint, state.render, _offload, stopping=stopping, poll_s=0.01)
        first = feed.stream(None, "v0")
        second = feed.stream(None, "v0")
        assert (await anext(first)).startswith(b"retry:")
        assert (await anext(second)).startswith(b"retry:")
        got_first: list[tuple[str, str]] = []
        got_second: list[tuple[str, str]] = []
        wait_first = asyncio.ensure_future(anext(first))
        wait_second = asyncio.ensure_future(anext(second))
        await asyncio.sleep(0.05)
        assert not wait_first.done()  # nothing changed since the page was rendered
        state.version = 1
        state.sections["jobs"] = "<p>j1</p>"
        got_first.append(_parse(await asyncio.wait_for(wait_first, 5)))
        got_second.append(_parse(await asyncio.wait_for(wait_second, 5)))
        # A fresh stream sends every section; these two had sent none yet.
        got_first.append(_parse(await asyncio.wait_for(anext(first), 5)))
        got_second.append(_parse(await asyncio.wait_for(anext(second), 5)))
        assert state.renders == 1  # once for both
        state.version = 2
        state.sections["nodes"] = "<p>n2</p>"
        got_first.append(_parse(await asyncio.wait_for(anext(first), 5)))
        stopping.set()
        rest = [event async for event in first]
        assert all(not event.startswith(b"event:") for event in rest)
        await second.aclose()
        assert feed.streams == 0
        return got_first, got_second

    got_first, got_second = asyncio.run(scenario())
    assert dict(got_first[:2]) == {"nodes": "<p>n0</p>", "jobs": "<p>j1</p>"}
    assert dict(got_second) == dict(got_first[:2])
    assert got_first[2] == ("nodes", "<p>n2</p>")  # only the section that changed


def test_nothing_polls_while_no_dashboard_is_open() -> None:
    state = FakeState()

    async def scenario() -> None:
        feed = Feed(state.fingerprint, state.render, _offload, poll_s=0.01)
        await asyncio.sleep(0.1)
        assert state.reads == 0
        stream = feed.stream(None, "v0")
        await anext(stream)
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.1)
        assert state.reads > 1
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await stream.aclose()
        await asyncio.sleep(0.05)
        reads = state.reads
        await asyncio.sleep(0.1)
        assert state.reads == reads

    asyncio.run(scenario())


def test_silence_is_kept_alive(monkeypatch: Any) -> None:
    from ramnet.mesh.coordinator.dashboard import feed as feed_module

    monkeypatch.setattr(feed_module, "KEEPALIVE_S", 0.05)
    state = FakeState()

    async def scenario() -> bytes:
        feed = Feed(state.fingerprint, state.render, _offload, poll_s=0.01)
        stream = feed.stream(None, "v0")
        await anext(stream)
        event = await asyncio.wait_for(anext(stream), 5)
        await stream.aclose()
        return event

    assert asyncio.run(scenario()) == b": keep-alive\n\n"
