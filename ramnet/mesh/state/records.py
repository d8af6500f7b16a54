"""The coordinator's state as typed records: a node, a job and its spec, a shard, a dispute.

The rows of the store's tables are frozen dataclasses; what a row keeps as JSON text (a job's
spec, a shard's blocks, a dispute's claims and outcome) is a frozen ``msgspec`` Struct, decoded
with its types checked (``ramnet.mesh.state.rows``). Pure values: no I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

__all__ = [
    "DISPUTE_STATES",
    "FINAL_JOB_STATES",
    "JOB_STATES",
    "SHARD_ROLES",
    "SHARD_STATES",
    "Block",
    "Dispute",
    "DisputeClaims",
    "DisputeOutcome",
    "DisputeState",
    "Job",
    "JobSpec",
    "JobState",
    "NewShard",
    "Node",
    "Shard",
    "ShardRole",
    "ShardState",
]

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
    "cancelled",
    "failed",
]
ShardState = Literal[
    "pending", "assigned", "committed", "revealed", "accepted", "rejected", "expired"
]
ShardRole = Literal["primary", "mirror"]
DisputeState = Literal["open", "resolved"]

#: Job lifecycle: submitted → sharded → dispatched → committed → optimistic → checked → settled,
#: or … → disputed → resolved → settled. A job that cannot end that way is ``cancelled`` (by its
#: consumer) or ``failed`` (its state is damaged), with a reason. The last three are final.
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
    "cancelled",
    "failed",
)
#: A job in one of these states never changes again.
FINAL_JOB_STATES: frozenset[JobState] = frozenset({"settled", "cancelled", "failed"})
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
DISPUTE_STATES: tuple[DisputeState, ...] = ("open", "resolved")

#: A block product's grid indices ``(i, j, k)``: C block (i, j) gets A tile (i, k) @ B tile (k, j).
Block = tuple[int, int, int]


class JobSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the coordinator fixed about a job at submission (stored as JSON with the job).

    A spec stored by an older version may lack the fields added since; they read as what that
    version meant: ``plan_nodes`` as ``nodes`` (no mirror triads), ``redundancy`` ``"none"``,
    ``commit_a``/``commit_b`` None (no tile commitments), ``audit_per_triad`` 1.

    Attributes:
        m, k, n: C is m x n; A is m x k, B is k x n.
        dtype: A's and B's dtype name; out_dtype: C's.
        nodes: The nodes asked for; plan_nodes: the nodes the sharding plan is made for (fewer
            when mirror triads repeat the work).
        redundancy: ``"mirror"`` or ``"none"``.
        edges: The grid's row, column and inner block boundaries.
        tiles_a, tiles_b: ``"i/k"`` (A) or ``"k/j"`` (B) -> the blob (leaf digest) of the tile.
        commit_a, commit_b: The Merkle roots of A's and B's tiles.
        audit_salt: The hex salt that drew the audit blocks; audit_per_triad: how many per triad.
        price: What the consumer escrowed.
        request_id: The consumer's request id (the job id is derived from it).
    """

    m: int
    k: int
    n: int
    dtype: str
    out_dtype: str
    nodes: int
    #: 0 (absent) reads as ``nodes``: specs stored before mirror triads have no such field.
    plan_nodes: int = 0
    redundancy: str = "none"
    edges: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
    tiles_a: dict[str, str]
    tiles_b: dict[str, str]
    commit_a: str | None = None
    commit_b: str | None = None
    audit_salt: str
    audit_per_triad: int = 1
    price: int
    request_id: str

    def __post_init__(self) -> None:
        if self.plan_nodes == 0:
            msgspec.structs.force_setattr(self, "plan_nodes", self.nodes)


class DisputeClaims(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a dispute contests (stored as JSON with the dispute).

    Attributes:
        round: 0 for a job's first dispute, one more for each validator drawn again after one
            lied.
        failed: ``(node, block)`` for each partial that failed its check.
        blocks: Every contested block (failed, or where copies disagree), sorted.
        slots: Copy key (as a string) -> the node whose revealed result it is.
    """

    round: int
    failed: list[tuple[str, Block]] = []
    blocks: list[Block]
    slots: dict[str, str]


class DisputeOutcome(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """How a dispute was resolved (stored as JSON with the dispute).

    Attributes:
        outcome: ``"upheld"`` (the validator proved the frauds) or ``"validator lied"``.
        slashed: The proven cheaters, sorted, when upheld (absent otherwise).
    """

    outcome: str
    slashed: list[str] | None = None

    def as_json(self) -> dict[str, object]:
        """The outcome as the plain JSON object it is stored as."""
        out: dict[str, object] = {"outcome": self.outcome}
        if self.slashed is not None:
            out["slashed"] = list(self.slashed)
        return out


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
    #: When the node last made a signed request (None: not since this was recorded).
    last_seen: float | None = None
    #: The process the node's key runs in, as that process named itself when it registered
    #: (one key, one process); None: not given.
    instance: str | None = None
    #: ``payout_address`` is bound to the node by a wallet binding the coordinator checked
    #: (EIP-712, signed by the address's wallet and the node key; ``Store.payout_binding``).
    payout_bound: bool = False


@dataclass(frozen=True)
class Job:
    """A consumer's job. ``spec`` is what the coordinator fixed at submission;
    ``result_blob`` the digest of the blob holding C, once the job settled and C was stored."""

    job_id: str
    consumer: str
    spec: JobSpec
    state: JobState
    created_at: float
    updated_at: float
    result_blob: str | None = None
    #: Why a job was cancelled or failed (None otherwise).
    reason: str | None = None


@dataclass(frozen=True)
class NewShard:
    """A shard to create with its job: plan slot (node index), its blocks, its role."""

    slot: int
    blocks: list[Block]
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
    blocks: list[Block]
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
    """A contested job: its claims, the validator drawn, and (once resolved) the verdict."""

    dispute_id: int
    job_id: str
    claims: DisputeClaims
    validator: str | None
    state: DisputeState
    verdict_digest: str | None
    outcome: DisputeOutcome | None
    created_at: float
    resolved_at: float | None
