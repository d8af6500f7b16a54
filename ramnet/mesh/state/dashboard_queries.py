"""Read-only queries for the coordinator's dashboard: every node with its account and work, the
newest jobs with their shards counted by state, one job's shards and disputes, the ledger's latest
movements, the events its plots draw, and a fingerprint that changes whenever any of it does.

Nothing here writes. Each function reads in one snapshot (``Store.snapshot``), so what a page
shows is one consistent state. No secret leaves through these rows: no key, no job's audit salt,
no tile, no block list of a shard (which would tell which blocks are audit copies).
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field
from typing import TypeGuard

from ramnet.mesh.state.checks import check_int, check_job_id
from ramnet.mesh.state.errors import NotFoundError
from ramnet.mesh.state.records import SHARD_STATES, Dispute, ShardRole, ShardState
from ramnet.mesh.state.rows import dispute_of
from ramnet.mesh.state.store import Store

__all__ = [
    "JobDetail",
    "JobRow",
    "NodeRow",
    "Overview",
    "ShardRow",
    "Timeline",
    "fingerprint",
    "read_job",
    "read_overview",
]


@dataclass(frozen=True)
class NodeRow:
    """A registered node with its account and the shards it computed.

    Attributes:
        payout_bound: Whether its payout address is bound by a checked wallet signature (None:
            this store does not record bindings).
        shards_done: Its shards it delivered (revealed, or accepted; a settled job's shards
            stay revealed) that were not rejected; shards_held: those it holds now (assigned
            or committed).
    """

    node_id: str
    validator: bool
    prove: bool
    banned: bool
    payout_address: str | None
    payout_bound: bool | None
    registered_at: float
    last_seen: float | None
    bond: int
    balance: int
    slashed: int
    shards_done: int
    shards_held: int


@dataclass(frozen=True)
class JobRow:
    """A job as the dashboard lists it: its size and its shards counted by state.

    Attributes:
        shards: Shard state -> how many of its shards are in it (every state, zeros included).
        settled_at: When it reached its final state (its last update), or None while it runs.
    """

    job_id: str
    consumer: str
    state: str
    m: int
    k: int
    n: int
    dtype: str
    nodes: int
    redundancy: str
    price: int
    created_at: float
    updated_at: float
    reason: str | None
    shards: dict[str, int]

    @property
    def total_shards(self) -> int:
        """Its shards, every copy counted."""
        return sum(self.shards.values())

    @property
    def done_shards(self) -> int:
        """Its shards delivered (revealed or accepted): its work done so far."""
        return self.shards.get("revealed", 0) + self.shards.get("accepted", 0)

    @property
    def ops(self) -> int:
        """Its product's operations: a multiply and an add per term, 2·m·n·k."""
        return 2 * self.m * self.n * self.k


@dataclass(frozen=True)
class ShardRow:
    """One copy of one plan slot's work, without its blocks (only how many)."""

    shard_id: int
    slot: int
    triad: int
    role: ShardRole
    attempt: int
    node_id: str | None
    state: ShardState
    blocks: int
    created_at: float
    assigned_at: float | None
    committed_at: float | None
    revealed_at: float | None
    updated_at: float


@dataclass(frozen=True)
class Timeline:
    """What the plots draw, as (Unix time, value) events.

    Attributes:
        settled: (when, operations) for each settled job.
        disputes: When each dispute opened (a check failed: copies disagreed or a partial failed
            Freivalds, or an audit found fraud).
        slashes: (when, amount) for each slashing.
    """

    settled: list[tuple[float, int]] = field(default_factory=list)
    disputes: list[float] = field(default_factory=list)
    slashes: list[tuple[float, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Overview:
    """Everything on the dashboard's main page, read in one snapshot.

    Attributes:
        jobs: The newest jobs, newest first; jobs_total: how many jobs there are in all;
            job_states: job state -> how many jobs are in it.
        movements: The newest ledger movements, newest first; movements_total: how many in all.
        fingerprint: ``fingerprint`` of this state.
        parts: What the fingerprint is made of, one text per table read (jobs, shards,
            nodes, disputes, ledger, settled jobs): ``read_overview(since=...)`` reads again
            only what depends on a part that changed.
    """

    nodes: list[NodeRow]
    jobs: list[JobRow]
    jobs_total: int
    job_states: dict[str, int]
    disputes: list[Dispute]
    movements: list[dict[str, object]]
    movements_total: int
    timeline: Timeline
    fingerprint: str
    parts: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobDetail:
    """One job: its row, its shards in id order, its disputes and its ledger movements."""

    job: JobRow
    shards: list[ShardRow]
    disputes: list[Dispute]
    movements: list[dict[str, object]]
    fingerprint: str


_FINGERPRINT_SQL = """
SELECT
  (SELECT count(*) || ':' || coalesce(max(updated_at), 0) FROM jobs),
  (SELECT count(*) || ':' || coalesce(max(updated_at), 0) FROM shards),
  (SELECT count(*) || ':' || coalesce(max(updated_at), 0) || ':' || total(banned)
     || ':' || coalesce(CAST(max(last_seen) / 10 AS INTEGER), 0) FROM nodes),
  (SELECT count(*) || ':' || count(validator) || ':' || count(resolved_at) FROM disputes),
  (SELECT coalesce(max(movement_id), 0) FROM movements)
    || ':' || (SELECT count(*) FROM accounts),
  (SELECT count(*) || ':' || coalesce(max(updated_at), 0) FROM jobs WHERE state = 'settled')
"""
# The parts of the fingerprint, in _FINGERPRINT_SQL's order, and what each read depends on: an
# account or an escrow changes only with a ledger movement (the ledger's replay checks it), and
# a node's shard counts change with the shards.
_JOBS, _SHARDS, _NODES, _DISPUTES, _LEDGER, _SETTLED = range(6)
_DEPENDS = {
    "jobs": (_JOBS, _SHARDS),
    "nodes": (_NODES, _SHARDS, _LEDGER),
    "disputes": (_DISPUTES,),
    "movements": (_LEDGER,),
    # The plots: settled jobs (not every state a job passes), disputes and slashings.
    "timeline": (_SETTLED, _DISPUTES, _LEDGER),
}

_JOB_COLUMNS = """
  job_id, consumer, state, created_at, updated_at, reason,
  json_extract(spec, '$.m') AS m, json_extract(spec, '$.k') AS k,
  json_extract(spec, '$.n') AS n, json_extract(spec, '$.dtype') AS dtype,
  json_extract(spec, '$.nodes') AS nodes,
  coalesce(json_extract(spec, '$.redundancy'), 'none') AS redundancy,
  json_extract(spec, '$.price') AS price
"""


def _parts(conn: sqlite3.Connection) -> tuple[str, ...]:
    return tuple(str(value) for value in conn.execute(_FINGERPRINT_SQL).fetchone())


def _digest(parts: tuple[str, ...]) -> str:
    return hashlib.blake2b("|".join(parts).encode(), digest_size=8).hexdigest()


def _fingerprint(conn: sqlite3.Connection) -> str:
    return _digest(_parts(conn))


def _kept(since: Overview | None, parts: tuple[str, ...], read: str) -> TypeGuard[Overview]:
    # Whether what ``read`` returns is still what ``since`` holds: every part of the fingerprint
    # it depends on is as it was.
    return (
        since is not None
        and len(since.parts) == len(parts)
        and all(since.parts[i] == parts[i] for i in _DEPENDS[read])
    )


def fingerprint(store: Store) -> str:
    """A short text that changes whenever anything the dashboard shows changes: a job, a
    shard, a node (registered, banned, updated; seen again only every 10 s, so that heartbeats
    do not redraw every open dashboard each second), a dispute (drawn, resolved) or a ledger
    movement.

    Cheap (a few aggregates over the tables, no row decoded): a poller may call it several times
    a second.

    Args:
        store: The coordinator's state.

    Returns:
        16 hex digits.
    """
    with store.snapshot() as conn:
        return _fingerprint(conn)


def _shard_counts(conn: sqlite3.Connection, job_ids: list[str]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {job: dict.fromkeys(SHARD_STATES, 0) for job in job_ids}
    if not job_ids:
        return counts
    marks = ", ".join("?" * len(job_ids))
    rows = conn.execute(
        f"SELECT job_id, state, count(*) FROM shards WHERE job_id IN ({marks})"
        " GROUP BY job_id, state",
        job_ids,
    )
    for job_id, state, count in rows:
        counts[job_id][state] = int(count)
    return counts


def _job_rows(conn: sqlite3.Connection, rows: list[sqlite3.Row]) -> list[JobRow]:
    counts = _shard_counts(conn, [str(r["job_id"]) for r in rows])
    return [
        JobRow(
            job_id=str(r["job_id"]),
            consumer=str(r["consumer"]),
            state=str(r["state"]),
            m=int(r["m"] or 0),
            k=int(r["k"] or 0),
            n=int(r["n"] or 0),
            dtype=str(r["dtype"]),
            nodes=int(r["nodes"] or 0),
            redundancy=str(r["redundancy"]),
            price=int(r["price"] or 0),
            created_at=float(r["created_at"]),
            updated_at=float(r["updated_at"]),
            reason=None if r["reason"] is None else str(r["reason"]),
            shards=counts[str(r["job_id"])],
        )
        for r in rows
    ]


def _nodes(conn: sqlite3.Connection) -> list[NodeRow]:
    columns = {str(r["name"]) for r in conn.execute("PRAGMA table_info(nodes)")}
    # A store that records bindings has the column; an older one shows no flag at all.
    bound = "n.payout_bound" if "payout_bound" in columns else "NULL"
    rows = conn.execute(
        f"SELECT n.node_id, n.validator, n.prove, n.banned, n.payout_address, {bound} AS bound,"
        " n.registered_at, n.last_seen,"
        " coalesce(a.bond, 0) AS bond, coalesce(a.balance, 0) AS balance,"
        " coalesce(a.slashed, 0) AS slashed,"
        " (SELECT count(*) FROM shards s WHERE s.node_id = n.node_id"
        "   AND s.state IN ('revealed', 'accepted')) AS done,"
        " (SELECT count(*) FROM shards s WHERE s.node_id = n.node_id"
        "   AND s.state IN ('assigned', 'committed')) AS held"
        " FROM nodes n LEFT JOIN accounts a USING (node_id)"
        " ORDER BY n.registered_at, n.node_id"
    ).fetchall()
    return [
        NodeRow(
            node_id=str(r["node_id"]),
            validator=bool(r["validator"]),
            prove=bool(r["prove"]),
            banned=bool(r["banned"]),
            payout_address=None if r["payout_address"] is None else str(r["payout_address"]),
            payout_bound=None if r["bound"] is None else bool(r["bound"]),
            registered_at=float(r["registered_at"]),
            last_seen=None if r["last_seen"] is None else float(r["last_seen"]),
            bond=int(r["bond"]),
            balance=int(r["balance"]),
            slashed=int(r["slashed"]),
            shards_done=int(r["done"]),
            shards_held=int(r["held"]),
        )
        for r in rows
    ]


def _timeline(conn: sqlite3.Connection) -> Timeline:
    settled = [
        (float(r[0]), 2 * int(r[1] or 0) * int(r[2] or 0) * int(r[3] or 0))
        for r in conn.execute(
            "SELECT updated_at, json_extract(spec, '$.m'), json_extract(spec, '$.n'),"
            " json_extract(spec, '$.k') FROM jobs WHERE state = 'settled' ORDER BY updated_at"
        )
    ]
    disputes = [
        float(r[0]) for r in conn.execute("SELECT created_at FROM disputes ORDER BY created_at")
    ]
    slashes = [
        (float(r[0]), int(r[1]))
        for r in conn.execute("SELECT at, amount FROM movements WHERE kind = 'slash' ORDER BY at")
    ]
    return Timeline(settled, disputes, slashes)


def _movements(
    conn: sqlite3.Connection, limit: int, job_id: str | None = None
) -> list[dict[str, object]]:
    sql = "SELECT movement_id, kind, src, dst, amount, job_id, at FROM movements"
    args: list[object] = []
    if job_id is not None:
        sql += " WHERE job_id = ?"
        args.append(job_id)
    args.append(limit)
    rows = conn.execute(sql + " ORDER BY movement_id DESC LIMIT ?", args).fetchall()
    return [dict(r) for r in rows]


def read_overview(
    store: Store,
    *,
    jobs_limit: int = 200,
    movements_limit: int = 100,
    since: Overview | None = None,
) -> Overview:
    """Everything the dashboard's main page shows, in one snapshot.

    Args:
        store: The coordinator's state.
        jobs_limit: How many of the newest jobs to list.
        movements_limit: How many of the newest ledger movements to list.
        since: An overview read earlier with the same limits: what depends only on parts of
            the fingerprint that did not change since is taken from it, not read again (a
            job's shards moving reads the jobs and the nodes, not the ledger or the plots).

    Returns:
        The overview.

    Raises:
        StoreInputError: A limit that is not a positive integer.
    """
    check_int("jobs_limit", jobs_limit, 1)
    check_int("movements_limit", movements_limit, 1)
    with store.snapshot() as conn:
        parts = _parts(conn)
        if _kept(since, parts, "jobs"):
            jobs, states = since.jobs, since.job_states
        else:
            # The newest jobs' ids first, then their columns: sorting whole rows would decode
            # every job's spec, not only the ones listed.
            jobs = _job_rows(
                conn,
                conn.execute(
                    f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id IN (SELECT job_id FROM jobs"
                    " ORDER BY created_at DESC, job_id LIMIT ?) ORDER BY created_at DESC, job_id",
                    (jobs_limit,),
                ).fetchall(),
            )
            states = {
                str(r[0]): int(r[1])
                for r in conn.execute("SELECT state, count(*) FROM jobs GROUP BY state")
            }
        if _kept(since, parts, "disputes"):
            disputes = since.disputes
        else:
            disputes = [
                dispute_of(r)
                for r in conn.execute(
                    "SELECT * FROM disputes ORDER BY dispute_id DESC LIMIT ?", (jobs_limit,)
                )
            ]
        if _kept(since, parts, "movements"):
            movements, movements_total = since.movements, since.movements_total
        else:
            movements = _movements(conn, movements_limit)
            movements_total = int(conn.execute("SELECT count(*) FROM movements").fetchone()[0])
        nodes = since.nodes if _kept(since, parts, "nodes") else _nodes(conn)
        timeline = since.timeline if _kept(since, parts, "timeline") else _timeline(conn)
        return Overview(
            nodes=nodes,
            jobs=jobs,
            jobs_total=sum(states.values()),
            job_states=states,
            disputes=disputes,
            movements=movements,
            movements_total=movements_total,
            timeline=timeline,
            fingerprint=_digest(parts),
            parts=parts,
        )


def read_job(store: Store, job_id: str) -> JobDetail:
    """One job as its dashboard page shows it, in one snapshot.

    Args:
        store: The coordinator's state.
        job_id: The job.

    Returns:
        The job, its shards (without their blocks), its disputes and its ledger movements.

    Raises:
        StoreInputError: ``job_id`` is not a job id.
        NotFoundError: No such job.
    """
    check_job_id(job_id)
    with store.snapshot() as conn:
        found = conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,))
        rows = found.fetchall()
        if not rows:
            raise NotFoundError(f"no job {job_id}")
        shards = [
            ShardRow(
                shard_id=int(r["shard_id"]),
                slot=int(r["slot"]),
                triad=int(r["triad"]),
                role=r["role"],
                attempt=int(r["attempt"]),
                node_id=None if r["node_id"] is None else str(r["node_id"]),
                state=r["state"],
                blocks=int(r["blocks"] or 0),
                created_at=float(r["created_at"]),
                assigned_at=r["assigned_at"],
                committed_at=r["committed_at"],
                revealed_at=r["revealed_at"],
                updated_at=float(r["updated_at"]),
            )
            for r in conn.execute(
                "SELECT shard_id, slot, triad, role, attempt, node_id, state,"
                " json_array_length(blocks) AS blocks, created_at, assigned_at, committed_at,"
                " revealed_at, updated_at FROM shards WHERE job_id = ? ORDER BY shard_id",
                (job_id,),
            )
        ]
        disputes = [
            dispute_of(r)
            for r in conn.execute(
                "SELECT * FROM disputes WHERE job_id = ? ORDER BY dispute_id", (job_id,)
            )
        ]
        return JobDetail(
            job=_job_rows(conn, rows)[0],
            shards=shards,
            disputes=disputes,
            movements=_movements(conn, 1000, job_id),
            fingerprint=_fingerprint(conn),
        )
