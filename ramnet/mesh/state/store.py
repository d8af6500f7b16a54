"""The coordinator's state store: nodes, jobs, shards, nonces, disputes and the ledger in SQLite.

One SQLite file in WAL mode holds everything, so that one transaction can move a shard *and* pay
for it: after a crash (SIGKILL, power cut) either both happened or neither did. Durability and
threads: ``ramnet.mesh.state.connection`` (``synchronous=FULL`` by default; one connection per
thread; writers queue on one lock, then ``BEGIN IMMEDIATE``).

Transactions. Every public method is one transaction. ``with store.transaction():`` groups several
calls (and ``Ledger`` operations, which use the same connections) into one; nested ``transaction``
blocks are savepoints, so an error inside one undoes only that block if the caller catches it.

Records. Methods return typed records (``ramnet.mesh.state.records``); a job's spec, a shard's
blocks and a dispute's claims and outcome are stored as JSON text (``ramnet.mesh.state.rows``).
The tables and their upgrades: ``ramnet.mesh.state.schema``; the errors raised:
``ramnet.mesh.state.errors``.

Times are float Unix seconds; every method that stamps a time takes ``now=`` for tests.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Literal

from ramnet.mesh.state import dispute_queries, shard_queries
from ramnet.mesh.state.checks import (
    check_choice,
    check_hash,
    check_int,
    check_job_id,
    check_node_id,
    check_time,
    clock,
    short,
)
from ramnet.mesh.state.connection import Connections
from ramnet.mesh.state.errors import (
    NodeBannedError,
    NotFoundError,
    StoreConflictError,
    StoreError,
    StoreInputError,
)
from ramnet.mesh.state.records import (
    DISPUTE_STATES,
    JOB_STATES,
    SHARD_ROLES,
    SHARD_STATES,
    Block,
    Dispute,
    DisputeClaims,
    DisputeOutcome,
    Job,
    JobSpec,
    JobState,
    NewShard,
    Node,
    Shard,
    ShardState,
)
from ramnet.mesh.state.rows import dispute_of, job_of, json_text, node_of, shard_of
from ramnet.mesh.state.schema import create_or_upgrade

__all__ = ["Store"]


class Store:
    """The coordinator's SQLite state store (see the module docstring for the guarantees).

    Args:
        path: The database file (created with its schema on first open; its folder must exist).
        synchronous: ``"FULL"`` (default: commits survive power loss) or ``"NORMAL"`` (commits
            survive process crashes only).
        busy_timeout_ms: How long to wait for another process's write lock.
        node_timeout: Seconds after its last signed request (or, never seen, its registration)
            that a node counts as gone (``next_shard_for``, ``eligible_validators``).
        claim_yield: Seconds a pending shard waits for another node before a node that should
            leave it to others may take it (``next_shard_for``). Free workers claim within a
            long poll's re-check (a second), so a few seconds let them go first.

    Raises:
        StoreError: The file is not a usable SQLite store; ``SchemaVersionError`` (a
            ``StoreError``): it is not a RAMNET store, or a newer one.
        StoreInputError: A bad ``synchronous`` or ``busy_timeout_ms``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        busy_timeout_ms: int = 10_000,
        node_timeout: float = 15.0,
        claim_yield: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.node_timeout = check_time("node_timeout", node_timeout)
        self.claim_yield = check_time("claim_yield", claim_yield)
        check_choice("synchronous", synchronous, ("FULL", "NORMAL"))
        self._db = Connections(
            self.path, synchronous, check_int("busy_timeout_ms", busy_timeout_ms)
        )
        try:
            with self.transaction() as conn:
                create_or_upgrade(conn, self.path)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(f"{self.path} is not a usable SQLite state store: {exc}") from exc
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transactions -----------------------------------------------------------------------

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``); nested blocks are savepoints.

        Commits when the outermost block exits normally, rolls back on any exception. Yields the
        thread's connection for callers that need raw SQL (keep to the documented tables).
        """
        return self._db.transaction()

    def snapshot(self) -> AbstractContextManager[sqlite3.Connection]:
        """A consistent read snapshot (a read transaction; joins the current one if any).

        Yields the thread's connection; only read through it.
        """
        return self._db.snapshot()

    def data_version(self) -> int:
        """SQLite's ``data_version`` on this thread's connection: it changes whenever another
        connection (this process's other threads', or another process's) committed since this
        one last asked. Cheap (no table is read): a thread that only reads polls it to skip
        its queries while nothing was written.
        """
        return int(self._db.conn().execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        """Close every connection this store opened (call once no thread uses it any more)."""
        self._db.close()

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
        payout_binding: str | None = None,
    ) -> bool:
        """Register a node, or update its payout address and flags if already known.

        ``prove`` False marks a node that only computes (``worker start --no-prove``): its
        results skip commit-reveal, and its jobs wait in ``optimistic`` for an auditor.
        Re-registering never lifts a ban and keeps ``registered_at``.

        ``payout_binding`` is the wallet binding's JSON that the caller checked (it binds
        ``payout_address``, which must then be given): the node's payout is then bound. A later
        registration with another payout address and no binding unbinds it; one without an
        address keeps what is stored.

        Returns:
            True if the node is new (the coordinator grants the default credit then, ideally in
            the same ``transaction()`` with an idempotent ``Ledger.grant(..., ref=...)``).
        """
        check_node_id(node_id)
        if payout_address is not None and (
            not isinstance(payout_address, str) or not 0 < len(payout_address) <= 256
        ):
            raise StoreInputError(
                f"payout_address must be 1-256 characters, got {short(payout_address)}"
            )
        if payout_binding is not None and (
            payout_address is None
            or not isinstance(payout_binding, str)
            or not 0 < len(payout_binding) <= 1 << 16
        ):
            raise StoreInputError("a payout binding must be 1-65536 characters, with its address")
        t = clock(now)
        bound = int(payout_binding is not None)
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO nodes (node_id, payout_address, validator, prove, banned,"
                " registered_at, updated_at, payout_bound, payout_binding)"
                " VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?) ON CONFLICT (node_id) DO NOTHING",
                (
                    node_id,
                    payout_address,
                    int(bool(validator)),
                    int(bool(prove)),
                    t,
                    t,
                    bound,
                    payout_binding,
                ),
            )
            if cur.rowcount:
                return True
            # Every SET reads the row as it was: a binding binds; another address unbinds.
            conn.execute(
                "UPDATE nodes SET"
                " payout_bound = CASE WHEN :binding IS NOT NULL THEN 1"
                "   WHEN :address IS NOT NULL AND :address IS NOT payout_address THEN 0"
                "   ELSE payout_bound END,"
                " payout_binding = CASE WHEN :binding IS NOT NULL THEN :binding"
                "   WHEN :address IS NOT NULL AND :address IS NOT payout_address THEN NULL"
                "   ELSE payout_binding END,"
                " payout_address = coalesce(:address, payout_address), validator = :validator,"
                " prove = :prove, updated_at = :t WHERE node_id = :node",
                {
                    "binding": payout_binding,
                    "address": payout_address,
                    "validator": int(bool(validator)),
                    "prove": int(bool(prove)),
                    "t": t,
                    "node": node_id,
                },
            )
            return False

    def get_node(self, node_id: str) -> Node:
        """The node's record; ``NotFoundError`` if it never registered."""
        check_node_id(node_id)
        with self.snapshot() as conn:
            row = conn.execute("SELECT * FROM nodes WHERE node_id = ?", (node_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no node {node_id}")
        return node_of(row)

    def payout_binding(self, node_id: str) -> str | None:
        """The wallet binding's JSON that bound the node's payout address, None if unbound.

        ``Node.payout_bound`` (``get_node``, ``list_nodes``) says whether there is one; this is
        the document itself, which anyone can check again (``ramnet keys check-binding``).

        Raises:
            NotFoundError: The node never registered.
        """
        check_node_id(node_id)
        with self.snapshot() as conn:
            row = conn.execute(
                "SELECT payout_binding FROM nodes WHERE node_id = ?", (node_id,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no node {node_id}")
        return None if row[0] is None else str(row[0])

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
        return [node_of(r) for r in rows]

    def set_banned(self, node_id: str, banned: bool, *, now: float | None = None) -> None:
        """Ban a node from new shards (a proven cheater), or lift the ban (it staked again)."""
        check_node_id(node_id)
        t = clock(now)
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
            raise StoreInputError(f"a nonce must be 1-128 characters, got {short(nonce)}")
        window = check_time("window_s", window_s)
        t = clock(now)
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
        spec: JobSpec,
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

        Raises:
            StoreInputError: A bad id, state or shard, or a spec that is not a valid ``JobSpec``.
            StoreConflictError: The job exists with another consumer or spec.
        """
        check_job_id(job_id)
        check_node_id(consumer)
        spec_json = json_text("spec", spec, JobSpec)
        if state is None:
            state = "sharded" if shards else "submitted"
        check_choice("state", state, JOB_STATES)
        rows = []
        for shard in shards:
            if not isinstance(shard, NewShard):
                raise StoreInputError(f"shards must be NewShard values, got {short(shard)}")
            slot = check_int("slot", shard.slot)
            check_choice("role", shard.role, SHARD_ROLES)
            rows.append((slot, slot // 3, shard.role, _blocks_json(shard.blocks)))
        if len({(r[0], r[2]) for r in rows}) != len(rows):
            raise StoreInputError("two shards with the same slot and role")
        t = clock(now)
        with self.transaction() as conn:
            old = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if old is not None:
                if old["consumer"] != consumer or old["spec"] != spec_json:
                    raise StoreConflictError(f"job {job_id} already exists with another spec")
                return job_of(old)
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
            return job_of(conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone())

    def add_shards(
        self, job_id: str, shards: Sequence[NewShard], *, now: float | None = None
    ) -> list[Shard]:
        """Add pending shards to an existing job (a recomputation, mirrors added later).

        Each gets the next free ``attempt`` number for its (slot, role).
        """
        check_job_id(job_id)
        t = clock(now)
        created = []
        with self.transaction() as conn:
            job = conn.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if job is None:
                raise NotFoundError(f"no job {job_id}")
            for shard in shards:
                slot = check_int("slot", shard.slot)
                check_choice("role", shard.role, SHARD_ROLES)
                attempt = conn.execute(
                    "SELECT coalesce(max(attempt) + 1, 0) FROM shards"
                    " WHERE job_id = ? AND slot = ? AND role = ?",
                    (job_id, slot, shard.role),
                ).fetchone()[0]
                blocks = _blocks_json(shard.blocks)
                created.append(
                    shard_queries.insert_pending(conn, job_id, slot, shard.role, attempt, blocks, t)
                )
            return [shard_queries.get(conn, sid) for sid in created]

    def get_job(self, job_id: str) -> Job:
        """The job's record; ``NotFoundError`` if unknown."""
        check_job_id(job_id)
        with self.snapshot() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no job {job_id}")
        return job_of(row)

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
            args.append(check_choice("state", state, JOB_STATES))
            sql += " AND state = ?"
        if consumer is not None:
            args.append(check_node_id(consumer))
            sql += " AND consumer = ?"
        args.append(check_int("limit", limit, 1))
        with self.snapshot() as conn:
            rows = conn.execute(sql + " ORDER BY created_at DESC, job_id LIMIT ?", args).fetchall()
        return [job_of(r) for r in rows]

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
        check_choice("state", state, JOB_STATES)
        expected: tuple[str, ...] | None = None
        if expect is not None:
            expected = (expect,) if isinstance(expect, str) else tuple(expect)
            for e in expected:
                check_choice("expect", e, JOB_STATES)
        t = clock(now)
        with self.transaction() as conn:
            row = conn.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no job {job_id}")
            current = row["state"]
            if current == state:
                return True
            if expected is not None and current not in expected:
                return False
            if current in shard_queries.FINAL_JOB_STATES:
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
        check_hash("result_blob", digest)
        with self.transaction() as conn:
            row = conn.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no job {job_id}")
            if row["state"] != "settled":
                raise StoreConflictError(f"job {job_id} is {row['state']}, not settled")
            conn.execute(
                "UPDATE jobs SET result_blob = ?, updated_at = ? WHERE job_id = ?",
                (digest, clock(now), job_id),
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
                out.append((job_of(row), [d[0] for d in digests]))
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
        check_int("shard_id", shard_id)
        with self.snapshot() as conn:
            return shard_queries.get(conn, shard_id)

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
                check_choice("state", s, SHARD_STATES)
            sql += f" AND state IN ({', '.join('?' * len(states))})"
            args.extend(states)
        with self.snapshot() as conn:
            rows = conn.execute(sql + " ORDER BY shard_id", args).fetchall()
        return [shard_of(r) for r in rows]

    def expire_overdue(self, *, now: float | None = None) -> list[int]:
        """Expire every assigned or committed shard whose deadline has passed.

        Each expired shard is replaced by a fresh ``pending`` copy (same job, slot, role and
        blocks; ``attempt + 1``) that another node can claim, unless another copy of the slot
        (its mirror) is still live; the late node's commit or reveal
        for the old shard is refused from now on. Shards of settled jobs are not copied.

        Returns:
            The ids of the shards that expired.
        """
        t = clock(now)
        with self.transaction() as conn:
            return shard_queries.expire(conn, t)

    def has_live_copy(self, job_id: str, slot: int) -> bool:
        """Whether some copy of the job's slot (any role) is still pending, held or revealed:
        when one is, a failed copy needs no replacement."""
        with self.snapshot() as conn:
            return shard_queries.has_live_copy(conn, check_job_id(job_id), check_int("slot", slot))

    def next_shard_for(
        self,
        node_id: str,
        *,
        lease_s: float = 120.0,
        now: float | None = None,
        lease_for: Callable[[Shard], float] | None = None,
    ) -> Shard | None:
        """Claim work for a node, atomically: return its shard, or None if there is none.

        In one transaction: overdue shards expire (``expire_overdue``); if the node already
        holds an ``assigned`` shard, that one is returned again (a worker that lost the answer
        gets the same shard back, deadline unchanged); otherwise the oldest job's first
        ``pending`` shard the node may take is assigned to it with ``deadline = now + lease_s``
        and its job moves from ``sharded`` to ``dispatched``.

        A job's slots go to distinct nodes: a node holding a live copy (assigned, committed,
        revealed, accepted) of any slot of the job takes no other shard of it, so the three
        copies of an audit block and a slot's mirror always come from distinct nodes, and a job
        short of nodes waits for more rather than doubling up. A node never takes again a slot
        whose copy it had rejected. Two kinds of claim leave the shard to others for
        ``claim_yield`` seconds after it became pending, then take it if nobody did: a slot
        whose copy the node lost (it expired: a crashed node back, a late one), and, for a
        validator not yet party to the job, a shard that would leave no other live, unbanned
        validator eligible for the job's disputes (``eligible_validators``). A node never
        seen since this was recorded counts as seen when it last registered. Jobs in
        ``submitted`` or a final state are not served. With ``lease_for``, a shard just assigned
        gets the deadline ``now + lease_for(shard)`` instead (a lease sized by its work).

        Raises:
            NotFoundError: The node is not registered.
            NodeBannedError: The node is banned.
        """
        check_node_id(node_id)
        lease = check_time("lease_s", lease_s)
        if lease <= 0:
            raise StoreInputError(f"lease_s must be > 0, got {lease_s}")
        t = clock(now)
        with self.transaction() as conn:
            node = conn.execute("SELECT banned FROM nodes WHERE node_id = ?", (node_id,)).fetchone()
            if node is None:
                raise NotFoundError(f"no node {node_id}")
            if node["banned"]:
                raise NodeBannedError(f"node {node_id} is banned from new shards")
            shard_queries.expire(conn, t)
            shard = shard_queries.claim(
                conn,
                node_id,
                lease,
                t,
                live_after=t - self.node_timeout,
                yield_before=t - self.claim_yield,
            )
            if shard is not None and lease_for is not None and shard.assigned_at == t:
                # Just assigned: its lease sized by its work (``lease_for``), not ``lease_s``.
                shard = shard_queries.set_deadline(conn, shard.shard_id, t + lease_for(shard), t)
            return shard

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
        check_hash("commit_hash", commit_hash)
        if reveal_deadline is not None:
            reveal_deadline = check_time("reveal_deadline", reveal_deadline)
        check_int("shard_id", shard_id)
        check_node_id(node_id)
        t = clock(now)
        with self.transaction() as conn:
            return shard_queries.step(
                conn,
                shard_id,
                node_id,
                t,
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
        check_hash("result_digest", result_digest)
        check_int("shard_id", shard_id)
        check_node_id(node_id)
        t = clock(now)
        with self.transaction() as conn:
            return shard_queries.step(
                conn,
                shard_id,
                node_id,
                t,
                frm="committed",
                to="revealed",
                column="result_digest",
                value=result_digest,
                stamp="revealed_at",
                deadline=None,
            )

    def rename_result(self, shard_id: int, old: str, new: str, *, now: float | None = None) -> bool:
        """Name a revealed result by the blob that now holds it: a result kept in memory is
        recorded under a provisional name until it is written (``Results.put`` in the coordinator).

        Returns:
            True when the shard's result was named ``old`` and is now ``new``; False otherwise
            (unchanged: the reveal was taken back meanwhile).
        """
        check_int("shard_id", shard_id)
        check_hash("result_digest", old)
        check_hash("result_digest", new)
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE shards SET result_digest = ?, updated_at = ? WHERE shard_id = ?"
                " AND result_digest = ?",
                (new, clock(now), shard_id, old),
            )
            return cur.rowcount == 1

    def reopen_reveal(self, shard_id: int, deadline: float, *, now: float | None = None) -> bool:
        """Take back a reveal whose result was lost: ``revealed`` → ``committed``, awaiting the
        same node's reveal again by ``deadline`` (after which it expires, as any late reveal).

        Returns:
            True when the shard was revealed and is now committed; False otherwise (unchanged).
        """
        check_int("shard_id", shard_id)
        limit = check_time("deadline", deadline)
        t = clock(now)
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
        limit = check_time("deadline", deadline)
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE shards SET deadline = ?, updated_at = ? WHERE job_id = ?"
                " AND state = 'committed' AND deadline IS NULL",
                (limit, clock(now), job_id),
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
        check_int("shard_id", shard_id)
        check_choice("state", state, SHARD_STATES)
        expected: tuple[str, ...] | None = None
        if expect is not None:
            expected = (expect,) if isinstance(expect, str) else tuple(expect)
            for e in expected:
                check_choice("expect", e, SHARD_STATES)
        t = clock(now)
        with self.transaction() as conn:
            return shard_queries.set_state(conn, shard_id, state, expected, t)

    # ---- disputes ---------------------------------------------------------------------------

    def open_dispute(
        self,
        job_id: str,
        claims: DisputeClaims,
        *,
        validator: str | None = None,
        now: float | None = None,
    ) -> Dispute:
        """Record a dispute on a job: the contested claims and the validator drawn."""
        check_job_id(job_id)
        if validator is not None:
            check_node_id(validator)
        claims_json = json_text("claims", claims, DisputeClaims)
        t = clock(now)
        with self.transaction() as conn:
            return dispute_queries.insert(conn, job_id, claims_json, validator, t)

    def resolve_dispute(
        self,
        dispute_id: int,
        outcome: DisputeOutcome,
        *,
        verdict_digest: str | None = None,
        now: float | None = None,
    ) -> Dispute:
        """Close a dispute with its outcome and the verdict blob's digest.

        Resolving again with the same outcome and digest is a no-op; otherwise a resolved
        dispute is a ``StoreConflictError``.
        """
        check_int("dispute_id", dispute_id)
        if verdict_digest is not None:
            check_hash("verdict_digest", verdict_digest)
        outcome_json = json_text("outcome", outcome, DisputeOutcome)
        t = clock(now)
        with self.transaction() as conn:
            return dispute_queries.resolve(conn, dispute_id, outcome_json, verdict_digest, t)

    def set_dispute_validator(self, dispute_id: int, validator: str | None) -> Dispute:
        """Name (or re-draw) the validator of an open dispute; None: none (it went silent)."""
        check_int("dispute_id", dispute_id)
        if validator is not None:
            check_node_id(validator)
        with self.transaction() as conn:
            return dispute_queries.set_validator(conn, dispute_id, validator)

    def eligible_validators(self, job_id: str, *, now: float | None = None) -> list[str]:
        """The validators that may judge the job: opted in, unbanned, seen within
        ``node_timeout`` and no party to it (``dispute_queries.eligible_validators``)."""
        check_job_id(job_id)
        t = clock(now)
        with self.snapshot() as conn:
            return dispute_queries.eligible_validators(conn, job_id, t - self.node_timeout)

    def get_dispute(self, dispute_id: int) -> Dispute:
        """The dispute's record; ``NotFoundError`` if unknown."""
        check_int("dispute_id", dispute_id)
        with self.snapshot() as conn:
            return dispute_queries.get(conn, dispute_id)

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
            args.append(check_choice("state", state, DISPUTE_STATES))
            sql += " AND state = ?"
        with self.snapshot() as conn:
            rows = conn.execute(sql + " ORDER BY dispute_id", args).fetchall()
        return [dispute_of(r) for r in rows]


def _blocks_json(blocks: Sequence[Block]) -> str:
    return json_text("blocks", blocks, list[Block])
