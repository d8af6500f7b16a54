"""The state store's tables: the SQL that creates them, and the upgrades from older versions.

``SCHEMA_VERSION`` is recorded in the ``meta`` table. A store written by an older version is
upgraded in place when it opens (``MIGRATIONS``, in order); a newer one is refused.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from ramnet.mesh.state.counts import COUNTS_SCHEMA
from ramnet.mesh.state.errors import SchemaVersionError
from ramnet.mesh.state.records import JOB_STATES, SHARD_STATES

__all__ = ["MIGRATIONS", "SCHEMA", "SCHEMA_VERSION", "create_or_upgrade"]

_JOBS_COLUMNS = """
    job_id      TEXT PRIMARY KEY,
    consumer    TEXT NOT NULL,
    spec        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ({job_states})),
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    result_blob TEXT,
    reason      TEXT
""".format(job_states=", ".join(f"'{s}'" for s in JOB_STATES))

_REWRITE_JOBS_TABLE = "rewrite the jobs table's definition"
_DASHBOARD_INDEXES = (
    "CREATE INDEX IF NOT EXISTS jobs_updated ON jobs (updated_at)",
    "CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at DESC, job_id)",
    "CREATE INDEX IF NOT EXISTS jobs_state_updated ON jobs (state, updated_at)",
    "CREATE INDEX IF NOT EXISTS shards_updated ON shards (updated_at)",
)

#: The schema this code writes. A file with a newer version is refused (``SchemaVersionError``).
SCHEMA_VERSION = 7
#: Upgrades from older versions, in order: version -> statements that bring it to version + 1.
MIGRATIONS = {
    1: [
        # v2: nodes that only compute (``worker start --no-prove``; the asymmetric topology).
        "ALTER TABLE nodes ADD COLUMN prove INTEGER NOT NULL DEFAULT 1 CHECK (prove IN (0, 1))",
    ],
    2: [
        # v3: a settled job's C is stored as a blob, and its tiles and partials are dropped.
        "ALTER TABLE jobs ADD COLUMN result_blob TEXT",
    ],
    3: [
        # v4: nodes seen alive (failure detection; one key, one process), and jobs that end
        # cancelled or failed with a reason. SQLite cannot alter a CHECK constraint, and
        # rebuilding the jobs table would trip the foreign keys of the shards and disputes that
        # reference it (they cannot be turned off inside the upgrade's transaction), so the
        # table's recorded definition is rewritten, as SQLite documents for loosening a
        # constraint: its states only grow, and every stored row still satisfies it.
        "ALTER TABLE nodes ADD COLUMN last_seen REAL",
        "ALTER TABLE nodes ADD COLUMN instance TEXT",
        "ALTER TABLE jobs ADD COLUMN reason TEXT",
        _REWRITE_JOBS_TABLE,
    ],
    4: [
        # v5: payout addresses bound by a wallet (EIP-712, ramnet.valkyrie._binding712): the
        # flag, and the binding document the coordinator checked, kept so it can be checked
        # again by anyone later. Every node stored before is unbound.
        "ALTER TABLE nodes ADD COLUMN payout_bound INTEGER NOT NULL DEFAULT 0"
        " CHECK (payout_bound IN (0, 1))",
        "ALTER TABLE nodes ADD COLUMN payout_binding TEXT",
    ],
    5: [
        # v6: what the dashboard reads each time the state changes, found without reading every
        # job (each row holds its spec): the newest change (its fingerprint), the newest jobs
        # (its list) and the jobs settled since a time (its plots). Data unchanged.
        *_DASHBOARD_INDEXES,
    ],
    6: [
        # v7: the counts the dashboard asks for at every change (jobs, by state, shards, units
        # in escrow), kept by triggers instead of walking every row (``counts``). Counted from
        # the rows once, here. Data unchanged.
        *COUNTS_SCHEMA,
    ],
}

#: The tables of a new store (statements separated by ";" and a newline).
SCHEMA = """
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
    prove          INTEGER NOT NULL DEFAULT 1 CHECK (prove IN (0, 1)),
    last_seen      REAL,
    instance       TEXT,
    payout_bound   INTEGER NOT NULL DEFAULT 0 CHECK (payout_bound IN (0, 1)),
    payout_binding TEXT
);
CREATE TABLE jobs ({jobs});
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
{dashboard_indexes};
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
    jobs=_JOBS_COLUMNS,
    dashboard_indexes=";\n".join(_DASHBOARD_INDEXES),
    shard_states=", ".join(f"'{s}'" for s in SHARD_STATES),
)


def create_or_upgrade(conn: sqlite3.Connection, path: Path) -> None:
    """Create the tables in an empty database, or bring an older store to ``SCHEMA_VERSION``.

    Call inside a write transaction: a failed upgrade then leaves the file as it was.

    Args:
        conn: The connection, in a transaction.
        path: The database file, for error messages.

    Raises:
        SchemaVersionError: The file holds other tables (not a RAMNET store), or a schema
            version this code cannot read.
    """
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if has_meta is None:
        others = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        ).fetchone()[0]
        if others:
            raise SchemaVersionError(f"{path} is not a RAMNET state store")
        for statement in SCHEMA.split(";\n"):
            if statement.strip():
                conn.execute(statement)
        for statement in COUNTS_SCHEMA:
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
    while version in MIGRATIONS and version < SCHEMA_VERSION:
        for statement in MIGRATIONS[version]:
            if statement == _REWRITE_JOBS_TABLE:
                _rewrite_jobs_table(conn)
            else:
                conn.execute(statement)
        version += 1
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    if version != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path} has state schema version {version}; this RAMNET reads version {SCHEMA_VERSION}"
        )


def _rewrite_jobs_table(conn: sqlite3.Connection) -> None:
    # SQLite's documented way to loosen a constraint in place ("ALTER TABLE", section 7): write
    # the table's new definition into the schema table and bump the schema's version, so every
    # connection re-reads it. The rows are untouched; integrity_check reads them against it.
    version = conn.execute("PRAGMA schema_version").fetchone()[0]
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.execute(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'jobs'",
            (f"CREATE TABLE jobs ({_JOBS_COLUMNS})",),
        )
        conn.execute(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")
