"""The coordinator's state store: nodes, jobs, shards, nonces, disputes and the ledger in SQLite.

One SQLite file in WAL mode holds everything, so that one transaction can move a shard *and* pay
for it: after a crash (SIGKILL, power cut) either both happened or neither did.

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
is waited for up to ``busy_timeout_ms``. An async server should call these methods from a worker
thread (``anyio.to_thread.run_sync`` / Starlette's ``run_in_threadpool``): each call is short,
but a commit fsyncs, which must not stall the event loop.

Transactions. Every public method is one transaction. ``with store.transaction():`` groups several
calls (and ``Ledger`` operations, which use the same connections) into one; nested ``transaction``
blocks are savepoints, so an error inside one undoes only that block if the caller catches it.

Times are float Unix seconds; every method that stamps a time takes ``now=`` for tests.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from ramnet._errors import InvalidInputError, RamnetError

__all__ = [
    "DISPUTE_STATES",
    "JOB_STATES",
    "SCHEMA_VERSION",
    "SHARD_ROLES",
    "SHARD_STATES",
    "DeadlinePassedError",
    "Dispute",
    "Job",
    "JobState",
    "NewShard",
    "Node",
    "NodeBannedError",
    "NotFoundError",
    "SchemaVersionError",
    "Shard",
    "ShardRole",
    "ShardState",
    "ShardStateError",
    "Store",
    "StoreConflictError",
    "StoreError",
    "StoreInputError",
    "check_job_id",
    "check_node_id",
]

#: The schema this code writes. A file with a newer version is refused (``SchemaVersionError``).
SCHEMA_VERSION = 3
# Upgrades from older versions, in order: version -> statements that bring it to version + 1.
_MIGRATIONS = {
    1: [
        # v2: nodes that only compute (``worker start --no-prove``; the asymmetric topology).
        "ALTER TABLE nodes ADD COLUMN prove INTEGER NOT NULL DEFAULT 1 CHECK (prove IN (0, 1))",
    ],
    2: [
        # v3: a settled job's C is stored as a blob, and its tiles and partials are dropped.
        "ALTER TABLE jobs ADD COLUMN result_blob TEXT",
    ],
}

JobState = Literal[
    "submitted",
    "sharded",
    "dispatched",
    "committed",
    "optimistic",
    "checked",
    "settled",
    "disputed",
    "resolved",
]
ShardState = Literal[
    "pending", "assigned", "committed", "revealed", "accepted", "rejected", "expired"
]
ShardRole = Literal["primary", "mirror"]

#: Job lifecycle (DESIGN.md): submitted → sharded → dispatched → committed → optimistic → checked
#: → settled, or … → disputed → resolved → settled. ``settled`` is final.
JOB_STATES: tuple[JobState, ...] = (
    "submitted",
    "sharded",
    "dispatched",
    "committed",
    "optimistic",
    "checked",
    "settled",
    "disputed",
    "resolved",
)
#: ``pending``: waiting for a node. ``assigned``: claimed, commit due by the deadline.
#: ``committed``: result hash posted. ``revealed``: result uploaded. ``accepted``/``rejected``:
#: the coordinator's checks. ``expired``: deadline missed; a fresh ``pending`` copy replaced it.
SHARD_STATES: tuple[ShardState, ...] = (
    "pending",
    "assigned",
    "committed",
    "revealed",
    "accepted",
    "rejected",
    "expired",
)
SHARD_ROLES: tuple[ShardRole, ...] = ("primary", "mirror")
DISPUTE_STATES = ("open", "resolved")

_FINAL_JOB_STATES = frozenset({"settled"})
# Jobs whose pending shards nodes may claim.
_UNCLAIMABLE_JOB_STATES = ("submitted", "settled")

_NODE_ID_RE = re.compile(r"[0-9a-f]{64}")
_JOB_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_HASH_RE = re.compile(r"[0-9a-f]{64}")


# --------------------------------------------------------------------------------------------
# Errors


class StoreError(RamnetError):
    """A state store failure that is not the caller's bad input."""


class StoreInputError(InvalidInputError):
    """A malformed argument: a bad id, state, hash, JSON value or time."""


class NotFoundError(StoreError, LookupError):
    """No node, job, shard or dispute with that id."""


class StoreConflictError(StoreError):
    """The request contradicts what is stored (a job id reused with another spec, ...)."""


class ShardStateError(StoreConflictError):
    """A shard is not in a state (or not held by the node) that allows this step."""


class DeadlinePassedError(ShardStateError):
    """A commit or reveal after the shard's deadline: the shard goes to another node."""


class NodeBannedError(StoreError):
    """A banned node asked for work."""


class SchemaVersionError(StoreError):
    """The database was written by a newer RAMNET (or is not a RAMNET store)."""


# --------------------------------------------------------------------------------------------
# Validation


def check_node_id(node_id: object) -> str:
    """Return ``node_id`` if it is a node id (an Ed25519 public key as 64 lowercase hex digits)."""
    if not isinstance(node_id, str) or _NODE_ID_RE.fullmatch(node_id) is None:
        raise StoreInputError(f"not a node id (64 lowercase hex digits): {_short(node_id)}")
    return node_id


def check_job_id(job_id: object) -> str:
    """Return ``job_id`` if it is 1 to 128 characters from ``[A-Za-z0-9_-]`` (URL-safe)."""
    if not isinstance(job_id, str) or _JOB_ID_RE.fullmatch(job_id) is None:
        raise StoreInputError(f"not a job id (1-128 of A-Z a-z 0-9 _ -): {_short(job_id)}")
    return job_id


def _check_hash(name: str, value: object) -> str:
    if not isinstance(value, str) or _HASH_RE.fullmatch(value) is None:
        raise StoreInputError(f"{name} must be 64 lowercase hex digits, got {_short(value)}")
    return value


def _check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise StoreInputError(f"{name} must be one of {', '.join(choices)}; got {_short(value)}")
    return value


def _check_int(name: str, value: object, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StoreInputError(f"{name} must be an integer >= {minimum}, got {_short(value)}")
    return value


def _check_time(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise StoreInputError(f"{name} must be a number of seconds, got {_short(value)}")
    return float(value)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _dumps(name: str, value: object) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreInputError(f"{name} is not plain JSON: {exc}") from exc


def _now(now: float | None) -> float:
    return time.time() if now is None else _check_time("now", now)


# --------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class Node:
    """A registered node."""

    node_id: str
    payout_address: str | None
    validator: bool
    banned: bool
    registered_at: float
    updated_at: float
    prove: bool = True


@dataclass(frozen=True)
class Job:
    """A consumer's job. ``spec`` is the JSON the coordinator stored at submission;
    ``result_blob`` the digest of the blob holding C, once the job settled and C was stored."""

    job_id: str
    consumer: str
    spec: Any
    state: JobState
    created_at: float
    updated_at: float
    result_blob: str | None = None


@dataclass(frozen=True)
class NewShard:
    """A shard to create with its job: plan slot (node index), its blocks (JSON), its role."""

    slot: int
    blocks: Any
    role: ShardRole = "primary"


@dataclass(frozen=True)
class Shard:
    """One copy of one plan slot's work, held by at most one node.

    ``slot`` is the node index in the sharding plan (triad ``slot // 3``); ``attempt`` counts the
    copies of (job, slot, role) made after deadlines were missed (0 for the first).
    """

    shard_id: int
    job_id: str
    slot: int
    triad: int
    role: ShardRole
    attempt: int
    node_id: str | None
    blocks: Any
    state: ShardState
    deadline: float | None
    commit_hash: str | None
    result_digest: str | None
    created_at: float
    assigned_at: float | None
    committed_at: float | None
    revealed_at: float | None
    updated_at: float


@dataclass(frozen=True)
class Dispute:
    """A contested block: its claims, the validator drawn, and (once resolved) the verdict."""

    dispute_id: int
    job_id: str
    claims: Any
    validator: str | None
    state: str
    verdict_digest: str | None
    outcome: Any
    created_at: float
    resolved_at: float | None


# --------------------------------------------------------------------------------------------
# Schema

_SCHEMA = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE nodes (
    node_id        TEXT PRIMARY KEY,
    payout_address TEXT,
    validator      INTEGER NOT NULL DEFAULT 0 CHECK (validator IN (0, 1)),
    banned         INTEGER NOT NULL DEFAULT 0 CHECK (banned IN (0, 1)),
    registered_at  REAL NOT NULL,
    updated_at     REAL NOT NULL,
    prove          INTEGER NOT NULL DEFAULT 1 CHECK (prove IN (0, 1))
);
CREATE TABLE jobs (
    job_id     TEXT PRIMARY KEY,
    consumer   TEXT NOT NULL,
    spec       TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ({job_states})),
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    result_blob TEXT
);
CREATE INDEX jobs_state ON jobs (state, created_at);
CREATE INDEX jobs_consumer ON jobs (consumer, created_at);
CREATE TABLE shards (
    shard_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id        TEXT NOT NULL REFERENCES jobs (job_id),
    slot          INTEGER NOT NULL CHECK (slot >= 0),
    triad         INTEGER NOT NULL CHECK (triad >= 0),
    role          TEXT NOT NULL CHECK (role IN ('primary', 'mirror')),
    attempt       INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    node_id       TEXT REFERENCES nodes (node_id),
    blocks        TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ({shard_states})),
    deadline      REAL,
    commit_hash   TEXT,
    result_digest TEXT,
    created_at    REAL NOT NULL,
    assigned_at   REAL,
    committed_at  REAL,
    revealed_at   REAL,
    updated_at    REAL NOT NULL,
    UNIQUE (job_id, slot, role, attempt),
    CHECK (state = 'pending' OR node_id IS NOT NULL)
);
CREATE INDEX shards_job ON shards (job_id, slot);
CREATE INDEX shards_state ON shards (state, shard_id);
CREATE INDEX shards_node ON shards (node_id, state);
CREATE TABLE nonces (
    node_id TEXT NOT NULL,
    nonce   TEXT NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (node_id, nonce)
) WITHOUT ROWID;
CREATE INDEX nonces_seen ON nonces (seen_at);
CREATE TABLE disputes (
    dispute_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id         TEXT NOT NULL REFERENCES jobs (job_id),
    claims         TEXT NOT NULL,
    validator      TEXT,
    state          TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
    verdict_digest TEXT,
    outcome        TEXT,
    created_at     REAL NOT NULL,
    resolved_at    REAL
);
CREATE INDEX disputes_job ON disputes (job_id);
CREATE TABLE accounts (
    node_id    TEXT PRIMARY KEY,
    bond       INTEGER NOT NULL DEFAULT 0 CHECK (bond >= 0),
    balance    INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),
    slashed    INTEGER NOT NULL DEFAULT 0 CHECK (slashed >= 0),
    created_at REAL NOT NULL
);
CREATE TABLE escrows (
    job_id    TEXT PRIMARY KEY,
    payer     TEXT NOT NULL,
    held      INTEGER NOT NULL CHECK (held >= 0),
    deposited INTEGER NOT NULL CHECK (deposited >= 0),
    paid      INTEGER NOT NULL CHECK (paid >= 0),
    refunded  INTEGER NOT NULL CHECK (refunded >= 0),
    CHECK (held = deposited - paid - refunded)
);
CREATE TABLE ledger_totals (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    minted INTEGER NOT NULL CHECK (minted >= 0),
    burned INTEGER NOT NULL CHECK (burned >= 0)
);
INSERT INTO ledger_totals (id, minted, burned) VALUES (1, 0, 0);
CREATE TABLE movements (
    movement_id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('grant', 'stake', 'unstake', 'escrow', 'pay',
                                              'refund', 'slash', 'bounty', 'burn')),
    src         TEXT,
    dst         TEXT,
    amount      INTEGER NOT NULL CHECK (amount > 0),
    job_id      TEXT,
    ref         TEXT UNIQUE,
    at          REAL NOT NULL
);
CREATE INDEX movements_job ON movements (job_id);
CREATE TRIGGER movements_no_update BEFORE UPDATE ON movements
BEGIN SELECT RAISE(ABORT, 'movements are append-only'); END;
CREATE TRIGGER movements_no_delete BEFORE DELETE ON movements
BEGIN SELECT RAISE(ABORT, 'movements are append-only'); END;
""".format(
    job_states=", ".join(f"'{s}'" for s in JOB_STATES),
    shard_states=", ".join(f"'{s}'" for s in SHARD_STATES),
)


class _Local(threading.local):
    conn: sqlite3.Connection | None = None
    depth: int = 0


# --------------------------------------------------------------------------------------------
# Store


class Store:
    """The coordinator's SQLite state store (see the module docstring for the guarantees).

    Args:
        path: The database file (created with its schema on first open; its folder must exist).
        synchronous: ``"FULL"`` (default: commits survive power loss) or ``"NORMAL"`` (commits
            survive process crashes only).
        busy_timeout_ms: How long to wait for another process's write lock.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        busy_timeout_ms: int = 10_000,
    ) -> None:
        self.path = Path(path)
        self._synchronous = _check_choice("synchronous", synchronous, ("FULL", "NORMAL"))
        self._busy_timeout_ms = _check_int("busy_timeout_ms", busy_timeout_ms)
        self._local = _Local()
        self._write_lock = threading.RLock()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._closed = False
        self._init_schema()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- connections and transactions ------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
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
        thread's connection for callers that need raw SQL (keep to the documented tables).
        """
        conn = self._conn()
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
        conn = self._conn()
        if self._local.depth:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this store opened (call once no thread uses it any more)."""
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = _Local()

    def _init_schema(self) -> None:
        try:
            with self.transaction() as conn:
                has_meta = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
                ).fetchone()
                if has_meta is None:
                    others = conn.execute(
                        "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
                    ).fetchone()[0]
                    if others:
                        raise SchemaVersionError(f"{self.path} is not a RAMNET state store")
                    for statement in _SCHEMA.split(";\n"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?)",
                        [
                            ("schema_version", str(SCHEMA_VERSION)),
                            ("created_at", repr(time.time())),
                        ],
                    )
                    return
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                version = int(row[0]) if row is not None and str(row[0]).isdigit() else -1
                while version in _MIGRATIONS and version < SCHEMA_VERSION:
                    for statement in _MIGRATIONS[version]:
                        conn.execute(statement)
                    version += 1
                    conn.execute(
                        "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),)
                    )
                if version != SCHEMA_VERSION:
                    raise SchemaVersionError(
                        f"{self.path} has state schema version {version}; this RAMNET reads "
                        f"version {SCHEMA_VERSION}"
                    )
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(f"{self.path} is not a usable SQLite state store: {exc}") from exc
        except BaseException:
            self.close()
            raise

    @property
    def schema_version(self) -> int:
        """The schema version recorded in the file."""
        with self.snapshot() as conn:
            return int(
                conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
            )

    # ---- nodes ------------------------------------------------------------------------------

    def register_node(
        self,
        node_id: str,
        *,
        payout_address: str | None = None,
        validator: bool = False,
        prove: bool = True,
        now: float | None = None,
    ) -> bool:
        """Register a node, or update its payout address and flags if already known.

        ``prove`` False marks a node that only computes (``worker start --no-prove``): its
        results skip commit-reveal, and its jobs wait in ``optimistic`` for an auditor.
        Re-registering never lifts a ban and keeps ``registered_at``.

        Returns:
            True if the node is new (the coordinator grants the default credit then, ideally in
            the same ``transaction()`` with an idempotent ``Ledger.grant(..., ref=...)``).
        """
        check_node_id(node_id)
        if payout_address is not None and (
            not isinstance(payout_address, str) or not 0 < len(payout_address) <= 256
        ):
            raise StoreInputError(
                f"payout_address must be 1-256 characters, got {_short(payout_address)}"
            )
        t = _now(now)
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO nodes (node_id, payout_address, validator, prove, banned,"
                " registered_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, ?)"
                " ON CONFLICT (node_id) DO NOTHING",
                (node_id, payout_address, int(bool(validator)), int(bool(prove)), t, t),
            )
            if cur.rowcount:
                return True
            conn.execute(
                "UPDATE nodes SET payout_address = coalesce(?, payout_address), validator = ?,"
                " prove = ?, updated_at = ? WHERE node_id = ?",
                (payout_address, int(bool(validator)), int(bool(prove)), t, node_id),
            )
            return False

    def get_node(self, node_id: str) -> Node:
        """The node's record; ``NotFoundError`` if it never registered."""
        check_node_id(node_id)
        with self.snapshot() as conn:
            row = conn.execute("SELECT * FROM nodes WHERE node_id = ?", (node_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no node {node_id}")
        return _node(row)

    def list_nodes(
        self, *, validators_only: bool = False, include_banned: bool = True
    ) -> list[Node]:
        """Registered nodes in registration order."""
        sql = "SELECT * FROM nodes WHERE 1"
        if validators_only:
            sql += " AND validator = 1"
        if not include_banned:
            sql += " AND banned = 0"
        with self.snapshot() as conn:
            rows = conn.execute(sql + " ORDER BY registered_at, node_id").fetchall()
        return [_node(r) for r in rows]

    def set_banned(self, node_id: str, banned: bool, *, now: float | None = None) -> None:
        """Ban a node from new shards (a proven cheater), or lift the ban (it staked again)."""
        check_node_id(node_id)
        t = _now(now)
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE nodes SET banned = ?, updated_at = ? WHERE node_id = ?",
                (int(bool(banned)), t, node_id),
            )
            if not cur.rowcount:
                raise NotFoundError(f"no node {node_id}")

    # ---- nonces -----------------------------------------------------------------------------

    def record_nonce(
        self, node_id: str, nonce: str, *, window_s: float = 600.0, now: float | None = None
    ) -> bool:
        """Remember a request nonce; return False if this node already used it (a replay).

        Entries older than ``window_s`` are pruned in the same transaction, so the caller must
        also refuse requests whose signed timestamp is outside ``now ± window_s``: a nonce
        forgotten by pruning can then no longer be replayed.
        """
        check_node_id(node_id)
        if not isinstance(nonce, str) or not 0 < len(nonce) <= 128:
            raise StoreInputError(f"a nonce must be 1-128 characters, got {_short(nonce)}")
        window = _check_time("window_s", window_s)
        t = _now(now)
        with self.transaction() as conn:
            conn.execute("DELETE FROM nonces WHERE seen_at < ?", (t - window,))
            cur = conn.execute(
                "INSERT INTO nonces (node_id, nonce, seen_at) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (node_id, nonce, t),
            )
            return cur.rowcount == 1

    # ---- jobs -------------------------------------------------------------------------------

    def create_job(
        self,
        job_id: str,
        consumer: str,
        spec: Mapping[str, Any],
        shards: Sequence[NewShard] = (),
        *,
        state: JobState | None = None,
        now: float | None = None,
    ) -> Job:
        """Create a job and its (pending) shards in one transaction.

        The job starts in ``state`` (default: ``"sharded"`` when shards are given, else
        ``"submitted"``). Creating the same job again with the same consumer and spec returns
        the stored job unchanged (a retried request); another consumer or spec is a
        ``StoreConflictError``.
        """
        check_job_id(job_id)
        check_node_id(consumer)
        spec_json = _dumps("spec", spec)
        if state is None:
            state = "sharded" if shards else "submitted"
        _check_choice("state", state, JOB_STATES)
        rows = []
        for shard in shards:
            if not isinstance(shard, NewShard):
                raise StoreInputError(f"shards must be NewShard values, got {_short(shard)}")
            slot = _check_int("slot", shard.slot)
            _check_choice("role", shard.role, SHARD_ROLES)
            rows.append((slot, slot // 3, shard.role, _dumps("blocks", shard.blocks)))
        if len({(r[0], r[2]) for r in rows}) != len(rows):
            raise StoreInputError("two shards with the same slot and role")
        t = _now(now)
        with self.transaction() as conn:
            old = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if old is not None:
                if old["consumer"] != consumer or old["spec"] != spec_json:
                    raise StoreConflictError(f"job {job_id} already exists with another spec")
                return _job(old)
            conn.execute(
                "INSERT INTO jobs (job_id, consumer, spec, state, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, consumer, spec_json, state, t, t),
            )
            conn.executemany(
                "INSERT INTO shards (job_id, slot, triad, role, attempt, blocks, state,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, 'pending', ?, ?)",
                [(job_id, s, tr, role, b, t, t) for s, tr, role, b in rows],
            )
            return _job(conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone())

    def add_shards(
        self, job_id: str, shards: Sequence[NewShard], *, now: float | None = None
    ) -> list[Shard]:
        """Add pending shards to an existing job (a recomputation, mirrors added later).

        Each gets the next free ``attempt`` number for its (slot, role).
        """
        check_job_id(job_id)
        t = _now(now)
        created = []
        with self.transaction() as conn:
            job = conn.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if job is None:
                raise NotFoundError(f"no job {job_id}")
            for shard in shards:
                slot = _check_int("slot", shard.slot)
                _check_choice("role", shard.role, SHARD_ROLES)
                attempt = conn.execute(
                    "SELECT coalesce(max(attempt) + 1, 0) FROM shards"
                    " WHERE job_id = ? AND slot = ? AND role = ?",
                    (job_id, slot, shard.role),
                ).fetchone()[0]
                cur = conn.execute(
                    "INSERT INTO shards (job_id, slot, triad, role, attempt, blocks, state,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                    (
                        job_id,
                        slot,
                        slot // 3,
                        shard.role,
                        attempt,
                        _dumps("blocks", shard.blocks),
                        t,
                        t,
                    ),
                )
                created.append(cast(int, cur.lastrowid))
            return [self._shard(conn, sid) for sid in created]

    def get_job(self, job_id: str) -> Job:
        """The job's record; ``NotFoundError`` if unknown."""
        check_job_id(job_id)
        with self.snapshot() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no job {job_id}")
        return _job(row)

    def list_jobs(
        self,
        *,
        state: JobState | None = None,
        consumer: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Jobs, newest first, optionally of one state or one consumer."""
        sql: str = "SELECT * FROM jobs WHERE 1"
        args: list[object] = []
        if state is not None:
            args.append(_check_choice("state", state, JOB_STATES))
            sql += " AND state = ?"
        if consumer is not None:
            args.append(check_node_id(consumer))
            sql += " AND consumer = ?"
        args.append(_check_int("limit", limit, 1))
        with self.snapshot() as conn:
            rows = conn.execute(sql + " ORDER BY created_at DESC, job_id LIMIT ?", args).fetchall()
        return [_job(r) for r in rows]

    def set_job_state(
        self,
        job_id: str,
        state: JobState,
        *,
        expect: JobState | Sequence[JobState] | None = None,
        now: float | None = None,
    ) -> bool:
        """Move a job to ``state``; with ``expect``, only from those states (compare-and-set).

        Returns:
            True if the job is now in ``state`` because of this call or was already in it; False
            if ``expect`` did not match (nothing changed).

        Raises:
            NotFoundError: No such job.
            StoreConflictError: The job is ``settled`` (final) and ``state`` is another state.
        """
        check_job_id(job_id)
        _check_choice("state", state, JOB_STATES)
        expected: tuple[str, ...] | None = None
        if expect is not None:
            expected = (expect,) if isinstance(expect, str) else tuple(expect)
            for e in expected:
                _check_choice("expect", e, JOB_STATES)
        t = _now(now)
        with self.transaction() as conn:
            row = conn.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no job {job_id}")
            current = row["state"]
            if current == state:
                return True
            if expected is not None and current not in expected:
                return False
            if current in _FINAL_JOB_STATES:
                raise StoreConflictError(f"job {job_id} is {current}; it cannot become {state}")
            conn.execute(
                "UPDATE jobs SET state = ?, updated_at = ? WHERE job_id = ?", (state, t, job_id)
            )
            return True

    def set_job_result(self, job_id: str, digest: str, *, now: float | None = None) -> None:
        """Record the blob holding a settled job's C.

        Raises:
            NotFoundError: No such job.
            StoreConflictError: The job has not settled.
            StoreInputError: ``digest`` is not 64 lowercase hex digits.
        """
        check_job_id(job_id)
        _check_hash("result_blob", digest)
        with self.transaction() as conn:
            row = conn.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no job {job_id}")
            if row["state"] != "settled":
                raise StoreConflictError(f"job {job_id} is {row['state']}, not settled")
            conn.execute(
                "UPDATE jobs SET result_blob = ?, updated_at = ? WHERE job_id = ?",
                (digest, _now(now), job_id),
            )

    def jobs_holding_inputs(self, *, besides: str | None = None) -> list[tuple[Job, list[str]]]:
        """Jobs that may still read their tiles and partials, each with its shards' result
        digests: every job not settled, and settled jobs whose C was not stored as a blob.

        Args:
            besides: A job to leave out.
        """
        with self.snapshot() as conn:
            rows = conn.execute(
                "SELECT * FROM jobs WHERE (state != 'settled' OR result_blob IS NULL)"
                " AND job_id != ?",
                (besides or "",),
            ).fetchall()
            out = []
            for row in rows:
                digests = conn.execute(
                    "SELECT result_digest FROM shards WHERE job_id = ?"
                    " AND result_digest IS NOT NULL",
                    (row["job_id"],),
                ).fetchall()
                out.append((_job(row), [d[0] for d in digests]))
        return out

    def job_status(self, job_id: str) -> dict[str, Any]:
        """The job's JSON-ready status: its record plus the count of its shards in each state.

        ``{"job_id", "consumer", "state", "created_at", "updated_at", "shards": {state: count}
        (every shard state, zeros included), "total_shards"}``.
        """
        check_job_id(job_id)
        with self.snapshot() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no job {job_id}")
            counts = dict.fromkeys(SHARD_STATES, 0)
            for r in conn.execute(
                "SELECT state, count(*) FROM shards WHERE job_id = ? GROUP BY state", (job_id,)
            ):
                counts[r[0]] = int(r[1])
        return {
            "job_id": row["job_id"],
            "consumer": row["consumer"],
            "state": row["state"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "shards": counts,
            "total_shards": sum(counts.values()),
        }

    # ---- shards -----------------------------------------------------------------------------

    def get_shard(self, shard_id: int) -> Shard:
        """The shard's record; ``NotFoundError`` if unknown."""
        _check_int("shard_id", shard_id)
        with self.snapshot() as conn:
            return self._shard(conn, shard_id)

    def list_shards(
        self,
        job_id: str | None = None,
        *,
        node_id: str | None = None,
        state: ShardState | Sequence[ShardState] | None = None,
    ) -> list[Shard]:
        """Shards of a job and/or a node, optionally in some states, ordered by id."""
        sql: str = "SELECT * FROM shards WHERE 1"
        args: list[object] = []
        if job_id is not None:
            args.append(check_job_id(job_id))
            sql += " AND job_id = ?"
        if node_id is not None:
            args.append(check_node_id(node_id))
            sql += " AND node_id = ?"
        if state is not None:
            states = (state,) if isinstance(state, str) else tuple(state)
            for s in states:
                _check_choice("state", s, SHARD_STATES)
            sql += f" AND state IN ({', '.join('?' * len(states))})"
            args.extend(states)
        with self.snapshot() as conn:
            rows = conn.execute(sql + " ORDER BY shard_id", args).fetchall()
        return [_shard(r) for r in rows]

    def expire_overdue(self, *, now: float | None = None) -> list[int]:
        """Expire every assigned or committed shard whose deadline has passed.

        Each expired shard is replaced by a fresh ``pending`` copy (same job, slot, role and
        blocks; ``attempt + 1``) that another node can claim, unless another copy of the slot
        (its mirror) is still live; the late node's commit or reveal
        for the old shard is refused from now on. Shards of settled jobs are not copied.

        Returns:
            The ids of the shards that expired.
        """
        t = _now(now)
        with self.transaction() as conn:
            return self._expire(conn, t)

    def _expire(self, conn: sqlite3.Connection, t: float) -> list[int]:
        rows = conn.execute(
            "SELECT s.*, j.state AS job_state FROM shards s JOIN jobs j USING (job_id)"
            " WHERE s.state IN ('assigned', 'committed') AND s.deadline IS NOT NULL"
            " AND s.deadline <= ? ORDER BY s.shard_id",
            (t,),
        ).fetchall()
        for r in rows:
            conn.execute(
                "UPDATE shards SET state = 'expired', updated_at = ? WHERE shard_id = ?",
                (t, r["shard_id"]),
            )
            if r["job_state"] in _FINAL_JOB_STATES or self._has_live_copy(
                conn, r["job_id"], r["slot"]
            ):
                continue  # settled, or another copy of the slot (its mirror) serves it
            attempt = conn.execute(
                "SELECT max(attempt) + 1 FROM shards WHERE job_id = ? AND slot = ? AND role = ?",
                (r["job_id"], r["slot"], r["role"]),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO shards (job_id, slot, triad, role, attempt, blocks, state,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (r["job_id"], r["slot"], r["triad"], r["role"], attempt, r["blocks"], t, t),
            )
        return [int(r["shard_id"]) for r in rows]

    @staticmethod
    def _has_live_copy(conn: sqlite3.Connection, job_id: str, slot: int) -> bool:
        return (
            conn.execute(
                "SELECT 1 FROM shards WHERE job_id = ? AND slot = ?"
                " AND state IN ('pending', 'assigned', 'committed', 'revealed', 'accepted')",
                (job_id, slot),
            ).fetchone()
            is not None
        )

    def has_live_copy(self, job_id: str, slot: int) -> bool:
        """Whether some copy of the job's slot (any role) is still pending, held or revealed:
        when one is, a failed copy needs no replacement."""
        with self.snapshot() as conn:
            return self._has_live_copy(conn, check_job_id(job_id), _check_int("slot", slot))

    def next_shard_for(
        self, node_id: str, *, lease_s: float = 120.0, now: float | None = None
    ) -> Shard | None:
        """Claim work for a node, atomically: return its shard, or None if there is none.

        In one transaction: overdue shards expire (``expire_overdue``); if the node already
        holds an ``assigned`` shard, that one is returned again (a worker that lost the answer
        gets the same shard back, deadline unchanged); otherwise the oldest job's first
        ``pending`` shard the node may take is assigned to it with ``deadline = now + lease_s``
        and its job moves from ``sharded`` to ``dispatched``.

        A node may not take a shard if it ever held a copy of the same (job, slot), in any role
        or state (it failed it, or would compute the same work twice), nor, for a first attempt
        (``attempt == 0``) of a primary, while it holds a live primary shard of the same triad
        in that job (the three copies of an audit block must come from three nodes). Mirror
        shards only need another node than their primary's: every block of a mirrored slot is
        compared with the primary copy, so the mirror triad's own audit copies add nothing.
        Retries may go to a node of the same triad: with only three workers there is no one
        else. Jobs in ``submitted`` or ``settled`` are not served.

        Raises:
            NotFoundError: The node is not registered.
            NodeBannedError: The node is banned.
        """
        check_node_id(node_id)
        lease = _check_time("lease_s", lease_s)
        if lease <= 0:
            raise StoreInputError(f"lease_s must be > 0, got {lease_s}")
        t = _now(now)
        with self.transaction() as conn:
            node = conn.execute("SELECT banned FROM nodes WHERE node_id = ?", (node_id,)).fetchone()
            if node is None:
                raise NotFoundError(f"no node {node_id}")
            if node["banned"]:
                raise NodeBannedError(f"node {node_id} is banned from new shards")
            self._expire(conn, t)
            held = conn.execute(
                "SELECT * FROM shards WHERE node_id = ? AND state = 'assigned'"
                " ORDER BY shard_id LIMIT 1",
                (node_id,),
            ).fetchone()
            if held is not None:
                return _shard(held)
            row = conn.execute(
                "SELECT s.shard_id, s.job_id FROM shards s JOIN jobs j USING (job_id)"
                " WHERE s.state = 'pending'"
                f" AND j.state NOT IN ({', '.join('?' * len(_UNCLAIMABLE_JOB_STATES))})"
                " AND NOT EXISTS (SELECT 1 FROM shards o WHERE o.job_id = s.job_id"
                "   AND o.node_id = ? AND (o.slot = s.slot OR (s.attempt = 0 AND s.role = 'primary'"
                "   AND o.triad = s.triad AND o.role = 'primary'"
                "   AND o.state NOT IN ('expired', 'rejected'))))"
                " ORDER BY j.created_at, j.job_id, s.shard_id LIMIT 1",
                (*_UNCLAIMABLE_JOB_STATES, node_id),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE shards SET node_id = ?, state = 'assigned', assigned_at = ?,"
                " deadline = ?, updated_at = ? WHERE shard_id = ?",
                (node_id, t, t + lease, t, row["shard_id"]),
            )
            conn.execute(
                "UPDATE jobs SET state = 'dispatched', updated_at = ?"
                " WHERE job_id = ? AND state = 'sharded'",
                (t, row["job_id"]),
            )
            return self._shard(conn, int(row["shard_id"]))

    def record_commit(
        self,
        shard_id: int,
        node_id: str,
        commit_hash: str,
        *,
        reveal_deadline: float | None = None,
        now: float | None = None,
    ) -> Shard:
        """Record a node's commitment (hash of its result) for a shard it holds.

        The shard moves ``assigned`` → ``committed``; its deadline becomes ``reveal_deadline``
        (None: no deadline while it waits for the commit phase to close). Repeating the same
        commit is a no-op; another hash for a committed shard is refused.

        Raises:
            NotFoundError: No such shard.
            ShardStateError: Not this node's shard, or not awaiting a commit.
            DeadlinePassedError: The commit deadline has passed (the shard will be reassigned).
        """
        _check_hash("commit_hash", commit_hash)
        if reveal_deadline is not None:
            reveal_deadline = _check_time("reveal_deadline", reveal_deadline)
        return self._step(
            shard_id,
            node_id,
            now,
            frm="assigned",
            to="committed",
            column="commit_hash",
            value=commit_hash,
            stamp="committed_at",
            deadline=reveal_deadline,
        )

    def record_reveal(
        self, shard_id: int, node_id: str, result_digest: str, *, now: float | None = None
    ) -> Shard:
        """Record the blob digest of a node's revealed result; ``committed`` → ``revealed``.

        Whether the result matches the commitment is the caller's check (the commitment scheme
        is the protocol's, not the store's). Repeating the same reveal is a no-op. Errors as for
        ``record_commit``.
        """
        _check_hash("result_digest", result_digest)
        return self._step(
            shard_id,
            node_id,
            now,
            frm="committed",
            to="revealed",
            column="result_digest",
            value=result_digest,
            stamp="revealed_at",
            deadline=None,
        )

    def _step(
        self,
        shard_id: int,
        node_id: str,
        now: float | None,
        *,
        frm: str,
        to: str,
        column: str,
        value: str,
        stamp: str,
        deadline: float | None,
    ) -> Shard:
        _check_int("shard_id", shard_id)
        check_node_id(node_id)
        t = _now(now)
        with self.transaction() as conn:
            shard = self._shard(conn, shard_id)
            if shard.node_id != node_id:
                raise ShardStateError(f"shard {shard_id} is not assigned to node {node_id}")
            if (
                shard.state == to
                or (to == "committed" and shard.state in ("revealed", "accepted", "rejected"))
                or (to == "revealed" and shard.state in ("accepted", "rejected"))
            ):
                if getattr(shard, column) == value:
                    return shard  # a retried request
                raise ShardStateError(f"shard {shard_id} already has another {column}")
            if shard.state == "expired":
                raise DeadlinePassedError(f"shard {shard_id} expired; it went to another node")
            if shard.state != frm:
                raise ShardStateError(f"shard {shard_id} is {shard.state}, not {frm}")
            if shard.deadline is not None and shard.deadline <= t:
                raise DeadlinePassedError(f"shard {shard_id}'s deadline has passed")
            conn.execute(
                f"UPDATE shards SET state = ?, {column} = ?, {stamp} = ?, deadline = ?,"
                " updated_at = ? WHERE shard_id = ?",
                (to, value, t, deadline, t, shard_id),
            )
            return self._shard(conn, shard_id)

    def rename_result(self, shard_id: int, old: str, new: str, *, now: float | None = None) -> bool:
        """Name a revealed result by the blob that now holds it: a result kept in memory is
        recorded under a provisional name until it is written (``Coordinator._store_result``).

        Returns:
            True when the shard's result was named ``old`` and is now ``new``; False otherwise
            (unchanged: the reveal was taken back meanwhile).
        """
        _check_int("shard_id", shard_id)
        _check_hash("result_digest", old)
        _check_hash("result_digest", new)
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE shards SET result_digest = ?, updated_at = ? WHERE shard_id = ?"
                " AND result_digest = ?",
                (new, _now(now), shard_id, old),
            )
            return cur.rowcount == 1

    def reopen_reveal(self, shard_id: int, deadline: float, *, now: float | None = None) -> bool:
        """Take back a reveal whose result was lost: ``revealed`` → ``committed``, awaiting the
        same node's reveal again by ``deadline`` (after which it expires, as any late reveal).

        Returns:
            True when the shard was revealed and is now committed; False otherwise (unchanged).
        """
        _check_int("shard_id", shard_id)
        limit = _check_time("deadline", deadline)
        t = _now(now)
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE shards SET state = 'committed', result_digest = NULL, revealed_at = NULL,"
                " deadline = ?, updated_at = ? WHERE shard_id = ? AND state = 'revealed'",
                (limit, t, shard_id),
            )
            return cur.rowcount == 1

    def open_reveals(self, job_id: str, deadline: float, *, now: float | None = None) -> int:
        """Give every committed shard of a job without a deadline the reveal ``deadline``.

        Called when the commit phase closes, so the time to reveal starts then, not at commit.

        Returns:
            How many shards got the deadline.
        """
        check_job_id(job_id)
        limit = _check_time("deadline", deadline)
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE shards SET deadline = ?, updated_at = ? WHERE job_id = ?"
                " AND state = 'committed' AND deadline IS NULL",
                (limit, _now(now), job_id),
            )
            return int(cur.rowcount)

    def set_shard_state(
        self,
        shard_id: int,
        state: ShardState,
        *,
        expect: ShardState | Sequence[ShardState] | None = None,
        now: float | None = None,
    ) -> bool:
        """Set a shard's state (``accepted``/``rejected`` after the checks, ...).

        With ``expect``, only from those states (compare-and-set); returns False when that did
        not match. Setting ``pending`` clears the holder; use ``add_shards`` to requeue work
        instead, so the history of who held what stays intact.
        """
        _check_int("shard_id", shard_id)
        _check_choice("state", state, SHARD_STATES)
        expected: tuple[str, ...] | None = None
        if expect is not None:
            expected = (expect,) if isinstance(expect, str) else tuple(expect)
            for e in expected:
                _check_choice("expect", e, SHARD_STATES)
        t = _now(now)
        with self.transaction() as conn:
            shard = self._shard(conn, shard_id)
            if shard.state == state:
                return True
            if expected is not None and shard.state not in expected:
                return False
            if state == "pending":
                conn.execute(
                    "UPDATE shards SET state = 'pending', node_id = NULL, deadline = NULL,"
                    " updated_at = ? WHERE shard_id = ?",
                    (t, shard_id),
                )
            else:
                if shard.node_id is None:
                    raise ShardStateError(f"shard {shard_id} has no node; it cannot be {state}")
                conn.execute(
                    "UPDATE shards SET state = ?, updated_at = ? WHERE shard_id = ?",
                    (state, t, shard_id),
                )
            return True

    def _shard(self, conn: sqlite3.Connection, shard_id: int) -> Shard:
        row = conn.execute("SELECT * FROM shards WHERE shard_id = ?", (shard_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no shard {shard_id}")
        return _shard(row)

    # ---- disputes ---------------------------------------------------------------------------

    def open_dispute(
        self,
        job_id: str,
        claims: Any,
        *,
        validator: str | None = None,
        now: float | None = None,
    ) -> Dispute:
        """Record a dispute on a job: the contested claims (JSON) and the validator drawn."""
        check_job_id(job_id)
        if validator is not None:
            check_node_id(validator)
        claims_json = _dumps("claims", claims)
        t = _now(now)
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM jobs WHERE job_id = ?", (job_id,)).fetchone() is None:
                raise NotFoundError(f"no job {job_id}")
            cur = conn.execute(
                "INSERT INTO disputes (job_id, claims, validator, state, created_at)"
                " VALUES (?, ?, ?, 'open', ?)",
                (job_id, claims_json, validator, t),
            )
            return self._dispute(conn, cast(int, cur.lastrowid))

    def resolve_dispute(
        self,
        dispute_id: int,
        outcome: Any,
        *,
        verdict_digest: str | None = None,
        now: float | None = None,
    ) -> Dispute:
        """Close a dispute with its outcome (JSON) and the verdict blob's digest.

        Resolving again with the same outcome and digest is a no-op; otherwise a resolved
        dispute is a ``StoreConflictError``.
        """
        _check_int("dispute_id", dispute_id)
        if verdict_digest is not None:
            _check_hash("verdict_digest", verdict_digest)
        outcome_json = _dumps("outcome", outcome)
        t = _now(now)
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM disputes WHERE dispute_id = ?", (dispute_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no dispute {dispute_id}")
            if row["state"] == "resolved":
                if row["outcome"] == outcome_json and row["verdict_digest"] == verdict_digest:
                    return _dispute(row)
                raise StoreConflictError(f"dispute {dispute_id} is already resolved")
            conn.execute(
                "UPDATE disputes SET state = 'resolved', outcome = ?, verdict_digest = ?,"
                " resolved_at = ? WHERE dispute_id = ?",
                (outcome_json, verdict_digest, t, dispute_id),
            )
            return self._dispute(conn, dispute_id)

    def set_dispute_validator(self, dispute_id: int, validator: str) -> Dispute:
        """Name (or re-draw) the validator of an open dispute."""
        _check_int("dispute_id", dispute_id)
        check_node_id(validator)
        with self.transaction() as conn:
            dispute = self._dispute(conn, dispute_id)
            if dispute.state != "open":
                raise StoreConflictError(f"dispute {dispute_id} is already resolved")
            conn.execute(
                "UPDATE disputes SET validator = ? WHERE dispute_id = ?", (validator, dispute_id)
            )
            return self._dispute(conn, dispute_id)

    def get_dispute(self, dispute_id: int) -> Dispute:
        """The dispute's record; ``NotFoundError`` if unknown."""
        _check_int("dispute_id", dispute_id)
        with self.snapshot() as conn:
            return self._dispute(conn, dispute_id)

    def list_disputes(
        self, job_id: str | None = None, *, state: str | None = None
    ) -> list[Dispute]:
        """Disputes, optionally of one job and/or state, oldest first."""
        sql: str = "SELECT * FROM disputes WHERE 1"
        args: list[object] = []
        if job_id is not None:
            args.append(check_job_id(job_id))
            sql += " AND job_id = ?"
        if state is not None:
            args.append(_check_choice("state", state, DISPUTE_STATES))
            sql += " AND state = ?"
        with self.snapshot() as conn:
            rows = conn.execute(sql + " ORDER BY dispute_id", args).fetchall()
        return [_dispute(r) for r in rows]

    def _dispute(self, conn: sqlite3.Connection, dispute_id: int) -> Dispute:
        row = conn.execute("SELECT * FROM disputes WHERE dispute_id = ?", (dispute_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no dispute {dispute_id}")
        return _dispute(row)


# --------------------------------------------------------------------------------------------
# Row conversion


def _node(row: sqlite3.Row) -> Node:
    return Node(
        node_id=row["node_id"],
        payout_address=row["payout_address"],
        validator=bool(row["validator"]),
        banned=bool(row["banned"]),
        registered_at=row["registered_at"],
        updated_at=row["updated_at"],
        prove=bool(row["prove"]),
    )


def _job(row: sqlite3.Row) -> Job:
    return Job(
        job_id=row["job_id"],
        consumer=row["consumer"],
        spec=json.loads(row["spec"]),
        state=row["state"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        result_blob=row["result_blob"],
    )


def _shard(row: sqlite3.Row) -> Shard:
    return Shard(
        shard_id=int(row["shard_id"]),
        job_id=row["job_id"],
        slot=int(row["slot"]),
        triad=int(row["triad"]),
        role=row["role"],
        attempt=int(row["attempt"]),
        node_id=row["node_id"],
        blocks=json.loads(row["blocks"]),
        state=row["state"],
        deadline=row["deadline"],
        commit_hash=row["commit_hash"],
        result_digest=row["result_digest"],
        created_at=row["created_at"],
        assigned_at=row["assigned_at"],
        committed_at=row["committed_at"],
        revealed_at=row["revealed_at"],
        updated_at=row["updated_at"],
    )


def _dispute(row: sqlite3.Row) -> Dispute:
    return Dispute(
        dispute_id=int(row["dispute_id"]),
        job_id=row["job_id"],
        claims=json.loads(row["claims"]),
        validator=row["validator"],
        state=row["state"],
        verdict_digest=row["verdict_digest"],
        outcome=None if row["outcome"] is None else json.loads(row["outcome"]),
        created_at=row["created_at"],
        resolved_at=row["resolved_at"],
    )
