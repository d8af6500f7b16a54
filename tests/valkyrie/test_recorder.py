"""TraceRecorder: which block digests a trace carries, and that they match the partial tiles."""

from __future__ import annotations

import struct

import blake3
import numpy as np
import pytest

import ramnet
from ramnet import orchid
from ramnet.orchid._hooks import BlockProduct
from ramnet.orchid._tiles import pack_tiles
from ramnet.valkyrie import NodeKey, TraceRecorder, _hash, block_digest, commit_matrix
from ramnet.valkyrie._merkle import DTYPE_CODES, row_strip_tile


def _run(grid: tuple[int, int, int]) -> tuple[TraceRecorder, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (37, 29), dtype=np.int8)
    b = rng.integers(-128, 128, (29, 23), dtype=np.int8)
    recorder = TraceRecorder()
    c = ramnet.matmul(a, b, grid=grid, hooks=[recorder])
    return recorder, a, b, c


def test_unsplit_k_records_no_block_digests() -> None:
    recorder, a, b, c = _run((2, 3, 1))
    trace = recorder.build(NodeKey.generate())
    assert trace.blocks == ()
    assert trace.c == commit_matrix(c, tile=row_strip_tile(c.dtype, c.shape))[0]
    assert trace.a == commit_matrix(a, tile=row_strip_tile(a.dtype, a.shape))[0]
    assert trace.b == commit_matrix(b)[0]
    # Rows of A and C are single leaves; B keeps square tiles for its columns.
    assert trace.a.tile == (trace.a.tile[0], 29) and trace.c.tile[1] == 23


def test_split_k_records_every_partial_in_order() -> None:
    recorder, a, b, _c = _run((2, 2, 3))
    trace = recorder.build(NodeKey.generate())
    grid = orchid.make_grid(37, 29, 23, (2, 2, 3))
    assert [(x.i, x.j, x.k) for x in trace.blocks] == [(x.i, x.j, x.k) for x in grid.blocks()]
    for record in trace.blocks:
        rows, cols, inner = grid.rows(record.i), grid.cols(record.j), grid.inner(record.k)
        partial = a[rows, inner].astype(np.int32) @ b[inner, cols].astype(np.int32)
        block = orchid.BlockProduct(record.i, record.j, record.k)
        assert record.digest == block_digest(block, partial)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (33, 257), (300, 7), (0, 4), (1024, 9)])
@pytest.mark.parametrize("dtype", ["int32", "int64", "float32", ">i4"])
@pytest.mark.parametrize("layout", ["c", "fortran", "strided"])
def test_block_digest_is_blake3_of_the_packed_leaf(
    shape: tuple[int, int], dtype: str, layout: str
) -> None:
    # The definition (docs/trace-format.md): BLAKE3 of tag, (i, j, k), dtype, shape, then the
    # one-tile leaf pack_tiles writes. It is computed in place; this spells it out the slow way.
    rng = np.random.default_rng(sum(shape))
    base = rng.integers(-(2**20), 2**20, (shape[0], 2 * shape[1])).astype(dtype)
    x = {
        "c": np.ascontiguousarray(base[:, : shape[1]]),
        "fortran": np.asfortranarray(base[:, : shape[1]]),
        "strided": base[:, ::2],
    }[layout]
    block = BlockProduct(2, 7, 1)
    little = x.astype(x.dtype.newbyteorder("<"))
    prefix = _hash.BLOCK_TAG + struct.pack(
        "<IIIBQQ", 2, 7, 1, DTYPE_CODES[little.dtype.name], *shape
    )
    if x.size == 0:
        expected = _hash.digest(prefix)
    else:
        packed = pack_tiles(little, shape, prefix=prefix)
        expected = bytes(blake3.blake3(packed.data).digest())
    assert block_digest(block, x) == expected
