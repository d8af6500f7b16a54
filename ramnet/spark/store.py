"""Operand stores: matrices on disk that a job reads and writes one block tile at a time.

Issue 18's first piece: the storage the Spark engine (still to be built) reads its A and B tiles
from and writes its partials and C into, so that no operand ever passes whole through one process.
Two formats, chosen by the path's suffix:

- ``.npy``: one file, memory-mapped with numpy (read-only for inputs). A tile read touches only the
  pages of its rows and columns. It suits one host or a shared filesystem; it has no chunks, so it
  fits every block grid.
- ``.zarr``: a Zarr array (format 3, the ``zarr`` package): one file per chunk, readable by Dask,
  xarray and others. RAMNET creates it with a regular chunk grid aligned to the job's block grid
  (``chunks_for``): every block tile is a whole number of chunks, so a tile read fetches exactly
  its chunks and tasks writing different tiles never write the same chunk. A store whose chunking
  does not fit a grid is refused with ``ChunkingError`` (``check_fits``); ``rechunk`` copies it into
  an aligned one. Chunks are stored uncompressed: random and integer operands barely compress,
  and a task reads its tiles at memory speed.

Outputs are written atomically: ``atomic_output`` gives a temporary store beside the final path
and moves it into place only when the block ends without an error.

Seeded operands (``write_random``) are generated in fixed 256 x 256 generation tiles, each from its
own generator seeded with ``(seed, stream, tile row, tile column)``, and cropped to the matrix. So
each chunk (any chunk, of any chunking) is reproducible from the seed and its own index alone,
executors can write chunks independently and in any order, and the values do not depend on the
grid or the chunking. They are not the values ``ramnet run --random`` produces (one generator
for the whole matrix), and need not be.

Remote stores (not built yet, documented for the engine that follows): ``zarr`` opens
``s3://bucket/A.zarr`` or ``hdfs://host/path/A.zarr`` through fsspec (``pip install s3fs`` or
``pyarrow`` for HDFS, credentials from the usual environment), and the executors would read the
same URL. Object stores have no atomic rename, so an output there must be written under a
temporary prefix and published by writing its ``zarr.json`` last. Today ``open_matrix`` refuses a
URL with a one-line error.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ramnet._errors import (
    InputFileError,
    InvalidInputError,
    OutputFileError,
    ShapeMismatchError,
    UnsupportedDTypeError,
)
from ramnet.orchid._dtypes import SUPPORTED_DTYPES
from ramnet.orchid._io import load_npy
from ramnet.orchid._scheduler import Grid
from ramnet.valkyrie._hash import digest
from ramnet.valkyrie._merkle import DTYPE_CODES

__all__ = [
    "GENERATION_TILE",
    "MAX_CHUNKS",
    "OUTPUT_DTYPES",
    "ChunkingError",
    "MatrixStore",
    "TileGrid",
    "atomic_output",
    "check_fits",
    "check_operands",
    "chunk_regions",
    "chunks_for",
    "create_matrix",
    "open_matrix",
    "random_chunk",
    "rechunk",
    "tile_digest",
    "write_random",
]

#: Dtypes a store may hold: the operands' dtypes and int64 (C and partials of integer jobs).
OUTPUT_DTYPES = (*SUPPORTED_DTYPES, "int64")

#: The side of the fixed tiles seeded operands are generated in (see the module docstring).
GENERATION_TILE = 256

#: More chunks than this for one matrix means the grid's edges share no useful common step.
MAX_CHUNKS = 1 << 20

_TILE_TAG = b"RNSTILE1"
_Format = Literal["npy", "zarr"]


class ChunkingError(InvalidInputError):
    """A store whose chunks do not fit the block grid (a block tile is not whole chunks)."""


@dataclass(frozen=True)
class TileGrid:
    """The block edges of one matrix: its rows and columns cut into tiles.

    Attributes:
        row_edges: Increasing offsets from 0 to the matrix's rows.
        col_edges: Increasing offsets from 0 to its columns.
    """

    row_edges: tuple[int, ...]
    col_edges: tuple[int, ...]

    @classmethod
    def of_operand(cls, grid: Grid, operand: Literal["A", "B", "C"]) -> TileGrid:
        """The tile grid of A (rows x inner), B (inner x columns) or C of a job's ``grid``."""
        if operand == "A":
            return cls(grid.row_edges, grid.k_edges)
        if operand == "B":
            return cls(grid.k_edges, grid.col_edges)
        return cls(grid.row_edges, grid.col_edges)

    @property
    def shape(self) -> tuple[int, int]:
        """The matrix shape the grid cuts."""
        return (self.row_edges[-1], self.col_edges[-1])

    def tiles(self) -> Iterator[tuple[slice, slice]]:
        """Every tile's (rows, columns), row by row."""
        for r0, r1 in zip(self.row_edges, self.row_edges[1:], strict=False):
            for c0, c1 in zip(self.col_edges, self.col_edges[1:], strict=False):
                yield slice(r0, r1), slice(c0, c1)


def _axis_chunk(edges: tuple[int, ...]) -> int:
    # Every edge but the last must fall on a chunk boundary; the last chunk may be partial.
    inner = [e for e in edges[1:-1] if e > 0]
    if not inner:
        return max(1, edges[-1])
    return math.gcd(*inner)


def chunks_for(grid: TileGrid) -> tuple[int, int]:
    """The largest regular chunk shape that makes every tile of ``grid`` a whole number of chunks.

    Args:
        grid: The matrix's tile grid.

    Returns:
        (chunk rows, chunk columns): the greatest common divisor of the inner edges per axis
        (the whole axis when it has one block).

    Raises:
        ChunkingError: The edges share so small a step that the matrix would need more than
            ``MAX_CHUNKS`` chunks.
    """
    chunks = (_axis_chunk(grid.row_edges), _axis_chunk(grid.col_edges))
    rows, cols = grid.shape
    count = math.ceil(rows / chunks[0]) * math.ceil(cols / chunks[1])
    if count > MAX_CHUNKS:
        raise ChunkingError(
            f"grid edges {grid.row_edges} x {grid.col_edges} only align with {chunks[0]}x"
            f"{chunks[1]} chunks ({count} of them); use a grid whose edges share a larger step"
        )
    return chunks


def check_fits(
    chunks: tuple[int, int] | None, grid: TileGrid, name: str, shape: tuple[int, int]
) -> None:
    """Refuse a chunking under which some tile of ``grid`` is not a whole number of chunks.

    Args:
        chunks: The store's chunk shape, or None for an unchunked store (``.npy``: always fits).
        grid: The tile grid the job reads the store on.
        name: The store's name in the message (``A``, ``B``).
        shape: The store's shape; the grid must cut exactly this shape.

    Raises:
        ShapeMismatchError: The grid does not cut ``shape``.
        ChunkingError: An inner edge is not a multiple of the chunk size on its axis.
    """
    if grid.shape != tuple(shape):
        raise ShapeMismatchError(f"{name} is {shape[0]}x{shape[1]} but the grid cuts {grid.shape}")
    if chunks is None:
        return
    for axis, edges in (("row", grid.row_edges), ("column", grid.col_edges)):
        step = chunks[0] if axis == "row" else chunks[1]
        bad = [e for e in edges[1:-1] if e % step]
        if bad:
            raise ChunkingError(
                f"{name}'s chunks ({chunks[0]}x{chunks[1]}) do not fit the block grid: {axis} "
                f"edge {bad[0]} is not a multiple of {step}; rechunk it (store.rechunk)"
            )


def _format_of(path: Path) -> _Format:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return "npy"
    if suffix == ".zarr":
        return "zarr"
    raise InvalidInputError(f"{path}: a matrix store's path ends in .npy or .zarr")


def _check_dtype(name: str, dtype: np.dtype, allowed: tuple[str, ...]) -> np.dtype:
    if dtype.name not in allowed:
        raise UnsupportedDTypeError(f"{name} has dtype {dtype}; a store holds {', '.join(allowed)}")
    return dtype


class MatrixStore:
    """One 2-D matrix in a ``.npy`` file or a Zarr array, read and written by tiles.

    Get one from ``open_matrix`` or ``create_matrix``, not the constructor.

    Attributes:
        path: Where it lives.
        name: What errors call it (``A``, ``B``, ``C``).
        shape: (rows, columns).
        dtype: Its dtype.
        chunks: The chunk shape of a Zarr array; None for ``.npy`` (not chunked).
        writable: Whether ``write_tile`` is allowed.
    """

    def __init__(
        self, path: Path, name: str, array: Any, chunks: tuple[int, int] | None, *, writable: bool
    ) -> None:
        self.path = path
        self.name = name
        self._array = array
        self.shape: tuple[int, int] = (int(array.shape[0]), int(array.shape[1]))
        self.dtype = np.dtype(array.dtype)
        self.chunks = chunks
        self.writable = writable

    def _check_range(self, rows: slice, cols: slice) -> tuple[int, int, int, int]:
        r0, r1, c0, c1 = rows.start or 0, rows.stop, cols.start or 0, cols.stop
        if rows.step not in (None, 1) or cols.step not in (None, 1):
            raise InvalidInputError(
                f"{self.name}: a tile is a contiguous range of rows and columns"
            )
        if (
            r1 is None
            or c1 is None
            or not (0 <= r0 <= r1 <= self.shape[0])
            or not (0 <= c0 <= c1 <= self.shape[1])
        ):
            raise InvalidInputError(
                f"{self.name}: tile [{r0}:{r1}, {c0}:{c1}] is outside its "
                f"{self.shape[0]}x{self.shape[1]} shape"
            )
        return r0, r1, c0, c1

    def read_tile(self, rows: slice, cols: slice) -> np.ndarray:
        """Read one tile (rows x columns) and nothing else of the matrix.

        Args:
            rows: The row range, ``slice(start, stop)``.
            cols: The column range.

        Returns:
            The tile, a new C-contiguous array.

        Raises:
            InvalidInputError: A range outside the matrix or with a step.
            InputFileError: The store cannot be read (a chunk missing or damaged).
        """
        r0, r1, c0, c1 = self._check_range(rows, cols)
        try:
            return np.ascontiguousarray(self._array[r0:r1, c0:c1])
        except (OSError, ValueError) as exc:
            raise InputFileError(f"{self.name}: cannot read {self.path}: {exc}") from exc

    def write_tile(self, rows: slice, cols: slice, values: np.ndarray) -> None:
        """Write one tile. In a Zarr array it must be whole chunks (the matrix's end excepted),
        so that writers of different tiles never share a chunk.

        Args:
            rows: The row range.
            cols: The column range.
            values: The tile's values, of the range's shape; cast only if exactly representable.

        Raises:
            InvalidInputError: A read-only store, a range outside the matrix, or values of
                another shape or not representable in the store's dtype.
            ChunkingError: The range cuts through a chunk.
            OutputFileError: The store cannot be written.
        """
        if not self.writable:
            raise InvalidInputError(f"{self.name}: {self.path} is open read-only")
        r0, r1, c0, c1 = self._check_range(rows, cols)
        if values.shape != (r1 - r0, c1 - c0):
            raise ShapeMismatchError(
                f"{self.name}: tile [{r0}:{r1}, {c0}:{c1}] takes {r1 - r0}x{c1 - c0} values, "
                f"got shape {values.shape}"
            )
        if self.chunks is not None:
            bounds = (
                (r0, r1, self.shape[0], self.chunks[0]),
                (c0, c1, self.shape[1], self.chunks[1]),
            )
            for lo, hi, size, step in bounds:
                if lo % step or (hi % step and hi != size):
                    raise ChunkingError(
                        f"{self.name}: tile [{r0}:{r1}, {c0}:{c1}] cuts through "
                        f"{self.chunks[0]}x{self.chunks[1]} chunks"
                    )
        if values.dtype != self.dtype and not np.can_cast(values.dtype, self.dtype, "safe"):
            raise UnsupportedDTypeError(
                f"{self.name}: {values.dtype} values do not fit its dtype {self.dtype}"
            )
        try:
            self._array[r0:r1, c0:c1] = values
        except OSError as exc:
            raise OutputFileError(f"{self.name}: cannot write {self.path}: {exc}") from exc

    def flush(self) -> None:
        """Make the written tiles durable in the file (``.npy``; Zarr writes each chunk at once)."""
        flush = getattr(self._array, "flush", None)
        if flush is not None:
            flush()


def _open_zarr(path: Path, name: str, mode: Literal["r", "r+"]) -> Any:
    import zarr
    import zarr.errors

    try:
        array = zarr.open_array(str(path), mode=mode)
    except FileNotFoundError as exc:
        raise InputFileError(f"{name}: no such store: {path}") from exc
    except (zarr.errors.BaseZarrError, ValueError, OSError, KeyError) as exc:
        raise InputFileError(f"{name}: {path} is not a readable Zarr array ({exc})") from exc
    return array


def open_matrix(
    path: str | os.PathLike[str],
    name: str = "input",
    *,
    writable: bool = False,
    dtypes: tuple[str, ...] = SUPPORTED_DTYPES,
) -> MatrixStore:
    """Open an existing matrix store, its format chosen by the suffix (``.npy`` or ``.zarr``).

    Args:
        path: The store.
        name: What errors call it (``A``, ``B``, ``C``).
        writable: Open for ``write_tile`` (a ``.npy`` file is then mapped read-write).
        dtypes: The dtypes accepted; operands by default, ``OUTPUT_DTYPES`` for results.

    Returns:
        The store; nothing of its data is read yet.

    Raises:
        InputFileError: A URL (remote stores are not supported yet), a missing store, or one that
            is not a readable array.
        InvalidInputError: A path that ends in neither ``.npy`` nor ``.zarr``.
        ShapeMismatchError: Not a 2-D matrix.
        UnsupportedDTypeError: A dtype outside ``dtypes``.
    """
    if "://" in os.fspath(path):
        raise InputFileError(
            f"{name}: remote stores ({os.fspath(path)}) are not supported yet; use a local or "
            "shared-filesystem path"
        )
    p = Path(path)
    fmt = _format_of(p)
    chunks: tuple[int, int] | None = None
    if fmt == "npy":
        array: Any = load_npy(p, name)
        if writable:
            array = np.load(p, mmap_mode="r+", allow_pickle=False)
    else:
        array = _open_zarr(p, name, "r+" if writable else "r")
    if len(array.shape) != 2:
        raise ShapeMismatchError(f"{name} must be a 2-D matrix, got shape {tuple(array.shape)}")
    if fmt == "zarr":
        chunks = (int(array.chunks[0]), int(array.chunks[1]))
    _check_dtype(name, np.dtype(array.dtype), dtypes)
    return MatrixStore(p, name, array, chunks, writable=writable)


def check_operands(a: MatrixStore, b: MatrixStore) -> tuple[int, int, int]:
    """Return (M, K, N) of C = A . B for these stores.

    Raises:
        ShapeMismatchError: A's columns differ from B's rows.
    """
    if a.shape[1] != b.shape[0]:
        raise ShapeMismatchError(
            f"A is {a.shape[0]}x{a.shape[1]} but B is {b.shape[0]}x{b.shape[1]}: "
            f"A's columns ({a.shape[1]}) must equal B's rows ({b.shape[0]})"
        )
    return a.shape[0], a.shape[1], b.shape[1]


def create_matrix(
    path: str | os.PathLike[str], dtype: np.dtype | str, grid: TileGrid, name: str = "output"
) -> MatrixStore:
    """Create a new matrix of the grid's shape, filled with zeros, open for writing.

    A Zarr array gets chunks aligned to ``grid`` (``chunks_for``); a ``.npy`` file is allocated
    sparse, so unwritten tiles cost no disk. An existing store at ``path`` is replaced: write
    outputs inside ``atomic_output``.

    Args:
        path: Where it goes (``.npy`` or ``.zarr``).
        dtype: Its dtype, one of ``OUTPUT_DTYPES``.
        grid: The tile grid it will be written on; its last edges give the shape.
        name: What errors call it.

    Returns:
        The store, writable.

    Raises:
        InvalidInputError: A suffix other than ``.npy`` or ``.zarr``.
        UnsupportedDTypeError: A dtype outside ``OUTPUT_DTYPES``.
        ChunkingError: The grid aligns only with too many chunks (see ``chunks_for``).
        OutputFileError: The store cannot be created.
    """
    p = Path(path)
    fmt = _format_of(p)
    dt = _check_dtype(name, np.dtype(dtype), OUTPUT_DTYPES)
    shape = grid.shape
    try:
        if fmt == "npy":
            array: Any = np.lib.format.open_memmap(p, mode="w+", dtype=dt, shape=shape)
            return MatrixStore(p, name, array, None, writable=True)
        import zarr

        chunks = chunks_for(grid)
        if p.exists():
            _remove(p)
        array = zarr.create_array(
            store=str(p),
            shape=shape,
            dtype=dt,
            chunks=chunks,
            fill_value=0,
            compressors=None,
            zarr_format=3,
        )
    except OSError as exc:
        raise OutputFileError(f"{name}: cannot create {p}: {exc.strerror or exc}") from exc
    return MatrixStore(p, name, array, chunks, writable=True)


def rechunk(source: MatrixStore, path: str | os.PathLike[str], grid: TileGrid) -> MatrixStore:
    """Copy ``source`` into a new store whose chunks fit ``grid``, one tile at a time.

    Memory holds one tile, never the matrix. Use it on an operand whose chunking ``check_fits``
    refused.

    Args:
        source: The store to copy.
        path: The new store (``.npy`` or ``.zarr``); write it inside ``atomic_output``.
        grid: The tile grid the copy must fit.

    Returns:
        The new store, writable (reopen it read-only for a job's inputs).

    Raises:
        ShapeMismatchError: The grid does not cut ``source``'s shape.
        OutputFileError: The copy cannot be written.
    """
    check_fits(None, grid, source.name, source.shape)
    target = create_matrix(path, source.dtype, grid, source.name)
    for rows, cols in grid.tiles():
        target.write_tile(rows, cols, source.read_tile(rows, cols))
    target.flush()
    return target


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Refuse an output path ``atomic_output`` could not write, before any work is done.

    Args:
        path: The output (``.npy`` or ``.zarr``).

    Returns:
        The path.

    Raises:
        InvalidInputError: A suffix other than ``.npy`` or ``.zarr``.
        OutputFileError: The folder is missing or not writable.
    """
    final = Path(path)
    _format_of(final)
    if "://" in os.fspath(path):
        raise OutputFileError(f"{final}: remote outputs are not supported yet")
    parent = final.parent
    if not parent.is_dir():
        raise OutputFileError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputFileError(f"output folder {parent} is not writable")
    return final


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary store beside ``path`` that takes ``path``'s name only if the block succeeds.

    Usage::

        with atomic_output("C.zarr") as tmp:
            c = create_matrix(tmp, "int32", grid)
            ...  # write every tile

    The temporary path keeps the suffix (so the format is the same) and starts with a dot. On an
    error or an interrupt it is removed and ``path`` is left as it was. An existing file is replaced
    in one rename; an existing Zarr folder is moved aside first, then removed, so ``path`` holds the
    old store, briefly nothing, then the new store: never a half-written one.

    Args:
        path: The final path (``.npy`` or ``.zarr``).

    Yields:
        The temporary path to write the store at.

    Raises:
        OutputFileError: The folder is missing or not writable, or the rename fails.
    """
    final = Path(path)
    _format_of(final)
    parent = final.parent
    if not parent.is_dir():
        raise OutputFileError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputFileError(f"output folder {parent} is not writable")
    token = secrets.token_hex(4)
    tmp = parent / f".{final.stem}.tmp-{token}{final.suffix}"
    try:
        yield tmp
        if not tmp.exists():
            raise OutputFileError(f"nothing was written for {final}")
        _publish(tmp, final, token)
    except BaseException:
        _remove(tmp)
        raise


def _publish(tmp: Path, final: Path, token: str) -> None:
    try:
        if final.is_dir() and not final.is_symlink():
            old = final.parent / f".{final.stem}.old-{token}{final.suffix}"
            os.replace(final, old)
            try:
                os.replace(tmp, final)
            except OSError:
                os.replace(old, final)
                raise
            _remove(old)
        else:
            os.replace(tmp, final)
    except OSError as exc:
        raise OutputFileError(f"cannot write {final}: {exc.strerror or exc}") from exc


def _value_bounds(dtype: np.dtype, k: int) -> tuple[int, int]:
    # As ramnet.orchid.random_operands: full range, int32 narrowed so K*max|A|*max|B| < 2^60.
    info = np.iinfo(dtype)
    if dtype == np.int32:
        hi = min(int(info.max), math.isqrt((2**60 - 1) // max(k, 1)))
        return -hi, hi
    return int(info.min), int(info.max)


def _generation_tile(
    seed: int, stream: int, ti: int, tj: int, dtype: np.dtype, k: int
) -> np.ndarray:
    rng = np.random.default_rng([seed, stream, ti, tj])
    side = (GENERATION_TILE, GENERATION_TILE)
    if dtype.kind == "f":
        return rng.standard_normal(side, dtype=dtype)
    lo, hi = _value_bounds(dtype, k)
    return rng.integers(lo, hi, size=side, dtype=dtype, endpoint=True)


def random_chunk(
    seed: int,
    operand: Literal["A", "B"],
    shape: tuple[int, int],
    dtype: np.dtype | str,
    rows: slice,
    cols: slice,
) -> np.ndarray:
    """The values of one region of a seeded operand, computed from the seed and the region alone.

    Args:
        seed: The job's seed (>= 0).
        operand: ``A`` (m x k) or ``B`` (k x n): its own stream of values, and where K is.
        shape: The operand's shape.
        dtype: An operand dtype; integers are uniform over the dtype's range (int32 narrowed to
            ``+-isqrt((2^60 - 1) / K)``), floats standard normal.
        rows: The region's rows (a chunk's, when writing chunk by chunk).
        cols: The region's columns.

    Returns:
        The region's values.

    Raises:
        UnsupportedDTypeError: Not an operand dtype.
        InvalidInputError: A negative seed.
    """
    dt = _check_dtype(operand, np.dtype(dtype), SUPPORTED_DTYPES)
    if seed < 0:
        raise InvalidInputError(f"seed must be >= 0, got {seed}")
    k = shape[1] if operand == "A" else shape[0]
    stream = 0 if operand == "A" else 1
    r0, r1, c0, c1 = rows.start or 0, rows.stop, cols.start or 0, cols.stop
    out = np.empty((r1 - r0, c1 - c0), dtype=dt)
    g = GENERATION_TILE
    for ti in range(r0 // g, -(-r1 // g)):
        for tj in range(c0 // g, -(-c1 // g)):
            tile = _generation_tile(seed, stream, ti, tj, dt, k)
            lo_r, hi_r = max(r0, ti * g), min(r1, (ti + 1) * g)
            lo_c, hi_c = max(c0, tj * g), min(c1, (tj + 1) * g)
            out[lo_r - r0 : hi_r - r0, lo_c - c0 : hi_c - c0] = tile[
                lo_r - ti * g : hi_r - ti * g, lo_c - tj * g : hi_c - tj * g
            ]
    return out


def chunk_regions(shape: tuple[int, int], chunks: tuple[int, int]) -> list[tuple[slice, slice]]:
    """Every chunk's (rows, columns) of a matrix of ``shape``, row by row: chunk index order."""
    return [
        (slice(r, min(r + chunks[0], shape[0])), slice(c, min(c + chunks[1], shape[1])))
        for r in range(0, shape[0], chunks[0])
        for c in range(0, shape[1], chunks[1])
    ]


def write_random(
    path: str | os.PathLike[str],
    shape: tuple[int, int],
    dtype: np.dtype | str,
    seed: int,
    grid: TileGrid,
    *,
    operand: Literal["A", "B"] = "A",
    chunk_indices: list[int] | None = None,
) -> MatrixStore:
    """Write a seeded random operand chunk by chunk (see the module docstring for the values).

    With ``chunk_indices`` only those chunks (indices into ``chunk_regions``) are written, into a
    store that already exists: executors each write their own chunks, in any order, and the result
    is the same as one ``write_random`` of the whole matrix.

    Args:
        path: The store (``.npy`` or ``.zarr``).
        shape: The operand's shape; must be the grid's.
        dtype: An operand dtype.
        seed: The seed (>= 0).
        grid: The tile grid it will be read on (a Zarr store's chunks are aligned to it).
        operand: ``A`` or ``B`` (see ``random_chunk``).
        chunk_indices: The chunks to write into an existing store; None creates the store and
            writes every chunk.

    Returns:
        The store, writable.

    Raises:
        ShapeMismatchError: ``shape`` is not the grid's.
        UnsupportedDTypeError: Not an operand dtype.
        OutputFileError: The store cannot be written.
    """
    if tuple(shape) != grid.shape:
        raise ShapeMismatchError(f"{operand} is {shape} but the grid cuts {grid.shape}")
    _check_dtype(operand, np.dtype(dtype), SUPPORTED_DTYPES)
    if chunk_indices is None:
        store = create_matrix(path, dtype, grid, operand)
    else:
        store = open_matrix(path, operand, writable=True)
    regions = chunk_regions(store.shape, store.chunks or chunks_for(grid))
    wanted = range(len(regions)) if chunk_indices is None else chunk_indices
    for index in wanted:
        rows, cols = regions[index]
        store.write_tile(rows, cols, random_chunk(seed, operand, store.shape, dtype, rows, cols))
    store.flush()
    return store


def tile_digest(store: MatrixStore, rows: slice, cols: slice) -> bytes:
    """BLAKE3 of one tile: a tag, its place, dtype and shape, then its values (little-endian,
    row-major). Taken when a job starts and again when a task reads the tile, it shows whether the
    store changed in between (a chunk rewritten).

    Args:
        store: The matrix.
        rows: The tile's rows.
        cols: The tile's columns.

    Returns:
        The 32-byte digest.

    Raises:
        InvalidInputError: A range outside the matrix.
        InputFileError: The store cannot be read.
    """
    return array_digest(rows, cols, store.read_tile(rows, cols))


def array_digest(rows: slice, cols: slice, tile: np.ndarray) -> bytes:
    """``tile_digest`` of a tile already read: ``tile`` holds the values of ``rows`` x ``cols``.

    Args:
        rows: The tile's rows in its matrix.
        cols: The tile's columns.
        tile: Its values.

    Returns:
        The 32-byte digest.
    """
    little = tile.astype(tile.dtype.newbyteorder("<"), copy=False)
    header = _TILE_TAG + struct.pack(
        "<QQQQB",
        rows.start or 0,
        rows.stop,
        cols.start or 0,
        cols.stop,
        DTYPE_CODES[tile.dtype.name],
    )
    values = np.ascontiguousarray(little).reshape(-1).view(np.uint8)
    return digest(header, values.data)
