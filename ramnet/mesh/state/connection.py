"""The state store's SQLite connections: one per thread, write transactions, read snapshots.

Durability. ``synchronous=FULL`` (the default here): in WAL mode SQLite then fsyncs the WAL at
every commit, so a transaction that returned is on disk even across a power cut. ``NORMAL`` only
fsyncs at checkpoints: still safe against a *process* crash (the WAL is in the OS page cache), but
the last transactions can vanish on power loss. The ledger moves money and workers act on what
the coordinator told them, so losing an acknowledged commit is worse than one fsync per commit
(the coordinator commits per shard event, a few per second). ``Store(path, synchronous="NORMAL")``
trades that away where it does not matter (tests, benchmarks).

Threads. Each thread gets its own connection (a thread-local; SQLite connections must not be
shared across threads mid-transaction), so readers run in parallel on WAL snapshots. Writes take
one in-process lock and then ``BEGIN IMMEDIATE``: in-process writers queue on the lock instead of
spinning in SQLite's busy handler, and another process writing the same file (an operator's CLI)
is waited for up to ``busy_timeout_ms``. An async server should call the store from a worker
thread (``anyio.to_thread.run_sync`` / Starlette's ``run_in_threadpool``): each call is short,
but a commit fsyncs, which must not stall the event loop.

Transactions. ``transaction()`` is one write transaction; nested blocks are savepoints, so an
error inside one undoes only that block if the caller catches it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from ramnet.mesh.state.errors import StoreError

__all__ = ["Connections"]


class _Local(threading.local):
    conn: sqlite3.Connection | None = None
    depth: int = 0


class Connections:
    """A database file's connections, one per thread, in WAL mode (see the module docstring).

    Args:
        path: The database file (created on first use; its folder must exist).
        synchronous: ``"FULL"`` or ``"NORMAL"`` (already checked by the caller).
        busy_timeout_ms: How long to wait for another process's write lock.
    """

    def __init__(
        self, path: Path, synchronous: Literal["FULL", "NORMAL"], busy_timeout_ms: int
    ) -> None:
        self.path = path
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._local = _Local()
        self._write_lock = threading.RLock()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._closed = False

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use).

        Raises:
            StoreError: The store is closed, or SQLite cannot open the file in WAL mode.
        """
        if self._closed:
            raise StoreError(f"store {self.path} is closed")
        conn = self._local.conn
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path,
                    isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                    check_same_thread=False,  # only so that close() may close it
                    timeout=self._busy_timeout_ms / 1000,
                )
                conn.row_factory = sqlite3.Row
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open state store {self.path}: {exc}") from exc
            with self._conns_lock:
                self._conns.append(conn)
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``); nested blocks are savepoints.

        Commits when the outermost block exits normally, rolls back on any exception. Yields the
        thread's connection.

        Raises:
            StoreError: SQLite failed (the transaction is rolled back).
        """
        conn = self.conn()
        local = self._local
        if local.depth:
            name = f"sp{local.depth}"
            conn.execute(f"SAVEPOINT {name}")
            local.depth += 1
            try:
                yield conn
            except BaseException:
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
                raise
            else:
                conn.execute(f"RELEASE {name}")
            finally:
                local.depth -= 1
            return
        with self._write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot start a transaction on {self.path}: {exc}") from exc
            local.depth = 1
            try:
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreError(f"state store {self.path}: {exc}") from exc
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                local.depth = 0

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A consistent read snapshot (a read transaction; joins the current one if any).

        Yields the thread's connection; only read through it.
        """
        conn = self.conn()
        if self._local.depth:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection opened (call once no thread uses them any more)."""
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = _Local()
