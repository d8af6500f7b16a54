"""The dashboard's live updates: one poller shared by every open dashboard, and each dashboard's
stream of server-sent events.

While at least one dashboard is open, one thread reads the state's fingerprint
(``dashboard_queries.fingerprint``, a few aggregates) every ``POLL_S`` seconds; an unchanged state
costs the event loop nothing (no task woken, no thread handed work). When it changes, every stream
wakes; the sections it shows are rendered once per state for all of them (``Feed.sections``,
cached by fingerprint) and each stream sends only the sections whose HTML changed since it last
sent them, each section's event encoded once for all, and the whole write made once for every
stream that showed the same state. The rows a change reads and renders do not grow with the
coordinator's past: only what depends on the part of the state that changed is read again
(``read_overview(since=...)``: a job's shards moving reads the jobs and the nodes, not the
ledger), and only the rows that changed are rendered again (``render.rows``); the counts a change
needs are kept by triggers (``state/counts.py``), and the parts that still grow with the past
are named in docs/mesh.md. With no dashboard
open nothing polls, so a coordinator that nobody watches pays nothing.

A stream ends when its client goes, or when the server stops (``stopping``): an open dashboard
must not hold a shutdown for its grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

__all__ = ["KEEPALIVE_S", "POLL_S", "Feed", "sse_event"]

#: Seconds between two reads of the state's fingerprint while a dashboard is open: a change
#: shows within about this (the live update's delay), and a burst of changes (a job's shards
#: claimed, committed, revealed) is drawn once per interval.
POLL_S = 0.5
#: Seconds of silence after which a stream sends a comment (a proxy keeps it open, and a client
#: that went is noticed).
KEEPALIVE_S = 15.0
#: Milliseconds a browser waits before it reconnects a stream that broke.
RETRY_MS = 1000
#: Rendered states kept per view (the newest only is served; one more absorbs a race).
_KEPT = 8

T = TypeVar("T")
Offload = Callable[[Callable[[], T]], Awaitable[T]]
Sections = dict[str, str]


def sse_event(name: str, data: str, event_id: str | None = None) -> bytes:
    """One server-sent event: ``event:``, ``id:`` and one ``data:`` line per line of ``data``.

    Args:
        name: The event's name (what an ``sse-swap`` attribute names).
        data: Its data (an HTML fragment).
        event_id: Its id (a browser sends it back as ``Last-Event-ID`` when it reconnects).

    Returns:
        The event's bytes, blank line included.
    """
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.replace("\r", "").split("\n")]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


class Feed:
    """The shared poller and the streams it wakes (see the module's docstring).

    Args:
        fingerprint: Reads the state's fingerprint (blocking; run in the poller's thread).
        render: View key (None: the main page; a job id: its page) -> (the fingerprint of the
            state it read, its sections' HTML). Blocking; run in a worker thread.
        offload: Runs a blocking call in a worker thread (Starlette's ``run_in_threadpool``).
        stopping: Set when the server stops: every stream ends.
        poll_s: Seconds between two reads of the fingerprint.
        patch: (a section's HTML as a page shows it, its HTML now) -> the rows that changed,
            marked for htmx to swap in place (sent as one ``patch`` event), or None: the
            section is sent whole (``render.patch``; by default every change is sent whole).
        watch: A cheap token that changes whenever the state may have changed, called in the
            poller's thread (``Reader.data_version``: SQLite's count of other connections'
            commits); while it holds, the fingerprint is not read. None: read at every poll.
    """

    def __init__(
        self,
        fingerprint: Callable[[], str],
        render: Callable[[str | None], tuple[str, Sections]],
        offload: Offload[object],
        *,
        stopping: threading.Event | None = None,
        poll_s: float = POLL_S,
        patch: Callable[[str | None, str], str | None] | None = None,
        watch: Callable[[], object] | None = None,
    ) -> None:
        self._fingerprint = fingerprint
        self._render = render
        self._offload = offload
        self._stopping = stopping or threading.Event()
        self._poll_s = poll_s
        self._patch = patch
        self._watch = watch
        self.current: str | None = None
        self.streams = 0
        self._changed: asyncio.Event | None = None
        self._poller: threading.Thread | None = None
        self._lock = threading.Lock()
        self._cache: dict[str | None, tuple[str, Sections]] = {}
        # Each section's event as of the cached state, encoded once for every stream.
        self._events: dict[tuple[str | None, str], tuple[str, str, bytes]] = {}
        self._rendering: dict[str | None, asyncio.Lock] = {}
        self._batches: dict[tuple[str | None, str, int], tuple[Sections, bytes]] = {}

    @property
    def stopping(self) -> bool:
        """Whether the server is stopping."""
        return self._stopping.is_set()

    async def _read(self) -> str:
        found = await self._offload(self._fingerprint)
        assert isinstance(found, str)
        return found

    def _poll(self, loop: asyncio.AbstractEventLoop) -> None:
        # The poller's thread, while a stream is open. The streams wait on ``_changed``, replaced
        # at each change (on the loop) so that every waiter wakes once.
        token: object = None
        try:
            while True:
                with self._lock:
                    if self.streams <= 0 or self.stopping:
                        self._poller = None  # a stream opening now starts another poller
                        return
                if self._stopping.wait(self._poll_s):
                    continue
                if self._watch is not None:
                    # Nothing written since the last poll: the fingerprint is as it was.
                    seen, token = token, self._watch()
                    if seen is not None and seen == token:
                        continue
                found = self._fingerprint()
                if found != self.current:
                    self.current = found
                    self._notify(loop)
        finally:
            self._notify(loop)

    def _notify(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        if changed is not None:
            changed.set()

    async def _start(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        if self._poller is None:
            # Idle until now: what the poller last saw may be long gone.
            self.current = await self._read()
            with self._lock:
                if self._poller is None:
                    self._poller = threading.Thread(
                        target=self._poll,
                        args=(asyncio.get_running_loop(),),
                        name="dashboard-poller",
                        daemon=True,
                    )
                    self._poller.start()
        return self._changed

    async def sections(self, view: str | None) -> tuple[str, Sections]:
        """A view's sections as of the newest state, rendered once for every stream showing it.

        Args:
            view: None (the main page) or a job id.

        Returns:
            (the fingerprint of the state rendered, section name -> HTML).

        Raises:
            RamnetError: The view cannot be read (no such job).
        """
        lock = self._rendering.setdefault(view, asyncio.Lock())
        async with lock:
            cached = self._cache.get(view)
            if cached is not None and cached[0] == self.current:
                return cached
            found = await self._offload(lambda: self._render(view))
            assert isinstance(found, tuple)
            if len(self._cache) >= _KEPT:
                self._cache.clear()
                self._events.clear()
            self._cache[view] = found
            return found

    def _event(self, view: str | None, state: str, name: str, html: str) -> bytes:
        # A section's event as of ``state``, encoded by the first stream that sends it and kept
        # for the others (only the newest state's are kept).
        key = (view, name)
        known = self._events.get(key)
        if known is not None and known[0] == state and known[1] is html:
            return known[2]
        event = sse_event(name, html, state)
        self._events[key] = (state, html, event)
        return event

    def _batch(self, view: str | None, state: str, sections: Sections, sent: Sections) -> bytes:
        # What a stream that shows ``sent`` is sent for ``sections``: every changed section in
        # one write (one wake-up per stream per change). A section where only rows changed goes
        # as those rows (one ``patch`` event for all), so that a page swaps a row, not a table.
        # Streams showing the same state share ``sent`` (the sections they were sent): the
        # batch is made once for all of them.
        key = (view, state, id(sent))
        known = self._batches.get(key)
        if known is not None and known[0] is sent:
            return known[1]
        events: list[bytes] = []
        rows: list[str] = []
        for name, html in sections.items():
            if sent.get(name) == html:
                continue
            swap = None if self._patch is None else self._patch(sent.get(name), html)
            if swap is None:
                events.append(self._event(view, state, name, html))
            elif swap:
                rows.append(swap)
        if rows:
            events.append(sse_event("patch", "\n".join(rows), state))
        batch = b"".join(events)
        if len(self._batches) >= _KEPT:
            self._batches.clear()
        self._batches[key] = (sent, batch)  # ``sent`` kept alive: its id is not reused
        return batch

    async def stream(self, view: str | None, since: str | None) -> AsyncIterator[bytes]:
        """One dashboard's events: each section whose HTML changed, as the state changes.

        Args:
            view: None (the main page) or a job id.
            since: The fingerprint of the state the page was rendered from (its query's
                ``since``, or the ``Last-Event-ID`` of a reconnecting browser): nothing is sent
                until the state differs from it.

        Yields:
            Server-sent events (bytes); a comment every ``KEEPALIVE_S`` seconds of silence.
        """
        self.streams += 1
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            changed = await self._start()
            seen = since
            sent: Sections = {}
            if since is not None and since == self.current:
                # The page shows this state: what it shows is what is sent, so the first change
                # sends only the sections it changed (rendered once for every page opened so).
                sent = (await self.sections(view))[1]
            while not self.stopping:
                if self.current != seen:
                    state, sections = await self.sections(view)
                    batch = self._batch(view, state, sections, sent)
                    if batch:
                        yield batch
                    sent, seen = sections, self.current
                    continue
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(changed.wait(), KEEPALIVE_S)
                    changed = self._changed or changed
                    continue
                yield b": keep-alive\n\n"
                changed = self._changed or changed
        finally:
            self.streams -= 1
