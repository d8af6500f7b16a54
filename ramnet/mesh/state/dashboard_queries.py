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
from ramnet.mesh.state.counts import (
    JOBS_COUNT_SQL,
    SETTLED_COUNT_SQL,
    SHARDS_COUNT_SQL,
    job_state_counts,
)
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
        payout_bound: Whether its payout address is bound by a checked wallet signature.
        shards_done: Its shards it delivered (revealed, or accepted; a settled job's shards
            stay revealed) that were not rejected; shards_held: those it holds now (assigned
            or committed).
    """

    node_id: str
    validator: bool
    prove: bool
    banned: bool
    payout_address: str | None
    payout_bound: bool
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
    #: The job of each event of ``settled``, in its order (what a later read updates).
    settled_jobs: list[str] = field(default_factory=list)


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


# The jobs' and the shards' counts are kept by triggers (``counts``): counted here, each would
# walk every job or shard the coordinator ever had at each poll that finds a write. The newest
# times are found by their indexes.
_FINGERPRINT_SQL = f"""
SELECT
  {JOBS_COUNT_SQL} || ':' || (SELECT coalesce(max(updated_at), 0) FROM jobs),
  {SHARDS_COUNT_SQL} || ':' || (SELECT coalesce(max(updated_at), 0) FROM shards),
  (SELECT count(*) || ':' || coalesce(max(updated_at), 0) || ':' || total(banned)
     || ':' || coalesce(CAST(max(last_seen) / 10 AS INTEGER), 0) FROM nodes),
  (SELECT count(*) || ':' || count(validator) || ':' || count(resolved_at) FROM disputes),
  (SELECT coalesce(max(movement_id), 0) FROM movements)
    || ':' || (SELECT count(*) FROM accounts),
  {SETTLED_COUNT_SQL} || ':'
    || (SELECT coalesce(max(updated_at), 0) FROM jobs WHERE state = 'settled')
"""
# The parts of the fingerprint, in _FINGERPRINT_SQL's order, and what each read depends on: an
# account or an escrow changes only with a ledger movement (the ledger's replay checks it), and
# a node's shard counts change with the shards.
_JOBS, _SHARDS, _NODES, _DISPUTES, _LEDGER, _SETTLED = range(6)
_DEPENDS = {
    "jobs": (_JOBS, _SHARDS, _SETTLED),
    "nodes": (_NODES, _SHARDS, _LEDGER),
    "disputes": (_DISPUTES,),
    "movements": (_LEDGER,),
    # The plots: settled jobs (not every state a job passes), disputes and slashings.
    "settled": (_SETTLED,),
    "dispute_times": (_DISPUTES,),
    "slashes": (_LEDGER,),
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


def _nodes(conn: sqlite3.Connection, only: set[str] | None = None) -> list[NodeRow]:
    # Every store has the binding's column: an older one gains it when it opens (schema v5).
    among = "" if only is None else f" WHERE n.node_id IN ({', '.join('?' * len(only))})"
    rows = conn.execute(
        f"SELECT n.node_id, n.validator, n.prove, n.banned, n.payout_address, n.payout_bound,"
        " n.registered_at, n.last_seen,"
        " coalesce(a.bond, 0) AS bond, coalesce(a.balance, 0) AS balance,"
        " coalesce(a.slashed, 0) AS slashed,"
        " (SELECT count(*) FROM shards s WHERE s.node_id = n.node_id"
        "   AND s.state IN ('revealed', 'accepted')) AS done,"
        " (SELECT count(*) FROM shards s WHERE s.node_id = n.node_id"
        "   AND s.state IN ('assigned', 'committed')) AS held"
        f" FROM nodes n LEFT JOIN accounts a USING (node_id){among}"
        " ORDER BY n.registered_at, n.node_id",
        sorted(only or ()),
    ).fetchall()
    return [
        NodeRow(
            node_id=str(r["node_id"]),
            validator=bool(r["validator"]),
            prove=bool(r["prove"]),
            banned=bool(r["banned"]),
            payout_address=None if r["payout_address"] is None else str(r["payout_address"]),
            payout_bound=bool(r["payout_bound"]),
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


_SETTLED_SQL = (
    "SELECT job_id, updated_at, json_extract(spec, '$.m'), json_extract(spec, '$.n'),"
    " json_extract(spec, '$.k') FROM jobs WHERE state = 'settled'"
)
_SLASHES_SQL = "SELECT at, amount FROM movements WHERE kind = 'slash'"
_Settled = dict[str, tuple[float, int]]


def _settled_into(events: _Settled, rows: list[sqlite3.Row]) -> _Settled:
    for r in rows:
        events.pop(str(r[0]), None)  # updated again (its C stored): now among the newest
        events[str(r[0])] = (float(r[1]), 2 * int(r[2] or 0) * int(r[3] or 0) * int(r[4] or 0))
    return events


def _settled_since(conn: sqlite3.Connection, was: Timeline | None, count: int) -> _Settled | None:
    # A settled job stays settled, and its time only moves on: the jobs settled (or updated)
    # since are the ones updated after the newest listed, unless the count says otherwise (a
    # job left the state, or one settled with an older time): None, and every one is read.
    if was is None or not was.settled or len(was.settled_jobs) != len(was.settled):
        return None
    newer = conn.execute(
        _SETTLED_SQL + " AND updated_at > ? ORDER BY updated_at", (was.settled[-1][0],)
    ).fetchall()
    events = _settled_into(dict(zip(was.settled_jobs, was.settled, strict=True)), newer)
    return events if len(events) == count else None


def _timeline(
    conn: sqlite3.Connection, since: Overview | None, parts: tuple[str, ...]
) -> tuple[Timeline, bool]:
    # What the plots draw grows with the coordinator's past: a change reads only the events
    # that came since (``since``), not all of them again. Also returns whether the jobs' times
    # moved forward (False: a job settled with a time older than the newest settled before).
    was = None if since is None else since.timeline
    forward = True
    if _kept(since, parts, "settled"):
        settled, settled_jobs = since.timeline.settled, since.timeline.settled_jobs
    else:
        events = _settled_since(conn, was, int(parts[_SETTLED].split(":")[0]))
        if events is None:
            forward = was is None or not was.settled
            events = _settled_into(
                {}, conn.execute(_SETTLED_SQL + " ORDER BY updated_at").fetchall()
            )
        settled, settled_jobs = list(events.values()), list(events)
    if _kept(since, parts, "dispute_times"):
        disputes = since.timeline.disputes
    else:
        disputes = [
            float(r[0]) for r in conn.execute("SELECT created_at FROM disputes ORDER BY created_at")
        ]
    if _kept(since, parts, "slashes"):
        slashes = since.timeline.slashes
    else:
        # Movements are append-only: the slashings since are the ones numbered after the
        # newest movement the earlier read saw.
        first = 0
        if since is not None and since.parts:
            first = _last_movement(since.parts)
        rows = conn.execute(
            _SLASHES_SQL + " AND movement_id > ? ORDER BY movement_id", (first,)
        ).fetchall()
        slashes = (was.slashes if first and was is not None else []) + [
            (float(r[0]), int(r[1])) for r in rows
        ]
    if was is not None and (settled, disputes, slashes) == (was.settled, was.disputes, was.slashes):
        return was, forward  # nothing the plots draw changed: ``Reader.overview`` keeps the plots
    return Timeline(settled, disputes, slashes, settled_jobs), forward


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


#: The fingerprint's times are texts of 15 significant digits (10 µs at today's clock): what
#: changed since is looked for from this much before them (a row read again is read the same).
_SLACK_S = 0.001
_NEWEST_JOBS_SQL = (
    f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id IN (SELECT job_id FROM jobs"
    " ORDER BY created_at DESC, job_id LIMIT ?) ORDER BY created_at DESC, job_id"
)
_CHANGED_JOBS_SQL = (
    f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id IN (SELECT job_id FROM jobs"
    " WHERE updated_at >= ? UNION SELECT job_id FROM shards WHERE updated_at >= ?)"
)


def _cut_to_another_limit(listed: int, total: int, limit: int) -> bool:
    # Whether an earlier read listed other than the newest ``limit`` of its ``total``.
    return listed != min(limit, total)


def _newest(part: str) -> float:
    return float(part.split(":")[1]) - _SLACK_S


def _last_movement(parts: tuple[str, ...]) -> int:
    # The newest movement's number when ``parts`` were read (movements are append-only: the
    # ones after it came since).
    return int(parts[_LEDGER].split(":")[0])


def _jobs_since(
    conn: sqlite3.Connection, since: Overview, parts: tuple[str, ...], limit: int
) -> list[JobRow] | None:
    # Jobs are never deleted, and every change to a job or to one of its shards updates its
    # time: the newest jobs now are the ones listed before with those updated since (the
    # jobs' or their shards' time after the newest before) put in. None: read them whole.
    if len(since.parts) != len(parts) or _cut_to_another_limit(
        len(since.jobs), since.jobs_total, limit
    ):
        return None
    rows = conn.execute(
        _CHANGED_JOBS_SQL, (_newest(since.parts[_JOBS]), _newest(since.parts[_SHARDS]))
    ).fetchall()
    if len(rows) > limit:
        return None  # most of the list changed
    listed = {job.job_id: job for job in since.jobs}
    listed.update((job.job_id, job) for job in _job_rows(conn, rows))
    return sorted(listed.values(), key=lambda job: (-job.created_at, job.job_id))[:limit]


def _movements_since(
    conn: sqlite3.Connection, since: Overview, limit: int
) -> tuple[list[dict[str, object]], int] | None:
    # Movements are append-only: the newest now are the ones numbered after the newest the
    # earlier read saw, then the ones it listed.
    if not since.parts or _cut_to_another_limit(len(since.movements), since.movements_total, limit):
        return None
    first = _last_movement(since.parts)
    newer = conn.execute(
        "SELECT movement_id, kind, src, dst, amount, job_id, at FROM movements"
        " WHERE movement_id > ? ORDER BY movement_id DESC LIMIT ?",
        (first, limit),
    ).fetchall()
    count = conn.execute("SELECT count(*) FROM movements WHERE movement_id > ?", (first,))
    added = int(count.fetchone()[0])
    return ([dict(r) for r in newer] + since.movements)[:limit], since.movements_total + added


# The shards updated since a time: their node, and whether they may have left one (a pending
# shard that existed then). Not DISTINCT: SQLite would then scan every shard in the order of
# their nodes instead of searching the few updated since by time.
_SHARD_HOLDERS_SQL = (
    "SELECT node_id, node_id IS NULL AND created_at <= ? FROM shards WHERE updated_at >= ?"
)


def _nodes_since(
    conn: sqlite3.Connection, since: Overview, parts: tuple[str, ...]
) -> list[NodeRow] | None:
    # While the nodes' own rows did not change (their part of the fingerprint), a node's row
    # changes only in its account (a movement since names it) or its shards (a shard updated
    # since names it): only those are read again. A shard that left its node (back to pending)
    # names none, so its node is unknown: None, and every node is read. A pending shard
    # created after the newest shard seen (a job just submitted) was on no node's row then
    # and is on none now: it names no node, and none is read for it.
    if len(since.parts) != len(parts) or since.parts[_NODES] != parts[_NODES]:
        return None
    touched: set[str] = set()
    if since.parts[_SHARDS] != parts[_SHARDS]:
        newest = _newest(since.parts[_SHARDS])
        holders = conn.execute(_SHARD_HOLDERS_SQL, (newest, newest)).fetchall()
        if any(r[1] for r in holders):
            return None
        touched.update(str(r[0]) for r in holders if r[0] is not None)
    if since.parts[_LEDGER] != parts[_LEDGER]:
        first = _last_movement(since.parts)
        named = conn.execute("SELECT src, dst FROM movements WHERE movement_id > ?", (first,))
        touched.update(str(node) for pair in named for node in pair if node is not None)
    fresh = {node.node_id: node for node in _nodes(conn, touched)} if touched else {}
    return [fresh.get(node.node_id, node) for node in since.nodes]


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
        timeline, forward = _timeline(conn, since, parts)
        if _kept(since, parts, "jobs"):
            jobs, states = since.jobs, since.job_states
        else:
            found = None
            if since is not None and forward:
                found = _jobs_since(conn, since, parts, jobs_limit)
            if found is None:
                # The newest jobs' ids first, then their columns: sorting whole rows would
                # decode every job's spec, not only the ones listed.
                found = _job_rows(conn, conn.execute(_NEWEST_JOBS_SQL, (jobs_limit,)).fetchall())
            jobs = found
            states = job_state_counts(conn)
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
            newer = None if since is None else _movements_since(conn, since, movements_limit)
            if newer is None:
                newer = (
                    _movements(conn, movements_limit),
                    int(conn.execute("SELECT count(*) FROM movements").fetchone()[0]),
                )
            movements, movements_total = newer
        if _kept(since, parts, "nodes"):
            nodes = since.nodes
        else:
            kept = None if since is None else _nodes_since(conn, since, parts)
            nodes = _nodes(conn) if kept is None else kept
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
