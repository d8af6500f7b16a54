"""Merkle commitments: tile and segment openings, and what they bind (dtype, shape, values)."""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramnet._errors import InvalidInputError, TraceFormatError
from ramnet.valkyrie import (
    Commitment,
    TileOpening,
    commit_matrix,
    default_tile,
    open_col_segment,
    open_row_segment,
    open_tile,
    verify_tile,
)
from ramnet.valkyrie._merkle import COMMITMENT_SIZE, DTYPE_CODES, segment_values

DTYPES = ("int8", "int16", "int32", "int64", "float32", "float64")


def make_matrix(seed: int, shape: tuple[int, int], dtype: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return (rng.standard_normal(shape) * 100).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)


@st.composite
def matrices(draw, min_side: int = 0):  # type: ignore[no-untyped-def]
    rows = draw(st.integers(min_side, 9))
    cols = draw(st.integers(min_side, 9))
    dtype = draw(st.sampled_from(DTYPES))
    tile = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    seed = draw(st.integers(0, 2**32 - 1))
    return make_matrix(seed, (rows, cols), dtype), tile


def tiles_of(commitment: Commitment) -> list[tuple[int, int]]:
    gr, gc = commitment.grid
    return [(ti, tj) for ti in range(gr) for tj in range(gc)]


def flip_bit(opening: TileOpening, flat: int, bit: int) -> TileOpening:
    data = opening.data.copy()
    raw = data.view(np.uint8).reshape(-1)
    raw[flat % raw.size] ^= np.uint8(1 << bit)
    return dataclasses.replace(opening, data=data)


@settings(max_examples=100, deadline=None)
@given(matrices(), st.data())
def test_every_opening_verifies_and_tampering_fails(case, data) -> None:  # type: ignore[no-untyped-def]
    x, tile = case
    commitment, tree = commit_matrix(x, tile=tile, threads=1)
    assert commitment.shape == x.shape and commitment.dtype == x.dtype.name
    assert commitment.tile == tile and len(commitment.root) == 32
    positions = tiles_of(commitment)
    assert len(positions) == commitment.leaf_count
    openings = {p: open_tile(x, tree, *p) for p in positions}
    for (ti, tj), opening in openings.items():
        assert verify_tile(commitment, opening)
        tr, tc = tile
        np.testing.assert_array_equal(
            opening.data, x[ti * tr : (ti + 1) * tr, tj * tc : (tj + 1) * tc]
        )
    if not positions:
        with pytest.raises(InvalidInputError):
            open_tile(x, tree, 0, 0)
        return
    pos = data.draw(st.sampled_from(positions))
    opening = openings[pos]
    # Any bit of the tile's data.
    if opening.data.size:
        flat = data.draw(st.integers(0, opening.data.nbytes - 1))
        bit = data.draw(st.integers(0, 7))
        assert not verify_tile(commitment, flip_bit(opening, flat, bit))
    # Another position for the same data and path, and the data of another tile on this path.
    for other in positions:
        if other == pos:
            continue
        moved = dataclasses.replace(opening, ti=other[0], tj=other[1])
        assert not verify_tile(commitment, moved)
        swapped_path = dataclasses.replace(opening, path=openings[other].path)
        if swapped_path.path != opening.path:
            assert not verify_tile(commitment, swapped_path)
        if openings[other].data.shape == opening.data.shape and not np.array_equal(
            openings[other].data, opening.data
        ):
            assert not verify_tile(
                commitment, dataclasses.replace(opening, data=openings[other].data)
            )
    # Positions outside the grid.
    gr, gc = commitment.grid
    for ti, tj in ((gr, 0), (0, gc), (-1, 0), (0, -1)):
        assert not verify_tile(commitment, dataclasses.replace(opening, ti=ti, tj=tj))
    # Truncated and extended paths.
    if opening.path:
        assert not verify_tile(commitment, dataclasses.replace(opening, path=opening.path[:-1]))
        assert not verify_tile(commitment, dataclasses.replace(opening, path=opening.path[1:]))
        flipped = bytes([opening.path[0][0] ^ 1]) + opening.path[0][1:]
        assert not verify_tile(
            commitment, dataclasses.replace(opening, path=(flipped, *opening.path[1:]))
        )
    assert not verify_tile(
        commitment, dataclasses.replace(opening, path=(*opening.path, b"\0" * 32))
    )
    assert not verify_tile(
        commitment, dataclasses.replace(opening, path=(b"\0" * 32, *opening.path))
    )
    # Wrong dtype or shape of the opened data.
    other_dtype = "int16" if x.dtype.name != "int16" else "int32"
    assert not verify_tile(
        commitment, dataclasses.replace(opening, data=opening.data.astype(other_dtype))
    )
    assert not verify_tile(commitment, dataclasses.replace(opening, data=opening.data[:, :0]))
    # Another commitment's root (a different value, same shape).
    y = x.copy()
    y.reshape(-1)[0] = y.reshape(-1)[0] + 1 if x.dtype.kind == "f" else ~y.reshape(-1)[0]
    other_commitment, _ = commit_matrix(y, tile=tile, threads=1)
    assert other_commitment.root != commitment.root
    assert not verify_tile(other_commitment, opening)


@settings(max_examples=40, deadline=None)
@given(matrices(min_side=1), st.data())
def test_row_and_column_segments_reproduce(case, data) -> None:  # type: ignore[no-untyped-def]
    x, tile = case
    commitment, tree = commit_matrix(x, tile=tile, threads=1)
    rows, cols = x.shape
    row = data.draw(st.integers(0, rows - 1))
    col = data.draw(st.integers(0, cols - 1))
    row_open = open_row_segment(x, tree, row, 0, cols)
    col_open = open_col_segment(x, tree, col, 0, rows)
    assert all(verify_tile(commitment, o) for o in row_open + col_open)
    np.testing.assert_array_equal(segment_values(commitment, row_open, row=row), x[row])
    np.testing.assert_array_equal(segment_values(commitment, col_open, col=col), x[:, col])
    # A partial segment opens exactly the tiles it touches.
    start = data.draw(st.integers(0, cols - 1))
    stop = data.draw(st.integers(start + 1, cols))
    part = open_row_segment(x, tree, row, start, stop)
    assert [o.tj for o in part] == list(range(start // tile[1], -(-stop // tile[1])))
    values = np.concatenate([o.data[row % tile[0]] for o in part])
    offset = (start // tile[1]) * tile[1]
    np.testing.assert_array_equal(values[start - offset : stop - offset], x[row, start:stop])
    # Openings that do not cover the row, or not in order, are refused.
    if len(row_open) > 1:
        with pytest.raises(TraceFormatError):
            segment_values(commitment, row_open[::-1], row=row)
        with pytest.raises(TraceFormatError):
            segment_values(commitment, row_open[:-1], row=row)
    if len(col_open) > 1:
        with pytest.raises(TraceFormatError):
            segment_values(commitment, col_open[1:], col=col)
    if [(o.ti, o.tj) for o in col_open] != [(o.ti, o.tj) for o in row_open]:
        with pytest.raises(TraceFormatError):
            segment_values(commitment, col_open, row=row)


@settings(max_examples=40, deadline=None)
@given(matrices(), st.data())
def test_big_endian_and_strided_commit_equal(case, data) -> None:  # type: ignore[no-untyped-def]
    x, tile = case
    base, _ = commit_matrix(x, tile=tile, threads=1)
    big = x.astype(x.dtype.newbyteorder(">"))
    assert big.dtype.byteorder in (">", "|")
    big_c, big_tree = commit_matrix(big, tile=tile, threads=1)
    assert big_c == base
    for ti, tj in tiles_of(base):
        opening = open_tile(big, big_tree, ti, tj)
        assert verify_tile(base, opening)
        assert verify_tile(
            base,
            dataclasses.replace(
                opening, data=opening.data.astype(opening.data.dtype.newbyteorder(">"))
            ),
        )
    assert commit_matrix(np.asfortranarray(x), tile=tile, threads=1)[0] == base
    if x.size:
        padded = np.zeros((x.shape[0], 2 * x.shape[1]), x.dtype)
        padded[:, ::2] = x
        assert commit_matrix(padded[:, ::2], tile=tile, threads=1)[0] == base
        assert commit_matrix(x[::-1][::-1], tile=tile, threads=3)[0] == base


@settings(max_examples=40, deadline=None)
@given(matrices(min_side=1), st.data())
def test_commitments_bind_dtype_shape_values_and_tile(case, data) -> None:  # type: ignore[no-untyped-def]
    x, tile = case
    base, _ = commit_matrix(x, tile=tile, threads=1)
    roots = {base.root}

    def add(y: np.ndarray, t: tuple[int, int] = tile) -> None:
        c, _ = commit_matrix(y, tile=t, threads=1)
        assert c.root not in roots, (y.dtype, y.shape, t)
        roots.add(c.root)

    # Same values in another dtype (and same bytes reinterpreted as another dtype).
    for dtype in DTYPES:
        if dtype != x.dtype.name:
            add(x.astype(dtype))
    # Another shape with the same values in C order.
    rows, cols = x.shape
    for shape in {(cols, rows), (1, x.size), (x.size, 1)} - {x.shape}:
        add(x.reshape(shape))
    # One value changed.
    i = data.draw(st.integers(0, x.shape[0] - 1))
    j = data.draw(st.integers(0, x.shape[1] - 1))
    y = x.copy()
    y[i, j] = y[i, j] + 1 if x.dtype.kind == "f" else ~y[i, j]
    add(y)
    # Another tile shape.
    add(x, (tile[0] + 1, tile[1]))


def test_commit_known_edge_shapes() -> None:
    for shape in ((0, 0), (0, 5), (5, 0), (1, 1)):
        for dtype in DTYPES:
            x = np.ones(shape, dtype)
            c, _ = commit_matrix(x)
            assert c.tile == default_tile(np.dtype(dtype))
            assert c.leaf_count == (0 if 0 in shape else 1)
            assert Commitment.from_bytes(c.to_bytes()) == c
    roots = {commit_matrix(np.zeros(s, np.int8))[0].root for s in ((0, 0), (0, 5), (5, 0))}
    assert len(roots) == 3
    # The default tile is 64 KiB whatever the dtype.
    for dtype in DTYPES:
        tr, tc = default_tile(np.dtype(dtype))
        assert tr * tc * np.dtype(dtype).itemsize == 1 << 16


def test_multi_strip_commit_matches_single_thread() -> None:
    x = make_matrix(7, (1031, 517), "int16")
    one, tree = commit_matrix(x, tile=(16, 32), threads=1)
    many, _ = commit_matrix(x, tile=(16, 32), threads=4)
    assert one == many
    for ti, tj in ((0, 0), (64, 16), (10, 3)):
        assert verify_tile(one, open_tile(x, tree, ti, tj))


def test_commit_refuses_bad_input() -> None:
    with pytest.raises(InvalidInputError):
        commit_matrix(np.zeros(4, np.int8))
    with pytest.raises(InvalidInputError):
        commit_matrix(np.zeros((2, 2), np.uint8))
    with pytest.raises(InvalidInputError):
        commit_matrix(np.zeros((2, 2), np.complex64))
    with pytest.raises(InvalidInputError):
        commit_matrix(np.zeros((2, 2), np.int8), tile=(0, 4))
    x = np.zeros((3, 3), np.int8)
    _, tree = commit_matrix(x, tile=(2, 2))
    with pytest.raises(InvalidInputError):
        open_tile(x, tree, 2, 0)


# ---- Commitment serialisation ----


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(DTYPES),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    st.integers(1, 2**32 - 1),
    st.integers(1, 2**32 - 1),
    st.binary(min_size=32, max_size=32),
)
def test_commitment_bytes_round_trip(dtype, rows, cols, tr, tc, root) -> None:  # type: ignore[no-untyped-def]
    c = Commitment(dtype, (rows, cols), (tr, tc), root)
    raw = c.to_bytes()
    # dtype u8, rows u64, cols u64, tile rows u32, tile cols u32, root: 57 bytes.
    assert len(raw) == COMMITMENT_SIZE == 1 + 8 + 8 + 4 + 4 + 32
    assert raw[0] == DTYPE_CODES[dtype]
    assert Commitment.from_bytes(raw) == c
    for cut in (0, 1, COMMITMENT_SIZE - 1):
        with pytest.raises(TraceFormatError):
            Commitment.from_bytes(raw[:cut])
    with pytest.raises(TraceFormatError):
        Commitment.from_bytes(raw + b"\0")


@pytest.mark.parametrize("code", [0, 7, 8, 0x80, 0xFF])
def test_commitment_unknown_dtype_code(code: int) -> None:
    c, _ = commit_matrix(np.zeros((2, 2), np.int8))
    raw = bytearray(c.to_bytes())
    raw[0] = code
    with pytest.raises(TraceFormatError):
        Commitment.from_bytes(bytes(raw))


@pytest.mark.parametrize("field", [0, 1])
def test_commitment_zero_tile_refused(field: int) -> None:
    c, _ = commit_matrix(np.zeros((2, 2), np.int8))
    raw = bytearray(c.to_bytes())
    struct.pack_into("<I", raw, 17 + 4 * field, 0)
    with pytest.raises(TraceFormatError):
        Commitment.from_bytes(bytes(raw))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_commitment_from_random_bytes(raw: bytes) -> None:
    try:
        c = Commitment.from_bytes(raw)
    except TraceFormatError:
        return
    assert c.to_bytes() == raw


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (7, 300), (1000, 33), (64, 4096)])
def test_row_strips_hashed_in_place_equal_packed_leaves(
    dtype: type, shape: tuple[int, int]
) -> None:
    # The in-place hashing of whole-row tiles must give the same root as packing them (a strided
    # view forces the packing path).
    from ramnet.valkyrie import row_strip_tile

    x = (np.arange(shape[0] * shape[1]) % 251 - 125).astype(dtype).reshape(shape)
    tile = row_strip_tile(x.dtype, x.shape)
    wide = np.zeros((shape[0], shape[1] * 2), dtype)
    wide[:, ::2] = x
    contiguous, tree = commit_matrix(x, tile=tile)
    strided, _ = commit_matrix(wide[:, ::2], tile=tile)
    assert contiguous == strided
    for ti in range(contiguous.grid[0]):
        assert verify_tile(contiguous, open_tile(x, tree, ti, 0))
