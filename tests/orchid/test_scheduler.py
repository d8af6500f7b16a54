"""The tile scheduler: grids, shards of block products, TraceHooks, progress, threads."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ramnet
from ramnet import orchid
from ramnet.orchid import BlockProduct, Grid, JobSpec, _backends, _scheduler
from tests.conftest import C_AVAILABLE, backend_param, operands, reference

AWKWARD = [(1, 1, 1), (7, 1, 5), (37, 53, 97), (65, 130, 33), (200, 3, 129), (3, 257, 2)]


def _check_edges(edges: tuple[int, ...], size: int, asked: int) -> None:
    assert edges[0] == 0 and edges[-1] == size
    parts = len(edges) - 1
    assert 1 <= parts <= max(1, asked)
    if size:
        assert all(lo < hi for lo, hi in itertools.pairwise(edges)), edges  # no empty block
    covered = np.zeros(size, int)
    for lo, hi in itertools.pairwise(edges):
        covered[lo:hi] += 1
    assert (covered == 1).all()  # every index exactly once


@pytest.mark.parametrize("shape", AWKWARD, ids=["x".join(map(str, s)) for s in AWKWARD])
@pytest.mark.parametrize("p", [1, 2, 3, 4, 5])
def test_make_grid_covers_everything_once(shape: tuple[int, int, int], p: int) -> None:
    m, k, n = shape
    for q in range(1, 6):
        for r in range(1, 6):
            grid = orchid.make_grid(m, k, n, (p, q, r))
            _check_edges(grid.row_edges, m, p)
            _check_edges(grid.col_edges, n, q)
            _check_edges(grid.k_edges, k, r)
            assert grid.shape == (
                len(grid.row_edges) - 1,
                len(grid.col_edges) - 1,
                len(grid.k_edges) - 1,
            )
            blocks = grid.blocks()
            assert len(blocks) == np.prod(grid.shape)
            assert len(set(blocks)) == len(blocks)


def test_make_grid_exact_counts_when_they_fit() -> None:
    grid = orchid.make_grid(10, 12, 9, (2, 3, 4))
    assert grid.shape == (2, 3, 4)
    assert orchid.make_grid(3, 2, 1, (5, 5, 5)).shape == (3, 1, 2)  # never more than elements
    with pytest.raises(ramnet.InvalidInputError):
        orchid.make_grid(4, 4, 4, (1, 0, 1))
    with pytest.raises(ramnet.InvalidInputError):
        orchid.make_grid(4, 4, 4, (1, 1, -2))


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(1, 3000),
    k=st.integers(1, 3000),
    n=st.integers(1, 3000),
    parts=st.tuples(*[st.integers(1, 9)] * 3),
)
def test_make_grid_hypothesis(m: int, k: int, n: int, parts: tuple[int, int, int]) -> None:
    grid = orchid.make_grid(m, k, n, parts)
    _check_edges(grid.row_edges, m, parts[0])
    _check_edges(grid.col_edges, n, parts[1])
    _check_edges(grid.k_edges, k, parts[2])


@pytest.mark.parametrize(
    ("m", "k", "n", "threads"),
    [(1, 1, 1, 2), (5000, 3, 7, 2), (3, 7, 5000, 8), (4096, 4096, 4096, 2), (1, 300000, 1, 1)],
)
@pytest.mark.parametrize("dtype", ["int8", "int16", "float32"])
def test_default_grid(m: int, k: int, n: int, threads: int, dtype: str) -> None:
    grid = _scheduler.default_grid(m, k, n, np.dtype(dtype), threads)
    _check_edges(grid.row_edges, m, m)
    _check_edges(grid.col_edges, n, n)
    _check_edges(grid.k_edges, k, k)
    if dtype == "int8":
        # K blocks short enough for exact int32 partials.
        assert max(np.diff(grid.k_edges)) <= 131071
    else:
        assert grid.shape[2] == 1


def test_default_grid_shares_work_between_threads() -> None:
    grid = _scheduler.default_grid(512, 64, 512, np.dtype(np.int8), 2)
    assert grid.shape[0] * grid.shape[1] >= 2


# ---- execute_blocks: shards ----


def _backend(name: str, dtype: str) -> _backends.Backend:
    return _backends.resolve(name, np.dtype(dtype))


@pytest.mark.parametrize("backend", [backend_param(x) for x in ("c", "numba", "numpy")])
@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "float64"])
def test_execute_blocks_shard(rng: np.random.Generator, backend: str, dtype: str) -> None:
    a, b = operands(rng, 37, 53, 29, np.dtype(dtype))
    grid = orchid.make_grid(37, 53, 29, (3, 2, 3))
    assert grid.shape == (3, 2, 3)
    every = grid.blocks()
    shard = every[::3] + every[1:5]  # an irregular subset, not in grid order
    shard = list(dict.fromkeys(shard))
    result = _scheduler.execute_blocks(a, b, grid, shard, _backend(backend, dtype), threads=2)
    assert set(result) == set(shard)
    for block, tile in result.items():
        rows, cols, inner = grid.rows(block.i), grid.cols(block.j), grid.inner(block.k)
        expected = reference(a[rows, inner], b[inner, cols])
        assert tile.shape == expected.shape
        if dtype == "float64":
            np.testing.assert_allclose(tile, expected, rtol=1e-12, atol=1e-12)
        else:
            assert tile.dtype == orchid.result_dtype(np.dtype(dtype), inner.stop - inner.start)
            np.testing.assert_array_equal(tile, expected)


@pytest.mark.parametrize("backend", [backend_param(x) for x in ("c", "numba", "numpy")])
def test_execute_all_blocks_sums_to_c(rng: np.random.Generator, backend: str) -> None:
    a, b = operands(rng, 41, 67, 23, np.int8)
    grid = orchid.make_grid(41, 67, 23, (2, 3, 4))
    result = _scheduler.execute_blocks(a, b, grid, grid.blocks(), _backend(backend, "int8"))
    assert len(result) == 2 * 3 * 4
    c = np.zeros((41, 23), np.int64)
    for block, tile in result.items():
        c[grid.rows(block.i), grid.cols(block.j)] += tile
    np.testing.assert_array_equal(c, reference(a, b))
    # Two halves of the work (two shards) give the same partials as the whole.
    blocks = grid.blocks()
    half1 = _scheduler.execute_blocks(a, b, grid, blocks[:11], _backend(backend, "int8"), threads=1)
    half2 = _scheduler.execute_blocks(a, b, grid, blocks[11:], _backend(backend, "int8"), threads=2)
    assert set(half1) | set(half2) == set(result) and not set(half1) & set(half2)
    for block in blocks:
        np.testing.assert_array_equal({**half1, **half2}[block], result[block])


def test_execute_blocks_empty_shard() -> None:
    a = np.ones((4, 4), np.int8)
    grid = orchid.make_grid(4, 4, 4, (2, 2, 2))
    assert _scheduler.execute_blocks(a, a, grid, [], _backend("numpy", "int8")) == {}


@pytest.mark.parametrize(
    "bad",
    [
        [BlockProduct(2, 0, 0)],
        [BlockProduct(0, 2, 0)],
        [BlockProduct(0, 0, 2)],
        [BlockProduct(-1, 0, 0)],
        [BlockProduct(0, 0, 0), BlockProduct(1, 1, 1), BlockProduct(0, 0, 0)],
    ],
    ids=["i-out", "j-out", "k-out", "negative", "duplicate"],
)
def test_execute_blocks_rejects_bad_blocks(bad: list[BlockProduct]) -> None:
    a = np.ones((4, 4), np.int8)
    grid = orchid.make_grid(4, 4, 4, (2, 2, 2))
    with pytest.raises(ramnet.InvalidInputError):
        _scheduler.execute_blocks(a, a, grid, bad, _backend("numpy", "int8"))


@pytest.mark.parametrize(
    "grid",
    [
        Grid((0, 10), (0, 4), (0, 5)),  # rows stop short of M = 20
        Grid((0, 20), (0, 4), (0, 3)),  # K edges stop short of K = 5
        Grid((0, 20), (0, 3), (0, 5)),  # columns stop short of N = 4
        Grid((0, 15, 30), (0, 4), (0, 5)),  # rows past M
    ],
    ids=["rows-short", "k-short", "cols-short", "rows-long"],
)
def test_grid_that_does_not_match_operands_is_refused(grid: Grid) -> None:
    a = np.ones((20, 5), np.int8)
    b = np.ones((5, 4), np.int8)
    with pytest.raises(ramnet.InvalidInputError):
        ramnet.matmul(a, b, grid=grid, backend="numpy")


# ---- TraceHooks and progress ----


class RecordingHook:
    """A TraceHook that records every call, with copies of what it was shown."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.thread_ids: set[int] = set()
        self.lock_violations = 0
        self._inside = threading.Lock()

    def _enter(self) -> None:
        if not self._inside.acquire(blocking=False):
            self.lock_violations += 1  # two hook calls at once: the scheduler must serialise
        else:
            self._inside.release()
        self.thread_ids.add(threading.get_ident())

    def on_job_start(self, spec: JobSpec, a: np.ndarray, b: np.ndarray) -> None:
        self._enter()
        self.calls.append(("start", spec, a.copy(), b.copy(), a.flags.writeable, b.flags.writeable))

    def on_block_done(self, block: BlockProduct, partial: np.ndarray) -> None:
        self._enter()
        self.calls.append(("block", block, partial.copy(), partial.flags.writeable))

    def on_job_end(self, c: np.ndarray) -> None:
        self._enter()
        self.calls.append(("end", c.copy(), c.flags.writeable))


def test_recording_hook_is_a_trace_hook() -> None:
    assert isinstance(RecordingHook(), orchid.TraceHook)


@pytest.mark.parametrize("backend", [backend_param(x) for x in ("c", "numba", "numpy")])
@pytest.mark.parametrize(
    ("dtype", "grid"),
    [
        ("int8", (2, 3, 1)),
        ("int8", (2, 3, 2)),  # K split: partials differ from C's tiles
        ("int8", (1, 1, 3)),
        ("int16", (3, 2, 2)),
        ("int32", (2, 2, 3)),
        ("float64", (2, 2, 2)),
        ("float32", (1, 2, 3)),
    ],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_hooks_see_every_block_product(
    rng: np.random.Generator, backend: str, dtype: str, grid: tuple[int, int, int], threads: int
) -> None:
    m, k, n = 37, 53, 29
    a, b = operands(rng, m, k, n, np.dtype(dtype))
    hook, other = RecordingHook(), RecordingHook()
    progress: list[tuple[int, int]] = []
    c = ramnet.matmul(
        a,
        b,
        backend=backend,
        threads=threads,
        grid=grid,
        hooks=[hook, other],
        progress=lambda done, total: progress.append((done, total)),
    )
    p, q, r = grid
    total = p * q * r
    assert [x[0] for x in hook.calls] == ["start"] + ["block"] * total + ["end"]
    assert [x[0] for x in other.calls] == [x[0] for x in hook.calls]
    assert hook.lock_violations == 0

    _, spec, a_seen, b_seen, a_w, b_w = hook.calls[0]
    expected_grid = orchid.make_grid(m, k, n, grid)
    chosen = _backends.resolve(backend, np.dtype(dtype))
    assert spec == JobSpec(
        m=m,
        k=k,
        n=n,
        dtype=dtype,
        out_dtype=orchid.result_dtype(np.dtype(dtype), k).name,
        grid=grid,
        row_edges=expected_grid.row_edges,
        col_edges=expected_grid.col_edges,
        k_edges=expected_grid.k_edges,
        backend=chosen.name,
        code_path=chosen.code_path,
    )
    np.testing.assert_array_equal(a_seen, a)
    np.testing.assert_array_equal(b_seen, b)
    assert not a_w and not b_w

    seen = [x[1] for x in hook.calls[1:-1]]
    assert sorted(seen, key=lambda x: (x.i, x.j, x.k)) == expected_grid.blocks()
    total_c = np.zeros((m, n), np.float64 if dtype.startswith("float") else np.int64)
    for _, block, partial, writeable in hook.calls[1:-1]:
        assert not writeable
        rows = expected_grid.rows(block.i)
        cols = expected_grid.cols(block.j)
        inner = expected_grid.inner(block.k)
        expected = reference(a[rows, inner], b[inner, cols])
        if dtype.startswith("float"):
            np.testing.assert_allclose(partial, expected, rtol=1e-4, atol=1e-3)
        else:
            np.testing.assert_array_equal(partial, expected)
        total_c[rows, cols] += partial

    _, c_seen, c_writeable = hook.calls[-1]
    assert not c_writeable
    np.testing.assert_array_equal(c_seen, c)
    if dtype.startswith("float"):
        np.testing.assert_allclose(total_c, reference(a, b), rtol=1e-4, atol=1e-3)
    else:
        np.testing.assert_array_equal(total_c, reference(a, b))
        np.testing.assert_array_equal(c, reference(a, b))
    assert c.flags.writeable  # the caller's C is its own

    assert [d for d, _ in progress] == list(range(1, total + 1))
    assert all(t == total for _, t in progress)


def test_run_job_directly_with_hook(rng: np.random.Generator) -> None:
    a, b = operands(rng, 30, 40, 20, np.int8)
    grid = orchid.make_grid(30, 40, 20, (2, 2, 2))
    hook = RecordingHook()
    out = np.full((30, 20), -1, np.int32)
    c = _scheduler.run_job(a, b, grid, _backend("numpy", "int8"), threads=2, hooks=[hook], out=out)
    assert c is out
    np.testing.assert_array_equal(out, reference(a, b))
    assert len(hook.calls) == 2 + 8
    with pytest.raises(ramnet.InvalidInputError):
        _scheduler.run_job(a, b, grid, _backend("numpy", "int8"), out=np.empty((30, 20), np.int64))


def test_progress_without_hooks(rng: np.random.Generator) -> None:
    a, b = operands(rng, 30, 40, 20, np.int16)
    progress: list[tuple[int, int]] = []
    c = ramnet.matmul(a, b, grid=(3, 2, 2), progress=lambda d, t: progress.append((d, t)))
    np.testing.assert_array_equal(c, reference(a, b))
    assert progress[-1] == (12, 12)
    assert sorted(d for d, _ in progress) == list(range(1, 13))


def test_spec_for_matches_grid(rng: np.random.Generator) -> None:
    a, b = operands(rng, 10, 300000 // 1000, 5, np.int8)
    grid = orchid.make_grid(10, 300, 5, (2, 1, 3))
    spec = _scheduler.spec_for(a, b, a.dtype, grid, _backend("numpy", "int8"))
    assert (spec.m, spec.k, spec.n, spec.grid) == (10, 300, 5, grid.shape)
    assert spec.k_edges == grid.k_edges and spec.out_dtype == "int32"


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("backend", [backend_param(x) for x in ("c", "numba", "numpy")])
def test_threads_one_and_two_identical(rng: np.random.Generator, dtype: str, backend: str) -> None:
    a, b = operands(rng, 150, 97, 140, np.dtype(dtype))
    grid = (3, 3, 2)
    one = ramnet.matmul(a, b, backend=backend, threads=1, grid=grid)
    two = ramnet.matmul(a, b, backend=backend, threads=2, grid=grid)
    np.testing.assert_array_equal(one.view(np.uint8), two.view(np.uint8))
    if dtype.startswith("int"):
        np.testing.assert_array_equal(one, reference(a, b))


@pytest.mark.skipif(not C_AVAILABLE, reason="C extension not built")
def test_hooks_called_from_worker_threads_are_serialised(rng: np.random.Generator) -> None:
    a, b = operands(rng, 256, 64, 256, np.int8)
    hook = RecordingHook()
    c = ramnet.matmul(a, b, backend="c", threads=2, grid=(4, 4, 2), hooks=[hook])
    np.testing.assert_array_equal(c, reference(a, b))
    assert hook.lock_violations == 0
    assert len(hook.calls) == 2 + 32


def test_parallel_map_order_errors_and_nesting() -> None:
    from ramnet.orchid._pool import parallel_map

    assert parallel_map(lambda x: x * x, range(20), 2) == [x * x for x in range(20)]
    # Nested calls from a pool thread run inline instead of waiting on themselves.
    assert parallel_map(lambda x: sum(parallel_map(abs, [-x, x], 2)), range(6), 2) == [
        2 * x for x in range(6)
    ]

    def boom(x: int) -> int:
        if x == 3:
            raise ValueError("three")
        return x

    with pytest.raises(ValueError, match="three"):
        parallel_map(boom, range(8), 2)


def test_parallel_map_shares_items_between_threads() -> None:
    # Every pair of items must run at the same time: only if both threads keep taking items
    # (a caller that takes one item and leaves the rest to one helper breaks the barrier).
    import threading

    from ramnet.orchid._pool import parallel_map

    barrier = threading.Barrier(2, timeout=10)

    def meet(x: int) -> str:
        barrier.wait()
        return threading.current_thread().name

    names = parallel_map(meet, range(8), 2)
    assert len(names) == 8 and len(set(names)) == 2
