"""A background thread that runs the coordinator's deferred blob work when it falls due.

The coordinator defers writing a revealed shard's result: a job that settles first stores C and
never needs the partials on disk, and writing 200 MiB of partials that are deleted a moment later
cost a 4096 job most of its coordinator time. Tasks run one at a time, in due order; ``flush``
runs a set of them now (a job going to a dispute needs its partials on disk), and ``close`` runs
all that are left.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

__all__ = ["WriteBehind"]

Task = Callable[[], None]
Report = Callable[[BaseException], None]


class WriteBehind:
    """Deferred tasks on one thread.

    Args:
        report: Called with any exception a task raises (the thread goes on).
    """

    def __init__(self, report: Report | None = None) -> None:
        self._report: Report = report or (lambda exc: None)
        self._queue: list[tuple[float, int, str, Task]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._running = threading.Lock()  # held while a task runs
        self._closed = False
        self._busy = False  # the thread is running a task
        self._thread = threading.Thread(target=self._loop, name="ramnet-write-behind", daemon=True)
        self._thread.start()

    def schedule(self, delay: float, key: str, task: Task) -> None:
        """Run ``task`` ``delay`` seconds from now; ``key`` names it for ``flush``.

        Raises:
            RuntimeError: After ``close``.
        """
        with self._changed:
            if self._closed:
                raise RuntimeError("the write-behind thread is closed")
            heapq.heappush(
                self._queue, (time.monotonic() + max(0.0, delay), next(self._order), key, task)
            )
            self._changed.notify()

    def flush(self, key: str) -> None:
        """Run every pending task scheduled under ``key`` now, in this thread."""
        with self._changed:
            mine = [item for item in self._queue if item[2] == key]
            self._queue = [item for item in self._queue if item[2] != key]
            heapq.heapify(self._queue)
        for _, _, _, task in sorted(mine):
            self._run(task)

    def pending(self, key: str) -> int:
        """How many tasks under ``key`` have not run yet."""
        with self._changed:
            return sum(1 for item in self._queue if item[2] == key)

    def wait_due(self, timeout: float = 30.0) -> bool:
        """Wait until every task due by now has run. Returns False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                now = time.monotonic()
                due = any(item[0] <= now for item in self._queue)
                if not due and not self._busy:
                    return True
                if now >= deadline:
                    return False
                self._changed.wait(min(0.05, deadline - now))

    def close(self) -> None:
        """Run every pending task now, then stop the thread."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._changed:
                while True:
                    if self._queue and (self._closed or self._queue[0][0] <= time.monotonic()):
                        task = heapq.heappop(self._queue)[3]
                        self._busy = True
                        break
                    if self._closed:
                        return
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._changed.wait(timeout)
            try:
                self._run(task)
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()

    def _run(self, task: Task) -> None:
        with self._running:
            try:
                task()
            except Exception as exc:  # one failed write must not stop the others
                self._report(exc)
