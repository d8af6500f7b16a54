"""The operand store: .npy and Zarr matrices read and written by tiles, aligned chunks, seeded
operands chunk by chunk, atomic outputs and tile digests."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ramnet._errors import (
    InputFileError,
    InvalidInputError,
    OutputFileError,
    ShapeMismatchError,
    UnsupportedDTypeError,
)
from ramnet.orchid import make_grid
from ramnet.spark.store import (
    OUTPUT_DTYPES,
    ChunkingError,
    TileGrid,
    atomic_output,
    check_fits,
    check_operands,
    chunk_regions,
    chunks_for,
    create_matrix,
    open_matrix,
    random_chunk,
    rechunk,
    tile_digest,
    write_random,
)

FORMATS = (".npy", ".zarr")
DTYPES = ("int8", "int16", "int32", "float32", "float64")
# 1x1, primes, tall and skinny, wide and flat.
AWKWARD = [(1, 1), (7, 13), (97, 3), (3, 101), (257, 5), (1, 64)]


def _even_edges(size: int, parts: int) -> tuple[int, ...]:
    return make_grid(size, 1, 1, (parts, 1, 1)).row_edges


def _grid(shape: tuple[int, int], parts: tuple[int, int]) -> TileGrid:
    return TileGrid(_even_edges(shape[0], parts[0]), _even_edges(shape[1], parts[1]))


def _values(rng: np.random.Generator, shape: tuple[int, int], dtype: str) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def _write_all(path: Path, values: np.ndarray, grid: TileGrid) -> None:
    store = create_matrix(path, values.dtype, grid, "A")
    for rows, cols in grid.tiles():
        store.write_tile(rows, cols, values[rows, cols])
    store.flush()


@pytest.mark.parametrize("suffix", FORMATS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.sampled_from(AWKWARD) | st.tuples(st.integers(1, 70), st.integers(1, 70)),
    parts=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_on_awkward_shapes(
    suffix: str, shape: tuple[int, int], parts: tuple[int, int], dtype: str, seed: int
) -> None:
    values = _values(np.random.default_rng(seed), shape, dtype)
    grid = _grid(shape, parts)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"A{suffix}"
        _write_all(path, values, grid)
        store = open_matrix(path, "A")
        assert store.shape == shape and store.dtype == np.dtype(dtype)
        assert not store.writable
        whole = store.read_tile(slice(0, shape[0]), slice(0, shape[1]))
        np.testing.assert_array_equal(whole, values)
        for rows, cols in grid.tiles():
            np.testing.assert_array_equal(store.read_tile(rows, cols), values[rows, cols])
        # Any range reads as the numpy slice, aligned or not.
        r0, c0 = shape[0] // 3, shape[1] // 2
        tile = store.read_tile(slice(r0, shape[0]), slice(c0, shape[1]))
        np.testing.assert_array_equal(tile, values[r0:, c0:])
        assert tile.flags.c_contiguous


def test_a_zarr_store_is_zarr_format_3_readable_by_zarr(tmp_path: Path) -> None:
    values = np.arange(35, dtype=np.int16).reshape(5, 7)
    grid = TileGrid((0, 2, 4, 5), (0, 3, 7))
    _write_all(tmp_path / "A.zarr", values, grid)
    array = zarr.open_array(str(tmp_path / "A.zarr"), mode="r")
    assert array.metadata.zarr_format == 3
    assert array.chunks == (2, 3)
    np.testing.assert_array_equal(array[:], values)


def test_a_tile_read_fetches_only_its_chunks(tmp_path: Path) -> None:
    # Remove every chunk file but those of one tile: that tile still reads, the rest does not.
    values = np.arange(64 * 48, dtype=np.int32).reshape(64, 48)
    grid = TileGrid((0, 16, 32, 64), (0, 24, 48))
    _write_all(tmp_path / "A.zarr", values, grid)
    chunk_root = tmp_path / "A.zarr" / "c"
    kept = {("1", "1")}  # chunks are 16 x 24: the tile rows 16:32, columns 24:48
    for chunk in list(chunk_root.glob("*/*")):
        if (chunk.parent.name, chunk.name) not in kept:
            chunk.unlink()
    store = open_matrix(tmp_path / "A.zarr", "A", dtypes=OUTPUT_DTYPES)
    np.testing.assert_array_equal(
        store.read_tile(slice(16, 32), slice(24, 48)), values[16:32, 24:48]
    )


def test_an_npy_input_is_memory_mapped_read_only(tmp_path: Path) -> None:
    values = np.arange(12, dtype=np.int8).reshape(3, 4)
    np.save(tmp_path / "A.npy", values)
    store = open_matrix(tmp_path / "A.npy", "A")
    assert store.chunks is None
    with pytest.raises(InvalidInputError, match="read-only"):
        store.write_tile(slice(0, 1), slice(0, 1), np.zeros((1, 1), np.int8))
    assert isinstance(store._array, np.memmap)
    assert not store._array.flags.writeable


@pytest.mark.parametrize(
    ("edges", "chunk"),
    [
        ((0, 100), 100),
        ((0, 64, 128, 150), 64),
        ((0, 128, 256, 300), 128),
        ((0, 96, 160, 161), 32),
        ((0, 3, 7, 10), 1),
    ],
)
def test_chunks_make_every_tile_whole_chunks(edges: tuple[int, ...], chunk: int) -> None:
    grid = TileGrid(edges, (0, 5))
    assert chunks_for(grid) == (chunk, 5)
    check_fits(chunks_for(grid), grid, "A", grid.shape)


@pytest.mark.parametrize("nodes_grid", [(2, 3, 4), (5, 1, 7), (8, 8, 2)])
def test_chunks_fit_the_plans_grids(tmp_path: Path, nodes_grid: tuple[int, int, int]) -> None:
    grid = make_grid(1000, 777, 333, nodes_grid)
    for operand in ("A", "B", "C"):
        tiles = TileGrid.of_operand(grid, operand)  # type: ignore[arg-type]
        store = create_matrix(tmp_path / f"{operand}.zarr", "int32", tiles, operand)
        assert store.chunks is not None
        check_fits(store.chunks, tiles, operand, store.shape)
        for rows, cols in tiles.tiles():
            store.write_tile(
                rows, cols, np.ones((rows.stop - rows.start, cols.stop - cols.start), np.int32)
            )


def test_a_chunking_that_does_not_fit_is_refused_in_one_line_and_can_be_rechunked(
    tmp_path: Path,
) -> None:
    values = np.arange(60 * 40, dtype=np.float32).reshape(60, 40)
    _write_all(tmp_path / "A.zarr", values, TileGrid((0, 20, 40, 60), (0, 40)))
    store = open_matrix(tmp_path / "A.zarr", "A")
    wanted = TileGrid((0, 30, 60), (0, 40))
    with pytest.raises(ChunkingError, match="row edge 30 is not a multiple of 20") as info:
        check_fits(store.chunks, wanted, "A", store.shape)
    assert isinstance(info.value, InvalidInputError)
    assert "\n" not in str(info.value)
    with atomic_output(tmp_path / "A2.zarr") as tmp:
        rechunk(store, tmp, wanted)
    copy = open_matrix(tmp_path / "A2.zarr", "A")
    check_fits(copy.chunks, wanted, "A", copy.shape)
    np.testing.assert_array_equal(copy.read_tile(slice(0, 60), slice(0, 40)), values)


def test_a_write_that_cuts_a_chunk_is_refused(tmp_path: Path) -> None:
    store = create_matrix(tmp_path / "C.zarr", "int64", TileGrid((0, 4, 8, 10), (0, 10)))
    with pytest.raises(ChunkingError, match="cuts through 4x10 chunks"):
        store.write_tile(slice(2, 6), slice(0, 10), np.zeros((4, 10), np.int64))
    store.write_tile(slice(8, 10), slice(0, 10), np.ones((2, 10), np.int64))  # the end: partial


def test_a_grid_that_needs_too_many_chunks_is_refused() -> None:
    edges = (0, *range(3, 6000, 2), 6001)
    with pytest.raises(ChunkingError, match="use a grid whose edges share a larger step"):
        chunks_for(TileGrid(edges, edges))


def _refused(error: type[Exception], match: str, call: Callable[[], object]) -> None:
    with pytest.raises(error, match=match) as info:
        call()
    assert isinstance(info.value, InvalidInputError)  # exit 2
    assert "\n" not in str(info.value)


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    _refused(InputFileError, "no such store", lambda: open_matrix(tmp_path / "no.zarr", "A"))
    _refused(InputFileError, "no such file", lambda: open_matrix(tmp_path / "no.npy", "A"))
    np.save(tmp_path / "v.npy", np.zeros(5, np.int8))
    _refused(ShapeMismatchError, "2-D matrix", lambda: open_matrix(tmp_path / "v.npy", "A"))
    zarr.create_array(store=str(tmp_path / "v.zarr"), shape=(2, 2, 2), dtype="int8")
    _refused(ShapeMismatchError, "2-D matrix", lambda: open_matrix(tmp_path / "v.zarr", "A"))
    zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    _refused(
        InputFileError, "not a readable Zarr array", lambda: open_matrix(tmp_path / "g.zarr", "A")
    )
    for dtype in ("uint8", "complex64", "int64"):
        zarr.create_array(store=str(tmp_path / f"{dtype}.zarr"), shape=(2, 2), dtype=dtype)
        np.save(tmp_path / f"{dtype}.npy", np.zeros((2, 2), dtype))
        for suffix in FORMATS:
            path = tmp_path / f"{dtype}{suffix}"
            _refused(UnsupportedDTypeError, f"dtype {dtype}", lambda p=path: open_matrix(p, "A"))
    assert open_matrix(tmp_path / "int64.zarr", "C", dtypes=OUTPUT_DTYPES).dtype == np.int64
    _refused(
        InvalidInputError, r"ends in \.npy or \.zarr", lambda: open_matrix(tmp_path / "A.csv", "A")
    )
    _refused(InputFileError, "remote stores", lambda: open_matrix("s3://bucket/A.zarr", "A"))
    _refused(
        UnsupportedDTypeError,
        "uint16",
        lambda: create_matrix(tmp_path / "C.zarr", "uint16", TileGrid((0, 2), (0, 2))),
    )
    np.save(tmp_path / "a.npy", np.zeros((3, 4), np.int8))
    zarr.create_array(store=str(tmp_path / "b.zarr"), shape=(5, 2), dtype="int8")
    a, b = open_matrix(tmp_path / "a.npy", "A"), open_matrix(tmp_path / "b.zarr", "B")
    _refused(
        ShapeMismatchError,
        r"A's columns \(4\) must equal B's rows \(5\)",
        lambda: check_operands(a, b),
    )
    _refused(
        InvalidInputError, "outside its 3x4 shape", lambda: a.read_tile(slice(0, 4), slice(0, 1))
    )


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_random_chunks_are_reproducible_per_chunk_and_independent_of_order(
    tmp_path: Path, suffix: str, dtype: str
) -> None:
    shape = (300, 41)
    grid = TileGrid((0, 128, 256, 300), (0, 41))
    whole = write_random(tmp_path / f"A{suffix}", shape, dtype, 7, grid, operand="A")
    expected = whole.read_tile(slice(0, 300), slice(0, 41))
    # Executors: a fresh store, its chunks written one at a time, in reverse order.
    store = create_matrix(tmp_path / f"A2{suffix}", dtype, grid, "A")
    regions = chunk_regions(shape, store.chunks or chunks_for(grid))
    for index in reversed(range(len(regions))):
        write_random(tmp_path / f"A2{suffix}", shape, dtype, 7, grid, chunk_indices=[index])
    again = open_matrix(tmp_path / f"A2{suffix}", "A").read_tile(slice(0, 300), slice(0, 41))
    np.testing.assert_array_equal(again, expected)
    # One chunk alone, from (seed, its region).
    rows, cols = regions[1]
    np.testing.assert_array_equal(
        random_chunk(7, "A", shape, dtype, rows, cols), expected[rows, cols]
    )
    # Another seed, or B's stream, gives other values.
    assert not np.array_equal(random_chunk(8, "A", shape, dtype, rows, cols), expected[rows, cols])
    assert not np.array_equal(random_chunk(7, "B", shape, dtype, rows, cols), expected[rows, cols])


def test_random_values_do_not_depend_on_the_grid(tmp_path: Path) -> None:
    shape = (513, 300)
    one = write_random(tmp_path / "a.zarr", shape, "int8", 3, _grid(shape, (1, 1)))
    many = write_random(tmp_path / "b.zarr", shape, "int8", 3, _grid(shape, (5, 3)))
    full = (slice(0, 513), slice(0, 300))
    np.testing.assert_array_equal(one.read_tile(*full), many.read_tile(*full))


def test_random_int32_operands_keep_the_exact_product_in_range() -> None:
    k = 4096
    a = random_chunk(1, "A", (64, k), "int32", slice(0, 64), slice(0, k))
    b = random_chunk(1, "B", (k, 64), "int32", slice(0, k), slice(0, 64))
    bound = int(np.abs(a).max()) * int(np.abs(b).max()) * k
    assert bound < 2**60
    assert np.abs(a).max() > 2**20  # the range is used, not collapsed


@pytest.mark.parametrize("suffix", FORMATS)
def test_atomic_output_moves_into_place_only_on_success(tmp_path: Path, suffix: str) -> None:
    final = tmp_path / f"C{suffix}"
    grid = TileGrid((0, 4), (0, 4))

    class Boom(Exception):
        pass

    with pytest.raises(Boom), atomic_output(final) as tmp:
        store = create_matrix(tmp, "int32", grid)
        store.write_tile(slice(0, 4), slice(0, 4), np.ones((4, 4), np.int32))
        raise Boom
    assert list(tmp_path.iterdir()) == []

    with atomic_output(final) as tmp:
        create_matrix(tmp, "int32", grid).write_tile(
            slice(0, 4), slice(0, 4), np.full((4, 4), 2, np.int32)
        )
    # An existing output is replaced whole; a failed rewrite leaves the old one as it was.
    with pytest.raises(Boom), atomic_output(final) as tmp:
        create_matrix(tmp, "int32", grid).write_tile(
            slice(0, 4), slice(0, 4), np.full((4, 4), 3, np.int32)
        )
        raise Boom
    assert [p.name for p in tmp_path.iterdir()] == [final.name]
    kept = open_matrix(final, "C").read_tile(slice(0, 4), slice(0, 4))
    assert (kept == 2).all()
    with atomic_output(final) as tmp:
        create_matrix(tmp, "int32", grid).write_tile(
            slice(0, 4), slice(0, 4), np.full((4, 4), 4, np.int32)
        )
    assert [p.name for p in tmp_path.iterdir()] == [final.name]
    assert (open_matrix(final, "C").read_tile(slice(0, 4), slice(0, 4)) == 4).all()


def test_atomic_output_refuses_a_missing_folder_and_an_empty_block(tmp_path: Path) -> None:
    with (
        pytest.raises(OutputFileError, match="does not exist"),
        atomic_output(tmp_path / "no" / "C.zarr"),
    ):
        pass
    with (
        pytest.raises(OutputFileError, match="nothing was written"),
        atomic_output(tmp_path / "C.npy"),
    ):
        pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_rewritten_chunk_changes_the_tile_digest(tmp_path: Path, suffix: str) -> None:
    shape = (64, 64)
    grid = TileGrid((0, 32, 64), (0, 32, 64))
    write_random(tmp_path / f"A{suffix}", shape, "int8", 5, grid)
    store = open_matrix(tmp_path / f"A{suffix}", "A")
    before = {(r.start, c.start): tile_digest(store, r, c) for r, c in grid.tiles()}
    assert len(set(before.values())) == 4
    assert all(len(d) == 32 for d in before.values())
    # Same values, same place: same digest; the same values elsewhere: another digest.
    assert tile_digest(store, slice(0, 32), slice(0, 32)) == before[(0, 0)]
    writer = open_matrix(tmp_path / f"A{suffix}", "A", writable=True)
    tile = writer.read_tile(slice(32, 64), slice(0, 32))
    tile[5, 7] ^= 1
    writer.write_tile(slice(32, 64), slice(0, 32), tile)
    writer.flush()
    reopened = open_matrix(tmp_path / f"A{suffix}", "A")
    after = {(r.start, c.start): tile_digest(reopened, r, c) for r, c in grid.tiles()}
    changed = [key for key in before if before[key] != after[key]]
    assert changed == [(32, 0)]


def test_the_tile_digest_covers_place_and_dtype(tmp_path: Path) -> None:
    zeros = TileGrid((0, 4, 8), (0, 4))
    for dtype in ("int8", "int16"):
        create_matrix(tmp_path / f"{dtype}.zarr", dtype, zeros).flush()
    i8 = open_matrix(tmp_path / "int8.zarr", "A")
    i16 = open_matrix(tmp_path / "int16.zarr", "A")
    digests = {
        tile_digest(store, rows, slice(0, 4))
        for store, rows in itertools.product((i8, i16), (slice(0, 4), slice(4, 8)))
    }
    assert len(digests) == 4
