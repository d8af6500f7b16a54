"""Failure detection: which nodes are alive, and what happens to the work of those that are not.

Every signed request shows its node is alive (``seen``; a worker computing a long shard sends
heartbeats, which are signed requests too). The times are kept in memory and written to the
nodes' ``last_seen`` by the next sweep, so a request costs no write of its own.

A sweep (``tick``: at most every ``SWEEP_EVERY`` seconds, from the requests and long polls that
come in anyway, so an idle coordinator does nothing) in one transaction:

1. records when nodes were last seen;
2. expires the shards whose lease ran out (as a claim always did);
3. expires the shards held by nodes silent for ``node_timeout`` seconds: assigned ones, and
   committed ones whose reveal is awaited. Each gets a fresh pending copy at once unless another
   copy of its slot is live (a mirror), so it goes to another node within a poll. A node that
   comes back may go on working; its expired shards are simply gone (a late commit is refused).
   For ``node_timeout`` seconds after the coordinator starts nobody is judged: nodes could not
   reach it while it was down;
4. handles stragglers (``rules.lease.is_straggler``: held far longer than the job's committed
   shards took): a straggler whose slot's other copy (its mirror) committed expires, the mirror
   serving the slot; any other gets one backup copy (same slot and role, another node) while a
   live node outside the job could take it. The first copy to commit wins and its rivals go in
   the same transaction (``Shards.commit``), so a slot is never revealed or paid twice.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ramnet._errors import ConfigError
from ramnet.mesh.coordinator.leases import Leases
from ramnet.mesh.coordinator.polls import Polls
from ramnet.mesh.rules.lease import is_straggler
from ramnet.mesh.state import node_queries, shard_queries
from ramnet.mesh.state.errors import NotFoundError
from ramnet.mesh.state.records import FINAL_JOB_STATES, Shard
from ramnet.mesh.state.rows import shard_of
from ramnet.mesh.state.store import Store

__all__ = ["SWEEP_EVERY", "Liveness", "Sweep"]

#: Seconds between sweeps at most (a request or poll in between triggers the next).
SWEEP_EVERY = 0.5

Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(f"coordinator: {line}", file=sys.stderr, flush=True)


@dataclass
class Sweep:
    """What one sweep did (shard ids).

    Attributes:
        overdue: Expired at their lease's end.
        silent: Expired because their node went silent.
        stragglers: Expired because their slot's other copy committed.
        backups: Backup copies added for stragglers.
        notes: One line per straggler handled, for the log.
    """

    overdue: list[int] = field(default_factory=list)
    silent: list[int] = field(default_factory=list)
    stragglers: list[int] = field(default_factory=list)
    backups: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.overdue or self.silent or self.stragglers or self.backups)


class Liveness:
    """Who was seen when, and the sweep that acts on silence and slowness.

    Args:
        store: The state store.
        polls: Woken when a sweep changed something.
        leases: The leases (the straggler rule's constants are its policy's).
        node_timeout: Seconds of silence after which a node counts as gone.
        log: Receives one line per node found gone or shard backed up (default: stderr).
    """

    def __init__(
        self,
        store: Store,
        polls: Polls,
        leases: Leases,
        *,
        node_timeout: float,
        log: Log | None = None,
    ) -> None:
        if not node_timeout > 0:
            raise ConfigError(f"node_timeout must be > 0 seconds, got {node_timeout}")
        self._store = store
        self._polls = polls
        self._leases = leases
        self.node_timeout = float(node_timeout)
        self._log = log or _stderr
        self._started = time.time()
        self._seen: dict[str, float] = {}  # not yet written to the store
        self._seen_lock = threading.Lock()
        self._sweeping = threading.Lock()
        self._last_sweep = 0.0
        self._gone: set[str] = set()  # nodes already logged as gone (until seen again)

    def seen(self, node: str, now: float | None = None) -> None:
        """Note a sign of life of ``node`` (a signed request), then sweep if one is due."""
        t = time.time() if now is None else now
        with self._seen_lock:
            self._seen[node] = max(t, self._seen.get(node, t))
        self.tick()

    def last_seen(self, node: str) -> float | None:
        """When ``node`` last made a signed request (None: never, as far as is recorded)."""
        with self._seen_lock:
            pending = self._seen.get(node)
        if pending is not None:
            return pending
        try:
            return self._store.get_node(node).last_seen
        except NotFoundError:
            return None

    def heartbeat(self, node: str) -> dict[str, Any]:
        """The reply to a heartbeat (the request itself was the sign of life): ``node_timeout``
        and the ids of the shards ``node`` still holds, assigned or committed."""
        held = self._store.list_shards(node_id=node, state=("assigned", "committed"))
        return {"node_timeout": self.node_timeout, "shards": [str(s.shard_id) for s in held]}

    def tick(self) -> None:
        """Sweep if the last sweep is ``SWEEP_EVERY`` seconds old and no other thread is
        sweeping; wake the long polls if it changed anything.

        A failed sweep is logged, not raised: it runs on behalf of whichever request came in,
        which must not fail for it, and the next tick tries again.
        """
        if time.time() - self._last_sweep < SWEEP_EVERY:
            return
        if not self._sweeping.acquire(blocking=False):
            return
        try:
            now = time.time()
            if now - self._last_sweep < SWEEP_EVERY:
                return
            self._last_sweep = now
            try:
                changed = self.sweep(now)
            except Exception as exc:  # logged with its cause; the next tick retries
                self._log(f"liveness sweep failed: {type(exc).__name__}: {exc}")
                return
        finally:
            self._sweeping.release()
        if changed:
            self._polls.notify()

    def sweep(self, now: float | None = None) -> Sweep:
        """One sweep (see the module docstring), in one transaction; returns what it did."""
        t = time.time() if now is None else now
        with self._seen_lock:
            seen, self._seen = self._seen, {}
        done = Sweep()
        with self._store.transaction() as conn:
            if seen:
                node_queries.record_seen(conn, seen)
            done.overdue = shard_queries.expire(conn, t)
            silent: list[Shard] = []
            if t - self._started >= self.node_timeout:
                silent = node_queries.shards_of_silent_nodes(conn, t - self.node_timeout)
            done.silent = shard_queries.expire_shards(conn, [s.shard_id for s in silent], t)
            self._stragglers(conn, t, done)
        self._report(seen, silent, done)
        return done

    def _stragglers(self, conn: sqlite3.Connection, t: float, done: Sweep) -> None:
        final = ", ".join(f"'{s}'" for s in sorted(FINAL_JOB_STATES))  # constants
        held = conn.execute(
            "SELECT s.* FROM shards s JOIN jobs j USING (job_id)"
            f" WHERE s.state = 'assigned' AND j.state NOT IN ({final})"
            " AND s.assigned_at IS NOT NULL AND s.assigned_at < ? ORDER BY s.shard_id",
            (t - self._leases.policy.straggler_min_s,),
        ).fetchall()
        times: dict[str, list[float]] = {}
        for row in held:
            shard = shard_of(row)
            if shard.job_id not in times:
                times[shard.job_id] = [
                    float(r[0])
                    for r in conn.execute(
                        "SELECT committed_at - assigned_at FROM shards WHERE job_id = ?"
                        " AND committed_at IS NOT NULL AND assigned_at IS NOT NULL",
                        (shard.job_id,),
                    )
                ]
            assert shard.assigned_at is not None
            if not is_straggler(t - shard.assigned_at, times[shard.job_id], self._leases.policy):
                continue
            other_copy_committed = conn.execute(
                "SELECT 1 FROM shards WHERE job_id = ? AND slot = ? AND role != ?"
                " AND state IN ('committed', 'revealed', 'accepted')",
                (shard.job_id, shard.slot, shard.role),
            ).fetchone()
            held_s = t - shard.assigned_at
            if other_copy_committed:
                done.stragglers += shard_queries.expire_shards(conn, [shard.shard_id], t)
                done.notes.append(
                    f"shard {shard.shard_id} of job {shard.job_id} straggles on node"
                    f" {shard.node_id} ({held_s:.0f} s): it expires, its slot's other copy"
                    " committed"
                )
                continue
            rival = conn.execute(
                "SELECT 1 FROM shards WHERE job_id = ? AND slot = ? AND role = ?"
                " AND shard_id != ? AND state IN ('pending', 'assigned')",
                (shard.job_id, shard.slot, shard.role, shard.shard_id),
            ).fetchone()
            # A live worker outside the job (a serving process names its instance; a node that
            # held shards before computes too): consumers take no work.
            helper = conn.execute(
                "SELECT 1 FROM nodes n WHERE n.banned = 0 AND n.last_seen >= ?"
                " AND (n.instance IS NOT NULL"
                " OR EXISTS (SELECT 1 FROM shards h WHERE h.node_id = n.node_id))"
                " AND NOT EXISTS (SELECT 1 FROM shards o WHERE o.job_id = ?"
                " AND o.node_id = n.node_id)",
                (t - self.node_timeout, shard.job_id),
            ).fetchone()
            if rival or not helper:
                continue
            attempt = conn.execute(
                "SELECT max(attempt) + 1 FROM shards WHERE job_id = ? AND slot = ? AND role = ?",
                (shard.job_id, shard.slot, shard.role),
            ).fetchone()[0]
            backup = shard_queries.insert_pending(
                conn, shard.job_id, shard.slot, shard.role, attempt, row["blocks"], t
            )
            done.backups.append(backup)
            done.notes.append(
                f"shard {shard.shard_id} of job {shard.job_id} straggles on node {shard.node_id}"
                f" ({held_s:.0f} s): backup copy {backup} queued; the first to commit wins"
            )

    def _report(self, seen: dict[str, float], silent: list[Shard], done: Sweep) -> None:
        # One line per node found gone (not again until it is seen again), one per backup.
        self._gone -= set(seen)
        by_node: dict[str, list[int]] = {}
        for shard in silent:
            if shard.shard_id in done.silent:
                by_node.setdefault(str(shard.node_id), []).append(shard.shard_id)
        for node, ids in by_node.items():
            if node not in self._gone:
                self._gone.add(node)
                self._log(
                    f"node {node} silent for {self.node_timeout:g} s: its shards"
                    f" {', '.join(map(str, ids))} go to other nodes"
                )
        for note in done.notes:
            self._log(note)
