"""Counts that SQLite's triggers keep as rows are written: the jobs (all, and in each state),
the shards, and the units held in escrow.

The dashboard asks for them each time the state changes, and its fingerprint each time a poll
finds a write. Counted from the tables, each walks every job, shard or escrow the coordinator
ever had (a ``count(*)`` reads a whole index): the longer a coordinator serves, the more an open
dashboard costs it. Kept by triggers in the same transaction as the write, each is one row read.

Triggers fire for every write, the store's own and any other SQL alike, so the counts cannot
drift unless a trigger is dropped; ``count_problems`` (run by ``coordinator start`` through
``integrity.check_state``) finds it if one was.
"""

from __future__ import annotations

import sqlite3

__all__ = [
    "COUNTS_SCHEMA",
    "JOBS_COUNT_SQL",
    "SETTLED_COUNT_SQL",
    "SHARDS_COUNT_SQL",
    "count_problems",
    "escrow_total",
    "job_state_counts",
]

#: What each count is, counted from the tables (also what a new or upgraded store starts from).
_RECOUNT_SQL = """
SELECT 'jobs', count(*) FROM jobs
UNION ALL SELECT 'jobs:' || state, count(*) FROM jobs GROUP BY state
UNION ALL SELECT 'shards', count(*) FROM shards
UNION ALL SELECT 'escrow_held', coalesce(sum(held), 0) FROM escrows
"""


def _add(name: str, amount: str) -> str:
    # One count moved by ``amount``, its row created at the first (both SQL expressions).
    return (
        f"INSERT INTO counts (name, n) VALUES ({name}, {amount})"
        " ON CONFLICT (name) DO UPDATE SET n = n + excluded.n"
    )


def _trigger(name: str, event: str, *moves: tuple[str, str]) -> str:
    body = " ".join(f"{_add(*move)};" for move in moves)
    return f"CREATE TRIGGER IF NOT EXISTS {name} {event} BEGIN {body} END"


_OLD_STATE, _NEW_STATE = "'jobs:' || OLD.state", "'jobs:' || NEW.state"

#: The table, its triggers, and its rows counted afresh: run in order on a new store (after
#: ``SCHEMA``) and on one upgraded to version 7, where running them again changes nothing. Each
#: item is one statement (a trigger's body holds its own).
COUNTS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS counts (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID",
    _trigger("jobs_counted", "AFTER INSERT ON jobs", ("'jobs'", "1"), (_NEW_STATE, "1")),
    _trigger(
        "jobs_state_counted",
        "AFTER UPDATE OF state ON jobs WHEN OLD.state IS NOT NEW.state",
        (_OLD_STATE, "-1"),
        (_NEW_STATE, "1"),
    ),
    _trigger("jobs_uncounted", "AFTER DELETE ON jobs", ("'jobs'", "-1"), (_OLD_STATE, "-1")),
    _trigger("shards_counted", "AFTER INSERT ON shards", ("'shards'", "1")),
    _trigger("shards_uncounted", "AFTER DELETE ON shards", ("'shards'", "-1")),
    _trigger("escrows_counted", "AFTER INSERT ON escrows", ("'escrow_held'", "NEW.held")),
    _trigger(
        "escrows_held_counted",
        "AFTER UPDATE OF held ON escrows",
        ("'escrow_held'", "NEW.held - OLD.held"),
    ),
    _trigger("escrows_uncounted", "AFTER DELETE ON escrows", ("'escrow_held'", "-OLD.held")),
    "DELETE FROM counts",
    f"INSERT INTO counts (name, n) {_RECOUNT_SQL}",
)

#: The fingerprint's use: one count, 0 before its first row.
JOBS_COUNT_SQL = "coalesce((SELECT n FROM counts WHERE name = 'jobs'), 0)"
SHARDS_COUNT_SQL = "coalesce((SELECT n FROM counts WHERE name = 'shards'), 0)"
SETTLED_COUNT_SQL = "coalesce((SELECT n FROM counts WHERE name = 'jobs:settled'), 0)"
# The jobs' counts by state: the names after "jobs:" and before "jobs;" (":" + 1).
_JOB_STATES_SQL = (
    "SELECT substr(name, 6), n FROM counts WHERE name > 'jobs:' AND name < 'jobs;' AND n > 0"
)
_ESCROW_HELD_SQL = "SELECT n FROM counts WHERE name = 'escrow_held'"


def job_state_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """How many jobs are in each state (states with none left out).

    Args:
        conn: A connection to the store, in a snapshot.

    Returns:
        State -> count.
    """
    rows = conn.execute(_JOB_STATES_SQL)
    return {str(r[0]): int(r[1]) for r in rows}


def escrow_total(conn: sqlite3.Connection) -> int:
    """The units held in every escrow together.

    Args:
        conn: A connection to the store, in a snapshot.

    Returns:
        The sum of the escrows' ``held``.
    """
    row = conn.execute(_ESCROW_HELD_SQL).fetchone()
    return 0 if row is None else int(row[0])


def count_problems(conn: sqlite3.Connection) -> list[str]:
    """The kept counts that disagree with the tables, one line each (empty: none). Walks every
    table once: for a check before serving, not for each read.

    Args:
        conn: A connection to the store, in a snapshot.

    Returns:
        The problems.
    """
    kept = {str(r[0]): int(r[1]) for r in conn.execute("SELECT name, n FROM counts")}
    counted = {str(r[0]): int(r[1]) for r in conn.execute(_RECOUNT_SQL)}
    return [
        f"the kept count {name!r} is {kept.get(name, 0)}, the tables give {counted.get(name, 0)}"
        for name in sorted(kept.keys() | counted.keys())
        if kept.get(name, 0) != counted.get(name, 0)
    ]
