"""The rules of an audit of an optimistic job: what an auditor is sent, what it finds, and whether
the copies that must agree do. Pure: plain values in, plain values out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ramnet.mesh.rules.disputes import fraud_entry
from ramnet.mesh.rules.shard import check_partial, compute_shard, tile_map
from ramnet.orchid import BlockProduct

Reveals = Mapping[int, Mapping[BlockProduct, np.ndarray]]


def _groups(reveals: Reveals) -> dict[BlockProduct, list[int]]:
    holders: dict[BlockProduct, list[int]] = {}
    for copy in sorted(reveals):
        for block in reveals[copy]:
            holders.setdefault(block, []).append(copy)
    return {block: copies for block, copies in holders.items() if len(copies) > 1}


def copies_agree(reveals: Reveals) -> bool:
    """Whether every block computed by more than one copy came out bit for bit the same."""
    for block, copies in _groups(reveals).items():
        first = reveals[copies[0]][block]
        for copy in copies[1:]:
            other = reveals[copy][block]
            if other.dtype != first.dtype or not np.array_equal(other, first):
                return False
    return True


def audit_package(
    job_id: str,
    tiles_a: Mapping[tuple[int, int], np.ndarray],
    tiles_b: Mapping[tuple[int, int], np.ndarray],
    reveals: Reveals,
    nodes_of: Mapping[int, str],
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """What an auditor receives: ``a/i/k`` and ``b/k/j`` tiles, ``c/copy/i/j/k`` partials, and
    in the metadata each copy's node and blocks and the groups that must agree."""
    arrays: dict[str, np.ndarray] = {}
    for (i, k), tile in tiles_a.items():
        arrays[f"a/{i}/{k}"] = tile
    for (k, j), tile in tiles_b.items():
        arrays[f"b/{k}/{j}"] = tile
    copies = []
    for copy in sorted(reveals):
        blocks = sorted(reveals[copy], key=lambda b: (b.i, b.j, b.k))
        for b in blocks:
            arrays[f"c/{copy}/{b.i}/{b.j}/{b.k}"] = reveals[copy][b]
        copies.append(
            {"copy": copy, "node": nodes_of[copy], "blocks": [[b.i, b.j, b.k] for b in blocks]}
        )
    groups = [[[b.i, b.j, b.k], c] for b, c in sorted(_groups(reveals).items())]
    return {"job_id": job_id, "copies": copies, "groups": groups}, arrays


def spot_check(
    reveals: Reveals,
    tiles_a: Mapping[tuple[int, int], np.ndarray],
    tiles_b: Mapping[tuple[int, int], np.ndarray],
    fraction: float,
    rng: np.random.Generator,
) -> bool:
    """Whether a sample of every copy's partials passes its check (Freivalds; floats: the range
    check): ``fraction`` of each copy's blocks, at least one, drawn with ``rng``.

    Args:
        reveals: Copy key -> that copy's partials.
        tiles_a, tiles_b: The job's tiles by (i, k) and (k, j).
        fraction: The share of each copy's partials checked.
        rng: The draw; the coordinator seeds it with secrets, so an auditor cannot predict it.
    """
    for partials in reveals.values():
        blocks = list(partials)
        count = max(1, round(fraction * len(blocks)))
        for t in rng.choice(len(blocks), size=min(count, len(blocks)), replace=False):
            block = blocks[int(t)]
            if not check_partial(block, partials[block], tiles_a, tiles_b):
                return False
    return True


def audit_findings(
    meta: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    *,
    backend: str = "auto",
    security_bits: int = 40,
) -> tuple[list[dict[str, Any]], int]:
    """Check an audit package: every partial by Freivalds (floats: the range check).

    Returns:
        (fraud proofs for the partials that fail, one per partial; partials checked).
    """
    tiles_a, tiles_b = tile_map(arrays, "a"), tile_map(arrays, "b")
    frauds = []
    checked = 0
    for entry in meta["copies"]:
        copy, node = int(entry["copy"]), str(entry["node"])
        for i, j, k in entry["blocks"]:
            block = BlockProduct(i, j, k)
            partial = arrays[f"c/{copy}/{i}/{j}/{k}"]
            checked += 1
            if check_partial(block, partial, tiles_a, tiles_b, security_bits=security_bits):
                continue
            correct = compute_shard([block], tiles_a, tiles_b, backend=backend)[block]
            proof = fraud_entry(node, block, partial, correct, copy=copy)
            if proof is not None:
                frauds.append(proof)
    return frauds, checked
