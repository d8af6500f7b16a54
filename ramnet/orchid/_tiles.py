"""Packing a matrix into per-tile byte strings (the leaves VALKYRIE hashes)."""

from __future__ import annotations

import numpy as np

from ramnet._errors import InvalidInputError
from ramnet.orchid import _bindings

LEAF_HEADER = 16  # u32 tile row, u32 tile column, u32 rows, u32 bytes per row


def tile_leaf_sizes(
    shape: tuple[int, int], itemsize: int, tile: tuple[int, int], prefix_len: int
) -> list[int]:
    """Return the byte length of each packed leaf of a matrix, in row-major tile order."""
    rows, cols = shape
    tr, tc = tile
    heights = [min(tr, rows - r0) for r0 in range(0, rows, tr)]
    widths = [min(tc, cols - c0) * itemsize for c0 in range(0, cols, tc)]
    return [prefix_len + LEAF_HEADER + h * w for h in heights for w in widths]


def pack_tiles(
    x: np.ndarray, tile: tuple[int, int], *, tile_row0: int = 0, prefix: bytes = b""
) -> np.ndarray:
    """Pack a 2-D array into leaves: for each tile, ``prefix``, a 16-byte tile header, the bytes.

    The header holds the tile row (counted from ``tile_row0``), tile column, row count and bytes per
    row as little-endian u32; the tile's rows follow in C order, in ``x``'s own byte order.

    Args:
        x: 2-D array whose rows are contiguous.
        tile: (rows, columns) of a full tile; edge tiles are smaller.
        tile_row0: Number of the first tile row (to pack a strip of a bigger matrix).
        prefix: Bytes written before every leaf.

    Returns:
        A uint8 array, the leaves back to back (see ``tile_leaf_sizes``).

    Raises:
        InvalidInputError: Not 2-D, rows not contiguous, or a tile dimension below 1.
    """
    if x.ndim != 2 or min(tile) < 1:
        raise InvalidInputError("pack_tiles needs a 2-D array and a positive tile shape")
    if x.shape[1] > 1 and x.strides[1] != x.itemsize:
        x = np.ascontiguousarray(x)
    sizes = tile_leaf_sizes(x.shape, x.itemsize, tile, len(prefix))
    out = np.empty(sum(sizes), np.uint8)
    rows, cols = x.shape
    if _bindings.AVAILABLE:
        _bindings.pack_tiles(x, tile, tile_row0, prefix, out)
        return out
    offset = 0
    tr, tc = tile
    for ti, r0 in enumerate(range(0, rows, tr)):
        for tj, c0 in enumerate(range(0, cols, tc)):
            block = np.ascontiguousarray(x[r0 : r0 + tr, c0 : c0 + tc])
            header = np.array(
                [tile_row0 + ti, tj, block.shape[0], block.shape[1] * x.itemsize], "<u4"
            )
            for part in (
                np.frombuffer(prefix, np.uint8),
                header.view(np.uint8),
                block.view(np.uint8).ravel(),
            ):
                out[offset : offset + part.size] = part
                offset += part.size
    return out
