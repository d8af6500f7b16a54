"""How long a node may hold a shard, and when a shard is a straggler: pure rules.

A lease is sized by the work it covers instead of being one fixed time for every job: the shard's
block products (their multiply-adds) at a rate, and the bytes of its tiles and partials at a
bandwidth, times a safety factor, never under a floor::

    lease = max(floor, safety * (ops / rate + bytes / bandwidth))

``rate`` is measured: the coordinator keeps the rates of recent commits (a shard's operations
over the time from its claim to its commit, so the tiles' download is in it) and takes a slow
quantile of them (``conservative_rate``), so one fast node (or one that committed junk at once)
cannot shorten everyone's leases. Before any commit it assumes ``LeasePolicy.default_rate``.

A straggler is an assigned shard held far longer than its job's committed shards took
(``is_straggler``): it gets a backup copy on another node, and whichever copy commits first wins.

No I/O, clock or threads: the coordinator passes plain values.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "LeasePolicy",
    "Work",
    "conservative_rate",
    "is_straggler",
    "lease_seconds",
    "reveal_seconds",
    "shard_work",
]


@dataclass(frozen=True)
class LeasePolicy:
    """The constants of the lease rule (``lease_seconds``).

    Attributes:
        floor_s: The shortest lease: small shards still get time for a busy machine's scheduler
            and a slow network's round trips.
        safety: How many times the expected time a node gets.
        default_rate: Operations (two per multiply-add) a second assumed before any commit was
            measured: a slow machine's, numpy's int8 fallback on one core.
        bandwidth: Bytes a second assumed for tiles in and partials out.
        straggler_factor: An assigned shard held this many times its job's median commit time
            is a straggler...
        straggler_min_s: ...once it has been held at least this long.
        quantile: The quantile of recent commit rates taken as the rate (0.25: a slow one).
    """

    floor_s: float = 10.0
    safety: float = 4.0
    default_rate: float = 1e9
    bandwidth: float = 25e6
    straggler_factor: float = 3.0
    straggler_min_s: float = 5.0
    quantile: float = 0.25


@dataclass(frozen=True)
class Work:
    """What one shard asks of a node.

    Attributes:
        ops: Arithmetic operations, two per multiply-add.
        bytes_in: The bytes of the A and B tiles it downloads (each tile once).
        bytes_out: The bytes of the partials it reveals.
    """

    ops: int
    bytes_in: int
    bytes_out: int


def shard_work(
    blocks: Iterable[Sequence[int]],
    edges: Sequence[Sequence[int]],
    in_itemsize: int,
    out_itemsize: int,
) -> Work:
    """The work of a shard's block products on a job's grid.

    Args:
        blocks: The block products ``(i, j, k)``.
        edges: The grid's row, column and inner block boundaries (``JobSpec.edges``).
        in_itemsize: Bytes per element of A and B.
        out_itemsize: Bytes per element of a partial (C's dtype).

    Returns:
        Its operations and bytes.

    Raises:
        ValueError: A block outside the grid, or fewer than three edge lists.
    """
    if len(edges) != 3:
        raise ValueError(f"a grid has row, column and inner edges, got {len(edges)} lists")
    rows, cols, inner = edges
    ops = 0
    bytes_out = 0
    tiles_a: set[tuple[int, int]] = set()
    tiles_b: set[tuple[int, int]] = set()
    bytes_in = 0
    for block in blocks:
        i, j, k = (int(x) for x in block)
        if not (0 <= i < len(rows) - 1 and 0 <= j < len(cols) - 1 and 0 <= k < len(inner) - 1):
            raise ValueError(f"block {(i, j, k)} is outside the grid")
        m, n, kk = rows[i + 1] - rows[i], cols[j + 1] - cols[j], inner[k + 1] - inner[k]
        ops += 2 * m * n * kk
        bytes_out += m * n * out_itemsize
        if (i, k) not in tiles_a:
            tiles_a.add((i, k))
            bytes_in += m * kk * in_itemsize
        if (k, j) not in tiles_b:
            tiles_b.add((k, j))
            bytes_in += kk * n * in_itemsize
    return Work(ops=ops, bytes_in=bytes_in, bytes_out=bytes_out)


def conservative_rate(samples: Iterable[tuple[float, float]], policy: LeasePolicy) -> float:
    """The rate leases are sized with: a slow quantile of measured commit rates.

    Args:
        samples: Recent commits as ``(ops, seconds from claim to commit)``; samples without
            work or time are skipped.
        policy: The rule's constants (``quantile``, ``default_rate``).

    Returns:
        Operations a second; ``policy.default_rate`` when nothing was measured.
    """
    rates = sorted(ops / seconds for ops, seconds in samples if ops > 0 and seconds > 0)
    if not rates:
        return policy.default_rate
    index = min(len(rates) - 1, max(0, math.floor(policy.quantile * len(rates))))
    return rates[index]


def lease_seconds(work: Work, rate: float, policy: LeasePolicy) -> float:
    """The lease of a shard: ``max(floor, safety * (ops / rate + bytes / bandwidth))``.

    Args:
        work: The shard's work (``shard_work``).
        rate: Operations a second (``conservative_rate``).
        policy: The rule's constants.

    Returns:
        Seconds from the claim to the commit's deadline.

    Raises:
        ValueError: A rate or bandwidth that is not positive.
    """
    if not rate > 0 or not policy.bandwidth > 0:
        raise ValueError("a lease needs a positive rate and bandwidth")
    moved = work.bytes_in + work.bytes_out
    return max(policy.floor_s, policy.safety * (work.ops / rate + moved / policy.bandwidth))


def reveal_seconds(bytes_out: int, policy: LeasePolicy) -> float:
    """The time to reveal partials once the commit phase closes: their upload, with the same
    safety factor and floor as a lease (the node computed them already)."""
    return max(policy.floor_s, policy.safety * bytes_out / policy.bandwidth)


def is_straggler(held_s: float, commit_times: Sequence[float], policy: LeasePolicy) -> bool:
    """Whether a shard held ``held_s`` seconds is far slower than its job's committed shards.

    Args:
        held_s: Seconds since it was claimed (and not committed).
        commit_times: Claim-to-commit seconds of the job's shards that committed.
        policy: ``straggler_factor`` and ``straggler_min_s``.

    Returns:
        True when at least one shard of the job committed and ``held_s`` is over both
        ``straggler_factor`` times their median and ``straggler_min_s``.
    """
    if not commit_times:
        return False
    median = statistics.median(commit_times)
    return held_s > max(policy.straggler_factor * median, policy.straggler_min_s)
