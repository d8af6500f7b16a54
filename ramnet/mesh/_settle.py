"""Settlement of a job once every shard is revealed: cross-checks, per-shard checks, assembly.

Pure: the coordinator passes the plan, the tiles and the revealed partials, and gets back what
passed, what diverged, and C. Disputes (issue 5) start from ``Settlement.disagreements`` and
``Settlement.failed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ramnet.mesh._plan import ShardPlan
from ramnet.mesh._shard import TileMap, assemble, check_partial
from ramnet.orchid import BlockProduct, Grid


@dataclass
class Settlement:
    """The outcome of checking a job's revealed shards.

    Attributes:
        ok: True when every audit block agrees bit for bit and every partial passed its check.
        c: The assembled product when ``ok``, else None.
        disagreements: Audit blocks whose copies differ, with the nodes that computed them.
        failed: (node, block) pairs whose partial failed Freivalds or the range check.
        computed: Node -> the number of block products it computed and that passed.
    """

    ok: bool
    c: np.ndarray | None
    disagreements: list[tuple[BlockProduct, tuple[int, ...]]] = field(default_factory=list)
    failed: list[tuple[int, BlockProduct]] = field(default_factory=list)
    computed: dict[int, int] = field(default_factory=dict)


def settle(
    plan: ShardPlan,
    grid: Grid,
    out_dtype: np.dtype,
    reveals: Mapping[int, Mapping[BlockProduct, np.ndarray]],
    tiles_a: TileMap,
    tiles_b: TileMap,
    *,
    security_bits: int = 40,
) -> Settlement:
    """Check every revealed partial and assemble C.

    Args:
        plan: The job's sharding plan.
        grid: The job's grid.
        out_dtype: C's dtype.
        reveals: Node -> its revealed partials, one per block of its assignment.
        tiles_a, tiles_b: The job's tiles by (i, k) and (k, j).
        security_bits: λ of each partial's Freivalds check.

    Returns:
        The Settlement.
    """
    result = Settlement(ok=True, c=None)
    for node in range(plan.nodes):
        got = reveals.get(node, {})
        if sorted(got, key=lambda b: (b.i, b.j, b.k)) != plan.assignment(node):
            result.failed.extend((node, b) for b in plan.assignment(node) if b not in got)
            continue
        passed = 0
        for block, partial in got.items():
            if check_partial(block, partial, tiles_a, tiles_b, security_bits=security_bits):
                passed += 1
            else:
                result.failed.append((node, block))
        result.computed[node] = passed
    for triad, blocks in plan.audits.items():
        nodes = plan.triad_nodes(triad)
        for block in blocks:
            copies = [reveals.get(n, {}).get(block) for n in nodes]
            present = [c for c in copies if c is not None]
            if len(present) != len(nodes) or any(
                c.dtype != present[0].dtype or not np.array_equal(c, present[0]) for c in present
            ):
                result.disagreements.append((block, nodes))
    result.ok = not result.failed and not result.disagreements
    if result.ok:
        primaries = {b: reveals[plan.owner(b)][b] for b in grid.blocks()}
        result.c = assemble(grid, primaries, out_dtype)
    return result
