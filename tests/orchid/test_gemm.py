"""ramnet.matmul against numpy: awkward shapes, every dtype, backend and C code path, bad inputs."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ramnet
from ramnet import orchid
from ramnet.orchid import _backends
from tests.conftest import (
    ALL_DTYPES,
    C_AVAILABLE,
    INT_DTYPES,
    assert_product,
    backend_param,
    c_paths,
    gemm_family,
    operands,
    reference,
    requires_c,
    strided_copy,
)

SHAPES = [
    (1, 1, 1),
    (1, 1, 9),  # K = 1
    (5, 1, 7),  # K = 1
    (1, 40, 23),  # M = 1
    (29, 40, 1),  # N = 1
    (37, 53, 97),
    (127, 131, 129),
    (65, 1000, 33),
    (300, 257, 511),
    (5000, 3, 7),  # very tall
    (3, 7, 5000),  # very wide
    (64, 64, 64),  # exactly one register block
    (129, 65, 63),  # one past / one short of block multiples
]
SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]
NUMBA_MAX_OPS = 3_000_000  # keep numba cases small


@functools.cache
def _case(dtype_name: str, m: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Operands and their exact numpy product, computed once per (dtype, shape)."""
    rng = np.random.default_rng(hash((dtype_name, m, k, n)) % 2**32)
    a, b = operands(rng, m, k, n, np.dtype(dtype_name))
    a.flags.writeable = False
    b.flags.writeable = False
    return a, b, reference(a, b)


def _check(c: np.ndarray, a: np.ndarray, b: np.ndarray, ref: np.ndarray) -> None:
    k = a.shape[1]
    assert c.shape == ref.shape
    if a.dtype.kind == "i":
        assert c.dtype == orchid.result_dtype(a.dtype, k)
        np.testing.assert_array_equal(c.astype(np.int64), ref)
    else:
        assert c.dtype == a.dtype
        assert_product(c, a, b)


def _path_params() -> list[object]:
    params = []
    for dtype in INT_DTYPES:
        for path in c_paths(gemm_family(dtype)):
            for shape, sid in zip(SHAPES, SHAPE_IDS, strict=True):
                params.append(
                    pytest.param(
                        np.dtype(dtype).name, path, shape, id=f"{dtype.__name__}-{path}-{sid}"
                    )
                )
    return params


@requires_c
@pytest.mark.parametrize(("dtype", "path", "shape"), _path_params())
def test_every_c_path_matches_numpy(dtype: str, path: str, shape: tuple[int, int, int]) -> None:
    a, b, ref = _case(dtype, *shape)
    c = ramnet.matmul(a, b, backend="c", path=path)
    _check(c, a, b, ref)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("backend", [backend_param(x) for x in ("c", "numba", "numpy")])
@pytest.mark.parametrize("dtype", [np.dtype(d).name for d in ALL_DTYPES])
def test_every_backend_and_dtype_matches_numpy(
    dtype: str, backend: str, shape: tuple[int, int, int]
) -> None:
    m, k, n = shape
    if backend == "numba" and m * k * n > NUMBA_MAX_OPS:
        pytest.skip("numba cases are kept small")
    a, b, ref = _case(dtype, *shape)
    c = ramnet.matmul(a, b, backend=backend)
    _check(c, a, b, ref)


@pytest.mark.parametrize("dtype", [np.dtype(d).name for d in ALL_DTYPES])
def test_auto_backend(dtype: str) -> None:
    a, b, ref = _case(dtype, 37, 53, 97)
    _check(ramnet.matmul(a, b), a, b, ref)
    # The lazy top-level name is the same function as orchid's.
    assert ramnet.matmul is orchid.matmul


def _extreme_cases() -> list[object]:
    cases = []
    for dtype, k in ((np.int8, 300), (np.int16, 1000)):
        info = np.iinfo(dtype)
        for va, vb in ((info.min, info.min), (info.max, info.max), (info.min, info.max)):
            cases.append(pytest.param(dtype, k, va, vb, id=f"{dtype.__name__}-{va}x{vb}"))
    lo, hi = -(2**31), 2**31 - 1
    # int32 extremes that still fit the int64 bound: K * max|A| * max|B| < 2^63.
    cases.append(pytest.param(np.int32, 1, lo, lo, id="int32-min-min-k1"))
    cases.append(pytest.param(np.int32, 1, hi, hi, id="int32-max-max-k1"))
    cases.append(pytest.param(np.int32, 2, lo, hi, id="int32-min-max-k2"))
    return cases


@pytest.mark.parametrize(("dtype", "k", "va", "vb"), _extreme_cases())
def test_extreme_values(dtype: type, k: int, va: int, vb: int) -> None:
    a = np.full((33, k), va, dtype)
    b = np.full((k, 17), vb, dtype)
    expected = np.full((33, 17), k * va * vb, np.int64)
    runs = [("numpy", "auto"), ("numba", "auto")]
    runs += [("c", p) for p in c_paths(gemm_family(dtype))]
    for backend, path in runs:
        c = ramnet.matmul(a, b, backend=backend, path=path)
        np.testing.assert_array_equal(c.astype(np.int64), expected, err_msg=f"{backend}/{path}")
    # Mixed extremes in one matrix: a checkerboard of min and max.
    info = np.iinfo(dtype)
    checker = np.where(np.indices((33, k)).sum(axis=0) % 2 == 0, va, info.max).astype(dtype)
    if dtype is np.int32:
        checker = a  # the checkerboard could break the int32 bound
    for backend, path in runs:
        c = ramnet.matmul(checker, b, backend=backend, path=path)
        np.testing.assert_array_equal(c, reference(checker, b), err_msg=f"{backend}/{path}")


def _boundary_runs() -> list[object]:
    runs = [pytest.param("numpy", "auto", id="numpy"), pytest.param("numba", "auto", id="numba")]
    runs += [pytest.param("c", p, id=f"c-{p}", marks=requires_c) for p in c_paths("gemm_s8")]
    return runs


@pytest.mark.parametrize(("backend", "path"), _boundary_runs())
def test_int8_result_widens_above_131071(backend: str, path: str) -> None:
    k = 131072
    a = np.full((1, k), -128, np.int8)
    b = np.full((k, 1), -128, np.int8)
    c = ramnet.matmul(a, b, backend=backend, path=path)
    assert c.dtype == np.int64
    assert int(c[0, 0]) == 2**31  # would wrap to -2^31 in int32
    # One below the boundary the result is int32 and exact.
    k = 131071
    c = ramnet.matmul(a[:, :k], b[:k], backend=backend, path=path)
    assert c.dtype == np.int32
    assert int(c[0, 0]) == k * 16384


def test_result_dtype_rule() -> None:
    assert orchid.result_dtype(np.dtype(np.int8), 131071) == np.int32
    assert orchid.result_dtype(np.dtype(np.int8), 131072) == np.int64
    assert orchid.result_dtype(np.dtype(np.int16), 1) == np.int64
    assert orchid.result_dtype(np.dtype(np.int32), 1) == np.int64
    assert orchid.result_dtype(np.dtype(np.float32), 5) == np.float32
    assert orchid.result_dtype(np.dtype(np.float64), 5) == np.float64


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param(
            "c",
            marks=[requires_c],
        ),
        "numba",
        "numpy",
    ],
)
def test_int8_long_k_with_one_k_block(backend: str) -> None:
    k = 131072
    a = np.full((1, k), -128, np.int8)
    b = np.full((k, 1), -128, np.int8)
    c = ramnet.matmul(a, b, backend=backend, grid=(1, 1, 1))
    assert c.dtype == np.int64
    assert int(c[0, 0]) == 2**31


def test_int32_overflow_risk_is_refused() -> None:
    a = np.full((1, 2), -(2**31), np.int32)
    b = np.full((2, 1), -(2**31), np.int32)
    with pytest.raises(ramnet.OverflowRiskError):
        ramnet.matmul(a, b)
    # Moderate values, but a long K: 2^20 * 2^21 * 2^22 = 2^63.
    a = np.full((1, 2**20), 2**21, np.int32)
    b = np.full((2**20, 1), 2**22, np.int32)
    with pytest.raises(ramnet.OverflowRiskError):
        ramnet.matmul(a, b, backend="numpy")
    # Just below the bound is accepted and exact.
    b = np.full((2**20, 1), 2**22 - 1, np.int32)
    c = ramnet.matmul(a, b)
    assert int(c[0, 0]) == 2**20 * 2**21 * (2**22 - 1)
    assert issubclass(ramnet.OverflowRiskError, OverflowError)


LAYOUTS = ["T", "F", "rowstep", "colstep", "reversed", "offset"]


def _layout_params() -> list[object]:
    params = []
    for backend in ("auto", "c", "numba", "numpy"):
        for layout in LAYOUTS:
            marks = [requires_c] if backend == "c" else []
            params.append(pytest.param(backend, layout, marks=marks, id=f"{backend}-{layout}"))
    return params


@pytest.mark.parametrize(("backend", "layout"), _layout_params())
@pytest.mark.parametrize("dtype", ["int8", "int16"])
def test_non_contiguous_inputs(dtype: str, backend: str, layout: str) -> None:
    a, b, ref = _case(dtype, 37, 53, 29)
    x, y = strided_copy(a, layout), strided_copy(b, layout)
    np.testing.assert_array_equal(x, a)
    np.testing.assert_array_equal(y, b)
    c = ramnet.matmul(x, y, backend=backend)
    np.testing.assert_array_equal(c, ref)


def test_non_contiguous_float_inputs() -> None:
    a, b, _ref = _case("float64", 37, 53, 29)
    for layout in LAYOUTS:
        x, y = strided_copy(a, layout), strided_copy(b, layout)
        assert_product(ramnet.matmul(x, y), a, b)


@pytest.mark.parametrize(
    "order",
    ["C", "F"],
)
@pytest.mark.parametrize("dtype", ["int8", "int32", "float32"])
def test_memory_mapped_npy(tmp_path, dtype: str, order: str) -> None:
    a, b, _ref = _case(dtype, 65, 70, 33)
    np.save(tmp_path / "A.npy", np.asarray(a, order=order))
    np.save(tmp_path / "B.npy", np.asarray(b, order=order))
    x = orchid.load_npy(tmp_path / "A.npy", "A")
    y = np.load(tmp_path / "B.npy", mmap_mode="r")
    assert isinstance(x, np.memmap) and isinstance(y, np.memmap)
    assert not x.flags.writeable
    c = ramnet.matmul(x, y)
    assert_product(c, np.asarray(a), np.asarray(b))


def test_mixed_dtypes_promote(rng: np.random.Generator) -> None:
    a8 = rng.integers(-128, 128, (9, 11), dtype=np.int8)
    b16 = rng.integers(-(2**15), 2**15, (11, 7), dtype=np.int16)
    c = ramnet.matmul(a8, b16)
    assert c.dtype == np.int64  # int16 job -> int64 result
    np.testing.assert_array_equal(c, reference(a8, b16))
    b32 = rng.integers(-(2**20), 2**20, (11, 7), dtype=np.int32)
    c = ramnet.matmul(a8, b32)
    assert c.dtype == np.int64
    np.testing.assert_array_equal(c, reference(a8, b32))
    bf = rng.standard_normal((11, 7)).astype(np.float32)
    c = ramnet.matmul(a8, bf)
    assert c.dtype == np.float32
    np.testing.assert_allclose(c, a8.astype(np.float32) @ bf, rtol=1e-5, atol=1e-4)
    c = ramnet.matmul(a8.astype(np.float32), bf.astype(np.float64))
    assert c.dtype == np.float64


def test_python_nested_lists_of_floats_are_accepted() -> None:
    c = ramnet.matmul([[1.0, 2.0]], [[3.0], [4.0]])
    assert c.dtype == np.float64 and c.tolist() == [[11.0]]


# ---- bad inputs ----


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (np.ones(4, np.int8), np.ones((4, 2), np.int8)),
        (np.ones((3, 4), np.int8), np.ones(4, np.int8)),
        (np.ones((2, 3, 4), np.int8), np.ones((4, 2), np.int8)),
        (np.ones((3, 4), np.int8), np.ones((2, 4, 2), np.int8)),
        (np.ones((3, 4), np.int8), np.ones((5, 2), np.int8)),
        (np.ones((3, 4)), np.ones((3, 4))),
        (np.int8(3), np.ones((1, 1), np.int8)),
    ],
    ids=["A-1d", "B-1d", "A-3d", "B-3d", "inner-mismatch", "float-mismatch", "scalar"],
)
def test_shape_errors(a: np.ndarray, b: np.ndarray) -> None:
    with pytest.raises(ramnet.ShapeMismatchError):
        ramnet.matmul(a, b)
    assert issubclass(ramnet.ShapeMismatchError, ValueError)


@pytest.mark.parametrize(
    "bad",
    [
        np.ones((3, 3), np.complex128),
        np.ones((3, 3), np.complex64),
        np.full((3, 3), "x"),
        np.full((3, 3), b"x"),
        np.full((3, 3), 1, dtype=object),
        np.ones((3, 3), bool),
        np.ones((3, 3), np.uint8),
        np.ones((3, 3), np.uint16),
        np.ones((3, 3), np.int64),
        np.ones((3, 3), np.float16),
        np.zeros((3, 3), "datetime64[s]"),
    ],
    ids=lambda x: str(x.dtype),
)
@pytest.mark.parametrize("side", ["A", "B"])
def test_unsupported_dtypes(bad: np.ndarray, side: str) -> None:
    ok = np.ones((3, 3), np.int8)
    a, b = (bad, ok) if side == "A" else (ok, bad)
    with pytest.raises(ramnet.UnsupportedDTypeError) as info:
        ramnet.matmul(a, b)
    assert isinstance(info.value, TypeError)


def test_ragged_input_is_unsupported() -> None:
    with pytest.raises(ramnet.UnsupportedDTypeError):
        ramnet.matmul([[1, 2], [3]], [[1], [2]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("side", ["A", "B"])
def test_non_finite_floats(dtype: type, value: float, side: str) -> None:
    a = np.ones((4, 5), dtype)
    b = np.ones((5, 3), dtype)
    (a if side == "A" else b)[2, 1] = value
    with pytest.raises(ramnet.NonFiniteInputError):
        ramnet.matmul(a, b)
    # Also when the other operand is an integer that promotes.
    other = np.ones((5, 3), np.int8) if side == "A" else np.ones((4, 5), np.int8)
    x, y = (a, other) if side == "A" else (other, b)
    with pytest.raises(ramnet.NonFiniteInputError):
        ramnet.matmul(x, y)


def test_prepare_forced_dtype_checks_values() -> None:
    with pytest.raises(ramnet.NonFiniteInputError):
        orchid.prepare(np.full((2, 2), 0.5), np.ones((2, 2)), "int16")
    with pytest.raises(ramnet.NonFiniteInputError):
        orchid.prepare(np.full((2, 2), 300.0), np.ones((2, 2)), "int8")
    with pytest.raises(ramnet.NonFiniteInputError):
        orchid.prepare(np.full((2, 2), np.nan), np.ones((2, 2)), "int8")
    with pytest.raises(ramnet.NonFiniteInputError):
        orchid.prepare(np.full((2, 2), 300, np.int16), np.ones((2, 2), np.int8), "int8")
    with pytest.raises(ramnet.UnsupportedDTypeError):
        orchid.prepare(np.ones((2, 2), complex), np.ones((2, 2)), "float64")
    with pytest.raises(ramnet.UnsupportedDTypeError):
        orchid.prepare(np.ones((2, 2)), np.ones((2, 2)), "int64")
    a, b = orchid.prepare(np.full((2, 2), -128.0), np.full((2, 2), 127.0), "int8")
    assert a.dtype == b.dtype == np.int8
    assert a[0, 0] == -128 and b[0, 0] == 127


@pytest.mark.parametrize("backend", ["gpu", "", "C", "Numba", None])
def test_unknown_backend(backend: object) -> None:
    with pytest.raises(ramnet.InvalidInputError):
        ramnet.matmul(np.ones((2, 2), np.int8), np.ones((2, 2), np.int8), backend=backend)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_bad_threads(threads: object) -> None:
    with pytest.raises(ramnet.InvalidInputError):
        ramnet.matmul(np.ones((2, 2), np.int8), np.ones((2, 2), np.int8), threads=threads)


def test_bad_grid() -> None:
    with pytest.raises(ramnet.InvalidInputError):
        ramnet.matmul(np.ones((2, 2), np.int8), np.ones((2, 2), np.int8), grid=(0, 1, 1))


@requires_c
def test_unsupported_path_is_unavailable() -> None:
    from ramnet.orchid import _bindings

    a = np.ones((3, 3), np.int8)
    for dtype, family in ((np.int8, "gemm_s8"), (np.int16, "gemm_wide"), (np.int32, "gemm_wide")):
        unsupported = [p for p in _bindings.PATH_NAMES if p not in c_paths(family)]
        assert unsupported, "every path supported: nothing to refuse"
        for path in unsupported:
            with pytest.raises(ramnet.BackendUnavailableError):
                ramnet.matmul(a.astype(dtype), a.astype(dtype), backend="c", path=path)
    with pytest.raises(ramnet.InvalidInputError):
        ramnet.matmul(a, a, backend="c", path="no-such-path")


@requires_c
def test_best_path_is_supported_and_reported() -> None:
    from ramnet.orchid import _bindings

    for family in ("gemm_s8", "gemm_wide", "stream"):
        assert _bindings.best_path(family) in c_paths(family)
        assert "portable" in c_paths(family)
    chosen = _backends.resolve("c", np.dtype(np.int8))
    assert chosen.name == "c" and chosen.code_path == _bindings.best_path("gemm_s8")
    assert _backends.resolve("auto", np.dtype(np.float32)).code_path == "blas"


@pytest.mark.parametrize(
    "backend",
    [backend_param("c"), "numba", "numpy"],
)
@pytest.mark.parametrize("shape", [(3, 0, 4), (0, 3, 4), (2, 3, 0)], ids=["K0", "M0", "N0"])
def test_empty_dimensions(backend: str, shape: tuple[int, int, int]) -> None:
    m, k, n = shape
    a = np.ones((m, k), np.int8)
    b = np.ones((k, n), np.int8)
    c = ramnet.matmul(a, b, backend=backend)
    assert c.shape == (m, n)
    np.testing.assert_array_equal(c, np.zeros((m, n)))


# ---- hypothesis ----


@st.composite
def _int_operands(draw: st.DrawFn, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    m = draw(st.integers(1, 24))
    k = draw(st.integers(1, 40))
    n = draw(st.integers(1, 24))
    elements = st.integers(int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    a = draw(hnp.arrays(dtype, (m, k), elements=elements))
    b = draw(hnp.arrays(dtype, (k, n), elements=elements))
    return a, b


@settings(max_examples=40, deadline=None)
@given(ops=_int_operands(np.int8), grid=st.tuples(*[st.integers(1, 3)] * 3))
def test_hypothesis_int8(ops: tuple[np.ndarray, np.ndarray], grid: tuple[int, int, int]) -> None:
    a, b = ops
    ref = reference(a, b)
    backends = ["numpy", "numba"] + (["c"] if C_AVAILABLE else [])
    for backend in backends:
        np.testing.assert_array_equal(ramnet.matmul(a, b, backend=backend, grid=grid), ref)
    for path in c_paths("gemm_s8"):
        np.testing.assert_array_equal(ramnet.matmul(a, b, backend="c", path=path), ref)


@settings(max_examples=30, deadline=None)
@given(ops=_int_operands(np.int16))
def test_hypothesis_int16(ops: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = ops
    ref = reference(a, b)
    for backend in ["numpy", "numba"] + (["c"] if C_AVAILABLE else []):
        np.testing.assert_array_equal(ramnet.matmul(a, b, backend=backend, threads=1), ref)
    for path in c_paths("gemm_wide"):
        np.testing.assert_array_equal(ramnet.matmul(a, b, backend="c", path=path), ref)
