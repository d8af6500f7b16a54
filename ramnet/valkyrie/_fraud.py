"""Fraud proofs: one wrong output entry, shown wrong by anyone in O(K).

A fraud proof for C[i, j] carries the tile of C holding it and the tiles of A holding row i and of
B holding column j, each with its Merkle path against the committed roots. The checker verifies the
openings, recomputes sum_k A[i, k]·B[k, j] exactly, and compares it with the committed C[i, j]:
O(K) arithmetic, plus hashing the O(K) tiles (a constant factor, the tile size, more bytes).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ramnet._errors import InvalidInputError, TraceFormatError
from ramnet.valkyrie._merkle import (
    Commitment,
    MerkleTree,
    TileOpening,
    open_col_segment,
    open_row_segment,
    open_tile,
    segment_values,
    verify_tile,
)

_MAGIC = b"RNFRAUD1"
_MAX_TILES = 1 << 20


@dataclass(frozen=True)
class FraudProof:
    """Evidence that the committed C[row, col] is not (A·B)[row, col].

    Attributes:
        row, col: The entry.
        c_tile: The opened tile of C that holds the entry.
        a_tiles: The opened tiles of A that hold row ``row``, left to right.
        b_tiles: The opened tiles of B that hold column ``col``, top to bottom.
    """

    row: int
    col: int
    c_tile: TileOpening
    a_tiles: tuple[TileOpening, ...]
    b_tiles: tuple[TileOpening, ...]

    def to_bytes(self) -> bytes:
        """Serialise: magic, u64 row, u64 col, u32 tile counts, then each opening."""
        parts = [
            _MAGIC,
            struct.pack("<QQII", self.row, self.col, len(self.a_tiles), len(self.b_tiles)),
        ]
        for opening in (self.c_tile, *self.a_tiles, *self.b_tiles):
            data = np.ascontiguousarray(opening.data)
            if data.dtype.byteorder == ">":
                data = data.astype(data.dtype.newbyteorder("<"))
            parts.append(
                struct.pack(
                    "<IIIIBI", opening.ti, opening.tj, *data.shape, data.itemsize, len(opening.path)
                )
            )
            parts.append(b"".join(opening.path))
            parts.append(data.tobytes())
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes, a: Commitment, b: Commitment, c: Commitment) -> FraudProof:
        """Parse ``to_bytes`` output; dtypes come from the commitments.

        Raises:
            TraceFormatError: Malformed or truncated bytes.
        """
        view = memoryview(data)
        if bytes(view[:8]) != _MAGIC or len(view) < 32:
            raise TraceFormatError("not a RAMNET fraud proof")
        row, col, na, nb = struct.unpack_from("<QQII", view, 8)
        if na + nb > _MAX_TILES:
            raise TraceFormatError("fraud proof: too many tiles")
        offset = 32
        openings = []
        for commitment in [c] + [a] * na + [b] * nb:
            if offset + 21 > len(view):
                raise TraceFormatError("fraud proof: truncated")
            ti, tj, rows, cols, itemsize, npath = struct.unpack_from("<IIIIBI", view, offset)
            offset += 21
            dtype = np.dtype(commitment.dtype).newbyteorder("<")
            size = rows * cols * dtype.itemsize
            if (
                itemsize != dtype.itemsize
                or npath > 64
                or rows > commitment.tile[0]
                or cols > commitment.tile[1]
            ):
                raise TraceFormatError("fraud proof: opening does not fit its commitment")
            if offset + 32 * npath + size > len(view):
                raise TraceFormatError("fraud proof: truncated")
            path = tuple(bytes(view[offset + 32 * t : offset + 32 * (t + 1)]) for t in range(npath))
            offset += 32 * npath
            values = np.frombuffer(view[offset : offset + size], dtype=dtype).reshape(rows, cols)
            offset += size
            openings.append(TileOpening(ti, tj, values, path))
        if offset != len(view):
            raise TraceFormatError("fraud proof: trailing bytes")
        return cls(row, col, openings[0], tuple(openings[1 : 1 + na]), tuple(openings[1 + na :]))


def make_fraud_proof(
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    trees: tuple[MerkleTree, MerkleTree, MerkleTree],
    row: int,
    col: int,
) -> FraudProof:
    """Build the fraud proof for entry (row, col) of the committed C.

    Args:
        a, b, c: The committed matrices.
        trees: Their Merkle trees (from ``commit_matrix``).
        row, col: The entry claimed wrong.

    Raises:
        InvalidInputError: The entry lies outside C.
    """
    ta, tb, tc = trees
    m, n = c.shape
    if not (0 <= row < m and 0 <= col < n):
        raise InvalidInputError(f"entry ({row}, {col}) lies outside C ({m}x{n})")
    k = a.shape[1]
    tr, tcol = tc.commitment.tile
    return FraudProof(
        row,
        col,
        open_tile(c, tc, row // tr, col // tcol),
        tuple(open_row_segment(a, ta, row, 0, k)),
        tuple(open_col_segment(b, tb, col, 0, k)),
    )


def check_fraud_proof(
    proof: FraudProof, a: Commitment, b: Commitment, c: Commitment
) -> tuple[bool, str]:
    """Check a fraud proof against the three commitments.

    Returns:
        (proven, reason): proven is True only when every opening verifies and the committed entry
        differs from the exact product; reason says why not otherwise.
    """
    m, n = c.shape
    if a.shape[0] != m or b.shape[1] != n or a.shape[1] != b.shape[0]:
        return False, "commitments of incompatible shapes"
    if not (0 <= proof.row < m and 0 <= proof.col < n):
        return False, "entry outside C"
    tr, tcol = c.tile
    if (proof.c_tile.ti, proof.c_tile.tj) != (proof.row // tr, proof.col // tcol):
        return False, "the C tile does not hold the entry"
    if not verify_tile(c, proof.c_tile):
        return False, "C opening does not match the commitment"
    for name, commitment, tiles in (("A", a, proof.a_tiles), ("B", b, proof.b_tiles)):
        for opening in tiles:
            if not verify_tile(commitment, opening):
                return False, f"{name} opening does not match the commitment"
    try:
        a_row = segment_values(a, proof.a_tiles, row=proof.row)
        b_col = segment_values(b, proof.b_tiles, col=proof.col)
    except TraceFormatError as exc:
        return False, str(exc)
    claimed = proof.c_tile.data[
        proof.row - proof.c_tile.ti * tr, proof.col - proof.c_tile.tj * tcol
    ]
    if a_row.dtype.kind == "f":
        return False, "fraud proofs cover exact dtypes only"
    if a_row.dtype.itemsize <= 2:
        exact = int(np.dot(a_row.astype(np.int64), b_col.astype(np.int64)))
    else:
        exact = sum(int(x) * int(y) for x, y in zip(a_row.tolist(), b_col.tolist(), strict=True))
    if int(claimed) == exact:
        return False, "the committed entry is correct"
    return True, f"C[{proof.row}, {proof.col}] is {int(claimed)}, A·B gives {exact}"
