"""The state store's errors: what a caller of ``Store`` catches."""

from __future__ import annotations

from ramnet._errors import InvalidInputError, RamnetError

__all__ = [
    "DeadlinePassedError",
    "KeyInUseError",
    "NodeBannedError",
    "NotAllowedError",
    "NotFoundError",
    "SchemaVersionError",
    "ShardStateError",
    "StoreConflictError",
    "StoreError",
    "StoreInputError",
]


class StoreError(RamnetError):
    """A state store failure that is not the caller's bad input (a corrupt record included)."""


class StoreInputError(InvalidInputError):
    """A malformed argument: a bad id, state, hash, JSON value or time."""


class NotFoundError(StoreError, LookupError):
    """No node, job, shard or dispute with that id."""

    http_status = 404


class StoreConflictError(StoreError):
    """The request contradicts what is stored (a job id reused with another spec, ...)."""

    http_status = 409


class ShardStateError(StoreConflictError):
    """A shard is not in a state (or not held by the node) that allows this step."""

    http_status = 409


class DeadlinePassedError(ShardStateError):
    """A commit or reveal after the shard's deadline: the shard goes to another node."""

    http_status = 409


class NodeBannedError(StoreError):
    """A banned node asked for work."""

    http_status = 403


class NotAllowedError(StoreError):
    """The node may not do this to that record (another consumer's job)."""

    http_status = 403


class KeyInUseError(StoreConflictError):
    """A node's key is already in use by another live process (one key, one process)."""

    http_status = 409


class SchemaVersionError(StoreError):
    """The database was written by a newer RAMNET (or is not a RAMNET store)."""
