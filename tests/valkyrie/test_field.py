"""Prime-field kernels (ramnet.valkyrie.field) against pure-Python big-integer references."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramnet._errors import (
    BackendUnavailableError,
    InvalidInputError,
    ShapeMismatchError,
    UnsupportedDTypeError,
)
from ramnet.valkyrie import field as F
from ramnet.valkyrie.field import _binding

P = F.P61
DTYPES = [np.int8, np.int16, np.int32, np.int64]

# Every C path this machine runs, then numba: (backend, path).
BACKENDS = [("c", path) for path in F.field_paths()]
if _binding.numba_available():
    BACKENDS.append(("numba", "auto"))
BACKEND_IDS = [f"{b}-{p}" for b, p in BACKENDS]


def ref_colsums(x: np.ndarray, w: np.ndarray) -> list[list[int]]:
    xo = x.astype(object)
    return [[sum(int(w[g, i]) * xo[i, j] for i in range(x.shape[0])) % P for j in range(x.shape[1])]
            for g in range(w.shape[0])]  # fmt: skip


def ref_rowsums(x: np.ndarray, w: np.ndarray) -> list[list[int]]:
    xo = x.astype(object)
    return [[sum(xo[i, j] * int(w[g, j]) for j in range(x.shape[1])) % P for i in range(x.shape[0])]
            for g in range(w.shape[0])]  # fmt: skip


def as_lists(a: np.ndarray) -> list[list[int]]:
    return [[int(v) for v in row] for row in a]


def random_matrix(rng: np.random.Generator, dtype: type, shape: tuple[int, int]) -> np.ndarray:
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    if x.size:  # extremes in the corners
        x.flat[0] = info.min
        x.flat[-1] = info.max
    return x


def random_weights(rng: np.random.Generator, nw: int, k: int) -> np.ndarray:
    w = rng.integers(0, P, (nw, k), dtype=np.uint64)
    if k:
        w[0, 0] = P - 1
        w[-1, -1] = 0
    return w


SHAPES = [(1, 1), (2, 3), (7, 13), (13, 1), (1, 29), (61, 67), (131, 9), (5, 263)]


@pytest.mark.parametrize(("backend", "path"), BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_sums_match_reference(backend: str, path: str, dtype: type, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(hash((shape, np.dtype(dtype).name)) % 2**32)
    x = random_matrix(rng, dtype, shape)
    wc = random_weights(rng, 3, shape[0])
    wr = random_weights(rng, 2, shape[1])
    for threads in (1, 2):
        got = F.weighted_colsums(x, wc, backend=backend, path=path, threads=threads)
        assert got.dtype == np.uint64 and got.shape == (3, shape[1])
        assert as_lists(got) == ref_colsums(x, wc)
        got = F.weighted_rowsums(x, wr, backend=backend, path=path, threads=threads)
        assert got.shape == (2, shape[0])
        assert as_lists(got) == ref_rowsums(x, wr)


@pytest.mark.parametrize(("backend", "path"), BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fill", ["min", "max"])
def test_extremes_past_every_flush(backend: str, path: str, dtype: type, fill: str) -> None:
    # Constant matrices long enough to cross the int64 accumulation bounds (2048 rows/columns for
    # int32); the worst case for overflow is every product at its maximum with one sign.
    info = np.iinfo(dtype)
    value = int(info.min if fill == "min" else info.max)
    k = 4099
    tall: np.ndarray = np.full((k, 3), value, dtype=dtype)
    wide: np.ndarray = np.full((3, k), value, dtype=dtype)
    w = np.full((2, k), P - 1, dtype=np.uint64)
    w[1, ::2] = 0
    sums = [int(w[g].astype(object).sum()) * value % P for g in range(2)]
    cols = F.weighted_colsums(tall, w, backend=backend, path=path, threads=2)
    rows = F.weighted_rowsums(wide, w, backend=backend, path=path, threads=2)
    assert as_lists(cols) == [[s] * 3 for s in sums]
    assert as_lists(rows) == [[s] * 3 for s in sums]


@pytest.mark.parametrize(("backend", "path"), BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32])
def test_long_sums_past_wide_flushes(backend: str, path: str, dtype: type) -> None:
    # Past the VNNI int32-lane bound (65536 rows of the int8 column sums, 32768 columns of its
    # row sums) and the IFMA bounds (4096 terms per 64-bit lane: 4096 rows, 32768 columns), with
    # every product at its extreme and one sign; m is no multiple of any block.
    info = np.iinfo(dtype)
    k = (1 << 16) + 300  # without the flushes, int32 lanes would pass 2^31 (65792 rows)
    w = np.full((2, k), P - 1, dtype=np.uint64)
    w[1, 1::2] = 0
    for value in (int(info.min), int(info.max)):
        sums = [int(w[g].astype(object).sum()) * value % P for g in range(2)]
        tall: np.ndarray = np.full((k, 3), value, dtype=dtype)
        wide: np.ndarray = np.full((3, k), value, dtype=dtype)
        cols = F.weighted_colsums(tall, w, backend=backend, path=path, threads=1)
        rows = F.weighted_rowsums(wide, w, backend=backend, path=path, threads=1)
        assert as_lists(cols) == [[s] * 3 for s in sums]
        assert as_lists(rows) == [[s] * 3 for s in sums]


@pytest.mark.parametrize(("backend", "path"), BACKENDS, ids=BACKEND_IDS)
def test_int16_row_flush(backend: str, path: str) -> None:
    m = (1 << 16) + 12  # past the int16 flush bound
    x = np.full((m, 2), -(2**15), dtype=np.int16)
    w = np.full(m, P - 1, dtype=np.uint64)
    got = F.weighted_colsums(x, w, backend=backend, path=path, threads=1)
    assert got.shape == (2,)
    assert [int(v) for v in got] == [m * (P - 1) * -(2**15) % P] * 2


@pytest.mark.parametrize(("backend", "path"), BACKENDS, ids=BACKEND_IDS)
def test_empty_shapes(backend: str, path: str) -> None:
    for shape in [(0, 5), (5, 0), (0, 0)]:
        x = np.zeros(shape, np.int32)
        cols = F.weighted_colsums(x, np.zeros((2, shape[0]), np.uint64), backend=backend, path=path)
        rows = F.weighted_rowsums(x, np.zeros((2, shape[1]), np.uint64), backend=backend, path=path)
        assert cols.shape == (2, shape[1]) and not cols.any()
        assert rows.shape == (2, shape[0]) and not rows.any()
    x = np.ones((3, 4), np.int8)
    assert F.weighted_colsums(x, np.zeros((0, 3), np.uint64), backend=backend).shape == (0, 4)


def test_views_and_copies() -> None:
    rng = np.random.default_rng(5)
    base = random_matrix(rng, np.int32, (40, 50))
    w = random_weights(rng, 2, 40)
    for x in (base[:, 3:47], base[::2, ::3], base.T[:40, :40], np.asfortranarray(base)):
        wc = w[:, : x.shape[0]]
        assert as_lists(F.weighted_colsums(x, wc)) == ref_colsums(np.array(x), wc)
        wr = random_weights(rng, 1, x.shape[1])
        assert as_lists(F.weighted_rowsums(x, wr)) == ref_rowsums(np.array(x), wr)


@pytest.mark.skipif(not (_binding.AVAILABLE and _binding.numba_available()), reason="needs both")
def test_backends_agree_on_larger_matrices() -> None:
    rng = np.random.default_rng(9)
    for dtype in DTYPES:
        x = random_matrix(rng, dtype, (517, 389))
        wc, wr = random_weights(rng, 5, 517), random_weights(rng, 5, 389)
        outs = [
            (
                F.weighted_colsums(x, wc, backend=b, path=p),
                F.weighted_rowsums(x, wr, backend=b, path=p),
            )
            for b, p in BACKENDS
        ]
        for cols, rows in outs[1:]:
            assert np.array_equal(cols, outs[0][0]) and np.array_equal(rows, outs[0][1])


def test_bad_inputs() -> None:
    x = np.ones((3, 4), np.int8)
    with pytest.raises(InvalidInputError):
        F.weighted_colsums(x, np.full(3, P, dtype=np.uint64))
    with pytest.raises(InvalidInputError):
        F.weighted_colsums(x, np.array([-1, 0, 0]))
    with pytest.raises(InvalidInputError):
        F.weighted_colsums(x, np.zeros(4, np.uint64))  # wrong length
    with pytest.raises(InvalidInputError):
        F.weighted_rowsums(x, np.zeros((2, 3), np.uint64))
    with pytest.raises(UnsupportedDTypeError):
        F.weighted_colsums(x.astype(np.float64), np.zeros(3, np.uint64))
    with pytest.raises(UnsupportedDTypeError):
        F.weighted_colsums(x.astype(np.uint8), np.zeros(3, np.uint64))
    with pytest.raises(InvalidInputError):
        F.weighted_colsums(np.ones(3, np.int8), np.zeros(3, np.uint64))
    with pytest.raises(InvalidInputError):
        F.weighted_colsums(x, np.zeros(3, np.uint64), backend="cuda")
    with pytest.raises(InvalidInputError):
        F.weighted_colsums(x, np.zeros(3, np.uint64), threads=0)
    with pytest.raises(InvalidInputError):
        F.fp2_dot(np.full((2, 2), P, np.uint64), np.zeros((2, 2), np.uint64))
    with pytest.raises(InvalidInputError):
        F.fp2_sumcheck_round(np.zeros((3, 2), np.uint64), np.zeros((3, 2), np.uint64))
    with pytest.raises(InvalidInputError):
        F.fp2_inv((0, 0))
    if _binding.AVAILABLE:
        with pytest.raises(InvalidInputError):
            F.weighted_colsums(x, np.zeros(3, np.uint64), path="sse9")
        for name in ("avx512", "avx512-vnni", "avx512-ifma"):
            if name not in F.field_paths():
                with pytest.raises(BackendUnavailableError):
                    F.weighted_colsums(x, np.zeros(3, np.uint64), backend="c", path=name)
        if "avx512" not in F.field_paths():
            with pytest.raises(BackendUnavailableError):
                F.weighted_colsums(x, np.zeros(3, np.uint64), backend="c", path="avx512")


@pytest.mark.skipif(not _binding.AVAILABLE, reason="C extension not built")
def test_c_kernels_reject_bad_arguments() -> None:
    ffi, lib = _binding.ffi(), _binding.lib()
    w = np.array([P], np.uint64)
    x = np.ones((1, 1), np.int8)
    out = np.zeros(1, np.uint64)
    ptr = ffi.cast("uint64_t *", w.ctypes.data)
    optr = ffi.cast("uint64_t *", out.ctypes.data)
    xptr = ffi.cast("int8_t *", x.ctypes.data)
    assert lib.ramnet_p61_vecmat_s8(-1, 1, 1, xptr, 1, 1, ptr, optr) == -1  # weight >= p
    w[0] = 1
    assert lib.ramnet_p61_vecmat_s8(-1, 1, 2, xptr, 1, 1, ptr, optr) == -1  # ldx < n
    assert lib.ramnet_p61_matvec_s8(-1, 1, 1, ffi.NULL, 1, 1, ptr, optr) == -1
    assert lib.ramnet_p61_matvec_s8(7, 1, 1, xptr, 1, 1, ptr, optr) == -2  # no such path
    assert lib.ramnet_p61_matvec_s8(5, 1, 1, xptr, 1, 1, ptr, optr) == -2  # neon: not a field path
    assert lib.ramnet_p61x2_fold(3, optr, ptr) == -1  # odd length
    assert lib.ramnet_p61x2_fold_round(3, optr, optr, ptr, optr) == -1  # odd length
    assert lib.ramnet_p61x2_fold_round(2, optr, optr, ffi.NULL, optr) == -1  # no point
    # The vectorized weight check: p, 2^61 and 2^64 - 1 refused, p - 1 accepted, at any position.
    for bad in (P, P + 1, 2**61, 2**64 - 1):
        for at in (0, 5, 16):
            ws = np.zeros(17, np.uint64)
            ws[at] = bad
            wp = ffi.cast("uint64_t *", ws.ctypes.data)
            out17 = np.zeros(17, np.uint64)
            op = ffi.cast("uint64_t *", out17.ctypes.data)
            row = np.ones((1, 17), np.int32)
            rp = ffi.cast("int32_t *", row.ctypes.data)
            assert lib.ramnet_p61_matvec_s32(-1, 1, 17, rp, 17, 1, wp, op) == -1
    ws = np.full(17, P - 1, np.uint64)
    row = np.ones((1, 17), np.int32)
    assert F.weighted_rowsums(row, ws).tolist() == [17 * (P - 1) % P]


@pytest.mark.parametrize(("backend", "path"), BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rowsums_object_matches_reference(backend: str, path: str, dtype: type) -> None:
    # Strip by strip with one set of weights, as the verifier calls it while hashing: every
    # shape, including no rows, one row, and widths that no vector length divides.
    rng = np.random.default_rng(np.dtype(dtype).itemsize)
    for cols in (1, 7, 64, 129, 1000):
        w = random_weights(rng, 3, cols)
        sums = F.RowSums(w, backend=backend, path=path)
        assert sums.shape == (3, cols)
        x = random_matrix(rng, dtype, (37, cols))
        strips = [sums(x[r0 : r0 + 5]) for r0 in range(0, 37, 5)]
        assert as_lists(np.hstack(strips)) == ref_rowsums(x, w)
        assert as_lists(sums(x[::3])) == ref_rowsums(x[::3], w)  # strided rows are copied
        assert sums(x[:0]).shape == (3, 0)


# Where the int64 sums split each entry into two int32 halves (csrc/field.c): both halves' edges,
# and the int64 extremes.
INT64_EDGES = np.array(
    [-(2**63), 2**63 - 1, 0, -1, 1, 2**31 - 1, -(2**31), 2**31, 2**32 - 1, 2**32, -(2**32)],
    dtype=np.int64,
)


def int64_matrix(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Edge values and random ones, as rows inside a wider matrix (a leading dimension > n)."""
    m, n = shape
    x = np.zeros((m, n + 5), np.int64)[:, 2 : n + 2]
    x[:] = rng.choice(INT64_EDGES, shape)
    x[:, ::3] = rng.integers(-(2**63), 2**63 - 1, x[:, ::3].shape, dtype=np.int64, endpoint=True)
    return x


@pytest.mark.parametrize(("backend", "path"), BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("shape", [(1, 1), (1, 2049), (5, 1), (7, 2048), (6, 4099), (3, 33)])
def test_int64_sums_match_reference(backend: str, path: str, shape: tuple[int, int]) -> None:
    # Row sums along, column sums down: rows or columns that fill no block of four, lengths past
    # one and two 2048-long chunks (the int32 flush bound), one to five weight vectors (the
    # kernels take three or four at a time).
    rng = np.random.default_rng(shape[0] * 10007 + shape[1])
    m, n = shape
    x = int64_matrix(rng, shape)
    tall = int64_matrix(rng, (n, m))
    for nw in (1, 3, 4, 5):
        w = random_weights(rng, nw, n)
        expect = ref_rowsums(x, w)
        assert as_lists(F.weighted_rowsums(x, w, backend=backend, path=path, threads=1)) == expect
        assert as_lists(F.RowSums(w, backend=backend, path=path)(x)) == expect
        got = F.weighted_colsums(tall, w, backend=backend, path=path, threads=1)
        assert as_lists(got) == ref_colsums(tall, w)
    for value in (-(2**63), 2**63 - 1):  # every product at its extreme, one sign
        w = np.full((2, n), P - 1, np.uint64)
        rows = F.weighted_rowsums(np.full(shape, value, np.int64), w, backend=backend, path=path)
        cols = F.weighted_colsums(np.full((n, m), value, np.int64), w, backend=backend, path=path)
        assert as_lists(rows) == as_lists(cols) == [[n * (P - 1) * value % P] * m] * 2


def test_rowsums_object_refuses_bad_input() -> None:
    with pytest.raises(InvalidInputError):
        F.RowSums(np.full((1, 3), P, np.uint64))
    with pytest.raises(ShapeMismatchError):
        F.RowSums(np.zeros(3, np.uint64))
    with pytest.raises(InvalidInputError):
        F.RowSums(np.zeros((1, 3), np.uint64), backend="cuda")
    sums = F.RowSums(np.zeros((2, 3), np.uint64))
    with pytest.raises(ShapeMismatchError):
        sums(np.zeros((2, 4), np.int8))
    with pytest.raises(UnsupportedDTypeError):
        sums(np.zeros((2, 3), np.float32))
    if _binding.numba_available():
        with pytest.raises(InvalidInputError):
            F.RowSums(np.zeros((1, 3), np.uint64), backend="numba", path="avx512")


# ---- F_{p^2} ----

fp = st.integers(min_value=0, max_value=P - 1)
fp2 = st.tuples(fp, fp)
nonzero = fp2.filter(lambda a: a != (0, 0))


@given(fp2, fp2, fp2)
def test_fp2_field_axioms(a: F.Fp2, b: F.Fp2, c: F.Fp2) -> None:
    assert F.fp2_mul(a, b) == F.fp2_mul(b, a)
    assert F.fp2_mul(F.fp2_mul(a, b), c) == F.fp2_mul(a, F.fp2_mul(b, c))
    assert F.fp2_mul(a, F.fp2_add(b, c)) == F.fp2_add(F.fp2_mul(a, b), F.fp2_mul(a, c))
    assert F.fp2_add(F.fp2_sub(a, b), b) == a
    assert F.fp2_add(a, F.fp2_neg(a)) == (0, 0)
    assert F.fp2_mul(a, (1, 0)) == a
    assert F.fp2_mul((0, 1), (0, 1)) == (P - 1, 0)  # i^2 = -1


@given(nonzero)
def test_fp2_inverse(a: F.Fp2) -> None:
    assert F.fp2_mul(a, F.fp2_inv(a)) == (1, 0)


@settings(max_examples=200, deadline=None)
@given(fp2, fp2, fp2)
def test_fp2_field_laws(x, y, z) -> None:  # type: ignore[no-untyped-def]
    zero, one = (0, 0), (1, 0)
    assert F.fp2_mul(x, y) == F.fp2_mul(y, x)
    assert F.fp2_add(x, y) == F.fp2_add(y, x)
    assert F.fp2_mul(F.fp2_mul(x, y), z) == F.fp2_mul(x, F.fp2_mul(y, z))
    assert F.fp2_add(F.fp2_add(x, y), z) == F.fp2_add(x, F.fp2_add(y, z))
    assert F.fp2_mul(x, F.fp2_add(y, z)) == F.fp2_add(F.fp2_mul(x, y), F.fp2_mul(x, z))
    assert F.fp2_mul(x, one) == x and F.fp2_add(x, zero) == x and F.fp2_mul(x, zero) == zero
    assert F.fp2_sub(F.fp2_add(x, y), y) == x
    assert F.fp2_add(x, F.fp2_sub(zero, x)) == zero
    for value in (*x, *F.fp2_mul(x, y), *F.fp2_add(x, y), *F.fp2_sub(x, y)):
        assert 0 <= value < P
    k = y[0]
    assert F.fp2_scale(x, k) == F.fp2_mul(x, (k, 0))
    # Reference: complex-style product over the integers, reduced afterwards.
    re = (x[0] * y[0] - x[1] * y[1]) % P
    im = (x[0] * y[1] + x[1] * y[0]) % P
    assert F.fp2_mul(x, y) == (re, im)
    assert len(F.fp2_bytes(x)) == 16


def test_fp2_is_a_field_extension() -> None:
    i = (0, 1)
    assert F.fp2_mul(i, i) == (P - 1, 0)  # i^2 = -1: p = 3 mod 4, so x^2 + 1 is irreducible
    assert P % 4 == 3
    # (a + bi)(a - bi) = a^2 + b^2, nonzero for nonzero input: a norm, so inverses exist.
    x = (123456789, 987654321)
    norm = F.fp2_mul(x, (x[0], P - x[1]))
    assert norm[1] == 0 and norm[0] == (x[0] ** 2 + x[1] ** 2) % P != 0
    inv_norm = pow(norm[0], P - 2, P)
    inverse = F.fp2_scale((x[0], P - x[1]), inv_norm)
    assert F.fp2_mul(x, inverse) == (1, 0)


def test_the_field_is_defined_once() -> None:
    # P61 and every fp2_* function have one definition in RAMNET: the field package's (the numba
    # and C kernels name their own private helpers otherwise).
    package = Path(F.__file__).resolve().parents[2]  # ramnet/
    root = package.parent
    definitions: dict[str, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"(?:def (fp2_\w+)\(|(P61) *=)", line)
            if match:
                name = match.group(1) or match.group(2)
                definitions.setdefault(name, []).append(str(path.relative_to(root)))
    assert definitions["P61"] == ["ramnet/valkyrie/field/_scalar.py"]
    assert all(len(paths) == 1 for paths in definitions.values()), definitions
    assert all(p.startswith("ramnet/valkyrie/field/") for ps in definitions.values() for p in ps)
    assert len(definitions) == 1 + 7 + 4  # P61, seven scalar helpers, four vector kernels


def fp2_array(values: list[F.Fp2]) -> np.ndarray:
    return np.array(values, dtype=np.uint64).reshape(-1, 2)


FP2_BACKENDS = sorted({b for b, _ in BACKENDS})


@settings(max_examples=40, deadline=None)
@given(st.lists(fp2, min_size=0, max_size=6), st.sampled_from(FP2_BACKENDS))
def test_eq_table(r: list[F.Fp2], backend: str) -> None:
    table = F.fp2_eq_table(fp2_array(r), backend=backend)
    assert table.shape == (2 ** len(r), 2)
    total = (0, 0)
    for row in table:
        total = F.fp2_add(total, (int(row[0]), int(row[1])))
    assert total == (1, 0)
    for b, row in enumerate(table):  # the definition
        expect = (1, 0)
        for t, rt in enumerate(r):
            expect = F.fp2_mul(expect, rt if (b >> t) & 1 else F.fp2_sub((1, 0), rt))
        assert (int(row[0]), int(row[1])) == expect


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 5), st.data(), st.sampled_from(FP2_BACKENDS))
def test_eq_table_at_boolean_point_is_indicator(
    nvars: int, data: st.DataObject, backend: str
) -> None:
    point = data.draw(st.integers(0, 2**nvars - 1))
    r = [(1, 0) if (point >> t) & 1 else (0, 0) for t in range(nvars)]
    table = F.fp2_eq_table(fp2_array(r), backend=backend)
    expect = np.zeros((2**nvars, 2), np.uint64)
    expect[point, 0] = 1
    assert np.array_equal(table, expect)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 5).flatmap(
        lambda k: st.tuples(
            st.lists(fp2, min_size=2**k, max_size=2**k),
            st.lists(fp2, min_size=2**k, max_size=2**k),
            st.lists(fp2, min_size=k, max_size=k),
        )
    ),
    st.sampled_from(FP2_BACKENDS),
)
def test_sumcheck_round_and_fold(case: tuple[list[F.Fp2], ...], backend: str) -> None:
    u_list, v_list, r = case
    u, v = fp2_array(u_list), fp2_array(v_list)
    dot = F.fp2_dot(u, v, backend=backend)
    g = F.fp2_sumcheck_round(u, v, backend=backend)
    g0, g1, g2 = ((int(a), int(b)) for a, b in g)
    assert F.fp2_add(g0, g1) == (int(dot[0]), int(dot[1]))
    # g is the degree-2 polynomial sum_b u(X, b) v(X, b): check g(2) and g(r0) by folding.
    r0 = r[0]
    fu, fv = F.fp2_fold(u, r0, backend=backend), F.fp2_fold(v, r0, backend=backend)
    at_r0 = F.fp2_dot(fu, fv, backend=backend)
    two = (2, 0)
    fu2, fv2 = F.fp2_fold(u, two, backend=backend), F.fp2_fold(v, two, backend=backend)
    assert tuple(int(t) for t in F.fp2_dot(fu2, fv2, backend=backend)) == g2
    # Lagrange interpolation through 0, 1, 2 evaluated at r0.
    half = F.fp2_inv(two)
    x0, x1, x2 = r0, F.fp2_sub(r0, (1, 0)), F.fp2_sub(r0, two)
    l0 = F.fp2_mul(F.fp2_mul(x1, x2), half)
    l1 = F.fp2_neg(F.fp2_mul(x0, x2))
    l2 = F.fp2_mul(F.fp2_mul(x0, x1), half)
    interp = F.fp2_add(F.fp2_add(F.fp2_mul(g0, l0), F.fp2_mul(g1, l1)), F.fp2_mul(g2, l2))
    assert interp == (int(at_r0[0]), int(at_r0[1]))
    # Folding all the way equals the eq-table inner product: the multilinear extension at r.
    folded = u
    for rt in r:
        folded = F.fp2_fold(folded, rt, backend=backend)
    assert folded.shape == (1, 2)
    mle = F.fp2_dot(F.fp2_eq_table(fp2_array(r), backend=backend), u, backend=backend)
    assert np.array_equal(folded[0], mle)
    assert np.array_equal(u, fp2_array(u_list))  # fold did not modify its input


@pytest.mark.skipif(not (_binding.AVAILABLE and _binding.numba_available()), reason="needs both")
def test_fp2_backends_agree() -> None:
    rng = np.random.default_rng(3)
    u = rng.integers(0, P, (1024, 2), dtype=np.uint64)
    v = rng.integers(0, P, (1024, 2), dtype=np.uint64)
    r = rng.integers(0, P, (10, 2), dtype=np.uint64)
    for fn, args in [
        (F.fp2_eq_table, (r,)),
        (F.fp2_sumcheck_round, (u, v)),
        (F.fp2_fold, (u, r[0])),
        (F.fp2_dot, (u, v)),
    ]:
        assert np.array_equal(fn(*args, backend="c"), fn(*args, backend="numba"))  # type: ignore[operator]


def test_mle_through_colsums() -> None:
    # An F_{p^2}-weighted column sum is two F_p-weighted ones: eq(r)^T A via re/im weight rows.
    rng = np.random.default_rng(11)
    a = random_matrix(rng, np.int8, (8, 5))
    r = rng.integers(0, P, (3, 2), dtype=np.uint64)
    eq = F.fp2_eq_table(r)
    cols = F.weighted_colsums(a, eq.T)
    for j in range(5):
        expect = (0, 0)
        for i in range(8):
            expect = F.fp2_add(
                expect, F.fp2_mul((int(eq[i, 0]), int(eq[i, 1])), (int(a[i, j]) % P, 0))
            )
        assert (int(cols[0, j]), int(cols[1, j])) == expect


@pytest.mark.parametrize("backend", ["c", "numba"])
def test_sumcheck_tables_match_round_and_fold(backend: str) -> None:
    if backend == "c" and not _binding.AVAILABLE:
        pytest.skip("C extension not built")
    if backend == "numba" and not _binding.numba_available():
        pytest.skip("numba not installed")
    rng = np.random.default_rng(11)
    u = rng.integers(0, P, (16, 2), dtype=np.uint64)
    v = rng.integers(0, P, (16, 2), dtype=np.uint64)
    tables = F.SumcheckTables(u, v, backend=backend)
    for step in range(4):
        r = (int(rng.integers(0, P)), int(rng.integers(0, P)))
        np.testing.assert_array_equal(tables.round(), F.fp2_sumcheck_round(u, v))
        u, v = F.fp2_fold(u, np.array(r, np.uint64)), F.fp2_fold(v, np.array(r, np.uint64))
        tables.fold(r)
        assert tables.length == 16 >> (step + 1)
    assert tables.values() == ((int(u[0, 0]), int(u[0, 1])), (int(v[0, 0]), int(v[0, 1])))
    with pytest.raises(ShapeMismatchError):
        tables.round()
    with pytest.raises(ShapeMismatchError):
        F.SumcheckTables(u[:0], v[:0])
    with pytest.raises(ShapeMismatchError):
        F.SumcheckTables(np.zeros((3, 2), np.uint64), np.zeros((3, 2), np.uint64))
    # fold_and_round: the same tables and rounds in one call per step, None after the last fold.
    u = rng.integers(0, P, (32, 2), dtype=np.uint64)
    v = rng.integers(0, P, (32, 2), dtype=np.uint64)
    one, two = F.SumcheckTables(u, v, backend=backend), F.SumcheckTables(u, v, backend=backend)
    g = two.round()
    for step in range(5):
        r = (int(rng.integers(0, P)), int(rng.integers(0, P)))
        np.testing.assert_array_equal(g, one.round())
        one.fold(r)
        g = two.fold_and_round(r)
        assert (g is None) == (step == 4)
        assert two.length == one.length
    assert one.values() == two.values()
    with pytest.raises(InvalidInputError):
        F.SumcheckTables(u, v, backend=backend).fold_and_round((P, 0))
