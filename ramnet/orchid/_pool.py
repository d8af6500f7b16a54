"""One persistent pool of worker threads, shared by every parallel part of RAMNET.

Starting threads costs tens of microseconds each; kernels that take a millisecond (hashing a
matrix, a field reduction, a small GEMM) would spend a good part of it there. The pool grows to the
largest thread count asked for and lives for the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_PREFIX = "ramnet-pool"
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_size = 0


def _executor(threads: int) -> ThreadPoolExecutor:
    global _pool, _size
    with _lock:
        if _pool is None or _size < threads:
            # The outgrown pool is not shut down: a concurrent caller may still submit to it.
            # Its idle threads exit once it is garbage collected.
            _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=_PREFIX)
            _size = threads
        return _pool


def parallel_map(fn: Callable[[T], R], items: Sequence[T] | Iterable[T], threads: int) -> list[R]:
    """Apply ``fn`` to every item on up to ``threads`` threads; results in input order.

    Runs inline when one thread (or one item) is enough. Exceptions propagate from the first
    failing item, after every item has finished.
    """
    items = list(items)
    # Inside one of the pool's own threads (a hook, a nested call), waiting on the pool could
    # wait on ourselves: run inline instead.
    nested = threading.current_thread().name.startswith(_PREFIX)
    if threads <= 1 or len(items) <= 1 or nested:
        return [fn(x) for x in items]
    # The calling thread works too, so at most threads - 1 helpers are woken.
    pool = _executor(threads - 1)
    futures: list[Future[R]] = [pool.submit(fn, x) for x in items[1:]]
    first_error: BaseException | None = None
    results: list[R] = []
    try:
        results.append(fn(items[0]))
    except BaseException as exc:
        first_error = exc
    for future in futures:
        try:
            results.append(future.result())
        except BaseException as exc:
            first_error = first_error or exc
    if first_error is not None:
        raise first_error
    return results
