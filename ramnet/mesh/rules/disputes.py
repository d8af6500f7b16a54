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

When no eligible validator is there in time, the coordinator judges the dispute itself
(``coordinator_verdict``): the same package, the same ``judge`` and the same acceptance rule as a
validator's verdict. What that rule cannot uphold ends the job with a reason instead of leaving
the dispute open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ramnet.mesh.rules.shard import compute_shard, digest_of_blocks, tile_map
from ramnet.mesh.rules.tilecommit import commit_tiles, open_tile_path, verify_tile_path
from ramnet.orchid import BlockProduct
from ramnet.valkyrie import block_digest
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


def contested(
    failed: Sequence[tuple[int, BlockProduct]],
    disagreements: Sequence[tuple[BlockProduct, Any]],
    nodes_of: Mapping[int, str],
) -> tuple[list[tuple[str, tuple[int, int, int]]], list[tuple[int, int, int]]]:
    """What a dispute is about, from a settlement that failed (``Settlement.failed`` and
    ``.disagreements``, by copy key).

    Returns:
        (the failed partials as (node, block), of the copies ``nodes_of`` names; every block a
        partial failed or copies disagreed on, sorted).
    """
    claims = [(nodes_of[slot], (b.i, b.j, b.k)) for slot, b in failed if slot in nodes_of]
    blocks = sorted(
        {(b.i, b.j, b.k) for _, b in failed} | {(b.i, b.j, b.k) for b, _ in disagreements}
    )
    return claims, blocks


def validation_package(
    dispute_id: int,
    job_id: str,
    blocks: Sequence[tuple[int, int, int]],
    tiles_a: Mapping[tuple[int, int], np.ndarray],
    tiles_b: Mapping[tuple[int, int], np.ndarray],
    reveals: Mapping[int, Mapping[BlockProduct, np.ndarray]],
    nodes_of: Mapping[int, str],
    commits: Mapping[int, str],
    roots: tuple[str | None, str | None],
    grid: tuple[int, int, int],
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """What a validator receives: the contested blocks' tiles (``a/i/k``, ``b/k/j``) with their
    Merkle openings against the job's roots, every copy's partial of them (``c/copy/i/j/k``),
    and a claim per partial.

    Args:
        dispute_id, job_id: The dispute and its job.
        blocks: The contested blocks (i, j, k).
        tiles_a, tiles_b: The job's tiles by (i, k) and (k, j).
        reveals: Copy key -> that copy's revealed partials.
        nodes_of: Copy key -> the node that revealed it.
        commits: Copy key -> that copy's commitment.
        roots: The job's tile commitments of A and B.
        grid: The job's grid shape (p, q, r).

    Returns:
        (metadata, arrays).
    """
    p, q, r = grid
    levels_a = commit_tiles("a", tiles_a, (p, r))[1]
    levels_b = commit_tiles("b", tiles_b, (r, q))[1]
    arrays: dict[str, np.ndarray] = {}
    openings: dict[str, list[str]] = {}
    claims = []
    digests_of: dict[int, dict[str, str]] = {}  # each copy's partial digests, hashed once
    for i, j, k in blocks:
        block = BlockProduct(i, j, k)
        arrays[f"a/{i}/{k}"] = tiles_a[(i, k)]
        arrays[f"b/{k}/{j}"] = tiles_b[(k, j)]
        openings[f"a/{i}/{k}"] = open_tile_path(levels_a, (p, r), i, k)
        openings[f"b/{k}/{j}"] = open_tile_path(levels_b, (r, q), k, j)
        for copy, partials in reveals.items():
            if block in partials:
                name = f"c/{copy}/{i}/{j}/{k}"
                arrays[name] = partials[block]
                # The claim is opened against the worker's own commitment: the digests of
                # the shard's partials, which must hash to the commit it posted.
                if copy not in digests_of:
                    digests_of[copy] = {
                        f"{b.i}/{b.j}/{b.k}": block_digest(b, x).hex() for b, x in partials.items()
                    }
                claims.append(
                    {
                        "node": nodes_of[copy],
                        "copy": copy,
                        "block": [i, j, k],
                        "name": name,
                        "commit": commits.get(copy),
                        "digests": digests_of[copy],
                    }
                )
    meta = {
        "dispute_id": dispute_id,
        "job_id": job_id,
        "blocks": blocks,
        "claims": claims,
        "commitments": {
            "a": roots[0],
            "b": roots[1],
            "grid": [p, q, r],
        },
        "openings": openings,
    }
    return meta, arrays


def bad_tiles(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> list[str]:
    """The tiles of a validation package that do not open against the job's commitments.

    Args:
        meta: The package's metadata: ``commitments`` (``a``, ``b`` roots and the ``grid``
            p, q, r) and ``openings`` (tile name -> Merkle path as hex).
        arrays: The tiles, named ``a/i/k`` and ``b/k/j``.

    Returns:
        The names of the tiles that fail (empty when every one verifies).
    """
    roots = meta.get("commitments") or {}
    try:
        p, q, r = (int(x) for x in roots.get("grid", ()))
    except (TypeError, ValueError):
        return sorted(n for n in arrays if n[:2] in ("a/", "b/"))
    openings = meta.get("openings") or {}
    bad = []
    for name, tile in arrays.items():
        kind, _, rest = name.partition("/")
        if kind not in ("a", "b"):
            continue
        try:
            x, y = (int(v) for v in rest.split("/"))
        except ValueError:
            bad.append(name)
            continue
        grid = (p, r) if kind == "a" else (r, q)
        root = roots.get(kind)
        path = openings.get(name)
        ok = isinstance(root, str) and isinstance(path, list)
        if not ok or not verify_tile_path(kind, str(root), grid, x, y, tile, path or []):
            bad.append(name)
    return bad


def claim_opens(claim: Mapping[str, Any], partial: np.ndarray) -> bool:
    """Whether a contested partial is what its worker committed to: its digest is the one the
    claim lists for its block, and the listed digests of the shard hash to the commit."""
    try:
        block = BlockProduct(*(int(x) for x in claim["block"]))
        digests = {
            BlockProduct(*(int(v) for v in key.split("/"))): bytes.fromhex(value)
            for key, value in claim["digests"].items()
        }
        commit = str(claim["commit"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
    if digests.get(block) != block_digest(block, partial):
        return False
    return digest_of_blocks(digests).hex() == commit


def fraud_entry(
    node: str, block: BlockProduct, claimed: np.ndarray, correct: np.ndarray, copy: int = 0
) -> dict[str, Any] | None:
    """The first entry where ``claimed`` differs from ``correct``, as a fraud proof (or None).

    ``copy`` names which of the node's copies of the block is wrong: with mirrors a node may
    hold two shards holding the same audit block."""
    where = {"node": node, "copy": copy, "block": [block.i, block.j, block.k]}
    if claimed.shape != correct.shape:
        return {**where, "shape": list(claimed.shape)}
    diff = np.argwhere(claimed != correct)
    if not len(diff):
        return None
    r, c = (int(x) for x in diff[0])
    return {
        **where,
        "row": r,
        "col": c,
        "claimed": claimed[r, c].item(),
        "correct": correct[r, c].item(),
    }


def check_fraud(
    entry: Mapping[str, Any],
    claims: Mapping[tuple[str, int, BlockProduct], np.ndarray],
    tiles_a: Mapping[tuple[int, int], np.ndarray],
    tiles_b: Mapping[tuple[int, int], np.ndarray],
) -> bool:
    """Check one fraud proof in O(K) against the coordinator's own tiles and the stored claim
    (``claims`` by node, copy key and block)."""
    try:
        node = str(entry["node"])
        block = BlockProduct(*(int(x) for x in entry["block"]))
        claim = claims[(node, int(entry["copy"]), block)]
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


def frauds_proven(
    frauds: Sequence[Mapping[str, Any]],
    reveals: Mapping[int, Mapping[BlockProduct, np.ndarray]],
    nodes_of: Mapping[int, str],
    tiles_a: Mapping[tuple[int, int], np.ndarray],
    tiles_b: Mapping[tuple[int, int], np.ndarray],
) -> bool:
    """Whether every fraud proof holds against the revealed copies (by copy key) and their
    nodes (``nodes_of``): each checked by ``check_fraud``."""
    claims = {
        (nodes_of[copy], copy, block): x
        for copy, partials in reveals.items()
        for block, x in partials.items()
    }
    return all(check_fraud(f, claims, tiles_a, tiles_b) for f in frauds)


def judge(
    meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], *, backend: str = "auto"
) -> tuple[list[dict[str, Any]] | None, list[str]]:
    """A validator's verdict on a validation package: recompute the contested blocks from the
    job's tiles and prove every claim that differs.

    Judges only what was committed to: the tiles must open against the job's commitments, and
    each claim against its worker's commit; a claim that does not open is ignored.

    Args:
        meta: The package's metadata (``dispute_id``, ``blocks``, ``claims``, commitments).
        arrays: Its tiles (``a/i/k``, ``b/k/j``) and the claimed partials, by name.
        backend: ORCHID backend for the recomputation.

    Returns:
        (the fraud proofs, or None when the package's tiles do not match the job's commitments;
        one line per thing the validator refused or ignored).
    """
    bad = bad_tiles(meta, arrays)
    if bad:
        return None, [f"refused: {', '.join(bad)} do not match the job's commitments"]
    claims = [c for c in meta["claims"] if claim_opens(c, arrays[c["name"]])]
    notes = [
        f"claim {claim['name']} does not open; ignored"
        for claim in meta["claims"]
        if claim not in claims
    ]
    tiles_a, tiles_b = tile_map(arrays, "a"), tile_map(arrays, "b")
    correct: dict[tuple[int, int, int], np.ndarray] = {}
    for i, j, k in meta["blocks"]:
        block = BlockProduct(i, j, k)
        correct[(i, j, k)] = compute_shard([block], tiles_a, tiles_b, backend=backend)[block]
    frauds = []
    for claim in claims:
        i, j, k = claim["block"]
        entry = fraud_entry(
            claim["node"],
            BlockProduct(i, j, k),
            arrays[claim["name"]],
            correct[(i, j, k)],
            copy=int(claim["copy"]),
        )
        if entry is not None:
            frauds.append(entry)
    return frauds, notes


@dataclass(frozen=True)
class CoordinatorVerdict:
    """The coordinator's own judgement of a dispute that found no validator.

    Attributes:
        frauds: The fraud proofs ``judge`` made (empty when it was refused).
        slashed: The proven cheaters, sorted: exactly the nodes whose partials failed the
            settlement's checks. Empty when the dispute cannot be upheld (``failure`` says why).
        failure: None when upheld; else one line saying why the dispute cannot be upheld (the
            job then ends with it as its reason).
        notes: ``judge``'s lines on what it refused or ignored.
    """

    frauds: list[dict[str, Any]]
    slashed: list[str]
    failure: str | None
    notes: list[str]


def coordinator_verdict(
    meta: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    failed: Sequence[tuple[str, Any]],
    reveals: Mapping[int, Mapping[BlockProduct, np.ndarray]],
    nodes_of: Mapping[int, str],
    tiles_a: Mapping[tuple[int, int], np.ndarray],
    tiles_b: Mapping[tuple[int, int], np.ndarray],
    *,
    backend: str = "auto",
) -> CoordinatorVerdict:
    """Judge a dispute as a validator would, and check the result as a validator's verdict is
    checked: ``judge`` on the validation package, then every fraud proof by ``frauds_proven``,
    and the accused must be exactly the nodes whose partials failed.

    Args:
        meta, arrays: The dispute's validation package (``validation_package``).
        failed: The dispute's failed partials, as (node, block).
        reveals: Copy key -> that copy's revealed partials.
        nodes_of: Copy key -> the node that revealed it.
        tiles_a, tiles_b: The job's tiles by (i, k) and (k, j).
        backend: ORCHID backend for the recomputation.

    Returns:
        The verdict: upheld (``slashed``) or not (``failure``).
    """
    frauds, notes = judge(meta, arrays, backend=backend)
    if frauds is None:
        return CoordinatorVerdict([], [], "the job's tiles do not match their commitments", notes)
    accused = sorted({str(f.get("node")) for f in frauds})
    failed_nodes = sorted({str(node) for node, _ in failed})
    if not failed_nodes:
        why = "copies disagree but no partial failed its check"
    elif not frauds_proven(frauds, reveals, nodes_of, tiles_a, tiles_b):
        why = "the recomputation's fraud proofs do not check (floating point is not provable)"
    elif accused != failed_nodes:
        why = "the recomputation does not confirm the partials that failed their checks"
    else:
        return CoordinatorVerdict(frauds, accused, None, notes)
    return CoordinatorVerdict(frauds, [], f"the dispute cannot be upheld: {why}", notes)
