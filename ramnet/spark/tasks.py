"""What Spark's tasks run on the executors: plain functions from message bytes to message bytes.

Nothing here imports pyspark: a task is a function of its message and the stores it names, so
each one is tested without Spark, and any engine could run them. Every task reads exactly the
tiles its message names, writes its own tiles, and returns digests and sketches, never a tile.

A task first looks at which executor it landed on (``executor_id``): one that the driver has
excluded (it computed a wrong partial) declines the work, and the driver hands it out again.
"""

from __future__ import annotations

import functools
import os
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from ramnet._errors import RamnetError
from ramnet.mesh.rules.shard import compute_shard
from ramnet.orchid._dtypes import _max_abs
from ramnet.orchid._hooks import BlockProduct
from ramnet.orchid._pool import default_threads
from ramnet.orchid._scheduler import Grid
from ramnet.spark.messages import (
    AssembleTask,
    BlockDigest,
    BlockSketch,
    ComputeLimits,
    ComputeResult,
    ComputeTask,
    JobFiles,
    LeafResult,
    LeafTask,
    RandomTask,
    RowResult,
    Sketch,
    TaskError,
    TileDigest,
    decode,
    encode,
)
from ramnet.spark.store import OUTPUT_DTYPES, TileGrid, array_digest, open_matrix, write_random
from ramnet.valkyrie._checks import c_in_range, float_range_check
from ramnet.valkyrie._recorder import block_digest
from ramnet.valkyrie.field import P61, weighted_rowsums

__all__ = [
    "FAULTS",
    "assemble_row",
    "compute_blocks",
    "corrupt",
    "executor_id",
    "hash_leaves",
    "partial_path",
    "run_each",
    "write_random_chunks",
]

#: The ways ``--inject-fault`` corrupts one partial (a testing aid that shows the defence).
FAULTS = ("off-by-one", "random", "zeros")


def executor_id() -> str:
    """Who runs this task: ``host:pid`` of the Python worker process.

    On a cluster each executor runs its own Python workers; on ``local[N]`` the one executor runs
    up to N of them, so this is the finest unit a fault can be pinned on and steered away from.
    """
    return f"{socket.gethostname()}:{os.getpid()}"


def run_each(task: str, items: Iterable[bytes]) -> Iterator[bytes]:
    """Run the named task on every message of a Spark partition (``mapPartitions``).

    Each result is one tag byte and a message: 0 and the task's result, or 1 and a ``TaskError``
    when the task found bad input (a ``RamnetError``), which the driver raises again as one line.
    Any other exception is a bug and fails the Spark task.

    Args:
        task: ``compute``, ``assemble``, ``leaves`` or ``random``.
        items: The partition's messages.

    Yields:
        One tagged result per input message.
    """
    fn = _TASKS[task]
    for item in items:
        try:
            yield b"\x00" + fn(item)
        except RamnetError as exc:
            yield b"\x01" + encode(TaskError(type(exc).__name__, str(exc)))


def _grid(files: JobFiles) -> Grid:
    return Grid(tuple(files.row_edges), tuple(files.col_edges), tuple(files.k_edges))


def _threads(files: JobFiles) -> int:
    return files.threads or default_threads()


def partial_path(work: str | os.PathLike[str], tag: str, block: tuple[int, int, int]) -> Path:
    """Where a partial P(i, j, k) computed under ``tag`` lives in the job's work folder."""
    i, j, k = block
    return Path(work) / "parts" / tag / f"{i}_{j}_{k}.npy"


def corrupt(strategy: str, partial: np.ndarray, seed: int) -> np.ndarray:
    """A wrong copy of ``partial``, the way a faulty executor might produce it (testing aid).

    Args:
        strategy: One of ``FAULTS``.
        partial: The right values.
        seed: Seeds the position or values chosen.

    Returns:
        The corrupted partial (never equal to ``partial`` when it has an element).
    """
    rng = np.random.default_rng(seed)
    if strategy == "zeros":
        wrong = np.zeros_like(partial)
        if partial.size and not partial.any():
            wrong.flat[0] = 1
        return wrong
    if strategy == "random":
        if partial.dtype.kind == "f":
            wrong = rng.standard_normal(partial.shape).astype(partial.dtype)
        else:
            info = np.iinfo(partial.dtype)
            wrong = rng.integers(info.min // 4, info.max // 4, partial.shape, dtype=partial.dtype)
        if partial.size and np.array_equal(wrong, partial):
            wrong.flat[0] += 1
        return wrong
    if strategy == "off-by-one":
        wrong = partial.copy()
        if wrong.size:
            wrong.flat[int(rng.integers(wrong.size))] += 1
        return wrong
    raise ValueError(f"unknown fault {strategy!r}")


def _save(path: Path, values: np.ndarray) -> None:
    # Written beside, then renamed: a reader never sees half a partial.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, values, allow_pickle=False)
    os.replace(tmp, path)


def compute_blocks(data: bytes) -> bytes:
    """A ``ComputeTask``: read the blocks' A and B tiles, multiply with ORCHID, write the partials.

    Returns:
        A ``ComputeResult``: the digests of the tiles read and of every partial written.
    """
    task = decode(data, ComputeTask)
    me = executor_id()
    if me in task.excluded:
        return encode(ComputeResult(task.tag, me, True, 0.0, [], []))
    t0 = time.perf_counter()
    files = task.files
    grid = _grid(files)
    a, b = open_matrix(files.a, "A"), open_matrix(files.b, "B")
    tiles_a: dict[tuple[int, int], np.ndarray] = {}
    tiles_b: dict[tuple[int, int], np.ndarray] = {}
    read: list[TileDigest] = []
    for i, j, k in task.blocks:
        if (i, k) not in tiles_a:
            rows, cols = grid.rows(i), grid.inner(k)
            tiles_a[(i, k)] = tile = a.read_tile(rows, cols)
            if task.digests:
                read.append(TileDigest("A", i, k, array_digest(rows, cols, tile)))
        if (k, j) not in tiles_b:
            rows, cols = grid.inner(k), grid.cols(j)
            tiles_b[(k, j)] = tile = b.read_tile(rows, cols)
            if task.digests:
                read.append(TileDigest("B", k, j, array_digest(rows, cols, tile)))
    blocks = [BlockProduct(i, j, k) for i, j, k in task.blocks]
    partials = compute_shard(
        blocks, tiles_a, tiles_b, backend=files.backend, threads=_threads(files)
    )
    folder = Path(files.work) / "parts" / task.tag
    folder.mkdir(parents=True, exist_ok=True)
    digests = []
    for n, block in enumerate(blocks):
        partial = partials[block]
        if task.fault is not None and n == 0:
            partial = corrupt(task.fault, partial, seed=block.i * 7919 + block.j * 31 + block.k)
        _save(partial_path(files.work, task.tag, (block.i, block.j, block.k)), partial)
        if task.digests:
            digests.append(BlockDigest(block.i, block.j, block.k, block_digest(block, partial)))
    limits = None
    if files.dtype == "int32":
        # The job's overflow bound needs the whole K, which no task sees: the driver checks it.
        limits = ComputeLimits(
            max(_max_abs(x) for x in tiles_a.values()), max(_max_abs(x) for x in tiles_b.values())
        )
    seconds = time.perf_counter() - t0
    return encode(ComputeResult(task.tag, me, False, seconds, read, digests, limits))


def _sum_mod(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # Residues are below 2^61: the sum of two fits uint64 before it is reduced.
    total: np.ndarray = (x + y) % np.uint64(P61)
    return total


def _fold(side: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One residue per round: sum over rows of side[w, row] * u[w, row] mod p, shape (rounds, 1).

    A second random projection: a wrong row sketch survives it only with probability 1/p, so
    the driver compares one residue per block instead of one per row.
    """
    both = weighted_rowsums(np.ascontiguousarray(side).view(np.int64), u, threads=1)
    return np.ascontiguousarray(np.diagonal(both)).reshape(-1, 1)


def assemble_row(data: bytes) -> bytes:
    """An ``AssembleTask``: check one row of blocks' partials and sum them into C's tiles.

    For every K block k it returns two sketches that agree when every partial P(i, j, k) of the
    row is right (Freivalds, one pass over A(i, k) for all of them): the sum over j of
    P(i, j, k) . r_j, and A(i, k) . (sum over j of B(k, j) . r_j), B's side computed here from
    B's tiles (a pass over B costs a few milliseconds against the row's partials). Where they
    disagree it adds each partial's own pair, which names the wrong ones. When K is split it also
    sketches the C tiles as written, which must equal the sum of the first sketches over k (with
    one K block each C tile is its partial). Every sketch is folded by ``u`` into one residue per
    round. Float partials get the rounding-error range check instead (``out_of_range`` lists those
    that fail).

    Returns:
        A ``RowResult``.
    """
    task = decode(data, AssembleTask)
    me = executor_id()
    if me in task.excluded:
        return encode(RowResult(task.i, me, True, 0.0, [], [], [], [], [], None, []))
    t0 = time.perf_counter()
    files = task.files
    grid = _grid(files)
    _, q, r = grid.shape
    i = task.i
    threads = _threads(files)
    exact = np.dtype(files.dtype).kind != "f"
    sketching = task.checks and exact and task.u is not None
    a = open_matrix(files.a, "A")
    b = open_matrix(files.b, "B") if task.checks else None
    out = open_matrix(task.out, "C", writable=True, dtypes=OUTPUT_DTYPES)
    where = {(j, k): (tag, digest) for j, k, tag, digest in task.partials}
    tiles: list[TileDigest] = []
    tiles_a: dict[int, np.ndarray] = {}
    tiles_b: dict[tuple[int, int], np.ndarray] = {}
    if task.checks:
        assert b is not None
        for k in range(r):
            rows, cols = grid.rows(i), grid.inner(k)
            tiles_a[k] = tile = a.read_tile(rows, cols)
            tiles.append(TileDigest("A", i, k, array_digest(rows, cols, tile)))
            for j in range(q):
                rows, cols = grid.inner(k), grid.cols(j)
                tiles_b[(k, j)] = tile = b.read_tile(rows, cols)
                tiles.append(TileDigest("B", k, j, array_digest(rows, cols, tile)))
    vectors = [v.array() for v in task.vectors]
    u = task.u.array() if task.u is not None else np.zeros((0, 0), np.uint64)
    br = (
        [
            [weighted_rowsums(tiles_b[(k, j)], vectors[j], threads=threads) for j in range(q)]
            for k in range(r)
        ]
        if sketching
        else []
    )
    changed: list[tuple[int, int, int]] = []
    failing: list[tuple[int, int, int]] = []
    height = grid.row_edges[i + 1] - grid.row_edges[i]
    rounds = vectors[0].shape[0] if vectors else 0
    c_sides = [np.zeros((rounds, height), np.uint64) for _ in range(r)]
    own_c: dict[tuple[int, int], np.ndarray] = {}
    c_sketch = np.zeros((rounds, height), np.uint64)
    for j in range(q):
        total: np.ndarray | None = None
        for k in range(r):
            tag, expected = where[(j, k)]
            block = BlockProduct(i, j, k)
            partial = np.load(partial_path(files.work, tag, (i, j, k)), allow_pickle=False)
            if task.checks:
                if block_digest(block, partial) != expected:
                    changed.append((i, j, k))
                elif sketching and not c_in_range(partial):
                    failing.append((i, j, k))
                elif sketching:
                    own_c[(j, k)] = side = weighted_rowsums(partial, vectors[j], threads=threads)
                    c_sides[k] = _sum_mod(c_sides[k], side)
                elif not exact and not float_range_check(tiles_a[k], tiles_b[(k, j)], partial):
                    failing.append((i, j, k))
            # Ascending k, as every engine sums: a float C is the same whichever engine made it.
            if total is None:
                total = partial if partial.dtype == out.dtype else partial.astype(out.dtype)
            else:
                total = total + partial
        assert total is not None
        out.write_tile(grid.rows(i), grid.cols(j), total)
        if task.digest_c:
            tiles.append(TileDigest("C", i, j, array_digest(grid.rows(i), grid.cols(j), total)))
        if sketching and r > 1:
            c_sketch = _sum_mod(c_sketch, weighted_rowsums(total, vectors[j], threads=threads))
    out.flush()
    ab_sides: list[np.ndarray] = []
    blocks: list[BlockSketch] = []
    if sketching:
        for k in range(r):
            column_sum = functools.reduce(_sum_mod, br[k])
            ab_sides.append(_fold(weighted_rowsums(tiles_a[k], column_sum, threads=threads), u))
            c_sides[k] = _fold(c_sides[k], u)
            if np.array_equal(ab_sides[k], c_sides[k]):
                continue
            for j in range(q):
                if (j, k) in own_c:
                    ab = _fold(weighted_rowsums(tiles_a[k], br[k][j], threads=threads), u)
                    own = _fold(own_c[(j, k)], u)
                    blocks.append(BlockSketch(i, j, k, Sketch.of(own), Sketch.of(ab)))
        # One K block: C's tiles are the partials themselves, whose sketch c_sides[0] is.
        c_sketch = _fold(c_sketch, u) if r > 1 else c_sides[0]
    seconds = time.perf_counter() - t0
    return encode(
        RowResult(
            i,
            me,
            False,
            seconds,
            tiles,
            changed,
            failing,
            [Sketch.of(x) for x in c_sides] if sketching else [],
            [Sketch.of(x) for x in ab_sides],
            Sketch.of(c_sketch) if sketching else None,
            blocks,
        )
    )


def hash_leaves(data: bytes) -> bytes:
    """A ``LeafTask``: the Merkle leaves of whole tile rows of a matrix, and the digests of the
    grid tiles in the block rows it was given (to compare with what other tasks read).

    Returns:
        A ``LeafResult``.
    """
    from ramnet.valkyrie._merkle import leaf_digests, leaf_prefix_for

    task = decode(data, LeafTask)
    me = executor_id()
    if me in task.excluded:
        return encode(LeafResult(task.name, me, True, 0, b"", []))
    store = open_matrix(task.path, task.name, dtypes=OUTPUT_DTYPES)
    rows, cols = store.shape
    tr = task.tile[0]
    t0, t1 = task.tile_rows
    r0, r1 = t0 * tr, min(rows, t1 * tr)
    strip = store.read_tile(slice(r0, r1), slice(0, cols))
    prefix = leaf_prefix_for(store.dtype.name, store.shape, task.tile)
    leaves = b"".join(leaf_digests(strip, task.tile, t0, prefix))
    tiles = []
    for x in range(*task.grid_rows):
        g0, g1 = task.row_edges[x], task.row_edges[x + 1]
        for y in range(len(task.col_edges) - 1):
            c0, c1 = task.col_edges[y], task.col_edges[y + 1]
            values = strip[g0 - r0 : g1 - r0, c0:c1]
            tiles.append(
                TileDigest(task.name, x, y, array_digest(slice(g0, g1), slice(c0, c1), values))
            )
    return encode(LeafResult(task.name, me, False, t0, leaves, tiles))


def write_random_chunks(data: bytes) -> bytes:
    """A ``RandomTask``: write some chunks of a seeded operand into its (existing) store.

    Returns:
        The executor's id, UTF-8.
    """
    task = decode(data, RandomTask)
    grid = TileGrid(tuple(task.row_edges), tuple(task.col_edges))
    operand: Literal["A", "B"] = "A" if task.operand == "A" else "B"
    write_random(
        task.path,
        task.shape,
        task.dtype,
        task.seed,
        grid,
        operand=operand,
        chunk_indices=list(task.chunk_indices),
    )
    return executor_id().encode()


_TASKS = {
    "compute": compute_blocks,
    "assemble": assemble_row,
    "leaves": hash_leaves,
    "random": write_random_chunks,
}
