"""A shard's work and its checks: what a worker computes, what the coordinator verifies.

A worker receives the A tiles A[I_i, K_k] and B tiles B[K_k, J_j] its block products need and
returns one partial tile P(i, j, k) per block. Its commitment to the result (commit-reveal) is the
digest of every partial in canonical order. The coordinator checks every partial with Freivalds
against its own tiles (exact dtypes) or the rounding-error range check (floats), compares audit
copies bit for bit, and assembles C summing partials in ascending k: a fixed order, so a float C is
reproducible too.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ramnet._errors import InvalidInputError
from ramnet.orchid._dtypes import result_dtype
from ramnet.orchid._hooks import BlockProduct
from ramnet.orchid._matmul import matmul_many
from ramnet.orchid._pool import default_threads, parallel_map
from ramnet.orchid._scheduler import Grid
from ramnet.valkyrie._checks import c_in_range, float_range_check, freivalds, freivalds_vectors
from ramnet.valkyrie._hash import digest
from ramnet.valkyrie._recorder import block_digest
from ramnet.valkyrie.field import P61, weighted_rowsums

_RESULT_TAG = b"RNSHARD1"

TileMap = Mapping[tuple[int, int], np.ndarray]


def tile_map(arrays: Mapping[str, np.ndarray], prefix: str) -> dict[tuple[int, int], np.ndarray]:
    """The tiles named ``PREFIX/x/y`` in a wire container (``a/i/k``, ``b/k/j``), by (x, y)."""
    out = {}
    for name, array in arrays.items():
        kind, _, rest = name.partition("/")
        if kind == prefix:
            x, y = (int(v) for v in rest.split("/"))
            out[(x, y)] = array
    return out


def named_partials(
    blocks: Iterable[tuple[int, int, int]], arrays: Mapping[str, np.ndarray]
) -> dict[BlockProduct, np.ndarray]:
    """A shard's result as it came, named ``p/i/j/k``: one partial per block of ``blocks``.

    Raises:
        InvalidInputError: A block's partial is missing.
    """
    partials: dict[BlockProduct, np.ndarray] = {}
    for i, j, kk in blocks:
        name = f"p/{i}/{j}/{kk}"
        if name not in arrays:
            raise InvalidInputError(f"the result lacks partial {name}")
        partials[BlockProduct(i, j, kk)] = np.asarray(arrays[name])
    return partials


def compute_shard(
    blocks: Sequence[BlockProduct],
    tiles_a: TileMap,
    tiles_b: TileMap,
    *,
    backend: str = "auto",
    threads: int = 1,
) -> dict[BlockProduct, np.ndarray]:
    """Compute the partial tile of every block product of a shard.

    Args:
        blocks: The shard's block products.
        tiles_a: A's tiles by (i, k).
        tiles_b: B's tiles by (k, j).
        backend: ORCHID backend.
        threads: Block products computed at once (each one single-threaded).

    Returns:
        ``{block: P(i, j, k)}``.

    Raises:
        InvalidInputError: A tile is missing or the tiles do not fit together.
    """
    for block in blocks:
        if (block.i, block.k) not in tiles_a or (block.k, block.j) not in tiles_b:
            raise InvalidInputError(f"the tiles of block {block} were not provided")

    # One call for the whole shard: a tile that several blocks use is packed once, not per block.
    pairs = [(tiles_a[(b.i, b.k)], tiles_b[(b.k, b.j)]) for b in blocks]
    partials = matmul_many(pairs, backend=backend, threads=max(1, threads))
    return dict(zip(blocks, partials, strict=True))


def result_digest(partials: Mapping[BlockProduct, np.ndarray]) -> bytes:
    """The commitment to a shard's result: every partial's digest, in (i, j, k) order."""
    return digest_of_blocks({b: block_digest(b, x) for b, x in partials.items()})


def digest_of_blocks(digests: Mapping[BlockProduct, bytes]) -> bytes:
    """``result_digest`` from the partials' ``block_digest`` values: how a validator opens one
    partial against a worker's commitment, given the digests of the shard's other partials."""
    parts = [_RESULT_TAG]
    for block in sorted(digests, key=lambda b: (b.i, b.j, b.k)):
        parts.append(struct.pack("<III", block.i, block.j, block.k))
        parts.append(digests[block])
    return digest(*parts)


def check_partial(
    block: BlockProduct,
    partial: np.ndarray,
    tiles_a: TileMap,
    tiles_b: TileMap,
    *,
    security_bits: int = 40,
) -> bool:
    """Check one partial tile against the block's own A and B tiles.

    Returns:
        True when it passes Freivalds (exact dtypes, error <= 2^-security_bits) or the float range
        check, and has the block's shape and result dtype.
    """
    a = tiles_a[(block.i, block.k)]
    b = tiles_b[(block.k, block.j)]
    if partial.shape != (a.shape[0], b.shape[1]):
        return False
    if partial.dtype != result_dtype(a.dtype, a.shape[1]):
        return False
    if a.dtype.kind == "f":
        return float_range_check(a, b, partial)
    return freivalds(a, b, partial, security_bits=security_bits)


class CheckVectors:
    """The random vectors of one round of Freivalds checks: one per column of blocks j, drawn
    when first needed, and each B tile's product with its column's vector, computed once.

    Sharing a column's vector between the blocks of that column keeps every block's check as
    strong as with a vector of its own: an error in P(i, j, k) escapes only if the random r_j
    happens to be orthogonal to it, with probability at most 1/p per vector whatever the other
    blocks are (the vectors are drawn after every partial is fixed). Fresh vectors for each
    settlement (each ``CheckVectors``) keep them unknown to workers in advance.
    """

    def __init__(self, security_bits: int = 40) -> None:
        """Args:
        security_bits: λ of every check; ceil(λ/60) vectors per column.
        """
        self.security_bits = security_bits
        self._r: dict[int, np.ndarray] = {}
        self._br: dict[tuple[int, int], np.ndarray] = {}

    def r(self, j: int, width: int) -> np.ndarray:
        """Column j's vectors, shape (rounds, width)."""
        if j not in self._r:
            self._r[j] = freivalds_vectors(width, self.security_bits)
        return self._r[j]

    def br(self, k: int, j: int, b: np.ndarray) -> np.ndarray:
        """B tile (k, j) times column j's vectors, mod p: shape (rounds, rows of the tile)."""
        if (k, j) not in self._br:
            self._br[(k, j)] = weighted_rowsums(b, self.r(j, b.shape[1]))
        return self._br[(k, j)]


def check_partials(
    partials: Mapping[BlockProduct, np.ndarray],
    tiles_a: TileMap,
    tiles_b: TileMap,
    *,
    vectors: CheckVectors | None = None,
    security_bits: int = 40,
) -> list[BlockProduct]:
    """Check one node's partials against their own tiles, as ``check_partial`` does for each.

    Integer partials that share an A tile (i, k) are checked together: with r_j the column
    vectors, Σ_j P(i, j, k)·r_j must equal A(i, k)·Σ_j (B(k, j)·r_j) mod p. Any wrong partial of the
    group makes the two differ except with probability 1/p per vector (the r_j are independent),
    so the group costs one pass over A(i, k) instead of one per block; a group that fails is
    checked block by block to name the wrong partials.

    Args:
        partials: Block -> that node's partial.
        tiles_a, tiles_b: The job's tiles by (i, k) and (k, j).
        vectors: Shared column vectors (a settlement checks all its nodes with one set); None
            draws new ones.
        security_bits: λ for new vectors.

    Returns:
        The blocks whose partials failed (wrong shape or dtype, out of range, or wrong values),
        in (i, j, k) order.
    """
    vectors = vectors if vectors is not None else CheckVectors(security_bits)
    failed: list[BlockProduct] = []
    groups: dict[tuple[int, int], list[BlockProduct]] = {}
    for block in sorted(partials, key=lambda b: (b.i, b.j, b.k)):
        a = tiles_a[(block.i, block.k)]
        b = tiles_b[(block.k, block.j)]
        partial = partials[block]
        if partial.shape != (a.shape[0], b.shape[1]) or partial.dtype != result_dtype(
            a.dtype, a.shape[1]
        ):
            failed.append(block)
        elif a.dtype.kind == "f":
            if not float_range_check(a, b, partial):
                failed.append(block)
        elif not c_in_range(partial):
            failed.append(block)
        else:
            groups.setdefault((block.i, block.k), []).append(block)

    def side_c(block: BlockProduct) -> np.ndarray:
        partial = partials[block]
        return weighted_rowsums(partial, vectors.r(block.j, partial.shape[1]))

    def side_ab(block: BlockProduct) -> np.ndarray:
        b = tiles_b[(block.k, block.j)]
        return weighted_rowsums(tiles_a[(block.i, block.k)], vectors.br(block.k, block.j, b))

    for (i, k), blocks in groups.items():
        c_sum = _sum_mod(side_c(b) for b in blocks)
        br_sum = _sum_mod(vectors.br(b.k, b.j, tiles_b[(b.k, b.j)]) for b in blocks)
        if not np.array_equal(c_sum, weighted_rowsums(tiles_a[(i, k)], br_sum)):
            failed.extend(b for b in blocks if not np.array_equal(side_c(b), side_ab(b)))
    return sorted(failed, key=lambda b: (b.i, b.j, b.k))


def _sum_mod(residues: Iterable[np.ndarray]) -> np.ndarray:
    # Residues are below 2^61 < 2^63: the sum of two fits uint64 before it is reduced.
    return functools.reduce(lambda x, y: (x + y) % P61, residues)


def assemble(
    grid: Grid,
    partials: Mapping[BlockProduct, np.ndarray],
    dtype: np.dtype,
    *,
    threads: int | None = None,
) -> np.ndarray:
    """Assemble C from one partial per block product, summing in ascending k.

    Args:
        grid: The job's grid.
        partials: One partial per block product.
        dtype: C's dtype.
        threads: Output tiles assembled at once (None: ORCHID's default).

    Raises:
        InvalidInputError: A block product is missing.
    """
    p, q, r = grid.shape
    for block in grid.blocks():
        if block not in partials:
            raise InvalidInputError(f"block {block} has no accepted result")
    m, n = grid.row_edges[-1], grid.col_edges[-1]
    # Integer tiles start from their first two partials' sum, not from zeros: one pass less over
    # C, and no zeroed 64 MiB to fault in. A float tile starts from zero as before, so that the
    # sign of a zero entry does not depend on this shortcut.
    exact = np.dtype(dtype).kind != "f"
    out = np.empty((m, n), dtype) if exact and r > 0 else np.zeros((m, n), dtype)

    def one(ij: tuple[int, int]) -> None:
        i, j = ij
        tile = out[grid.rows(i), grid.cols(j)]
        parts = [partials[BlockProduct(i, j, k)] for k in range(r)]
        if exact and r >= 2:
            np.add(parts[0], parts[1], out=tile)
            parts = parts[2:]
        elif exact:
            tile[...] = parts[0]
            parts = parts[1:]
        for part in parts:
            tile += part

    parallel_map(one, [(i, j) for i in range(p) for j in range(q)], threads or default_threads())
    return out
