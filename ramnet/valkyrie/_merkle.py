"""Merkle commitments to matrices, and openings of tiles and row/column segments.

A matrix is cut into tiles (64 KiB by default; see ``default_tile``). Each leaf is

    LEAF_TAG | dtype code u8 | rows u64 | cols u64 | tile rows u32 | tile cols u32 |
    tile row u32 | tile col u32 | rows in tile u32 | bytes per row u32 |
    the tile, little-endian, C order

so the dtype, the shape and the position are bound into every leaf. Leaves are hashed with BLAKE3
in row-major tile order; a level with an odd count carries its last digest up unchanged. The root
binds the header once more: root = H(ROOT_TAG | header | leaf count u64 | top digest).

Matrices are hashed strip by strip (about 1 MiB) on several threads, several matrices in one queue
(``commit_matrices``), with an optional visitor that reads each strip while it is in the cache.
Where the CPU has AVX-512, leaves and tree levels are hashed by ORCHID's C kernels
(``tile_digests``, ``node_digests``: 16 BLAKE3 chunks or nodes at a time, a quarter faster than
feeding a prefixed leaf to an incremental BLAKE3 API); elsewhere by the blake3 package. Both give
the same digests.
"""

from __future__ import annotations

import functools
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import blake3
import numpy as np

from ramnet._errors import InvalidInputError, TraceFormatError
from ramnet.orchid._pool import default_threads, parallel_map
from ramnet.orchid._tiles import hash_paths, node_digests, pack_tiles, tile_digests
from ramnet.valkyrie import _hash

DTYPE_CODES = {"int8": 1, "int16": 2, "int32": 3, "int64": 4, "float32": 5, "float64": 6}
DTYPE_NAMES = {code: name for name, code in DTYPE_CODES.items()}
TILE_BYTES = 1 << 16
STRIP_BYTES = 1 << 17
STRIP_TARGET = 1 << 20  # bytes a thread hashes at a time (see _strip_rows)
STRIP_MIN = 1 << 18

_HEADER = struct.Struct("<BQQII")
COMMITMENT_SIZE = _HEADER.size + _hash.DIGEST_SIZE


def default_tile(dtype: np.dtype) -> tuple[int, int]:
    """Return the square-ish tile shape used for a dtype: 64 KiB, square for 1- and 4-byte types.

    Any tile and any row or column segment opens cheaply; used for B, whose columns fraud proofs
    open."""
    return {1: (256, 256), 2: (256, 128), 4: (128, 128), 8: (128, 64)}[np.dtype(dtype).itemsize]


def row_strip_tile(dtype: np.dtype, shape: tuple[int, int]) -> tuple[int, int]:
    """Return a tile of whole rows, about 128 KiB: leaves that are contiguous in a row-major
    matrix, so they are hashed where they lie, without a copy.

    Rows open cheaply (one leaf), columns do not: used for A and C, whose rows fraud proofs open.
    """
    row_bytes = max(1, shape[1] * np.dtype(dtype).itemsize)
    return (max(1, STRIP_BYTES // row_bytes), max(1, shape[1]))


@dataclass(frozen=True)
class Commitment:
    """A Merkle commitment to one matrix.

    Attributes:
        dtype: The dtype name.
        shape: (rows, columns).
        tile: (rows, columns) of a full tile.
        root: The 32-byte root digest.
    """

    dtype: str
    shape: tuple[int, int]
    tile: tuple[int, int]
    root: bytes

    @property
    def grid(self) -> tuple[int, int]:
        """(tile rows, tile columns) of the tile grid."""
        rows, cols = self.shape
        tr, tc = self.tile
        return (-(-rows // tr) if cols else 0, -(-cols // tc) if rows else 0)

    @property
    def leaf_count(self) -> int:
        """The number of leaves."""
        gr, gc = self.grid
        return gr * gc

    def header(self) -> bytes:
        """The header bytes bound into every leaf and into the root."""
        return _HEADER.pack(DTYPE_CODES[self.dtype], *self.shape, *self.tile)

    def to_bytes(self) -> bytes:
        """Serialise (header then root, ``COMMITMENT_SIZE`` bytes)."""
        return self.header() + self.root

    @classmethod
    def from_bytes(cls, data: bytes) -> Commitment:
        """Parse ``to_bytes`` output.

        Raises:
            TraceFormatError: Wrong length, unknown dtype, or an impossible tile shape.
        """
        if len(data) != COMMITMENT_SIZE:
            raise TraceFormatError(f"a commitment is {COMMITMENT_SIZE} bytes, got {len(data)}")
        code, rows, cols, tr, tc = _HEADER.unpack_from(data)
        if code not in DTYPE_NAMES or tr < 1 or tc < 1:
            raise TraceFormatError("malformed commitment header")
        return cls(DTYPE_NAMES[code], (rows, cols), (tr, tc), bytes(data[_HEADER.size :]))

    def hex(self) -> str:
        """The root as hex."""
        return self.root.hex()


def _canonical(x: np.ndarray) -> np.ndarray:
    if x.ndim != 2:
        raise InvalidInputError(f"only 2-D matrices are committed, got shape {x.shape}")
    if x.dtype.name not in DTYPE_CODES:
        raise InvalidInputError(f"cannot commit dtype {x.dtype}")
    if x.dtype.byteorder == ">":
        x = x.astype(x.dtype.newbyteorder("<"))
    return x


def _root(header: bytes, leaves: int, top: bytes) -> bytes:
    return _hash.digest(_hash.ROOT_TAG, header, struct.pack("<Q", leaves), top)


def merkle_levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the binary Merkle tree over ``leaves``, bottom first.

    An odd node out is carried up unchanged (it contributes no sibling to paths)."""
    levels = [list(leaves)]
    level = levels[0]
    while len(level) > 1:
        if _c_hashing() and len(level) > 8:
            raw = node_digests(_hash.NODE_TAG, b"".join(level[: len(level) // 2 * 2]))
            nxt = [raw[i : i + 32] for i in range(0, len(raw), 32)]
        else:
            nxt = [_hash.node(level[t], level[t + 1]) for t in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
        level = nxt
    return levels


def merkle_path(levels: Sequence[Sequence[bytes]], index: int) -> tuple[bytes, ...]:
    """The sibling digests from leaf ``index`` up (carried levels contribute none)."""
    out = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            out.append(level[sibling])
        index //= 2
    return tuple(out)


def merkle_climb(leaf: bytes, index: int, width: int, path: Sequence[bytes]) -> bytes | None:
    """The top digest that ``leaf`` at ``index`` of ``width`` leaves reaches along ``path``.

    Returns:
        The top, or None when the path has the wrong length for the position.
    """
    digest = leaf
    rest = list(path)
    while width > 1:
        sibling = index ^ 1
        if sibling < width:
            if not rest:
                return None
            other = rest.pop(0)
            digest = _hash.node(other, digest) if index & 1 else _hash.node(digest, other)
        index //= 2
        width = (width + 1) // 2
    return None if rest else digest


class MerkleTree:
    """The digests of every level of a commitment's tree, to open tiles from."""

    def __init__(self, commitment: Commitment, leaves: list[bytes]) -> None:
        self.commitment = commitment
        self.levels: list[list[bytes]] = merkle_levels(leaves)

    @property
    def top(self) -> bytes:
        """The top digest (before the root binds the header)."""
        return self.levels[-1][0] if self.levels[0] else _hash.digest(_hash.EMPTY_TAG)

    def path(self, index: int) -> tuple[bytes, ...]:
        """The sibling digests from leaf ``index`` up (carried levels contribute none)."""
        return merkle_path(self.levels, index)


def _leaf_prefix(header: bytes) -> bytes:
    return _hash.LEAF_TAG + header


def _draft(dtype: str, shape: tuple[int, int], tile: tuple[int, int]) -> Commitment:
    if dtype not in DTYPE_CODES:
        raise InvalidInputError(f"cannot commit dtype {dtype}")
    if len(shape) != 2 or min(shape) < 0:
        raise InvalidInputError(f"a matrix shape is two sizes >= 0, got {shape}")
    if len(tile) != 2 or min(tile) < 1:
        raise InvalidInputError(f"tile dimensions must be >= 1, got {tile}")
    return Commitment(dtype, (int(shape[0]), int(shape[1])), (int(tile[0]), int(tile[1])), b"")


def leaf_prefix_for(dtype: str, shape: tuple[int, int], tile: tuple[int, int]) -> bytes:
    """The prefix every leaf of a matrix with this dtype, shape and tile starts with.

    Whoever holds only some whole tile rows of the matrix (a Spark executor) passes it to
    ``leaf_digests(strip, tile, tile_row0, prefix)`` to hash them (the strip little-endian, its
    first row a multiple of ``tile[0]``, ``tile_row0`` that multiple); ``commitment_from_leaves``
    then joins every strip's digests into the commitment.

    Args:
        dtype: The dtype name (int8, int16, int32, int64, float32 or float64).
        shape: (rows, columns) of the whole matrix.
        tile: (rows, columns) of a full tile.

    Returns:
        The leaf tag and the commitment header's bytes.

    Raises:
        InvalidInputError: An unsupported dtype, a negative size or a tile side below 1.
    """
    return _leaf_prefix(_draft(dtype, shape, tile).header())


def commitment_from_leaves(
    dtype: str, shape: tuple[int, int], tile: tuple[int, int], leaves: Sequence[bytes]
) -> Commitment:
    """The commitment ``commit_matrix`` gives a matrix whose leaf digests are ``leaves``.

    Lets a driver commit to a matrix it never holds: executors hash strips of whole tile rows
    (``leaf_digests`` with ``leaf_prefix_for``'s prefix), the driver joins their digests in
    row-major tile order and builds the tree here.

    Args:
        dtype: The dtype name.
        shape: (rows, columns) of the matrix.
        tile: (rows, columns) of a full tile.
        leaves: The 32-byte leaf digests, row-major over the tile grid.

    Returns:
        The commitment.

    Raises:
        InvalidInputError: A bad dtype, shape or tile, a digest that is not 32 bytes, or a
            count other than the tile grid's leaf count.
    """
    draft = _draft(dtype, shape, tile)
    if len(leaves) != draft.leaf_count:
        raise InvalidInputError(
            f"a {shape[0]}x{shape[1]} matrix in {tile[0]}x{tile[1]} tiles has "
            f"{draft.leaf_count} leaves, got {len(leaves)} digests"
        )
    if any(len(leaf) != _hash.DIGEST_SIZE for leaf in leaves):
        raise InvalidInputError(f"a leaf digest is {_hash.DIGEST_SIZE} bytes")
    top = MerkleTree(draft, [bytes(leaf) for leaf in leaves]).top
    return Commitment(draft.dtype, draft.shape, draft.tile, _root(draft.header(), len(leaves), top))


@functools.cache
def _c_hashing() -> bool:
    # The C leaf hasher only where it has its vector path: without it, the blake3 package's own
    # vector code (AVX2, SSE4.1, NEON) is faster than a portable C compression.
    return "avx512" in hash_paths()


def _hash_strip(args: tuple[np.ndarray, tuple[int, int], int, bytes]) -> list[bytes]:
    return leaf_digests(*args)


def leaf_digests(
    strip: np.ndarray, tile: tuple[int, int], tile_row0: int, prefix: bytes
) -> list[bytes]:
    """BLAKE3 of every leaf ``pack_tiles(strip, tile, tile_row0=..., prefix=...)`` would write,
    hashed where the values lie when their rows are contiguous (no packed copy)."""
    if _c_hashing():
        return tile_digests(strip, tile, tile_row0=tile_row0, prefix=prefix)
    rows, cols = strip.shape
    if (
        tile[1] >= cols
        and rows
        and cols
        and strip.strides[0] == cols * strip.itemsize
        and (cols == 1 or strip.strides[1] == strip.itemsize)
    ):
        # Whole-row tiles of a row-major strip: each leaf's values lie contiguous in memory,
        # so they are hashed in place; the bytes are the same as pack_tiles would produce.
        flat = memoryview(strip.reshape(-1).view(np.uint8).data)
        row_bytes = cols * strip.itemsize
        digests = []
        for t, r0 in enumerate(range(0, rows, tile[0])):
            h = min(tile[0], rows - r0)
            hasher = blake3.blake3(prefix + struct.pack("<IIII", tile_row0 + t, 0, h, row_bytes))
            hasher.update(flat[r0 * row_bytes : (r0 + h) * row_bytes])
            digests.append(bytes(hasher.digest()))
        return digests
    packed = pack_tiles(strip, tile, tile_row0=tile_row0, prefix=prefix)
    width = tile[1]
    heights = [min(tile[0], rows - r0) for r0 in range(0, rows, tile[0])]
    widths = [min(width, cols - c0) * strip.itemsize for c0 in range(0, cols, width)]
    digests = []
    offset = 0
    view = memoryview(packed.data)
    fixed = len(prefix) + 16
    for h in heights:
        for w in widths:
            size = fixed + h * w
            digests.append(bytes(blake3.blake3(view[offset : offset + size]).digest()))
            offset += size
    return digests


def _strip_rows(x: np.ndarray, tile: tuple[int, int], grid_rows: int, threads: int) -> int:
    """Tile rows per strip: a few strips per thread, each small enough to stay in cache.

    A strip is hashed (and visited, see ``commit_matrices``) by one thread while it is in the
    cache: about 1 MiB, and at least four strips per thread when the matrix is big enough, so the
    threads finish together."""
    row_bytes = max(1, tile[0] * int(x.shape[1]) * x.itemsize)
    total = grid_rows * row_bytes
    target = min(STRIP_TARGET, max(STRIP_MIN, total // (4 * threads)))
    return max(1, min(grid_rows, target // row_bytes))


@dataclass
class _Plan:
    """One matrix being committed: its canonical array, header and strips of tile rows."""

    x: np.ndarray
    tile: tuple[int, int]
    draft: Commitment
    prefix: bytes
    strips: list[tuple[int, int]]  # (first tile row, tile rows)


def _plan(x: np.ndarray, tile: tuple[int, int] | None, threads: int) -> _Plan:
    x = _canonical(x)
    tile = tile or default_tile(x.dtype)
    if min(tile) < 1:
        raise InvalidInputError(f"tile dimensions must be >= 1, got {tile}")
    draft = Commitment(x.dtype.name, (x.shape[0], x.shape[1]), tile, b"")
    grid_rows = draft.grid[0]
    per = _strip_rows(x, tile, grid_rows, threads)
    strips = [(t, min(per, grid_rows - t)) for t in range(0, grid_rows, per)]
    return _Plan(x, tile, draft, _leaf_prefix(draft.header()), strips)


StripVisitor = Callable[[int, int, np.ndarray], None]
"""``visit(index, row0, strip)``: matrix ``index`` of the call, its rows from ``row0``."""


def commit_matrices(
    items: Sequence[tuple[np.ndarray, tuple[int, int] | None]],
    *,
    threads: int | None = None,
    visit: StripVisitor | None = None,
    prelude: Callable[[], None] | None = None,
) -> list[tuple[Commitment, MerkleTree]]:
    """Commit to several matrices on one set of threads.

    The matrices are cut into strips of whole tile rows, about 1 MiB each, queued in order (all
    strips of the first matrix, then the second's, ...) and taken by the threads as they become
    free, so that no thread idles between matrices. A matrix's tree is built by the thread that
    hashes its last strip, while the others go on hashing.

    Args:
        items: (matrix, tile) pairs; a None tile means ``default_tile(matrix.dtype)``.
        threads: Hashing threads; all cores when None.
        visit: Called as ``visit(index, row0, strip)`` on the thread that hashes the strip, just
            before it is hashed: a caller's own pass over the matrix (the verifier's weighted
            sums) then reads the strip from memory once for both. ``strip`` holds rows
            ``row0 .. row0 + len(strip)`` of matrix ``index`` (little-endian, read-only use).
            Strips come in queue order, but run concurrently; an exception stops the commit
            and is raised.
        prelude: Run first, on one of the threads, while the others start hashing (the verifier
            works out its weights there); an exception stops the commit and is raised.

    Returns:
        One (commitment, tree) per item, in order.

    Raises:
        InvalidInputError: A matrix that is not 2-D, an unsupported dtype, or a bad tile shape.
    """
    workers = threads or default_threads()
    plans = [_plan(x, tile, workers) for x, tile in items]
    jobs: list[tuple[int, int, tuple[int, int]] | None] = [None] if prelude is not None else []
    first: list[int] = []  # each matrix's first strip, as a position in ``parts``
    for index, plan in enumerate(plans):
        first.append(sum(len(p.strips) for p in plans[:index]))
        jobs += [(first[index] + k, index, strip) for k, strip in enumerate(plan.strips)]
    parts: list[list[bytes]] = [[] for _ in range(sum(len(p.strips) for p in plans))]
    left = [len(plan.strips) for plan in plans]  # strips of each matrix not hashed yet
    out: list[tuple[Commitment, MerkleTree] | None] = [None] * len(plans)
    lock = threading.Lock()

    def finish(index: int) -> None:
        plan = plans[index]
        at = first[index]
        leaves = [d for part in parts[at : at + len(plan.strips)] for d in part]
        draft = plan.draft
        tree = MerkleTree(draft, leaves)
        commitment = Commitment(
            draft.dtype, draft.shape, plan.tile, _root(draft.header(), len(leaves), tree.top)
        )
        tree.commitment = commitment
        out[index] = (commitment, tree)

    def run(job: tuple[int, int, tuple[int, int]] | None) -> None:
        if job is None:
            assert prelude is not None
            prelude()
            return
        at, index, (t0, count) = job
        plan = plans[index]
        tr = plan.tile[0]
        strip = plan.x[t0 * tr : (t0 + count) * tr]
        if visit is not None:
            visit(index, t0 * tr, strip)
        parts[at] = _hash_strip((strip, plan.tile, t0, plan.prefix))
        with lock:
            left[index] -= 1
            last = left[index] == 0
        if last:
            finish(index)

    parallel_map(run, jobs, min(workers, len(jobs) or 1))
    for index, result in enumerate(out):
        if result is None:  # no strips: a matrix without tiles
            finish(index)
    return [result for result in out if result is not None]


def commit_matrix(
    x: np.ndarray, *, tile: tuple[int, int] | None = None, threads: int | None = None
) -> tuple[Commitment, MerkleTree]:
    """Commit to a matrix.

    Args:
        x: 2-D array of int8, int16, int32, int64, float32 or float64.
        tile: Tile shape; ``default_tile(x.dtype)`` when None.
        threads: Hashing threads; all cores when None.

    Returns:
        (commitment, tree): the tree opens tiles later.

    Raises:
        InvalidInputError: Not 2-D, an unsupported dtype, or a bad tile shape.
    """
    return commit_matrices([(x, tile)], threads=threads)[0]


@dataclass(frozen=True)
class TileOpening:
    """One tile of a committed matrix with its Merkle path.

    Attributes:
        ti, tj: The tile's position in the tile grid.
        data: The tile's values (a 2-D array of the commitment's dtype).
        path: Sibling digests from the leaf up.
    """

    ti: int
    tj: int
    data: np.ndarray
    path: tuple[bytes, ...]


def open_tile(x: np.ndarray, tree: MerkleTree, ti: int, tj: int) -> TileOpening:
    """Open tile (ti, tj) of the matrix ``x`` committed by ``tree``.

    Raises:
        InvalidInputError: The tile lies outside the grid.
    """
    c = tree.commitment
    gr, gc = c.grid
    if not (0 <= ti < gr and 0 <= tj < gc):
        raise InvalidInputError(f"tile ({ti}, {tj}) lies outside the {gr}x{gc} tile grid")
    tr, tc = c.tile
    data = np.ascontiguousarray(_canonical(x)[ti * tr : (ti + 1) * tr, tj * tc : (tj + 1) * tc])
    return TileOpening(ti, tj, data, tree.path(ti * gc + tj))


def verify_tile(commitment: Commitment, opening: TileOpening) -> bool:
    """Return whether ``opening`` is tile (ti, tj) of the matrix ``commitment`` commits to."""
    gr, gc = commitment.grid
    ti, tj = opening.ti, opening.tj
    if not (0 <= ti < gr and 0 <= tj < gc):
        return False
    rows, cols = commitment.shape
    tr, tc = commitment.tile
    expect = (min(tr, rows - ti * tr), min(tc, cols - tj * tc))
    data = opening.data
    if data.shape != expect or data.dtype.name != commitment.dtype:
        return False
    leaf = pack_tiles(
        _canonical(data), expect, tile_row0=ti, prefix=_leaf_prefix(commitment.header())
    )
    # pack_tiles numbers the column from 0: patch in this tile's column.
    col_at = len(_hash.LEAF_TAG) + _HEADER.size + 4
    leaf[col_at : col_at + 4] = np.frombuffer(struct.pack("<I", tj), np.uint8)
    top = merkle_climb(
        bytes(blake3.blake3(leaf.data).digest()),
        ti * gc + tj,
        commitment.leaf_count,
        opening.path,
    )
    if top is None:
        return False
    return _root(commitment.header(), commitment.leaf_count, top) == commitment.root


def open_row_segment(
    x: np.ndarray, tree: MerkleTree, row: int, start: int, stop: int
) -> list[TileOpening]:
    """Open the tiles that hold ``x[row, start:stop]``."""
    tr, tc = tree.commitment.tile
    return [open_tile(x, tree, row // tr, tj) for tj in range(start // tc, -(-stop // tc))]


def open_col_segment(
    x: np.ndarray, tree: MerkleTree, col: int, start: int, stop: int
) -> list[TileOpening]:
    """Open the tiles that hold ``x[start:stop, col]``."""
    tr, tc = tree.commitment.tile
    return [open_tile(x, tree, ti, col // tc) for ti in range(start // tr, -(-stop // tr))]


def segment_values(
    commitment: Commitment,
    openings: Sequence[TileOpening],
    *,
    row: int | None = None,
    col: int | None = None,
) -> np.ndarray:
    """Assemble a full row (``row=``) or column (``col=``) from verified tile openings.

    Raises:
        TraceFormatError: The openings do not cover the row or column exactly once, in order.
    """
    tr, tc = commitment.tile
    rows, cols = commitment.shape
    if row is not None:
        want = [(row // tr, tj) for tj in range(-(-cols // tc))]
        got = [(o.ti, o.tj) for o in openings]
        if got != want:
            raise TraceFormatError("the openings do not cover the row")
        return (
            np.concatenate([o.data[row - o.ti * tr] for o in openings])
            if openings
            else np.zeros(0, commitment.dtype)
        )
    assert col is not None
    want = [(ti, col // tc) for ti in range(-(-rows // tr))]
    if [(o.ti, o.tj) for o in openings] != want:
        raise TraceFormatError("the openings do not cover the column")
    return (
        np.concatenate([o.data[:, col - o.tj * tc] for o in openings])
        if openings
        else np.zeros(0, commitment.dtype)
    )
