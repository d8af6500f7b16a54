"""How records are stored: the JSON text of a job's spec, a shard's blocks and a dispute's
claims and outcome, and each table's row as its record.

The JSON text is what every version wrote: ``json.dumps`` with sorted keys, no spaces, no NaN
(key for key and byte for byte, so that a store moves between versions both ways). Reading it
back checks its types: a record that does not decode is a corrupt store (``StoreError``), not a
traceback where the value is used.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, TypeVar

import msgspec

from ramnet.mesh.state.checks import short
from ramnet.mesh.state.errors import StoreError, StoreInputError
from ramnet.mesh.state.records import (
    Block,
    Dispute,
    DisputeClaims,
    DisputeOutcome,
    Job,
    JobSpec,
    Node,
    Shard,
)

__all__ = [
    "dispute_of",
    "job_of",
    "json_text",
    "node_of",
    "shard_of",
]

_T = TypeVar("_T")

_SPEC = msgspec.json.Decoder(JobSpec)
_BLOCKS = msgspec.json.Decoder(list[Block])
_CLAIMS = msgspec.json.Decoder(DisputeClaims)
_OUTCOME = msgspec.json.Decoder(DisputeOutcome)


def json_text(name: str, value: object, kind: Any) -> str:
    """The JSON text stored for ``value``, a value of type ``kind``.

    Args:
        name: What the value is, for the error message ("spec", "blocks", ...).
        value: A record (``JobSpec``, ``DisputeClaims``, ``DisputeOutcome``) or a list of blocks.
        kind: Its type: what the text must decode as again.

    Returns:
        Sorted keys, no spaces, no NaN: the text earlier versions wrote for the same value.

    Raises:
        StoreInputError: The value is not of that type, or not plain JSON (NaN, an object).
    """
    try:
        plain = msgspec.to_builtins(value)
        msgspec.convert(plain, kind)  # what is written must read back
        return json.dumps(plain, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:  # msgspec.ValidationError is a ValueError
        raise StoreInputError(f"{name} is not a valid record ({exc}): {short(value)}") from exc


def _decode(decoder: msgspec.json.Decoder[_T], text: str, what: str) -> _T:
    try:
        return decoder.decode(text)
    except msgspec.DecodeError as exc:
        raise StoreError(f"corrupt state store: {what} does not decode: {exc}") from exc


def node_of(row: sqlite3.Row) -> Node:
    """A ``nodes`` row as its record."""
    return Node(
        node_id=row["node_id"],
        payout_address=row["payout_address"],
        validator=bool(row["validator"]),
        banned=bool(row["banned"]),
        registered_at=row["registered_at"],
        updated_at=row["updated_at"],
        prove=bool(row["prove"]),
        last_seen=row["last_seen"],
        instance=row["instance"],
        payout_bound=bool(row["payout_bound"]),
    )


def job_of(row: sqlite3.Row) -> Job:
    """A ``jobs`` row as its record.

    Raises:
        StoreError: Its spec does not decode as a ``JobSpec``.
    """
    return Job(
        job_id=row["job_id"],
        consumer=row["consumer"],
        spec=_decode(_SPEC, row["spec"], f"the spec of job {row['job_id']}"),
        state=row["state"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        result_blob=row["result_blob"],
        reason=row["reason"],
    )


def shard_of(row: sqlite3.Row) -> Shard:
    """A ``shards`` row as its record.

    Raises:
        StoreError: Its blocks do not decode as a list of (i, j, k).
    """
    return Shard(
        shard_id=int(row["shard_id"]),
        job_id=row["job_id"],
        slot=int(row["slot"]),
        triad=int(row["triad"]),
        role=row["role"],
        attempt=int(row["attempt"]),
        node_id=row["node_id"],
        blocks=_decode(_BLOCKS, row["blocks"], f"the blocks of shard {row['shard_id']}"),
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


def dispute_of(row: sqlite3.Row) -> Dispute:
    """A ``disputes`` row as its record.

    Raises:
        StoreError: Its claims or outcome do not decode.
    """
    what = f"dispute {row['dispute_id']}"
    outcome = row["outcome"]
    return Dispute(
        dispute_id=int(row["dispute_id"]),
        job_id=row["job_id"],
        claims=_decode(_CLAIMS, row["claims"], f"the claims of {what}"),
        validator=row["validator"],
        state=row["state"],
        verdict_digest=row["verdict_digest"],
        outcome=None if outcome is None else _decode(_OUTCOME, outcome, f"the outcome of {what}"),
        created_at=row["created_at"],
        resolved_at=row["resolved_at"],
    )
