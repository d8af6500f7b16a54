"""One persistent pool of worker threads, shared by every parallel part of RAMNET, and how many
threads a call uses by default.

Starting threads costs tens of microseconds each; kernels that take a millisecond (hashing a
matrix, a field reduction, a small GEMM) would spend a good part of it there. The pool grows to the
largest thread count asked for and lives for the process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from queue import SimpleQueue
from typing import TypeVar

from ramnet._errors import InvalidInputError

T = TypeVar("T")
R = TypeVar("R")


def check_threads(threads: int | None) -> int:
    """Return a valid thread count: ``threads``, or every core when None.

    Raises:
        InvalidInputError: Not a positive integer.
    """
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidInputError(f"threads must be a positive integer, got {threads!r}")
    return threads


def default_threads() -> int:
    """The number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


_PREFIX = "ramnet-pool"
_lock = threading.Lock()
_tasks: SimpleQueue[Callable[[], None]] = SimpleQueue()
_size = 0


def _work() -> None:
    while True:
        _tasks.get()()


def _grow(threads: int) -> None:
    """Start pool threads until there are ``threads`` of them.

    Plain daemon threads on one queue rather than a ``concurrent.futures`` executor: that module
    (and the logging it imports) cost every command a few milliseconds of start-up, and the pool
    needs none of its futures."""
    global _size
    with _lock:
        while _size < threads:
            _size += 1
            threading.Thread(target=_work, name=f"{_PREFIX}-{_size}", daemon=True).start()


def parallel_map(fn: Callable[[T], R], items: Sequence[T] | Iterable[T], threads: int) -> list[R]:
    """Apply ``fn`` to every item on up to ``threads`` threads; results in input order.

    The calling thread works too, and every thread takes the next item as it becomes free, so
    uneven items balance out. Runs inline when one thread (or one item) is enough. The first
    exception is raised once every thread has stopped.
    """
    items = list(items)
    # Inside one of the pool's own threads (a hook, a nested call), waiting on the pool could
    # wait on ourselves: run inline instead.
    nested = threading.current_thread().name.startswith(_PREFIX)
    workers = min(threads, len(items))
    if workers <= 1 or nested:
        return [fn(x) for x in items]
    results: list[R | None] = [None] * len(items)
    errors: list[BaseException] = []
    cursor = iter(range(len(items)))
    take = threading.Lock()

    def drain() -> None:
        while not errors:
            with take:
                index = next(cursor, None)
            if index is None:
                return
            try:
                results[index] = fn(items[index])
            except BaseException as exc:
                errors.append(exc)

    finished = threading.Semaphore(0)

    def helper() -> None:
        try:
            drain()
        finally:
            finished.release()

    _grow(workers - 1)
    for _ in range(workers - 1):
        _tasks.put(helper)
    drain()
    for _ in range(workers - 1):
        finished.acquire()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]
