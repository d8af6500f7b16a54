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


HASH_PATHS = ("portable", "avx512")
_HASH_PATH_NUMBERS = {"portable": 0, "avx512": 3}  # RAMNET_PATH_* (csrc/ramnet.h)


def hash_paths() -> list[str]:
    """Return the C code paths of ``tile_digests`` this CPU and build can run, best first.

    Returns:
        ``avx512`` (16 BLAKE3 chunks at a time) and ``portable``, where supported; empty without
        the C extension.
    """
    if not _bindings.AVAILABLE:
        return []
    lib = _bindings.native.lib
    return [
        name
        for name in reversed(HASH_PATHS)
        if lib.ramnet_hash_path_supported(_HASH_PATH_NUMBERS[name])
    ]


def tile_digests(
    x: np.ndarray,
    tile: tuple[int, int],
    *,
    tile_row0: int = 0,
    prefix: bytes = b"",
    path: str = "auto",
) -> list[bytes]:
    """The BLAKE3 digest of every leaf ``pack_tiles`` would pack, without packing (C only).

    Whole-row tiles of a row-major array are hashed where they lie; other tiles are gathered one
    at a time into a scratch leaf. Every full 1 KiB chunk of a leaf is hashed 16 at a time on the
    ``avx512`` path, which is why this beats feeding the leaf to an incremental BLAKE3 API (see
    csrc/hash.h). The digests are BLAKE3's, bit for bit.

    Args:
        x: 2-D array whose rows are contiguous (other layouts are copied).
        tile: (rows, columns) of a full tile; edge tiles are smaller.
        tile_row0: Number of the first tile row (to hash a strip of a bigger matrix).
        prefix: Bytes before every leaf's tile header (fewer than 1008).
        path: ``auto`` or one of :func:`hash_paths`.

    Returns:
        One 32-byte digest per tile, in row-major tile order.

    Raises:
        InvalidInputError: Not 2-D, a tile dimension below 1, a prefix of 1008 bytes or more, or
            an unknown path.
        BackendUnavailableError: The C extension is missing or the path is not supported here.
        KernelError: Scratch memory could not be allocated.
    """
    if x.ndim != 2 or min(tile) < 1:
        raise InvalidInputError("tile_digests needs a 2-D array and a positive tile shape")
    if path != "auto" and path not in _HASH_PATH_NUMBERS:
        raise InvalidInputError(f"unknown hash code path {path!r}; choose auto or {HASH_PATHS}")
    if (x.shape[1] > 1 and x.strides[1] != x.itemsize) or (
        x.shape[0] > 1 and x.strides[0] < x.shape[1] * x.itemsize
    ):
        x = np.ascontiguousarray(x)
    count = len(tile_leaf_sizes(x.shape, x.itemsize, tile, 0))
    out = np.empty(32 * count, np.uint8)
    number = _bindings.PATH_AUTO if path == "auto" else _HASH_PATH_NUMBERS[path]
    _bindings.hash_tiles(x, tile, tile_row0, prefix, number, out)
    raw = out.tobytes()
    return [raw[i : i + 32] for i in range(0, len(raw), 32)]


def node_digests(tag: bytes, children: bytes, *, path: str = "auto") -> bytes:
    """BLAKE3 of ``tag`` followed by each 64-byte pair of ``children`` (a level of a Merkle tree
    of 32-byte digests), computed 16 at a time on the ``avx512`` path (C only).

    Args:
        tag: Domain separation bytes before each pair (at most 64).
        children: The pairs, back to back (a multiple of 64 bytes).
        path: ``auto`` or one of :func:`hash_paths`.

    Returns:
        The parents' 32-byte digests, back to back.

    Raises:
        InvalidInputError: A tag over 64 bytes, children not in 64-byte pairs, or an unknown path.
        BackendUnavailableError: The C extension is missing or the path is not supported here.
    """
    if path != "auto" and path not in _HASH_PATH_NUMBERS:
        raise InvalidInputError(f"unknown hash code path {path!r}; choose auto or {HASH_PATHS}")
    out = np.empty(32 * (len(children) // 64), np.uint8)
    number = _bindings.PATH_AUTO if path == "auto" else _HASH_PATH_NUMBERS[path]
    _bindings.hash_nodes(tag, children, number, out)
    return out.tobytes()
