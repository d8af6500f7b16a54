"""Long work off the request: each job or verification runs in its own thread as a ``Task``,
whose progress a page follows over server-sent events (``ramnet.ui.events``)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Tasks kept for their result pages and downloads; the oldest finished ones go first.
KEEP = 64


@dataclass
class Task:
    """One piece of long work.

    Attributes:
        task_id: 16 random hex digits: names the task in its URLs.
        kind: ``sovereign``, ``mesh`` or ``verify`` (which template shows it).
        state: ``running``, ``done`` or ``failed``.
        progress: The latest progress, as the work reported it (a JSON-ready dict).
        result: The work's return value once ``done``.
        error: One line once ``failed``.
        files: Downloadable files the work wrote, by name (``c``, ``trace``): only these are
            ever served.
        version: Grows with every change, so a follower sends only what is new.
    """

    task_id: str
    kind: str
    state: str = "running"
    progress: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    version: int = 0
    _changed: threading.Condition = field(default_factory=threading.Condition, repr=False)

    @property
    def finished(self) -> bool:
        """Whether the work ended (``done`` or ``failed``)."""
        return self.state != "running"

    def report(self, **progress: Any) -> None:
        """Record progress (called from the work's thread)."""
        with self._changed:
            self.progress = {**self.progress, **progress}
            self.version += 1
            self._changed.notify_all()

    def wait_change(self, seen: int, timeout: float) -> int:
        """Block until ``version`` passes ``seen`` or ``timeout`` seconds pass.

        Args:
            seen: The version the caller has shown.
            timeout: Seconds to wait at most.

        Returns:
            The current version.
        """
        with self._changed:
            self._changed.wait_for(lambda: self.version != seen, timeout=timeout)
            return self.version

    def _finish(self, state: str, result: Any = None, error: str | None = None) -> None:
        with self._changed:
            self.state, self.result, self.error = state, result, error
            self.version += 1
            self._changed.notify_all()


class Tasks:
    """The tasks of one UI process, each run in a daemon thread.

    Args:
        describe: Turns an exception that ended a task into its one-line error.
    """

    def __init__(self, describe: Callable[[BaseException], str]) -> None:
        self._describe = describe
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()

    def start(self, kind: str, work: Callable[[Task], Any]) -> Task:
        """Run ``work(task)`` in a new thread and return its task at once.

        Args:
            kind: The task's kind (see ``Task``).
            work: The work; it reports progress through ``task.report`` and may add
                ``task.files``; what it returns becomes ``task.result``.

        Returns:
            The running task.
        """
        task = Task(os.urandom(8).hex(), kind)
        with self._lock:
            self._forget_old()
            self._tasks[task.task_id] = task
        threading.Thread(
            target=self._run, args=(task, work), name=f"ui-{kind}", daemon=True
        ).start()
        return task

    def get(self, task_id: str) -> Task | None:
        """The task called ``task_id``, or None."""
        with self._lock:
            return self._tasks.get(task_id)

    def _run(self, task: Task, work: Callable[[Task], Any]) -> None:
        try:
            result = work(task)
        except BaseException as exc:
            task._finish("failed", error=self._describe(exc))
        else:
            task._finish("done", result=result)

    def _forget_old(self) -> None:
        finished = [t for t in self._tasks.values() if t.finished]
        for task in finished[: max(0, len(self._tasks) - KEEP + 1)]:
            del self._tasks[task.task_id]
