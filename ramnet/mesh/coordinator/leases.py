"""Leases sized by the work they cover (``rules.lease``), with the rate measured from commits.

A fixed ``--lease`` (``CoordinatorConfig.lease_s``) overrides the sizing: every shard then gets
that long to commit, and then to reveal, as before.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from ramnet.mesh.rules.lease import (
    LeasePolicy,
    Work,
    conservative_rate,
    lease_seconds,
    reveal_seconds,
    shard_work,
)
from ramnet.mesh.state.records import JobSpec, Shard
from ramnet.mesh.state.store import Store

__all__ = ["REOPEN_S", "Leases"]

#: Seconds a reveal lost in a restart is awaited again when leases are sized: the worker, alive,
#: reveals again within a poll or two; a dead one is found silent sooner (``Liveness``).
REOPEN_S = 60.0

_SAMPLES = 64  # recent commits the rate is measured over


class Leases:
    """The lease of each shard and the time to reveal, sized by work unless fixed.

    Args:
        store: The state store (the jobs' specs).
        fixed_s: A fixed lease for every shard and reveal (``--lease``); None sizes them.
        policy: The constants of the rule.
    """

    def __init__(
        self, store: Store, *, fixed_s: float | None, policy: LeasePolicy | None = None
    ) -> None:
        self._store = store
        self.fixed_s = fixed_s
        self.policy = policy or LeasePolicy()
        self._samples: deque[tuple[float, float]] = deque(maxlen=_SAMPLES)
        self._lock = threading.Lock()

    def rate(self) -> float:
        """The operations a second leases are sized with (a slow quantile of recent commits)."""
        with self._lock:
            samples = list(self._samples)
        return conservative_rate(samples, self.policy)

    def work(self, shard: Shard, spec: JobSpec | None = None) -> Work:
        """The work of one shard (its job's spec read if not given)."""
        spec = spec or self._store.get_job(shard.job_id).spec
        return shard_work(
            shard.blocks,
            spec.edges,
            np.dtype(spec.dtype).itemsize,
            np.dtype(spec.out_dtype).itemsize,
        )

    def for_shard(self, shard: Shard) -> float:
        """Seconds the node claiming ``shard`` has to commit it."""
        if self.fixed_s is not None:
            return self.fixed_s
        return lease_seconds(self.work(shard), self.rate(), self.policy)

    def to_reveal(self, spec: JobSpec) -> float:
        """Seconds a job's committed shards have to be revealed once its commit phase closes:
        the upload of a slot's partials (with its audit copies, about twice a slot's share of
        C) at the policy's bandwidth, never under its floor."""
        if self.fixed_s is not None:
            return self.fixed_s
        slots = max(1, spec.plan_nodes or spec.nodes)
        share = 2 * spec.m * spec.n * np.dtype(spec.out_dtype).itemsize // slots
        return reveal_seconds(share, self.policy)

    def reopen_s(self) -> float:
        """Seconds a reveal lost in a coordinator restart is awaited again."""
        return self.fixed_s if self.fixed_s is not None else REOPEN_S

    def observe(self, shard: Shard) -> None:
        """Measure a committed shard's rate: its operations over the time from claim to commit."""
        if shard.assigned_at is None or shard.committed_at is None:
            return
        seconds = shard.committed_at - shard.assigned_at
        if seconds <= 0:
            return
        ops = float(self.work(shard).ops)
        with self._lock:
            self._samples.append((ops, seconds))
