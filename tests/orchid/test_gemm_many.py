"""orchid.matmul_many (and the C kernel ramnet_gemm_s8s32_many under it) against numpy: operands
shared between products, awkward shapes, panels and column groups cut in odd places, row-strided
tiles, every C path and backend, threads, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramnet import orchid
from ramnet._errors import InvalidInputError, ShapeMismatchError
from ramnet.orchid import _bindings
from ramnet.orchid._dtypes import INT8_INT32_MAX_K
from tests.conftest import backend_param, c_paths, reference, requires_c

S8_PATHS = [pytest.param(p, id=p) for p in c_paths("gemm_s8")]


def _tiles(rng: np.random.Generator, rows: list[int], k: int, cols: list[int]) -> tuple[list, list]:
    a = [rng.integers(-128, 128, (m, k), dtype=np.int8) for m in rows]
    b = [rng.integers(-128, 128, (k, n), dtype=np.int8) for n in cols]
    return a, b


def _check(pairs: list[tuple[np.ndarray, np.ndarray]], out: list[np.ndarray]) -> None:
    assert len(out) == len(pairs)
    for c, (a, b) in zip(out, pairs, strict=True):
        assert c.shape == (a.shape[0], b.shape[1])
        assert c.dtype == orchid.result_dtype(a.dtype, a.shape[1])
        np.testing.assert_array_equal(c.astype(np.int64), reference(a, b))


# (A rows, k, B columns, which products): NC is 4080 columns and KC 1024 in the C kernel, so
# these cut k into several panels, a B into several segments, and B groups in odd places.
SHARDS = {
    "one product": ([37], 53, [97], "all"),
    "k = 1": ([5, 9], 1, [7, 1], "all"),
    "one A, many B": ([193], 300, [1, 17, 31, 64, 65], "all"),
    "many A, one B": ([1, 5, 191, 193, 200], 300, [129], "all"),
    "a grid": ([64, 65, 63], 1100, [33, 48, 17], "all"),
    "a B wider than a panel": ([23, 7], 130, [4100, 3], "all"),
    "B groups overflow": ([11, 13], 70, [2000, 2100, 1000], "all"),
    "sparse": ([40, 41, 42, 43], 2100, [50, 51, 52, 53], "diagonal"),
    "a pair twice": ([30], 100, [20], "twice"),
}


def _pairs(a: list, b: list, which: str) -> list[tuple[np.ndarray, np.ndarray]]:
    if which == "diagonal":
        return [(a[i], b[i]) for i in range(len(a))] + [(a[0], b[3]), (a[3], b[0])]
    if which == "twice":
        return [(a[0], b[0]), (a[0], b[0])]
    return [(x, y) for x in a for y in b]


@requires_c
@pytest.mark.parametrize("path", S8_PATHS)
@pytest.mark.parametrize("shard", list(SHARDS))
def test_every_c_path_matches_numpy(path: str, shard: str) -> None:
    rows, k, cols, which = SHARDS[shard]
    a, b = _tiles(np.random.default_rng(len(shard)), rows, k, cols)
    pairs = _pairs(a, b, which)
    _check(pairs, orchid.matmul_many(pairs, backend="c", path=path, threads=1))


@requires_c
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threads_give_the_same_products(threads: int) -> None:
    a, b = _tiles(np.random.default_rng(3), [100, 101, 102], 500, [90, 91])
    pairs = _pairs(a, b, "all")
    _check(pairs, orchid.matmul_many(pairs, threads=threads))


@requires_c
def test_row_strided_tiles_of_bigger_matrices() -> None:
    # As a worker's tiles are: row slabs of A and column slabs of B, views into one body.
    rng = np.random.default_rng(4)
    big_a = rng.integers(-128, 128, (300, 700), dtype=np.int8)
    big_b = rng.integers(-128, 128, (600, 900), dtype=np.int8)
    a = [big_a[0:100, 50:650], big_a[100:300, 100:700]]
    b = [big_b[:, 0:300], big_b[:, 300:301], big_b[:, 301:900]]
    pairs = [(x, y) for x in a for y in b]
    _check(pairs, orchid.matmul_many(pairs, backend="c"))


@requires_c
def test_different_inner_dimensions_in_one_call() -> None:
    rng = np.random.default_rng(5)
    a1, b1 = _tiles(rng, [20, 21], 64, [30])
    a2, b2 = _tiles(rng, [22], 1500, [31, 32])
    pairs = [(a1[0], b1[0]), (a2[0], b2[0]), (a1[1], b1[0]), (a2[0], b2[1])]
    _check(pairs, orchid.matmul_many(pairs, backend="c"))


@pytest.mark.parametrize("backend", [backend_param("c"), "numba", "numpy"])
@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float64])
def test_every_backend_and_dtype(backend: str, dtype: type) -> None:
    rng = np.random.default_rng(6)
    a = [rng.integers(-100, 100, (m, 40)).astype(dtype) for m in (7, 9)]
    b = [rng.integers(-100, 100, (40, n)).astype(dtype) for n in (5, 6)]
    pairs = _pairs(a, b, "all")
    out = orchid.matmul_many(pairs, backend=backend, threads=2)
    for c, (x, y) in zip(out, pairs, strict=True):
        assert c.dtype == orchid.matmul(x, y, backend=backend).dtype
        np.testing.assert_array_equal(c, orchid.matmul(x, y, backend=backend))


def test_an_int8_product_too_long_for_int32_is_still_exact() -> None:
    k = INT8_INT32_MAX_K + 1
    a = np.full((1, k), -128, np.int8)
    b = np.full((k, 2), -128, np.int8)
    (c,) = orchid.matmul_many([(a, b)])
    assert c.dtype == np.int64
    assert c.tolist() == [[128 * 128 * k] * 2]


@requires_c
@pytest.mark.parametrize("path", S8_PATHS)
def test_empty_dimensions(path: str) -> None:
    z = np.zeros
    pairs = [
        (z((0, 5), np.int8), z((5, 3), np.int8)),
        (z((4, 5), np.int8), z((5, 0), np.int8)),
        (z((4, 0), np.int8), z((0, 3), np.int8)),  # k = 0: zeros
    ]
    out = orchid.matmul_many(pairs, backend="c", path=path)
    assert [c.shape for c in out] == [(0, 3), (4, 0), (4, 3)]
    assert not out[2].any()
    assert orchid.matmul_many([]) == []


def test_bad_pairs_are_refused() -> None:
    a = np.ones((3, 4), np.int8)
    with pytest.raises(ShapeMismatchError):
        orchid.matmul_many([(a, a)])
    with pytest.raises(InvalidInputError):
        orchid.matmul_many([(a, a.T)], backend="fortran")


@requires_c
def test_the_binding_checks_what_it_passes_to_c() -> None:
    a = [np.ones((3, 4), np.int8)]
    b = [np.ones((4, 5), np.int8)]
    good = [np.empty((3, 5), np.int32)]
    with pytest.raises(InvalidInputError, match="do not exist"):
        _bindings.gemm_s8_many(-1, a, b, [(0, 1)], good)
    with pytest.raises(InvalidInputError, match="int32"):
        _bindings.gemm_s8_many(-1, a, b, [(0, 0)], [np.empty((3, 5), np.int64)])
    with pytest.raises(InvalidInputError, match="inner dimension"):
        _bindings.gemm_s8_many(-1, a, [np.ones((5, 5), np.int8)], [(0, 0)], good)
    with pytest.raises(InvalidInputError, match="outputs"):
        _bindings.gemm_s8_many(-1, a, b, [(0, 0)], [])
    _bindings.gemm_s8_many(-1, a, b, [(0, 0)], good)
    assert (good[0] == 4).all()


@requires_c
@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(st.integers(1, 70), min_size=1, max_size=4),
    cols=st.lists(st.integers(1, 70), min_size=1, max_size=4),
    k=st.integers(1, 1100),
    picks=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=8),
    seed=st.integers(0, 2**32 - 1),
)
def test_hypothesis_any_pattern_of_sharing(
    rows: list[int], cols: list[int], k: int, picks: list[tuple[int, int]], seed: int
) -> None:
    a, b = _tiles(np.random.default_rng(seed), rows, k, cols)
    pairs = [(a[i % len(a)], b[j % len(b)]) for i, j in picks]
    for path in c_paths("gemm_s8"):
        _check(pairs, orchid.matmul_many(pairs, backend="c", path=path))
