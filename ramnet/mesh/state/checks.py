"""Checks of the state store's arguments (ids, hashes, choices, counts, times): pure rules that
raise ``StoreInputError`` with a one-line reason, and the store's clock."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from ramnet.mesh.state.errors import StoreInputError

__all__ = [
    "check_choice",
    "check_hash",
    "check_int",
    "check_job_id",
    "check_node_id",
    "check_time",
    "clock",
    "short",
]

_NODE_ID_RE = re.compile(r"[0-9a-f]{64}")
_JOB_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_HASH_RE = re.compile(r"[0-9a-f]{64}")


def check_node_id(node_id: object) -> str:
    """Return ``node_id`` if it is a node id (an Ed25519 public key as 64 lowercase hex digits).

    Raises:
        StoreInputError: It is not.
    """
    if not isinstance(node_id, str) or _NODE_ID_RE.fullmatch(node_id) is None:
        raise StoreInputError(f"not a node id (64 lowercase hex digits): {short(node_id)}")
    return node_id


def check_job_id(job_id: object) -> str:
    """Return ``job_id`` if it is 1 to 128 characters from ``[A-Za-z0-9_-]`` (URL-safe).

    Raises:
        StoreInputError: It is not.
    """
    if not isinstance(job_id, str) or _JOB_ID_RE.fullmatch(job_id) is None:
        raise StoreInputError(f"not a job id (1-128 of A-Z a-z 0-9 _ -): {short(job_id)}")
    return job_id


def check_hash(name: str, value: object) -> str:
    """Return ``value`` if it is a digest as 64 lowercase hex digits.

    Raises:
        StoreInputError: It is not (the message names the argument ``name``).
    """
    if not isinstance(value, str) or _HASH_RE.fullmatch(value) is None:
        raise StoreInputError(f"{name} must be 64 lowercase hex digits, got {short(value)}")
    return value


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``.

    Raises:
        StoreInputError: It is not.
    """
    if not isinstance(value, str) or value not in choices:
        raise StoreInputError(f"{name} must be one of {', '.join(choices)}; got {short(value)}")
    return value


def check_int(name: str, value: object, minimum: int = 0) -> int:
    """Return ``value`` if it is an integer (not a bool) of at least ``minimum``.

    Raises:
        StoreInputError: It is not.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StoreInputError(f"{name} must be an integer >= {minimum}, got {short(value)}")
    return value


def check_time(name: str, value: object) -> float:
    """Return ``value`` as float seconds if it is a number (not a bool, not NaN).

    Raises:
        StoreInputError: It is not.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise StoreInputError(f"{name} must be a number of seconds, got {short(value)}")
    return float(value)


def clock(now: float | None) -> float:
    """The time to stamp: ``now`` (checked) when given, for tests, else the current Unix time.

    Raises:
        StoreInputError: ``now`` is not a number of seconds.
    """
    return time.time() if now is None else check_time("now", now)


def short(value: object) -> str:
    """``repr(value)``, cut to 80 characters for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
