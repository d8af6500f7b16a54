"""Merkle commitments: tile and segment openings, and what they bind (dtype, shape, values)."""

from __future__ import annotations

import dataclasses
import functools
import struct
import threading

import blake3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramnet._errors import InvalidInputError, TraceFormatError
from ramnet.orchid import _tiles
from ramnet.valkyrie import Commitment, commit_matrix
from ramnet.valkyrie._merkle import (
    COMMITMENT_SIZE,
    DTYPE_CODES,
    TileOpening,
    commit_matrices,
    default_tile,
    open_col_segment,
    open_row_segment,
    open_tile,
    row_strip_tile,
    segment_values,
    verify_tile,
)

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


def test_commit_matrices_prelude_runs_once_beside_the_hashing() -> None:
    # Several matrices, some without tiles: the same commitments and trees on any number of
    # threads, with a prelude or without; the prelude runs once, and its error is raised.
    items = [
        (make_matrix(1, (300, 77), "int8"), None),
        (make_matrix(2, (0, 5), "int32"), None),
        (make_matrix(3, (1031, 517), "int16"), (16, 32)),
        (make_matrix(4, (5, 0), "int8"), None),
        (make_matrix(5, (2, 3), "float64"), (1, 1)),
    ]
    alone = [commit_matrix(x, tile=tile, threads=1) for x, tile in items]
    for threads in (1, 2, 5):
        calls: list[int] = []
        got = commit_matrices(
            items, threads=threads, prelude=functools.partial(calls.append, threads)
        )
        assert calls == [threads]
        assert [c for c, _ in got] == [c for c, _ in alone]
        assert [t.levels for _, t in got] == [t.levels for _, t in alone]
        assert all(t.commitment == c for c, t in got)

        def fail() -> None:
            raise MemoryError("prelude")

        with pytest.raises(MemoryError, match="prelude"):
            commit_matrices(items, threads=threads, prelude=fail)


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
    x = (np.arange(shape[0] * shape[1]) % 251 - 125).astype(dtype).reshape(shape)
    tile = row_strip_tile(x.dtype, x.shape)
    wide = np.zeros((shape[0], shape[1] * 2), dtype)
    wide[:, ::2] = x
    contiguous, tree = commit_matrix(x, tile=tile)
    strided, _ = commit_matrix(wide[:, ::2], tile=tile)
    assert contiguous == strided
    for ti in range(contiguous.grid[0]):
        assert verify_tile(contiguous, open_tile(x, tree, ti, 0))


# ---- the C leaf hasher (csrc/hash.c) against the blake3 package ----

HASH_PATHS = _tiles.hash_paths()


def blake3_leaves(x: np.ndarray, tile: tuple[int, int], tile_row0: int, prefix: bytes) -> list:  # type: ignore[type-arg]
    packed = _tiles.pack_tiles(x, tile, tile_row0=tile_row0, prefix=prefix)
    out, at = [], 0
    for size in _tiles.tile_leaf_sizes(x.shape, x.itemsize, tile, len(prefix)):
        out.append(blake3.blake3(packed[at : at + size].data).digest())
        at += size
    return out


@pytest.mark.skipif(not HASH_PATHS, reason="C extension not built")
@pytest.mark.parametrize("path", HASH_PATHS)
@pytest.mark.parametrize(
    "data_len",
    # Leaf sizes around every boundary the C code handles: one chunk or less (a root chunk), a
    # full first chunk, 16 chunks (one vector batch), a partial last chunk, odd chunk counts
    # (carried tree nodes), and the 128 KiB and 64 KiB leaves traces use.
    [0, 1, 63, 64, 975, 976, 977, 1024, 2000, 16 * 1024 - 49, 16 * 1024, 17 * 1024 + 3,
     33 * 1024 - 49, 65536, 131072, 131072 * 3 + 5],
)  # fmt: skip
def test_tile_digests_are_blake3(path: str, data_len: int) -> None:
    x = make_matrix(data_len, (1, max(data_len, 1)), "int8")[:, :data_len]
    prefix = b"RNLEAF1\x00" + bytes(25)
    if data_len:
        assert _tiles.tile_digests(x, (1, data_len), prefix=prefix, path=path) == blake3_leaves(
            x, (1, data_len), 0, prefix
        )


@pytest.mark.skipif(not HASH_PATHS, reason="C extension not built")
@pytest.mark.parametrize("path", HASH_PATHS)
def test_tile_digests_of_awkward_tiles(path: str) -> None:
    rng = np.random.default_rng(5)
    for trial in range(40):
        rows, cols = int(rng.integers(1, 60)), int(rng.integers(1, 700))
        dtype = ("int8", "int16", "int32", "float64")[trial % 4]
        x = make_matrix(trial, (rows, cols), dtype)
        tile = (int(rng.integers(1, rows + 3)), int(rng.integers(1, cols + 3)))
        if trial % 3 == 0:
            tile = (tile[0], cols)  # whole rows: hashed in place
        prefix = bytes(rng.integers(0, 256, int(rng.integers(0, 1008)), dtype=np.uint8))
        row0 = int(rng.integers(0, 9))
        want = blake3_leaves(x, tile, row0, prefix)
        assert _tiles.tile_digests(x, tile, tile_row0=row0, prefix=prefix, path=path) == want
        # A strided view (rows not adjacent) takes the packing path.
        wide = np.zeros((rows * 2, cols), x.dtype)
        wide[::2] = x
        got = _tiles.tile_digests(wide[::2], tile, tile_row0=row0, prefix=prefix, path=path)
        assert got == want
        # Rows in reverse (a negative stride) are copied first.
        flipped = np.ascontiguousarray(x[::-1])
        got = _tiles.tile_digests(x[::-1], tile, tile_row0=row0, prefix=prefix, path=path)
        assert got == blake3_leaves(flipped, tile, row0, prefix)


@pytest.mark.skipif(not HASH_PATHS, reason="C extension not built")
def test_tile_digests_refuse_bad_arguments() -> None:
    x = np.zeros((4, 4), np.int8)
    with pytest.raises(InvalidInputError):
        _tiles.tile_digests(x, (0, 2))
    with pytest.raises(InvalidInputError):
        _tiles.tile_digests(x, (2, 2), prefix=bytes(1008))
    with pytest.raises(InvalidInputError):
        _tiles.tile_digests(x, (2, 2), path="sse2")
    with pytest.raises(InvalidInputError):
        _tiles.tile_digests(np.zeros(4, np.int8), (2, 2))
    assert _tiles.tile_digests(np.zeros((0, 4), np.int8), (2, 2)) == []
    assert _tiles.tile_digests(np.zeros((3, 0), np.int8), (2, 2)) == []


@pytest.mark.skipif(not HASH_PATHS, reason="C extension not built")
@pytest.mark.parametrize("path", HASH_PATHS)
@pytest.mark.parametrize("count", [0, 1, 3, 4, 15, 16, 17, 40])
def test_node_digests_are_blake3(path: str, count: int) -> None:
    rng = np.random.default_rng(count)
    children = bytes(rng.integers(0, 256, 64 * count, dtype=np.uint8))
    for tag in (b"", b"RNNODE1\x00", bytes(range(64))):
        got = _tiles.node_digests(tag, children, path=path)
        want = b"".join(
            blake3.blake3(tag + children[64 * i : 64 * i + 64]).digest() for i in range(count)
        )
        assert got == want
    with pytest.raises(InvalidInputError):
        _tiles.node_digests(bytes(65), children, path=path)
    with pytest.raises(InvalidInputError):
        _tiles.node_digests(b"", children + b"x", path=path)


@pytest.mark.parametrize("dtype", ["int8", "int32", "float64"])
@pytest.mark.parametrize("shape", [(3, 5), (300, 1000), (1025, 64)])
def test_blake3_package_and_c_hashing_commit_alike(
    monkeypatch: pytest.MonkeyPatch, dtype: str, shape: tuple[int, int]
) -> None:
    # Without the C extension's vector path, leaves are hashed with the blake3 package; both
    # must give the same roots and trees, with square tiles and with whole-row tiles.
    from ramnet.valkyrie import _merkle

    x = make_matrix(7, shape, dtype)
    tiles = [None, row_strip_tile(x.dtype, x.shape), (7, 9)]
    fast = [commit_matrix(x, tile=t, threads=2) for t in tiles]
    monkeypatch.setattr(_merkle, "_c_hashing", lambda: False)
    slow = [commit_matrix(x, tile=t, threads=2) for t in tiles]
    for (c1, t1), (c2, t2) in zip(fast, slow, strict=True):
        assert c1 == c2
        assert t1.levels == t2.levels


def test_commit_matrices_visits_every_row_once() -> None:
    from ramnet.valkyrie._merkle import commit_matrices

    mats = [make_matrix(1, (2000, 700), "int8"), make_matrix(2, (0, 3), "int32"),
            make_matrix(3, (513, 2100), "int32"), make_matrix(4, (5, 0), "int16")]  # fmt: skip
    tiles = [row_strip_tile(mats[0].dtype, mats[0].shape), None, (16, 16), None]
    seen: dict[int, list[tuple[int, int]]] = {i: [] for i in range(len(mats))}
    lock = threading.Lock()

    def visit(index: int, row0: int, strip: np.ndarray) -> None:
        np.testing.assert_array_equal(strip, mats[index][row0 : row0 + len(strip)])
        with lock:
            seen[index].append((row0, row0 + len(strip)))

    for threads in (1, 3):
        for spans in seen.values():
            spans.clear()
        got = commit_matrices(list(zip(mats, tiles, strict=True)), threads=threads, visit=visit)
        for i, (x, tile) in enumerate(zip(mats, tiles, strict=True)):
            assert got[i][0] == commit_matrix(x, tile=tile, threads=1)[0]
            rows = sorted(seen[i])
            covered = x.shape[0] if x.shape[1] else 0  # no columns: no tiles, no strips
            assert [r for span in rows for r in range(*span)] == list(range(covered))


def test_commit_matrices_raises_what_a_visitor_raises() -> None:
    from ramnet.valkyrie._merkle import commit_matrices

    def visit(index: int, row0: int, strip: np.ndarray) -> None:
        if row0 > 0:
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        commit_matrices([(make_matrix(1, (5000, 300), "int8"), None)], threads=2, visit=visit)


# ---- commitments joined from leaves hashed elsewhere (Spark executors) ----


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 700),
    st.integers(0, 300),
    st.sampled_from(DTYPES),
    st.sampled_from(["row_strip", "default", "small"]),
    st.integers(1, 5),
    st.integers(0, 2**32 - 1),
)
def test_commitment_from_leaves_of_separate_strips_equals_commit_matrix(  # type: ignore[no-untyped-def]
    rows, cols, dtype, tiling, strip_tiles, seed
) -> None:
    from ramnet.valkyrie._merkle import commitment_from_leaves, leaf_digests, leaf_prefix_for

    x = make_matrix(seed, (rows, cols), dtype)
    tile = {
        "row_strip": row_strip_tile(x.dtype, x.shape),
        "default": default_tile(x.dtype),
        "small": (7, 5),
    }[tiling]
    want = commit_matrix(x, tile=tile, threads=1)[0]
    prefix = leaf_prefix_for(dtype, (rows, cols), tile)
    grid_rows, grid_cols = want.grid
    leaves: list[bytes] = []
    # Each strip of ``strip_tiles`` whole tile rows is hashed on its own, as an executor would.
    for t0 in range(0, grid_rows, strip_tiles):
        strip = x[t0 * tile[0] : (t0 + strip_tiles) * tile[0]]
        got = leaf_digests(strip, tile, t0, prefix)
        assert len(got) == min(strip_tiles, grid_rows - t0) * grid_cols
        leaves += got
    assert commitment_from_leaves(dtype, (rows, cols), tile, leaves) == want


def test_commitment_from_leaves_refuses_bad_input() -> None:
    from ramnet.valkyrie._merkle import commitment_from_leaves, leaf_prefix_for

    leaf = bytes(32)
    # A 5x5 matrix in 2x2 tiles has 9 leaves.
    assert commitment_from_leaves("int8", (5, 5), (2, 2), [leaf] * 9).shape == (5, 5)
    for count in (0, 8, 10):
        with pytest.raises(InvalidInputError, match="9 leaves"):
            commitment_from_leaves("int8", (5, 5), (2, 2), [leaf] * count)
    with pytest.raises(InvalidInputError, match="32 bytes"):
        commitment_from_leaves("int8", (5, 5), (2, 2), [leaf] * 8 + [b"short"])
    with pytest.raises(InvalidInputError, match="dtype"):
        commitment_from_leaves("uint8", (5, 5), (2, 2), [leaf] * 9)
    with pytest.raises(InvalidInputError, match="tile"):
        leaf_prefix_for("int8", (5, 5), (0, 2))
    with pytest.raises(InvalidInputError, match="shape"):
        leaf_prefix_for("int8", (-1, 5), (2, 2))
    # An empty matrix has no leaves and the same commitment commit_matrix gives it.
    empty = commit_matrix(make_matrix(0, (0, 4), "int32"), tile=(3, 3))[0]
    assert commitment_from_leaves("int32", (0, 4), (3, 3), []) == empty
