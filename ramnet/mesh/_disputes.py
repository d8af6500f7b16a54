"""Disputes: who settles them, what a verdict must prove, and how it is checked.

When settlement finds partials that fail their check (or audit copies that disagree), the job
freezes and a validator is drawn from the opt-in pool: seeded from public data (the job id and
the commitments of its revealed shards), so anyone can re-derive the draw, and never a node that
holds a shard of the job. The validator receives only the contested blocks' tiles and the
contested claims, recomputes them, and answers with a verdict: for each claim it finds wrong, a
fraud proof naming one entry (row, column) and its true value. The coordinator checks every fraud
proof itself in O(K) (one row of the A tile times one column of the B tile), and the verdict must
name exactly the partials that failed the coordinator's own check; a verdict that does not is a
lie, and its validator is slashed in turn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ramnet.orchid import BlockProduct
from ramnet.valkyrie._hash import digest


def draw_validator(
    job_id: str, commits: Sequence[str], round_: int, eligible: Sequence[str]
) -> str | None:
    """Draw a validator: ``eligible`` sorted, indexed by BLAKE3(job id, commits, round).

    Returns:
        The validator's node id, or None when nobody is eligible.
    """
    pool = sorted(eligible)
    if not pool:
        return None
    seed = digest(b"RNDRAW1\x00", job_id.encode(), *(c.encode() for c in sorted(commits)))
    seed = digest(seed, round_.to_bytes(8, "little"))
    return pool[int.from_bytes(seed[:8], "little") % len(pool)]


def fraud_entry(
    node: str, block: BlockProduct, claimed: np.ndarray, correct: np.ndarray
) -> dict[str, Any] | None:
    """The first entry where ``claimed`` differs from ``correct``, as a fraud proof (or None)."""
    if claimed.shape != correct.shape:
        return {"node": node, "block": [block.i, block.j, block.k], "shape": list(claimed.shape)}
    diff = np.argwhere(claimed != correct)
    if not len(diff):
        return None
    r, c = (int(x) for x in diff[0])
    return {
        "node": node,
        "block": [block.i, block.j, block.k],
        "row": r,
        "col": c,
        "claimed": claimed[r, c].item(),
        "correct": correct[r, c].item(),
    }


def check_fraud(
    entry: Mapping[str, Any],
    claims: Mapping[tuple[str, BlockProduct], np.ndarray],
    tiles_a: Mapping[tuple[int, int], np.ndarray],
    tiles_b: Mapping[tuple[int, int], np.ndarray],
) -> bool:
    """Check one fraud proof in O(K) against the coordinator's own tiles and the stored claim."""
    try:
        node = str(entry["node"])
        block = BlockProduct(*(int(x) for x in entry["block"]))
        claim = claims[(node, block)]
        a = tiles_a[(block.i, block.k)]
        b = tiles_b[(block.k, block.j)]
    except (KeyError, TypeError, ValueError):
        return False
    if "shape" in entry:  # a partial of the wrong shape is its own proof
        return bool(claim.shape != (a.shape[0], b.shape[1]))
    try:
        r, c = int(entry["row"]), int(entry["col"])
    except (KeyError, TypeError, ValueError):
        return False
    if not (0 <= r < claim.shape[0] and 0 <= c < claim.shape[1]):
        return False
    if a.dtype.kind == "f":
        return False  # floats are settled by the range check, not by single entries
    # Exact: a partial's dtype holds its true value (int32 for int8 blocks, int64 otherwise).
    true = sum(int(x) * int(y) for x, y in zip(a[r].tolist(), b[:, c].tolist(), strict=True))
    return int(claim[r, c]) != true
