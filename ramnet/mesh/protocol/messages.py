"""The coordinator's messages, typed: every JSON body, and the metadata of every RNWIRE1 body.

Each is a ``msgspec.Struct`` that refuses unknown fields: a request is decoded straight into its
type (a missing, unknown or mistyped field is a 400 with one line saying which), and a reply is
checked against its type before it is sent, so that a reply drifting from the published schema
fails loudly instead of reaching a node. The route table (``routes``) names each route's types;
the OpenAPI document's schemas are generated from them.

Field order is the order the fields go on the wire (msgspec encodes a Struct's fields in
declaration order), so it follows what the coordinator has always sent. A field that a reply
sometimes leaves out is ``UNSET`` there, and stays absent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

__all__ = [
    "Account",
    "ApiDocument",
    "ApiInfo",
    "AuditCopy",
    "AuditPackage",
    "AuditReport",
    "AuditReportReply",
    "BindingDomain",
    "BindingStatement",
    "BindingTypeField",
    "BindingTypedData",
    "BindingTypes",
    "CancelRequest",
    "ClaimedShard",
    "CommitRequest",
    "Commitments",
    "DisputeClaim",
    "DisputeOutcome",
    "DisputeView",
    "ErrorReply",
    "Health",
    "HeartbeatReply",
    "JobCancelled",
    "JobList",
    "JobResult",
    "JobShard",
    "JobStatus",
    "JobSubmission",
    "JobSubmitted",
    "JobSummary",
    "LedgerTotals",
    "LedgerView",
    "PartialsMeta",
    "RegisterRequest",
    "Registered",
    "ReleaseRequest",
    "ShardReleased",
    "ShardResultReply",
    "ShardView",
    "ValidationCommitments",
    "ValidationPackage",
    "Verdict",
    "VerdictReply",
    "WalletBinding",
]

NodeId = Annotated[str, Meta(description="A node's id: its Ed25519 public key, 64 hex digits")]
Block = Annotated[list[int], Meta(description="A block product (i, j, k) of the job's grid")]
#: A fraud proof stays a plain object here: the rules check each one (``check_fraud``), and one
#: that is malformed is a false proof, which costs its author the bond. Refusing it with a 400
#: would let a lying validator or auditor off.
FraudProof = Annotated[
    dict[str, Any],
    Meta(
        description="One wrong entry of a partial, or its wrong shape (rules.disputes)",
        extra_json_schema={
            "properties": {
                "node": {"type": "string"},
                "copy": {"type": "integer"},
                "block": {"type": "array", "items": {"type": "integer"}},
                "row": {"type": "integer"},
                "col": {"type": "integer"},
                "claimed": {"type": "number"},
                "correct": {"type": "number"},
                "shape": {"type": "array", "items": {"type": "integer"}},
            },
            "required": ["node", "copy", "block"],
        },
    ),
]


class _Message(Struct, forbid_unknown_fields=True):
    """Base of every message: unknown fields are refused."""


# ---- wallet binding (EIP-712; ramnet.valkyrie._binding712 checks what these only bound) ---------

_Name = Annotated[str, Meta(max_length=64)]


class BindingTypeField(_Message):
    """One field of an EIP-712 type: its name and Solidity type."""

    name: _Name
    type: _Name


class BindingTypes(_Message, rename={"domain": "EIP712Domain", "statement": "RamnetNodeBinding"}):
    """The typed data's types: EIP712Domain and RamnetNodeBinding."""

    domain: Annotated[list[BindingTypeField], Meta(max_length=8)]
    statement: Annotated[list[BindingTypeField], Meta(max_length=8)]


class BindingDomain(_Message):
    """The EIP-712 domain: name "RAMNET", version "1" (off-chain: no chainId)."""

    name: _Name
    version: _Name


class BindingStatement(_Message, rename="camel"):
    """RamnetNodeBinding: the node, the payout address, a nonce and when it was issued."""

    node_id: Annotated[
        str,
        Meta(
            min_length=66,
            max_length=66,
            pattern="^0x[0-9a-fA-F]{64}$",
            description="The node's Ed25519 public key, 0x and 64 hex digits",
        ),
    ]
    payout_address: Annotated[
        str,
        Meta(
            min_length=42,
            max_length=42,
            pattern="^0x[0-9a-fA-F]{40}$",
            description="An Ethereum address (EIP-55 checksummed where mixed case)",
        ),
    ]
    nonce: (
        Annotated[str, Meta(min_length=1, max_length=78, pattern="^[0-9]+$")]
        | Annotated[int, Meta(ge=0)]
    )
    issued_at: Annotated[int, Meta(ge=0, description="Unix seconds")]


class BindingTypedData(_Message, rename="camel"):
    """The EIP-712 typed data both keys signed (``eth_signTypedData_v4``'s argument)."""

    types: BindingTypes
    primary_type: _Name
    domain: BindingDomain
    message: BindingStatement


class WalletBinding(_Message, rename="camel"):
    """A payout address bound to a node: signed by the address's wallet and the node key."""

    version: Literal[1]
    typed_data: BindingTypedData
    wallet_signature: Annotated[
        str,
        Meta(
            min_length=132,
            max_length=132,
            pattern="^0x[0-9a-fA-F]{130}$",
            description="The wallet's secp256k1 signature of the EIP-712 digest (r, s, v)",
        ),
    ]
    node_signature: Annotated[
        str,
        Meta(
            min_length=130,
            max_length=130,
            pattern="^0x[0-9a-fA-F]{128}$",
            description="The node key's Ed25519 signature of the same digest",
        ),
    ]


# ---- requests ---------------------------------------------------------------------------------


class RegisterRequest(_Message):
    """Register (or update) the signing node, and stake its bond (topped up to ``bond``)."""

    bond: Annotated[int, Meta(ge=0)] = 0
    validator: bool = False
    payout_address: str | None = None
    prove: bool = True
    instance: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=64,
                pattern="^[0-9A-Za-z_-]+$",
                description="The registering process, named at random by it: a key already in "
                "use by another live instance is refused (one key, one process). Consumers send "
                "none",
            ),
        ]
        | None
    ) = None
    #: The node's wallet binding (``ramnet keys bind``): the coordinator checks both signatures
    #: and that it binds this node, and records its address as the bound payout address.
    binding: WalletBinding | None = None


class CommitRequest(_Message):
    """A worker's commitment to its shard's result."""

    # The lengths as well as the pattern: Python's ``$`` also matches before a final newline.
    digest: Annotated[
        str,
        Meta(
            min_length=64,
            max_length=64,
            pattern="^[0-9a-fA-F]{64}$",
            description="The result's digest, 64 hex digits",
        ),
    ]


class CancelRequest(_Message):
    """A job cancelled by its consumer, who may say why (recorded with the job)."""

    reason: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


class ReleaseRequest(_Message):
    """A shard handed back: nothing to say."""


class Verdict(_Message):
    """A validator's verdict on its dispute."""

    frauds: list[FraudProof]


class AuditReport(_Message):
    """An auditor's report on an optimistic job: no frauds settles it."""

    frauds: list[FraudProof]


class JobSubmission(_Message):
    """The metadata of a job's upload (arrays ``A`` and ``B``)."""

    nodes: Annotated[int, Meta(description="Workers: a positive multiple of 3")]
    redundancy: Literal["mirror", "none"] | None = None
    request_id: Annotated[
        str | None, Meta(description="Names the upload: a retried one finds its job")
    ] = None


class PartialsMeta(_Message):
    """The metadata of a shard's partials (arrays ``p/i/j/k``), revealed or posted unproven."""

    shard_id: str | UnsetType = UNSET


# ---- JSON replies -----------------------------------------------------------------------------


class ErrorReply(_Message):
    """Any refusal or failure: one line saying why; the HTTP status says which kind."""

    error: str


class Health(_Message):
    """The coordinator is up."""

    status: Literal["ok"]


class ApiInfo(_Message):
    """The document's title and version."""

    title: str
    version: str


class ApiDocument(_Message):
    """This OpenAPI 3.1 document."""

    openapi: str
    info: ApiInfo
    paths: dict[str, Any]
    components: dict[str, Any]


class Account(_Message):
    """A node's account."""

    node_id: NodeId
    bond: int
    balance: int
    slashed: int
    payout_address: str | None = None
    payout_bound: Annotated[
        bool, Meta(description="payout_address is bound by a checked wallet binding")
    ] = False


class LedgerTotals(_Message):
    """What was minted and burned, and where the rest is; ``conserved``: it all adds up."""

    minted: int
    burned: int
    escrow: int
    balances: int
    bonds: int
    conserved: bool


class LedgerView(_Message):
    """Every account (sorted by node id) and the conserved totals."""

    accounts: list[Account]
    totals: LedgerTotals


class Registered(_Message):
    """The registered node's account; ``new``: it was not registered before."""

    node_id: NodeId
    bond: int
    balance: int
    slashed: int
    new: bool


class Commitments(_Message):
    """The Merkle roots of the job's A and B tiles (None for a job stored without them)."""

    a: str | None
    b: str | None


class JobSubmitted(_Message):
    """An accepted job: its id, its price (escrowed) and its plan."""

    job_id: str
    price: int
    grid: list[int]
    block_products: int
    audit_volume: float
    redundancy: str
    commitments: Commitments


class DisputeOutcome(_Message):
    """How a dispute was resolved."""

    outcome: str
    slashed: list[NodeId] | UnsetType = UNSET


class DisputeView(_Message):
    """A dispute of a job: who judges it, the partials that failed, and its outcome."""

    dispute_id: int
    state: str
    validator: NodeId | None
    failed: list[tuple[NodeId, Block]]
    outcome: DisputeOutcome | None


class JobShard(_Message):
    """One shard of a job as its status shows it: the plan slot, the copy, its state and node
    (never its blocks: which blocks are audits stays hidden)."""

    slot: int
    attempt: int
    state: str
    node: NodeId | None


class JobStatus(_Message):
    """A job's state, its shards' states, and what settlement found."""

    job_id: str
    consumer: NodeId
    state: str
    created_at: float
    updated_at: float
    shards: Annotated[dict[str, int], Meta(description="Shards in each state, zeros included")]
    total_shards: int
    shape: list[int]
    k: int
    dtype: str
    nodes: int
    price: int
    disputes: list[DisputeView]
    reason: str | UnsetType = UNSET
    waiting: Annotated[
        str | UnsetType | None,
        Meta(description="Why the job is waiting, in one line (null: it is not waiting)"),
    ] = UNSET
    shard_list: Annotated[
        list[JobShard] | UnsetType,
        Meta(description="Every shard: its slot, copy, state and node (by slot, then copy)"),
    ] = UNSET


class JobSummary(_Message):
    """One of a consumer's jobs, as ``job list`` shows it."""

    job_id: str
    state: str
    created_at: float
    updated_at: float
    shape: Annotated[list[int], Meta(description="m, k, n")]
    dtype: str
    nodes: int
    price: int
    reason: str | None


class JobList(_Message):
    """The signing consumer's jobs, newest first."""

    jobs: list[JobSummary]


class JobCancelled(_Message):
    """A cancelled job and what its escrow gave back."""

    job_id: str
    state: str
    refunded: int


class ShardView(_Message):
    """A shard's state; ``reveal``: its reveal is open; ``stored``: its result is on disk."""

    shard_id: str
    state: str
    reveal: bool
    stored: bool


class HeartbeatReply(_Message):
    """A heartbeat's answer: how long the coordinator waits for the next sign of life, and the
    shards the node still holds (assigned or committed): one that is missing went to another
    node."""

    node_timeout: float
    shards: list[str]


class ShardReleased(_Message):
    """A shard handed back."""

    shard_id: str
    state: str


class ShardResultReply(_Message):
    """A shard's result was taken; ``stored``: it is on disk (absent for a retried post)."""

    shard_id: str
    state: str
    stored: bool | UnsetType = UNSET


class VerdictReply(_Message):
    """What the coordinator made of a verdict."""

    dispute_id: int
    outcome: str
    slashed: list[NodeId] | UnsetType = UNSET


class AuditReportReply(_Message):
    """What the coordinator made of an audit report."""

    job_id: str
    outcome: str
    slashed: list[NodeId] | UnsetType = UNSET


# ---- the metadata of wire replies -------------------------------------------------------------


class ClaimedShard(_Message):
    """A claimed shard (arrays ``a/i/k`` and ``b/k/j``: its tiles); ``shard_id`` null: no work."""

    shard_id: str | None
    job_id: str | UnsetType = UNSET
    blocks: list[Block] | UnsetType = UNSET
    dtype: str | UnsetType = UNSET
    deadline: float | UnsetType | None = UNSET


class DisputeClaim(_Message):
    """One copy's claim on a contested block, opened against its worker's commitment."""

    node: NodeId
    copy: int
    block: Block
    name: Annotated[str, Meta(description="The array holding the claimed partial")]
    commit: str | None
    digests: Annotated[dict[str, str], Meta(description="The shard's partial digests, by block")]


class ValidationCommitments(_Message):
    """The job's tile roots and its grid (p, q, r), which the tiles are opened against."""

    a: str | None
    b: str | None
    grid: list[int]


class ValidationPackage(_Message):
    """A dispute to judge (arrays: contested tiles and claimed partials); ``dispute_id`` null:
    none."""

    dispute_id: int | None
    job_id: str | UnsetType = UNSET
    blocks: list[Block] | UnsetType = UNSET
    claims: list[DisputeClaim] | UnsetType = UNSET
    commitments: ValidationCommitments | UnsetType = UNSET
    openings: Annotated[
        dict[str, list[str]] | UnsetType, Meta(description="Each tile's Merkle path, as hex")
    ] = UNSET


class AuditCopy(_Message):
    """One revealed copy of a shard: its node and blocks (arrays ``c/copy/i/j/k``)."""

    copy: int
    node: NodeId
    blocks: list[Block]


class AuditPackage(_Message):
    """An optimistic job to audit (arrays: every tile and partial); ``job_id`` null: none."""

    job_id: str | None
    copies: list[AuditCopy] | UnsetType = UNSET
    groups: Annotated[
        list[tuple[Block, list[int]]] | UnsetType,
        Meta(description="Each block computed by several copies, and the copies: they must agree"),
    ] = UNSET


class JobResult(_Message):
    """C of a settled (or checked) job, as array ``C``."""

    job_id: str
