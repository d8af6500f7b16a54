"""Long polls: a request held until the state it waits for is there, or its time is up.

Every state change of the coordinator calls ``Polls.notify``; a waiting request re-checks at once
then, and every ``RECHECK`` seconds for changes that come with time alone (a lease running out).
No request is held longer than ``MAX_WAIT`` seconds.

A poll served over HTTP waits in a worker thread only while few do (``POLLS_IN_THREADS``, the
cheapest way for a mesh at work); beyond, it waits on the event loop (``Polls.hold``): each check
runs in a worker thread and returns at once, and between checks the request only costs a future
that ``notify`` completes (``loop.call_soon_threadsafe``). Forty held polls used to fill the
server's thread pool, so that an honest request waited behind them for a minute. What one node
may hold open at once is capped (``per_node``), and so is the total (``total``): beyond either,
``PollLimitError`` (429, with the seconds to wait before trying again). A direct caller of the
coordinator (a test, the simulator) still waits in its own thread (``wait_for``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from ramnet._errors import RamnetError

__all__ = [
    "MAX_POLLS",
    "MAX_POLLS_PER_NODE",
    "MAX_WAIT",
    "RECHECK",
    "PollLimitError",
    "PollPending",
    "Polls",
]

T = TypeVar("T")

MAX_WAIT = 5.0  # longest a long poll is held, seconds
# A long poll re-checks this often even when nothing was notified (leases expire with time). Each
# check is a few SQLite queries: at 0.25 s an idle coordinator with 3 polling workers spent
# about 14 ms of CPU per second on them.
RECHECK = 1.0
#: Long polls one node may hold open at once (a worker holds one or two).
MAX_POLLS_PER_NODE = 4
#: Long polls held open at once in all.
MAX_POLLS = 1024
#: Long polls that wait in a worker thread at once (of Starlette's 40); the rest wait on the
#: event loop. A poll in a thread costs nothing between its checks; one on the loop a few trips
#: to a thread and back (measured: a few ms of the coordinator's CPU per job when every poll did).
POLLS_IN_THREADS = 16
#: What a refused poll is told to wait before trying again, seconds.
RETRY_AFTER = 1
#: A sweep of this many polls or more is followed by a pause as long as it took.
SWEEP_PAUSE_FROM = 32


class PollLimitError(RamnetError):
    """Too many long polls open: from this node, or in all.

    Attributes:
        retry_after: Seconds to wait before trying again (the ``Retry-After`` header).
    """

    http_status = 429
    retry_after = RETRY_AFTER


class PollPending(RamnetError):
    """Raised by ``wait_for`` inside ``Polls.attempt`` when what the poll waits for is not there
    yet and its time is not up: the request waits on the event loop, then runs again. It never
    reaches a client (if it did, 503: nothing was done)."""

    http_status = 503


class Polls:
    """The condition long polls wait on, the count of notifications that tells a poll whether it
    missed one while it was checking, and the count of polls each node holds.

    Args:
        per_node: Long polls one node may hold open at once.
        total: Long polls held open at once in all.
        in_threads: Long polls that may wait in a worker thread at once (``slot``).
    """

    def __init__(
        self,
        per_node: int = MAX_POLLS_PER_NODE,
        total: int = MAX_POLLS,
        in_threads: int = POLLS_IN_THREADS,
    ) -> None:
        self.changed = threading.Condition()
        self._changes = 0  # counts notifications, under ``changed``
        # Event-loop polls waiting for the next notification, under ``changed``.
        self._waiters: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = {}
        self._attempt = threading.local()
        # Polls waiting for the next sweep, and the loops whose sweeper runs (event loop only).
        self._queues: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        self._sweeping: set[asyncio.AbstractEventLoop] = set()
        self._sweepers: set[asyncio.Task[None]] = set()
        self._per_node = per_node
        self._total = total
        self._open: dict[str, int] = {}  # node -> polls held, under ``_open_lock``
        self._open_total = 0
        self._in_threads = in_threads
        self._threaded = 0  # polls waiting in a thread now, under ``_open_lock``
        self._open_lock = threading.Lock()

    def notify(self) -> None:
        """Wake every waiting poll: the state changed."""
        with self.changed:
            self._changes += 1
            self.changed.notify_all()
            waiters, self._waiters = self._waiters, {}
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for loop, future in waiters.values():
            by_loop.setdefault(loop, []).append(future)
        for loop, futures in by_loop.items():
            # One wake-up of each loop for all its polls (each call writes to its self-pipe).
            with contextlib.suppress(RuntimeError):  # a loop already closed: nobody waits
                loop.call_soon_threadsafe(_wake_all, futures)

    def wait_for(self, ready: Callable[[], T], wait: float) -> T:
        """Call ``ready()`` until it returns something truthy or ``wait`` seconds pass: again
        after every state change, and every ``RECHECK`` seconds for changes that come with time
        alone (a lease running out).

        Inside ``attempt`` (a poll held on the event loop) it checks once instead, and raises
        ``PollPending`` while the value is falsy and time is left.

        Args:
            ready: What the poll waits for; its last value is returned.
            wait: Seconds to wait at most (capped at ``MAX_WAIT``; 0 checks once).

        Returns:
            The first truthy value of ``ready()``, or its last value when time ran out.
        """
        held_until = getattr(self._attempt, "deadline", None)
        if held_until is not None:
            value = ready()
            if value or wait <= 0 or time.monotonic() >= held_until:
                return value
            raise PollPending()
        deadline = time.monotonic() + max(0.0, min(wait, MAX_WAIT))
        while True:
            # ready() runs outside the condition's lock: it may change state and notify (settle),
            # and holding the lock then would deadlock against a thread that settles and
            # notifies. A notification in between is not missed: the count shows it.
            with self.changed:
                seen = self._changes
            value = ready()
            left = deadline - time.monotonic()
            if value or left <= 0:
                return value
            with self.changed:
                if self._changes == seen:
                    self.changed.wait(min(left, RECHECK))

    def attempt(self, run: Callable[[], T], deadline: float) -> T:
        """Run ``run`` (a request that may long-poll) once, in this thread: its ``wait_for``
        checks once and raises ``PollPending`` if it would wait, until ``deadline``
        (``time.monotonic``)."""
        self._attempt.deadline = deadline
        try:
            return run()
        finally:
            self._attempt.deadline = None

    async def hold(
        self, run: Callable[[], T], wait: float, in_thread: Callable[..., Awaitable[Any]]
    ) -> T:
        """Serve a long poll from the event loop: ``run`` in a worker thread (``in_thread``)
        until it answers, waiting between tries for a notification or ``RECHECK`` seconds.

        The first try has a trip to a thread of its own (it checks the signature too); later
        tries, of every poll woken by the same notifications, run together in one trip
        (``_sweep``): a notification that wakes two hundred polls costs one trip, not two
        hundred, and notifications that come while a sweep runs are answered by the next.

        Args:
            run: The request; its ``wait_for`` raises ``PollPending`` while it would wait.
            wait: The poll's seconds (capped at ``MAX_WAIT``).
            in_thread: ``await in_thread(fn, *args)`` runs ``fn(*args)`` in a worker thread.

        Returns:
            ``run``'s answer.
        """
        deadline = time.monotonic() + max(0.0, min(wait, MAX_WAIT))
        with self.changed:
            seen = self._changes
        try:
            return await in_thread(self.attempt, run, deadline)  # type: ignore[no-any-return]
        except PollPending:
            pass
        while True:
            now = time.monotonic()
            # Rechecks that come with time alone fall on the same ticks for every poll (multiples
            # of RECHECK on the clock), so that they too are swept together.
            tick = RECHECK - now % RECHECK
            await self._changed_since(seen, max(0.0, min(deadline - now, tick)))
            outcome, value, seen = await self._sweep(run, deadline, in_thread)
            if outcome == "answer":
                return value  # type: ignore[no-any-return]
            if outcome == "error":
                raise value

    async def _sweep(
        self, run: Callable[[], Any], deadline: float, in_thread: Callable[..., Awaitable[Any]]
    ) -> tuple[str, Any, int]:
        # Joins the next sweep of this loop: (outcome, value, the notification count before).
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[str, Any, int]] = loop.create_future()
        queue = self._queues.setdefault(loop, [])
        queue.append((run, deadline, future))
        if len(queue) == 1 and loop not in self._sweeping:
            self._sweeping.add(loop)
            task = loop.create_task(self._sweeper(loop, in_thread))
            self._sweepers.add(task)  # held until done: the loop keeps only a weak reference
            task.add_done_callback(self._sweepers.discard)
        return await future

    async def _sweeper(
        self, loop: asyncio.AbstractEventLoop, in_thread: Callable[..., Awaitable[Any]]
    ) -> None:
        try:
            while self._queues.get(loop):
                batch = self._queues.pop(loop)
                started = time.monotonic()
                try:
                    seen, outcomes = await in_thread(self._run_batch, batch)
                except BaseException as exc:  # the thread trip itself failed: tell every poll
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    raise
                for (_, _, future), (outcome, value) in zip(batch, outcomes, strict=True):
                    if not future.done():
                        future.set_result((outcome, value, seen))
                took = time.monotonic() - started
                if len(batch) >= SWEEP_PAUSE_FROM:
                    # A sweep of many polls (hundreds held open) is followed by as long a pause,
                    # so that polls never take more than half of the server from other requests;
                    # a few polls (a mesh at work) are never held back.
                    await asyncio.sleep(took)
        finally:
            self._sweeping.discard(loop)

    def _run_batch(
        self, batch: list[tuple[Callable[[], Any], float, Any]]
    ) -> tuple[int, list[tuple[str, Any]]]:
        with self.changed:
            seen = self._changes
        outcomes: list[tuple[str, Any]] = []
        for run, deadline, _ in batch:
            try:
                outcomes.append(("answer", self.attempt(run, deadline)))
            except PollPending:
                outcomes.append(("pending", None))
            except Exception as exc:
                outcomes.append(("error", exc))
        return seen, outcomes

    async def _changed_since(self, seen: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self.changed:
            if self._changes != seen:
                return
            self._waiters[id(future)] = (loop, future)
        # A timer completes the same future: cheaper than asyncio.wait_for, which wraps it in a
        # task of its own on every wait.
        timer = loop.call_later(timeout, _wake, future)
        try:
            await future
        finally:
            timer.cancel()
            with self.changed:
                self._waiters.pop(id(future), None)

    @contextlib.contextmanager
    def slot(self, node: str) -> Iterator[bool]:
        """Hold one of ``node``'s long-poll slots while in the block.

        Yields:
            Whether the poll may wait in its thread (``wait_for``), as every poll did before:
            the cheapest way for the few polls of a mesh at work. Only ``in_threads`` polls at
            once may (a fraction of the server's threads); the others wait on the event loop
            (``hold``).

        Raises:
            PollLimitError: The node holds ``per_node`` polls already, or ``total`` are open.
        """
        with self._open_lock:
            held = self._open.get(node, 0)
            if held >= self._per_node:
                raise PollLimitError(
                    f"node {node[:16]} already holds {held} long polls (at most "
                    f"{self._per_node}); retry in {RETRY_AFTER} s"
                )
            if self._open_total >= self._total:
                raise PollLimitError(
                    f"{self._open_total} long polls are open (at most {self._total}); "
                    f"retry in {RETRY_AFTER} s"
                )
            self._open[node] = held + 1
            self._open_total += 1
            threaded = self._threaded < self._in_threads
            self._threaded += threaded
        try:
            yield threaded
        finally:
            with self._open_lock:
                self._threaded -= threaded
                self._open_total -= 1
                left = self._open[node] - 1
                if left:
                    self._open[node] = left
                else:
                    del self._open[node]

    def open_polls(self) -> int:
        """Long polls held open now (over HTTP)."""
        with self._open_lock:
            return self._open_total


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _wake_all(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        _wake(future)
