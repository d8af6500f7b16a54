"""The tile scheduler: a job is a p x q x r grid of block products, run on a pool of threads.

C[I_i, J_j] = sum_k P(i, j, k), with P(i, j, k) = A[I_i, K_k] . B[K_k, J_j]. One task is one output
tile (i, j) with all its block products of the shard in ascending k, so no two threads ever write
the same tile and integer results do not depend on timing. Kernels release the GIL, so the pool's
threads run in parallel.

``execute_blocks`` is the engine the mesh worker, the local pool and any later engine call: a pure
function from (operands, grid, block list) to partial tiles.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ramnet._errors import InvalidInputError
from ramnet.orchid._backends import Backend
from ramnet.orchid._dtypes import INT8_INT32_MAX_K, result_dtype
from ramnet.orchid._hooks import BlockProduct, JobSpec, TraceHook
from ramnet.orchid._pool import default_threads, parallel_map

# Tiles of the C int8 kernel are made big: it packs its operands per call, and fewer, larger calls
# pack less. Edges are multiples of 64 so that tiles line up with the kernels' register blocks.
DEFAULT_TILE = 2048
_ALIGN = 64

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Grid:
    """Block boundaries of a job along M, N and K.

    Attributes:
        row_edges: p + 1 increasing offsets from 0 to M.
        col_edges: q + 1 offsets from 0 to N.
        k_edges: r + 1 offsets from 0 to K.
    """

    row_edges: tuple[int, ...]
    col_edges: tuple[int, ...]
    k_edges: tuple[int, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(p, q, r): the number of blocks along M, N and K."""
        return (len(self.row_edges) - 1, len(self.col_edges) - 1, len(self.k_edges) - 1)

    def check(self, m: int, k: int, n: int) -> None:
        """Refuse a grid that does not cut exactly (M, K, N).

        Raises:
            InvalidInputError: Edges that do not run from 0 to the dimension, or decrease.
        """
        for name, edges, size in (
            ("row", self.row_edges, m),
            ("column", self.col_edges, n),
            ("inner", self.k_edges, k),
        ):
            if (
                len(edges) < 2
                or edges[0] != 0
                or edges[-1] != size
                or any(x > y for x, y in itertools.pairwise(edges))
            ):
                raise InvalidInputError(
                    f"grid {name} edges {edges} do not cut 0..{size} in increasing order"
                )

    def blocks(self) -> list[BlockProduct]:
        """Every block product of the grid, in (i, j, k) order."""
        p, q, r = self.shape
        return [BlockProduct(i, j, k) for i in range(p) for j in range(q) for k in range(r)]

    def rows(self, i: int) -> slice:
        """The rows of A and C that block row ``i`` covers."""
        return slice(self.row_edges[i], self.row_edges[i + 1])

    def cols(self, j: int) -> slice:
        """The columns of B and C that block column ``j`` covers."""
        return slice(self.col_edges[j], self.col_edges[j + 1])

    def inner(self, k: int) -> slice:
        """The columns of A and rows of B that block ``k`` covers."""
        return slice(self.k_edges[k], self.k_edges[k + 1])


def _edges(size: int, parts: int) -> tuple[int, ...]:
    # Near-equal parts, aligned to _ALIGN where the size allows; never an empty part.
    parts = max(1, min(parts, size)) if size else 1
    if size == 0:
        return (0, 0)
    step = math.ceil(size / parts)
    if size >= parts * _ALIGN:
        step = math.ceil(step / _ALIGN) * _ALIGN
    edges = [min(size, t * step) for t in range(parts + 1)]
    edges[-1] = size
    return tuple(sorted(set(edges)))


def make_grid(m: int, k: int, n: int, parts: tuple[int, int, int]) -> Grid:
    """Return a grid that cuts M, N and K into (about) the given numbers of blocks.

    Blocks are near-equal; a dimension is never cut into more blocks than it has elements, and a
    dimension that would otherwise leave empty blocks gets fewer.

    Raises:
        InvalidInputError: A part count below 1.
    """
    p, q, r = parts
    if min(p, q, r) < 1:
        raise InvalidInputError(f"grid counts must be >= 1, got {p},{q},{r}")
    return Grid(_edges(m, p), _edges(n, q), _edges(k, r))


def default_grid(m: int, k: int, n: int, dtype: np.dtype, threads: int) -> Grid:
    """Return the grid a job runs on when none is given.

    Output tiles of about DEFAULT_TILE x DEFAULT_TILE, at least ``threads`` of them when the job is
    large enough to share; K is cut only as far as int8 needs to keep int32 partials exact.
    """
    p = max(1, math.ceil(m / DEFAULT_TILE))
    q = max(1, math.ceil(n / DEFAULT_TILE))
    while p * q < threads and (m >= 2 * p * _ALIGN or n >= 2 * q * _ALIGN):
        if m / p >= n / q:
            p *= 2
        else:
            q *= 2
    r = math.ceil(k / INT8_INT32_MAX_K) if dtype == np.int8 and k > INT8_INT32_MAX_K else 1
    return make_grid(m, k, n, (p, q, r))


def spec_for(
    a: np.ndarray, b: np.ndarray, dtype: np.dtype, grid: Grid, backend: Backend
) -> JobSpec:
    """Return the JobSpec hooks see for multiplying ``a`` and ``b`` on ``grid``."""
    return grid_spec(grid, dtype, backend)


def grid_spec(grid: Grid, dtype: np.dtype, backend: Backend) -> JobSpec:
    """Return the JobSpec of a job of input ``dtype`` on ``grid`` (its last edges give m, n, k),
    for an engine that never holds the operands (the Spark driver)."""
    m, n, k = grid.row_edges[-1], grid.col_edges[-1], grid.k_edges[-1]
    return JobSpec(
        m=m,
        k=k,
        n=n,
        dtype=dtype.name,
        out_dtype=result_dtype(dtype, k).name,
        grid=grid.shape,
        row_edges=grid.row_edges,
        col_edges=grid.col_edges,
        k_edges=grid.k_edges,
        backend=backend.name,
        code_path=backend.code_path,
    )


def _partial_dtype(dtype: np.dtype, grid: Grid) -> np.dtype:
    # A block product's own result dtype: int8 partials are int32 as long as each K block is short.
    widest = max(grid.k_edges[t + 1] - grid.k_edges[t] for t in range(len(grid.k_edges) - 1))
    return result_dtype(dtype, widest)


def _read_only(x: np.ndarray) -> np.ndarray:
    view = x.view()
    view.flags.writeable = False
    return view


class _Runner:
    """Runs the tasks of one call; owns the lock that serialises hooks and progress."""

    def __init__(
        self,
        a: np.ndarray,
        b: np.ndarray,
        grid: Grid,
        backend: Backend,
        hooks: Sequence[TraceHook],
        progress: ProgressCallback | None,
        total: int,
    ) -> None:
        self.a, self.b, self.grid, self.backend = a, b, grid, backend
        self.hooks, self.progress, self.total = hooks, progress, total
        self.partial_dtype = _partial_dtype(a.dtype, grid)
        self.lock = threading.Lock()
        self.done = 0

    def _finished(self, block: BlockProduct, partial: np.ndarray | None) -> None:
        with self.lock:
            if partial is not None:
                view = _read_only(partial)
                for hook in self.hooks:
                    hook.on_block_done(block, view)
            self.done += 1
            if self.progress is not None:
                self.progress(self.done, self.total)

    def tile(self, out: np.ndarray, i: int, j: int, ks: Sequence[int], keep: bool) -> None:
        """Compute out = sum over ks of P(i, j, k), reporting each P; ``keep`` materialises P."""
        g = self.grid
        a_rows = self.a[g.rows(i)]
        b_cols = self.b[:, g.cols(j)]
        # With one block product per tile, or nobody to show partials to, C's tile is the partial.
        direct = out.dtype == self.partial_dtype and (not keep or len(ks) == 1)
        scratch = None if direct else np.empty(out.shape, self.partial_dtype)
        for t, k in enumerate(ks):
            a_tile = a_rows[:, g.inner(k)]
            b_tile = b_cols[g.inner(k)]
            if direct:
                self.backend.gemm(a_tile, b_tile, out, accumulate=t > 0)
                self._finished(BlockProduct(i, j, k), out if keep else None)
                continue
            assert scratch is not None
            self.backend.gemm(a_tile, b_tile, scratch, accumulate=False)
            if t == 0:
                out[...] = scratch
            else:
                out += scratch
            self._finished(BlockProduct(i, j, k), scratch if keep else None)


def _run_tasks(tasks: Sequence[Callable[[], None]], threads: int) -> None:
    parallel_map(lambda task: task(), tasks, min(threads, len(tasks)))


def _group(blocks: Iterable[BlockProduct], grid: Grid) -> dict[tuple[int, int], list[int]]:
    p, q, r = grid.shape
    groups: dict[tuple[int, int], list[int]] = {}
    for block in blocks:
        if not (0 <= block.i < p and 0 <= block.j < q and 0 <= block.k < r):
            raise InvalidInputError(f"block {block} lies outside the {p}x{q}x{r} grid")
        groups.setdefault((block.i, block.j), []).append(block.k)
    for ks in groups.values():
        ks.sort()
        if len(set(ks)) != len(ks):
            raise InvalidInputError("a block product is listed twice")
    return groups


def execute_blocks(
    a: np.ndarray,
    b: np.ndarray,
    grid: Grid,
    blocks: Iterable[BlockProduct],
    backend: Backend,
    *,
    threads: int | None = None,
) -> dict[BlockProduct, np.ndarray]:
    """Compute the given block products and return each partial tile (a shard's work).

    A pure function of its inputs: the mesh worker, the local pool and future engines call it alike.

    Args:
        a: (M, K) operand, already of the job dtype.
        b: (K, N) operand of the same dtype.
        grid: The job's grid.
        blocks: The block products to compute, each at most once.
        backend: A resolved backend.
        threads: Worker threads; all cores when None.

    Returns:
        A dict from each block product to its partial tile P(i, j, k), a new array of the block
        product's result dtype.

    Raises:
        InvalidInputError: A block outside the grid, or listed twice.
    """
    grid.check(a.shape[0], a.shape[1], b.shape[1])
    groups = _group(blocks, grid)
    runner = _Runner(a, b, grid, backend, (), None, 0)
    results: dict[BlockProduct, np.ndarray] = {}
    lock = threading.Lock()

    def task(i: int, j: int, k: int) -> None:
        tile = np.empty(
            (grid.row_edges[i + 1] - grid.row_edges[i], grid.col_edges[j + 1] - grid.col_edges[j]),
            runner.partial_dtype,
        )
        runner.tile(tile, i, j, [k], keep=False)
        with lock:
            results[BlockProduct(i, j, k)] = tile

    tasks = [(lambda i=i, j=j, k=k: task(i, j, k)) for (i, j), ks in groups.items() for k in ks]
    _run_tasks(tasks, threads or default_threads())
    return results


def run_job(
    a: np.ndarray,
    b: np.ndarray,
    grid: Grid,
    backend: Backend,
    *,
    threads: int | None = None,
    hooks: Sequence[TraceHook] = (),
    progress: ProgressCallback | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Compute C = A . B over every block product of ``grid``.

    Args:
        a: (M, K) operand, already of the job dtype.
        b: (K, N) operand of the same dtype.
        grid: The job's grid.
        backend: A resolved backend.
        threads: Worker threads; all cores when None.
        hooks: TraceHooks to call (see ``TraceHook``).
        progress: Called as ``progress(done, total)`` after each block product.
        out: Where to write C (e.g. a memory-mapped output); a new array when None.

    Returns:
        C, of the job's result dtype.
    """
    m, k = a.shape
    n = b.shape[1]
    dtype = result_dtype(a.dtype, k)
    if out is None:
        out = np.empty((m, n), dtype)
    elif out.shape != (m, n) or out.dtype != dtype:
        raise InvalidInputError(f"out must be {m}x{n} {dtype}")
    grid.check(m, k, n)
    blocks = grid.blocks()
    if hooks:
        spec = spec_for(a, b, a.dtype, grid, backend)
        for hook in hooks:
            hook.on_job_start(spec, _read_only(a), _read_only(b))
    runner = _Runner(a, b, grid, backend, hooks, progress, len(blocks))
    keep = bool(hooks)
    p, q, r = grid.shape
    tasks = [
        functools.partial(runner.tile, out[grid.rows(i), grid.cols(j)], i, j, range(r), keep)
        for i in range(p)
        for j in range(q)
    ]
    _run_tasks(tasks, threads or default_threads())
    if hooks:
        view = _read_only(out)
        for hook in hooks:
            hook.on_job_end(view)
    return out
