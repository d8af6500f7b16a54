"""The 3-way dimensional sharding plan: which node computes which block products of a job.

A job is ORCHID's p x q x r grid of block products P(i, j, k) = A[I_i, K_k] . B[K_k, J_j]. The plan
is a pure function of (job id, grid shape, node count, audits per triad, audit salt): no I/O, no
clock, no randomness beyond seeds derived from those inputs with BLAKE2b. ``docs/sharding.md``
explains the construction; in short:

1. Node counts are multiples of 3; nodes 3t, 3t+1, 3t+2 form triad t.
2. Every node gets a primary load of ``P // N`` or ``P // N + 1`` block products (P = p·q·r).
3. The block cube is split into one region per triad by recursive bisection along the longest
   axis, cut at the exact block count (a cut may step through one layer).
4. Each triad's styles (``rows``, ``cols``, ``reduce``) are dealt by a shuffle seeded from the job
   id. The region is cut twice: along the first node's style axis (that node takes the front
   slice), then the remainder along the second node's style axis; the third node takes the rest.
5. Each triad gets ``audit_per_triad`` audit blocks: primary blocks of one of its nodes (owners
   rotate) that the other two also compute, so all three copies are compared bit for bit.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import DTypeLike

from ramnet._errors import InvalidInputError
from ramnet.orchid._dtypes import SUPPORTED_DTYPES, result_dtype
from ramnet.orchid._hooks import BlockProduct
from ramnet.orchid._scheduler import Grid, make_grid

__all__ = [
    "AXIS_OF_STYLE",
    "BLOCKS_PER_NODE",
    "STYLES",
    "PlanInputError",
    "ShardPlan",
    "Style",
    "grid_for",
    "min_blocks",
    "plan_shards",
    "style_deal",
]

Style = Literal["rows", "cols", "reduce"]

#: The three slicing styles, in the order that numbers the deals (see ``style_deal``).
STYLES: tuple[Style, Style, Style] = ("rows", "cols", "reduce")

#: The grid axis each style slices: 0 = i (rows of A and C), 1 = j (columns of B and C),
#: 2 = k (the reduction: columns of A, rows of B).
AXIS_OF_STYLE: dict[str, int] = {"rows": 0, "cols": 1, "reduce": 2}

#: The number of block products per node that ``grid_for`` aims for (when the matrices allow).
BLOCKS_PER_NODE = 8

# ``itertools.permutations(STYLES)``, in its order (lexicographic in STYLES' order).
_DEALS: tuple[tuple[Style, Style, Style], ...] = (
    ("rows", "cols", "reduce"),
    ("rows", "reduce", "cols"),
    ("cols", "rows", "reduce"),
    ("cols", "reduce", "rows"),
    ("reduce", "rows", "cols"),
    ("reduce", "cols", "rows"),
)

# Sort keys that make a cut "along" an axis: that axis first, then the axis whose tiles the
# partial layer should share. i-major keeps k next (one layer's blocks then share B tiles and few
# A tiles), j-major likewise, k-major keeps i next.
_ORDER: dict[int, tuple[int, int, int]] = {0: (0, 2, 1), 1: (1, 2, 0), 2: (2, 0, 1)}

_STYLE_DOMAIN = b"ramnet.mesh.styles.v1\x00"
_AUDIT_DOMAIN = b"ramnet.mesh.audits.v1\x00"

_Block = tuple[int, int, int]


class PlanInputError(InvalidInputError):
    """Inputs the sharding plan cannot honour: a bad node count, grid, or audit count."""


# --------------------------------------------------------------------------------------------
# Seeds


def _hash_int(*parts: bytes) -> int:
    """A 64-bit integer from BLAKE2b-256 over length-prefixed parts (first 8 bytes, big-endian)."""
    h = hashlib.blake2b(digest_size=32)
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return int.from_bytes(h.digest()[:8], "big")


def style_deal(job_id: bytes, triad: int) -> tuple[Style, Style, Style]:
    """Return the styles of triad ``triad``'s nodes (3t, 3t+1, 3t+2) for job ``job_id``.

    The procedure, which anyone can recompute: ``h = BLAKE2b-256(len(D) || D || len(T) || T ||
    len(J) || J)`` with D = ``b"ramnet.mesh.styles.v1\\0"``, T = the triad index as 4 big-endian
    bytes, J = the job id, and every ``len`` 8 big-endian bytes; ``x`` = the first 8 bytes of h as
    a big-endian integer; the deal is ``itertools.permutations(("rows", "cols", "reduce"))[x % 6]``.
    (The modulo bias, 2^64 mod 6 out of 2^64, is negligible.)

    Args:
        job_id: The job id.
        triad: The triad index, >= 0.

    Returns:
        The styles of the triad's first, second and third node.
    """
    x = _hash_int(_STYLE_DOMAIN, triad.to_bytes(4, "big"), bytes(job_id))
    return _DEALS[x % len(_DEALS)]


# --------------------------------------------------------------------------------------------
# Geometry


def _sort_along(blocks: Iterable[_Block], axis: int) -> list[_Block]:
    a, b, c = _ORDER[axis]
    return sorted(blocks, key=lambda x: (x[a], x[b], x[c]))


def _extent(blocks: Sequence[_Block], axis: int) -> int:
    values = [x[axis] for x in blocks]
    return max(values) - min(values) + 1


def _split_regions(blocks: list[_Block], sizes: Sequence[int]) -> list[list[_Block]]:
    """Cut ``blocks`` into consecutive regions of the given sizes by recursive bisection.

    Each cut runs across the axis of largest extent (ties: i, j, k), at the exact block count.
    """
    if len(sizes) == 1:
        return [blocks]
    half = len(sizes) // 2
    front = sum(sizes[:half])
    extents = [_extent(blocks, axis) for axis in range(3)]
    axis = extents.index(max(extents))
    ordered = _sort_along(blocks, axis)
    return _split_regions(ordered[:front], sizes[:half]) + _split_regions(
        ordered[front:], sizes[half:]
    )


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanInputError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise PlanInputError(f"{name} must be >= {minimum}, got {value}")
    return value


def min_blocks(nodes: int, audit_per_triad: int = 1) -> int:
    """The fewest block products a grid needs for ``nodes`` nodes.

    Every node needs at least one primary block, and at least ``ceil(a / 3)`` of them because it
    owns up to that many of its triad's ``a`` audit blocks: ``nodes * max(1, ceil(a / 3))``.
    """
    return nodes * max(1, math.ceil(audit_per_triad / 3))


def _smallest_grid_like(shape: tuple[int, int, int], needed: int) -> tuple[int, int, int]:
    # Grow the smallest count first (the shape stays balanced) until there are enough blocks.
    grown = list(shape)
    while math.prod(grown) < needed:
        axis = grown.index(min(grown))
        grown[axis] += 1
    return (grown[0], grown[1], grown[2])


# --------------------------------------------------------------------------------------------
# The plan


@dataclass(frozen=True)
class ShardPlan:
    """Who computes which block products of one job. Coordinator-side: it knows the audits.

    A worker is only ever sent ``assignments[node]`` (and the tiles ``tiles_a``/``tiles_b``): a
    sorted list of plain BlockProducts in which audit copies carry no mark.

    Attributes:
        job_id: The job id the plan was dealt for.
        grid_shape: (p, q, r), the blocks along M, N and K.
        nodes: The number of nodes, a multiple of 3.
        audit_per_triad: The audit blocks each triad computes three times.
        style_list: The style of each node, indexed by node.
        primary_list: Each node's primary blocks, sorted by (i, j, k).
        audit_list: Each triad's audit blocks, sorted by (i, j, k).
    """

    job_id: bytes
    grid_shape: tuple[int, int, int]
    nodes: int
    audit_per_triad: int
    style_list: tuple[Style, ...]
    primary_list: tuple[tuple[BlockProduct, ...], ...]
    audit_list: tuple[tuple[BlockProduct, ...], ...]

    # ---- plain views ----------------------------------------------------------------------

    @property
    def triads(self) -> int:
        """The number of triads, ``nodes // 3``."""
        return self.nodes // 3

    @property
    def total_blocks(self) -> int:
        """p·q·r, the job's block products."""
        return math.prod(self.grid_shape)

    def triad_of(self, node: int) -> int:
        """The triad a node belongs to (``node // 3``)."""
        self._check_node(node)
        return node // 3

    def triad_nodes(self, triad: int) -> tuple[int, int, int]:
        """The three nodes of a triad."""
        if not 0 <= triad < self.triads:
            raise PlanInputError(f"triad {triad} is not in 0..{self.triads - 1}")
        return (3 * triad, 3 * triad + 1, 3 * triad + 2)

    @property
    def styles(self) -> dict[int, Style]:
        """Node -> ``"rows"``, ``"cols"`` or ``"reduce"``."""
        return dict(enumerate(self.style_list))

    @property
    def primary(self) -> dict[int, list[BlockProduct]]:
        """Node -> its primary blocks, sorted by (i, j, k). Together: every block exactly once."""
        return {n: list(blocks) for n, blocks in enumerate(self.primary_list)}

    @property
    def audits(self) -> dict[int, list[BlockProduct]]:
        """Triad -> its audit blocks, sorted by (i, j, k)."""
        return {t: list(blocks) for t, blocks in enumerate(self.audit_list)}

    def assignment(self, node: int) -> list[BlockProduct]:
        """What ``node`` computes: its primary blocks plus its triad's audit blocks, sorted."""
        self._check_node(node)
        blocks = set(self.primary_list[node]) | set(self.audit_list[node // 3])
        return sorted(blocks, key=_key)

    @property
    def assignments(self) -> dict[int, list[BlockProduct]]:
        """Node -> ``assignment(node)``: the sorted, unmarked list a worker receives."""
        return {n: self.assignment(n) for n in range(self.nodes)}

    @property
    def primary_load(self) -> dict[int, int]:
        """Node -> the number of its primary blocks (``P // N`` or one more)."""
        return {n: len(blocks) for n, blocks in enumerate(self.primary_list)}

    @property
    def load(self) -> dict[int, int]:
        """Node -> the block products it computes, audit copies included."""
        return {n: len(self.assignment(n)) for n in range(self.nodes)}

    def owner(self, block: BlockProduct) -> int:
        """The node that computes ``block`` as primary work.

        Raises:
            PlanInputError: A block outside the grid.
        """
        p, q, r = self.grid_shape
        if not (0 <= block.i < p and 0 <= block.j < q and 0 <= block.k < r):
            raise PlanInputError(f"block {block} lies outside the {p}x{q}x{r} grid")
        return self._owners[(block.i * q + block.j) * r + block.k]

    @property
    def _owners(self) -> tuple[int, ...]:
        cached: tuple[int, ...] | None = self.__dict__.get("_owner_cache")
        if cached is None:
            _, q, r = self.grid_shape
            table = [0] * self.total_blocks
            for n, blocks in enumerate(self.primary_list):
                for x in blocks:
                    table[(x.i * q + x.j) * r + x.k] = n
            cached = tuple(table)
            object.__setattr__(self, "_owner_cache", cached)
        return cached

    def is_audit(self, block: BlockProduct) -> bool:
        """Whether ``block`` is an audit block (coordinator-side knowledge only)."""
        return any(block in blocks for blocks in self.audit_list)

    # ---- tiles and fractions ----------------------------------------------------------------

    def tiles_a(self, node: int) -> set[tuple[int, int]]:
        """The tiles (i, k) of A that ``node``'s assignment needs, and no others."""
        return {(x.i, x.k) for x in self.assignment(node)}

    def tiles_b(self, node: int) -> set[tuple[int, int]]:
        """The tiles (k, j) of B that ``node``'s assignment needs, and no others."""
        return {(x.k, x.j) for x in self.assignment(node)}

    def a_fraction(self, node: int, grid: Grid | None = None) -> float:
        """The fraction of A that ``node`` sees.

        Args:
            node: The node.
            grid: Without it, the fraction of A's p·r tiles (block count). With the job's grid
                (whose shape must match), the fraction of A's elements, using its block edges.

        Returns:
            A number in (0, 1]; 0.0 for an empty A.
        """
        return self._fraction(self.tiles_a(node), grid, "a")

    def b_fraction(self, node: int, grid: Grid | None = None) -> float:
        """The fraction of B that ``node`` sees: as ``a_fraction``, over B's r·q tiles (k, j)."""
        return self._fraction(self.tiles_b(node), grid, "b")

    def _fraction(self, tiles: set[tuple[int, int]], grid: Grid | None, which: str) -> float:
        p, q, r = self.grid_shape
        if grid is None:
            return len(tiles) / (p * r if which == "a" else r * q)
        if grid.shape != self.grid_shape:
            raise PlanInputError(f"grid shape {grid.shape} is not the plan's {self.grid_shape}")

        def size(edges: tuple[int, ...], t: int) -> int:
            return edges[t + 1] - edges[t]

        if which == "a":
            seen = sum(size(grid.row_edges, i) * size(grid.k_edges, k) for i, k in tiles)
            whole = grid.row_edges[-1] * grid.k_edges[-1]
        else:
            seen = sum(size(grid.k_edges, k) * size(grid.col_edges, j) for k, j in tiles)
            whole = grid.k_edges[-1] * grid.col_edges[-1]
        return seen / whole if whole else 0.0

    # ---- summary figures ----------------------------------------------------------------------

    @property
    def audit_blocks(self) -> int:
        """The number of audit blocks over all triads."""
        return sum(len(blocks) for blocks in self.audit_list)

    @property
    def audit_volume(self) -> float:
        """The fraction of the job's block products computed redundantly (by three nodes).

        Each audit block is 1/(p·q·r) of the job. The extra work is twice this (two extra copies):
        see ``overhead``.
        """
        return self.audit_blocks / self.total_blocks

    @property
    def overhead(self) -> float:
        """Extra block products computed, as a fraction of the job: ``2 * audit_volume``."""
        return 2 * self.audit_blocks / self.total_blocks

    def balance(self) -> dict[str, int | float]:
        """Load balance figures: min/max/ratio of primary loads and of total loads.

        By construction ``primary_max - primary_min <= 1`` and ``load_max - load_min <= 2``.
        """
        primary = list(self.primary_load.values())
        total = list(self.load.values())
        return {
            "primary_min": min(primary),
            "primary_max": max(primary),
            "primary_ratio": max(primary) / min(primary),
            "load_min": min(total),
            "load_max": max(total),
            "load_ratio": max(total) / min(total),
        }

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data (coordinator-side: it includes the audits)."""
        per_node = []
        for n in range(self.nodes):
            per_node.append(
                {
                    "node": n,
                    "triad": n // 3,
                    "style": self.style_list[n],
                    "primary": [[x.i, x.j, x.k] for x in self.primary_list[n]],
                    "assignment": [[x.i, x.j, x.k] for x in self.assignment(n)],
                    "primary_load": len(self.primary_list[n]),
                    "load": len(self.assignment(n)),
                    "a_tiles": sorted([i, k] for i, k in self.tiles_a(n)),
                    "b_tiles": sorted([k, j] for k, j in self.tiles_b(n)),
                    "a_fraction": self.a_fraction(n),
                    "b_fraction": self.b_fraction(n),
                }
            )
        return {
            "version": 1,
            "job_id": self.job_id.hex(),
            "grid": list(self.grid_shape),
            "nodes": self.nodes,
            "audit_per_triad": self.audit_per_triad,
            "audit_volume": self.audit_volume,
            "overhead": self.overhead,
            "balance": self.balance(),
            "triads": [
                {
                    "triad": t,
                    "nodes": list(self.triad_nodes(t)),
                    "audits": [[x.i, x.j, x.k] for x in self.audit_list[t]],
                }
                for t in range(self.triads)
            ],
            "per_node": per_node,
        }

    def _check_node(self, node: int) -> None:
        if isinstance(node, bool) or not isinstance(node, int) or not 0 <= node < self.nodes:
            raise PlanInputError(f"node {node!r} is not in 0..{self.nodes - 1}")


def _key(x: BlockProduct) -> tuple[int, int, int]:
    return (x.i, x.j, x.k)


def _as_blocks(blocks: Iterable[_Block]) -> tuple[BlockProduct, ...]:
    return tuple(BlockProduct(i, j, k) for i, j, k in sorted(blocks))


def plan_shards(
    job_id: bytes,
    grid_shape: tuple[int, int, int],
    nodes: int,
    *,
    audit_per_triad: int = 1,
    audit_salt: bytes = b"",
) -> ShardPlan:
    """Deal a job's block products to ``nodes`` nodes in triads (3-way dimensional sharding).

    Args:
        job_id: The job id; seeds the style deal (recomputable by anyone who knows it).
        grid_shape: (p, q, r), the job grid's blocks along M, N and K (``Grid.shape``).
        nodes: The node count, a positive multiple of 3.
        audit_per_triad: Audit blocks per triad (>= 1), each computed by all three of its nodes;
            0 (no audits) exists only to measure what they cost.
        audit_salt: Mixed into the choice of audit blocks (not the style deal). With the default
            empty salt anyone who knows the job id can tell which blocks are audits; a coordinator
            should pass a secret salt and reveal it at settlement.

    Returns:
        The plan.

    Raises:
        PlanInputError: ``nodes`` not a positive multiple of 3; a grid count below 1;
            ``audit_per_triad`` below 0; a grid with fewer than ``min_blocks(nodes,
            audit_per_triad)`` block products (the message names a grid that is big enough);
            a job id or salt that is not bytes, or an empty job id.
    """
    if not isinstance(job_id, bytes | bytearray) or not job_id:
        raise PlanInputError(f"job_id must be non-empty bytes, got {job_id!r}")
    if not isinstance(audit_salt, bytes | bytearray):
        raise PlanInputError(f"audit_salt must be bytes, got {type(audit_salt).__name__}")
    job_id = bytes(job_id)
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 3 or nodes % 3:
        raise PlanInputError(
            f"nodes must be a positive multiple of 3 (nodes work in triads), got {nodes!r}"
        )
    # 0 only measures what audits cost (a benchmark's coordinator); a real job always audits.
    audit_per_triad = _check_int("audit_per_triad", audit_per_triad, 0)
    if not isinstance(grid_shape, tuple | list) or len(grid_shape) != 3:
        raise PlanInputError(f"grid_shape must be (p, q, r), got {grid_shape!r}")
    p, q, r = (_check_int("grid count", x, 1) for x in grid_shape)
    shape = (p, q, r)
    total = p * q * r
    needed = min_blocks(nodes, audit_per_triad)
    if total < needed:
        bigger = _smallest_grid_like(shape, needed)
        raise PlanInputError(
            f"a {p}x{q}x{r} grid has {total} block products; {nodes} nodes with "
            f"{audit_per_triad} audit block(s) per triad need at least {needed} "
            f"(for example a {bigger[0]}x{bigger[1]}x{bigger[2]} grid; grid_for() picks one)"
        )

    triads = nodes // 3
    base, extra = divmod(total, nodes)
    # Extra blocks go to the triads' first nodes, then their second nodes: triads differ by <= 1.
    targets = [base + (1 if (n % 3) * triads + n // 3 < extra else 0) for n in range(nodes)]

    cube = [(i, j, k) for i in range(p) for j in range(q) for k in range(r)]
    regions = _split_regions(cube, [sum(targets[3 * t : 3 * t + 3]) for t in range(triads)])

    styles: list[Style] = []
    primary: list[tuple[BlockProduct, ...]] = []
    audits: list[tuple[BlockProduct, ...]] = []
    salt = bytes(audit_salt)
    for t, region in enumerate(regions):
        deal = style_deal(job_id, t)
        styles.extend(deal)
        first, second, _ = (targets[3 * t + s] for s in range(3))
        along_first = _sort_along(region, AXIS_OF_STYLE[deal[0]])
        rest = _sort_along(along_first[first:], AXIS_OF_STYLE[deal[1]])
        pieces = [along_first[:first], rest[:second], rest[second:]]
        primary.extend(_as_blocks(piece) for piece in pieces)
        audits.append(_pick_audits(job_id, salt, t, pieces, audit_per_triad))

    return ShardPlan(
        job_id=job_id,
        grid_shape=shape,
        nodes=nodes,
        audit_per_triad=audit_per_triad,
        style_list=tuple(styles),
        primary_list=tuple(primary),
        audit_list=tuple(audits),
    )


def _pick_audits(
    job_id: bytes, salt: bytes, triad: int, pieces: Sequence[Sequence[_Block]], count: int
) -> tuple[BlockProduct, ...]:
    """Choose ``count`` audit blocks of a triad: owners rotate from a seeded start, each block
    drawn uniformly (seeded) from its owner's primary blocks not yet chosen."""
    tag = triad.to_bytes(4, "big")
    start = _hash_int(_AUDIT_DOMAIN, tag, salt, job_id, b"owner") % 3
    chosen: list[_Block] = []
    for u in range(count):
        candidates = sorted(set(pieces[(start + u) % 3]) - set(chosen))
        draw = _hash_int(_AUDIT_DOMAIN, tag, salt, job_id, u.to_bytes(4, "big"))
        chosen.append(candidates[draw % len(candidates)])
    return _as_blocks(chosen)


# --------------------------------------------------------------------------------------------
# Grids


def grid_for(
    m: int,
    k: int,
    n: int,
    nodes: int,
    *,
    audit_per_triad: int = 1,
    dtype: DTypeLike | None = None,
) -> tuple[int, int, int]:
    """Pick a grid shape (p, q, r) for a mesh job of C (m x n) = A (m x k) . B (k x n).

    Aims for ``BLOCKS_PER_NODE`` (8) block products per node with blocks that are near-cubic *in
    bytes moved*: starting from one block, the dimension whose blocks are longest gets one more
    part until there are enough. Block extents along M and N count as they are; the extent along K
    is weighed by ``itemsize(dtype) / itemsize(result)``, because every cut along K adds one more
    full copy of C to the partial results workers upload, while a block's tiles shrink only by
    input-sized bytes. For an int8 job (int32 partials) blocks may be 4x longer along K than
    across; for floats (same size in and out) the blocks stay cubic, as with ``dtype=None``.
    Ties go to M, then N, then K. Counts are taken from ``make_grid`` itself (which may merge parts
    to keep blocks aligned), so ``make_grid(m, k, n, grid_for(...)).shape == grid_for(...)``. With
    8 or more blocks per node the plan's primary loads are within 9/8 of each other.

    Args:
        m, k, n: The job's dimensions, each >= 1.
        nodes: The node count, a positive multiple of 3.
        audit_per_triad: As for ``plan_shards``.
        dtype: The job's input dtype (after promotion), or None to weigh all axes alike.

    Returns:
        (p, q, r), with at least ``min_blocks(nodes, audit_per_triad)`` block products.

    Raises:
        PlanInputError: Bad arguments, or matrices too small to give every node a block even
            when cut into single elements, or a ``dtype`` that is not a job dtype.
    """
    for name, value in (("m", m), ("k", k), ("n", n)):
        _check_int(name, value, 1)
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 3 or nodes % 3:
        raise PlanInputError(
            f"nodes must be a positive multiple of 3 (nodes work in triads), got {nodes!r}"
        )
    audit_per_triad = _check_int("audit_per_triad", audit_per_triad, 1)
    needed = min_blocks(nodes, audit_per_triad)
    if m * k * n < needed:
        raise PlanInputError(
            f"a {m}x{k} by {k}x{n} job has only {m * k * n} scalar products; {nodes} nodes need "
            f"at least {needed} block products: use fewer nodes"
        )
    target = max(needed, BLOCKS_PER_NODE * nodes)
    dims = (m, n, k)  # grid order: rows, columns, inner
    weight = (1.0, 1.0, _k_weight(dtype, k))
    asked = [1, 1, 1]

    def realised(parts: Sequence[int]) -> tuple[int, int, int]:
        return make_grid(m, k, n, (parts[0], parts[1], parts[2])).shape

    shape = realised(asked)
    while math.prod(shape) < target:
        growable = [a for a in range(3) if asked[a] < dims[a]]
        if not growable:
            break
        axis = max(growable, key=lambda a: (weight[a] * dims[a] / shape[a], -a))
        asked[axis] += 1
        shape = realised(asked)
    return shape


def _k_weight(dtype: DTypeLike | None, k: int) -> float:
    """Input bytes per result byte: how much less a unit of K costs than a unit of M or N."""
    if dtype is None:
        return 1.0
    try:
        job = np.dtype(dtype)
    except TypeError as exc:
        raise PlanInputError(f"dtype must be a numpy dtype, got {dtype!r}") from exc
    if job.name not in SUPPORTED_DTYPES:
        raise PlanInputError(
            f"dtype {job.name} is not a job dtype; choose from {', '.join(SUPPORTED_DTYPES)}"
        )
    return job.itemsize / result_dtype(job, k).itemsize


# ---- node counts a job may ask for ------------------------------------------------------


def check_nodes(nodes: int) -> int:
    """Refuse node counts that are not positive multiples of 3.

    Raises:
        InvalidInputError: Anything else.
    """
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 3 or nodes % 3:
        raise InvalidInputError(
            f"--nodes must be a positive multiple of 3 (3, 6, 9, ...), got {nodes}"
        )
    return nodes


REDUNDANCY = ("mirror", "none")


def check_redundancy(redundancy: object, nodes: int) -> str:
    """Resolve ``--redundancy``: ``mirror`` (the default from 6 nodes on) or ``none``.

    With ``mirror``, the nodes' triads are paired: half of them (rounded up) are planned, and
    each of the others computes the same shards as one planned triad, so a dead or slashed
    worker's shard is served by its mirror without a recompute.

    Raises:
        InvalidInputError: An unknown value, or ``mirror`` with fewer than 6 nodes.
    """
    if redundancy is None:
        return "mirror" if nodes >= 6 else "none"
    if redundancy not in REDUNDANCY:
        raise InvalidInputError(f"--redundancy must be mirror or none, got {redundancy!r}")
    if redundancy == "mirror" and nodes < 6:
        raise InvalidInputError(f"--redundancy mirror needs --nodes 6 or more, got {nodes}")
    return str(redundancy)


def planned_nodes(nodes: int, redundancy: str) -> int:
    """The plan's node count: every node without mirrors, else the planned half of the triads
    (rounded up; an odd triad out is planned and not mirrored)."""
    triads = nodes // 3
    return nodes if redundancy == "none" else 3 * (triads - triads // 2)


def job_price(
    plan: ShardPlan, mirrored: Iterable[int], price_per_block: int, validator_fee: int
) -> int:
    """What a job costs its consumer: every block product computed (audit copies included, and
    the mirror copies of the ``mirrored`` slots) at ``price_per_block``, plus the escrowed
    ``validator_fee``."""
    computed = sum(plan.load.values()) + sum(plan.load[slot] for slot in mirrored)
    return computed * price_per_block + validator_fee
