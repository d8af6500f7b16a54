"""Settlement of a job once every shard is revealed: cross-checks, per-shard checks, assembly.

Pure: the coordinator passes the plan, the tiles and the revealed partials, and gets back what
passed, what diverged, and C. Disputes (issue 5) start from ``Settlement.disagreements`` and
``Settlement.failed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ramnet.mesh.rules.plan import ShardPlan
from ramnet.mesh.rules.shard import CheckVectors, TileMap, assemble, check_partials
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


def copy_key(plan_nodes: int, slot: int, role: str) -> int:
    """The key of one copy of a slot's work: the slot itself for the primary copy, and
    ``slot + plan_nodes`` for its mirror (``--redundancy mirror``)."""
    return slot if role == "primary" else slot + plan_nodes


def chosen(
    plan: ShardPlan, reveals: Mapping[int, Mapping[BlockProduct, np.ndarray]]
) -> dict[int, Mapping[BlockProduct, np.ndarray]]:
    """Each slot's copy that C is assembled from: the primary's, else its mirror's."""
    out = {}
    for slot in range(plan.nodes):
        for key in (slot, slot + plan.nodes):
            if key in reveals:
                out[slot] = reveals[key]
                break
    return out


def settle(
    plan: ShardPlan,
    grid: Grid,
    out_dtype: np.dtype,
    reveals: Mapping[int, Mapping[BlockProduct, np.ndarray]],
    tiles_a: TileMap,
    tiles_b: TileMap,
    *,
    security_bits: int = 40,
    checks: bool = True,
) -> Settlement:
    """Check every revealed partial and assemble C.

    Args:
        plan: The job's sharding plan.
        grid: The job's grid.
        out_dtype: C's dtype.
        reveals: Copy key (``copy_key``: the slot, or slot + ``plan.nodes`` for a mirror) ->
            that copy's revealed partials, one per block of the slot's assignment. A slot needs
            one copy; when both are there they must agree bit for bit.
        tiles_a, tiles_b: The job's tiles by (i, k) and (k, j).
        security_bits: λ of each partial's Freivalds check.
        checks: False skips the per-partial checks (a benchmark measuring their cost; the
            audit and mirror comparisons still run).

    Returns:
        The Settlement (``failed``, ``disagreements`` and ``computed`` name copy keys).
    """
    result = Settlement(ok=True, c=None)
    vectors = CheckVectors(security_bits)  # one draw for the whole settlement
    for slot in range(plan.nodes):
        want = plan.assignment(slot)
        keys = [key for key in (slot, slot + plan.nodes) if key in reveals]
        if not keys:
            result.failed.extend((slot, b) for b in want)
            continue
        for key in keys:
            got = reveals[key]
            if sorted(got, key=lambda b: (b.i, b.j, b.k)) != want:
                result.failed.extend((key, b) for b in want if b not in got)
                continue
            bad = check_partials(got, tiles_a, tiles_b, vectors=vectors) if checks else []
            result.failed.extend((key, block) for block in bad)
            result.computed[key] = len(got) - len(bad)
        if len(keys) == 2:  # a mirrored slot: the whole shard is cross-checked, not just audits
            first, second = (reveals[key] for key in keys)
            for block in want:
                x, y = first.get(block), second.get(block)
                if x is None or y is None or x.dtype != y.dtype or not np.array_equal(x, y):
                    result.disagreements.append((block, tuple(keys)))
    picked = chosen(plan, reveals)
    for triad, blocks in plan.audits.items():
        nodes = plan.triad_nodes(triad)
        for block in blocks:
            copies = [picked.get(n, {}).get(block) for n in nodes]
            present = [c for c in copies if c is not None]
            if len(present) != len(nodes) or any(
                c.dtype != present[0].dtype or not np.array_equal(c, present[0]) for c in present
            ):
                result.disagreements.append((block, nodes))
    result.ok = not result.failed and not result.disagreements
    if result.ok:
        primaries = {b: picked[plan.owner(b)][b] for b in grid.blocks()}
        result.c = assemble(grid, primaries, out_dtype)
    return result


def earnings(computed: Mapping[int, int], nodes_of: Mapping[int, str]) -> dict[str, int]:
    """Block products each node computed and that passed: ``Settlement.computed`` (by copy key)
    summed per node (``nodes_of``), as a node may have served two slots."""
    out: dict[str, int] = {}
    for slot, count in computed.items():
        out[nodes_of[slot]] = out.get(nodes_of[slot], 0) + count
    return out
