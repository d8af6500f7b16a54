"""The job's commitments to its input tiles, and openings for validators.

At submission the coordinator commits to A's tiles A[I_i, K_k] and B's tiles B[K_k, J_j] on the
job's grid: one Merkle tree per operand over the tiles' canonical digests (dtype, shape and
position bound in, bytes little-endian in C order), row by row of the tile grid. The roots are
part of the job's spec and of its status, so a consumer can recompute them from its own A and B.
A validator drawn for a dispute receives only the contested tiles, each with its Merkle path,
and checks every one against the roots before it recomputes anything: it judges the tiles the
job was committed to, not whatever it was sent.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

import numpy as np

from ramnet.valkyrie._hash import digest
from ramnet.valkyrie._merkle import (
    DTYPE_CODES,
    DTYPE_NAMES,
    merkle_climb,
    merkle_levels,
    merkle_path,
)

_LEAF = b"RNMTILE1"
_ROOT = b"RNMROOT1"

TileMap = Mapping[tuple[int, int], np.ndarray]


_HEAD = struct.Struct("<cIIBQQ")


def tile_leaf_parts(kind: str, x: int, y: int, tile: np.ndarray) -> tuple[bytes, memoryview]:
    """The bytes the leaf of tile (x, y) of operand ``kind`` ("a" or "b") hashes: a prefix (tag,
    kind, position, dtype, shape) and the tile's values, little-endian in C order.

    Their concatenation is also how the coordinator stores a tile (``parse_tile_leaf``): as a blob
    it is named by the same BLAKE3 digest, so one hash both names the blob and makes the leaf.
    """
    t = np.ascontiguousarray(tile)
    if t.dtype.byteorder == ">":
        t = t.astype(t.dtype.newbyteorder("<"))
    rows, cols = t.shape
    head = _HEAD.pack(kind.encode(), x, y, DTYPE_CODES[t.dtype.name], rows, cols)
    return _LEAF + head, memoryview(t.reshape(-1).view(np.uint8).data if t.size else b"")


def tile_leaf(kind: str, x: int, y: int, tile: np.ndarray) -> bytes:
    """The leaf digest of tile (x, y) of operand ``kind`` ("a" or "b")."""
    return digest(*tile_leaf_parts(kind, x, y, tile))


def is_tile_leaf(data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` starts as a stored tile (``tile_leaf_parts``) does."""
    return bytes(memoryview(data)[: len(_LEAF)]) == _LEAF


def parse_tile_leaf(data: bytes | bytearray | memoryview) -> tuple[str, int, int, np.ndarray]:
    """A stored tile's kind, position and values, from the bytes of ``tile_leaf_parts``.

    Raises:
        ValueError: Not a tile's bytes, or a length that does not match its header.
    """
    view = memoryview(data).cast("B")
    start = len(_LEAF) + _HEAD.size
    if view.nbytes < start or not is_tile_leaf(view):
        raise ValueError("not a stored tile")
    kind, x, y, code, rows, cols = _HEAD.unpack(view[len(_LEAF) : start])
    if code not in DTYPE_NAMES:
        raise ValueError(f"a stored tile's dtype code {code} is unknown")
    dtype = np.dtype(DTYPE_NAMES[code]).newbyteorder("<")
    if view.nbytes != start + rows * cols * dtype.itemsize:
        raise ValueError("a stored tile's length does not match its header")
    # A copy: the values start at an odd offset, and a kernel wants them aligned.
    values = np.frombuffer(view, dtype, count=rows * cols, offset=start).reshape(rows, cols)
    return kind.decode("ascii"), x, y, values.astype(dtype.newbyteorder("="))


def _order(grid: tuple[int, int]) -> list[tuple[int, int]]:
    return [(x, y) for x in range(grid[0]) for y in range(grid[1])]


def _root(kind: str, grid: tuple[int, int], top: bytes) -> bytes:
    return digest(_ROOT, kind.encode(), struct.pack("<II", *grid), top)


def commit_tiles(kind: str, tiles: TileMap, grid: tuple[int, int]) -> tuple[str, list[list[bytes]]]:
    """Commit to every tile of one operand.

    Args:
        kind: "a" or "b".
        tiles: The tiles by (x, y): (i, k) for A, (k, j) for B.
        grid: The tile grid's shape: (p, r) for A, (r, q) for B.

    Returns:
        (root as hex, the tree's levels to open tiles from).
    """
    return commit_leaves(kind, {xy: tile_leaf(kind, *xy, tiles[xy]) for xy in _order(grid)}, grid)


def commit_leaves(
    kind: str, leaves: Mapping[tuple[int, int], bytes], grid: tuple[int, int]
) -> tuple[str, list[list[bytes]]]:
    """``commit_tiles`` from the tiles' leaf digests (``tile_leaf``), by (x, y)."""
    levels = merkle_levels([leaves[xy] for xy in _order(grid)])
    return _root(kind, grid, levels[-1][0]).hex(), levels


def open_tile_path(
    levels: Sequence[Sequence[bytes]], grid: tuple[int, int], x: int, y: int
) -> list[str]:
    """The Merkle path of tile (x, y), as hex digests."""
    return [p.hex() for p in merkle_path(levels, x * grid[1] + y)]


def verify_tile_path(
    kind: str,
    root: str,
    grid: tuple[int, int],
    x: int,
    y: int,
    tile: np.ndarray,
    path: Sequence[str],
) -> bool:
    """Whether ``tile`` is tile (x, y) of the operand committed to by ``root``."""
    if not (0 <= x < grid[0] and 0 <= y < grid[1]) or tile.ndim != 2:
        return False
    if tile.dtype.name not in DTYPE_CODES:
        return False
    try:
        siblings = [bytes.fromhex(p) for p in path]
    except (TypeError, ValueError):
        return False
    if any(len(s) != 32 for s in siblings):
        return False
    top = merkle_climb(tile_leaf(kind, x, y, tile), x * grid[1] + y, grid[0] * grid[1], siblings)
    return top is not None and _root(kind, grid, top).hex() == root
