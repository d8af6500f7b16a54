"""STREAM kernels (copy, scale, add, triad): bitwise equal to numpy on every backend and C path."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import ramnet
from ramnet import orchid
from ramnet.orchid import _bindings, _stream
from tests.conftest import C_AVAILABLE, backend_param, c_paths, requires_c

OPS = ("copy", "scale", "add", "triad")
LENGTHS = (0, 1, 7, 33, 2**16 + 3, 2**21 + 5)  # the last is above the streaming-store threshold
SCALAR = 1.37


def _expected(op: str, b: np.ndarray, c: np.ndarray, dtype: type) -> np.ndarray:
    s = np.dtype(dtype).type(SCALAR)
    if op == "copy":
        return b.copy()
    if op == "scale":
        return s * b
    if op == "add":
        return b + c
    return b + s * c


def _misaligned(n: int, dtype: type) -> np.ndarray:
    """An n-element view of a bigger buffer that starts one element past a 64-byte boundary."""
    item = np.dtype(dtype).itemsize
    buf = np.empty(n + 64 // item + 1, dtype)
    off = next(i for i in range(1, 64 // item + 2) if (buf.ctypes.data + i * item) % 64 == item)
    view = buf[off : off + n]
    assert n == 0 or view.ctypes.data % 64 == item
    return view


@functools.cache
def _sources(n: int, dtype: type, misaligned: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    if misaligned:
        b, c = _misaligned(n, dtype), _misaligned(n, dtype)
    else:
        b, c = np.empty(n, dtype), np.empty(n, dtype)
    b[...] = rng.standard_normal(n)
    c[...] = rng.standard_normal(n)
    b.flags.writeable = False
    c.flags.writeable = False
    return b, c


@functools.cache
def _expected_cached(op: str, n: int, dtype: type, misaligned: bool) -> np.ndarray:
    b, c = _sources(n, dtype, misaligned)
    return _expected(op, b, c, dtype)


def _vectors(n: int, dtype: type, misaligned: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Destination (filled with NaN) and two read-only sources, shared between tests.

    ``misaligned`` gives views that start one element past a 64-byte boundary.
    """
    a = _misaligned(n, dtype) if misaligned else np.empty(n, dtype)
    a[...] = np.nan
    b, c = _sources(n, dtype, misaligned)
    return a, b, c


def _operands(op: str, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, ...]:
    return (b,) if op in ("copy", "scale") else (b, c)


def _bits(x: np.ndarray) -> np.ndarray:
    return x.view(np.uint8)


def _call_public(op: str, a: np.ndarray, b: np.ndarray, c: np.ndarray, **kw: object) -> None:
    if op == "copy":
        orchid.copy(a, b, **kw)
    elif op == "scale":
        orchid.scale(a, b, SCALAR, **kw)
    elif op == "add":
        orchid.add(a, b, c, **kw)
    else:
        orchid.triad(a, b, c, SCALAR, **kw)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("misaligned", [False, True], ids=["aligned", "misaligned"])
@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("backend", [backend_param(x) for x in ("c", "numba", "numpy")])
def test_public_ops_bitwise_equal_numpy(
    backend: str, dtype: type, n: int, misaligned: bool, threads: int
) -> None:
    a, b, c = _vectors(n, dtype, misaligned)
    for op in OPS:
        a[...] = np.nan
        _call_public(op, a, b, c, threads=threads, backend=backend)
        assert a.dtype == np.dtype(dtype) and a.shape == (n,)
        np.testing.assert_array_equal(
            _bits(a), _bits(_expected_cached(op, n, dtype, misaligned)), err_msg=op
        )
    # Sources are left alone (they are read-only, and equal to a fresh draw).
    np.testing.assert_array_equal(b, np.random.default_rng(n).standard_normal(n).astype(dtype))


def _path_params() -> list[object]:
    return [pytest.param(p, id=p) for p in c_paths("stream")]


@requires_c
@pytest.mark.parametrize("path", _path_params())
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("misaligned", [False, True], ids=["aligned", "misaligned"])
@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_every_c_path_bitwise_equal_numpy(
    dtype: type, n: int, misaligned: bool, threads: int, path: str
) -> None:
    a, b, c = _vectors(n, dtype, misaligned)
    for op in OPS:
        a[...] = np.nan
        scalar = {"scalar": SCALAR} if op in ("scale", "triad") else {}
        _stream.run(op, a, *_operands(op, b, c), threads=threads, backend="c", path=path, **scalar)
        np.testing.assert_array_equal(
            _bits(a), _bits(_expected_cached(op, n, dtype, misaligned)), err_msg=op
        )


@requires_c
@pytest.mark.parametrize("path", _path_params())
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_bindings_stream_by_path_number(dtype: type, path: str) -> None:
    n, misaligned = 2**21 + 5, True
    a, b, c = _vectors(n, dtype, misaligned)
    number = _bindings.path_number(path)
    for op in OPS:
        a[...] = np.nan
        _bindings.stream(op, number, a, *_operands(op, b, c), scalar=SCALAR)
        np.testing.assert_array_equal(
            _bits(a), _bits(_expected_cached(op, n, dtype, misaligned)), err_msg=op
        )


@requires_c
def test_unsupported_stream_path() -> None:
    a, b = np.zeros(8), np.ones(8)
    unsupported = [p for p in _bindings.PATH_NAMES if p not in c_paths("stream")]
    for path in unsupported:
        with pytest.raises(ramnet.BackendUnavailableError):
            _stream.run("copy", a, b, backend="c", path=path)
        with pytest.raises(ramnet.BackendUnavailableError):
            _bindings.stream("copy", _bindings.path_number(path), a, b)
    with pytest.raises(ramnet.InvalidInputError):
        _stream.run("copy", a, b, backend="c", path="no-such-path")


def test_two_dimensional_contiguous_arrays() -> None:
    rng = np.random.default_rng(3)
    b = rng.standard_normal((30, 7))
    c = rng.standard_normal((30, 7))
    a = np.empty_like(b)
    orchid.triad(a, b, c, SCALAR)
    np.testing.assert_array_equal(_bits(a), _bits(b + SCALAR * c))


def test_special_values_propagate_like_numpy() -> None:
    b = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e308, 5e-324] * 3)
    c = np.array([1.0, np.inf, 2.0, -0.0, -0.0, 1e308, 5e-324] * 3)
    for backend in ("numpy", "numba") + (("c",) if C_AVAILABLE else ()):
        a = np.empty_like(b)
        with np.errstate(all="ignore"):
            orchid.triad(a, b, c, 3.0, backend=backend)
            expected = b + 3.0 * c
        np.testing.assert_array_equal(_bits(a), _bits(expected), err_msg=backend)


# ---- errors ----


def test_dtype_mismatch() -> None:
    with pytest.raises(ramnet.UnsupportedDTypeError):
        orchid.copy(np.zeros(10), np.ones(10, np.float32))
    with pytest.raises(ramnet.UnsupportedDTypeError):
        orchid.triad(np.zeros(10, np.float32), np.ones(10, np.float32), np.ones(10), 2.0)
    with pytest.raises(ramnet.UnsupportedDTypeError):
        orchid.add(np.zeros(10, np.int64), np.ones(10, np.int64), np.ones(10, np.int64))
    with pytest.raises(ramnet.UnsupportedDTypeError):
        orchid.copy(np.zeros(3), [1.0, 2.0, 3.0])  # type: ignore[arg-type]


def test_shape_mismatch() -> None:
    with pytest.raises(ramnet.ShapeMismatchError):
        orchid.add(np.zeros(10), np.ones(10), np.ones(11))
    with pytest.raises(ramnet.ShapeMismatchError):
        orchid.copy(np.zeros(10), np.ones(9))
    with pytest.raises(ramnet.ShapeMismatchError):
        orchid.scale(np.zeros((2, 5)), np.ones(10), 2.0)


def test_read_only_destination() -> None:
    a = np.zeros(10)
    a.flags.writeable = False
    with pytest.raises(ramnet.InvalidInputError):
        orchid.copy(a, np.ones(10))
    assert not a.any()


@pytest.mark.parametrize("which", ["a", "b", "c"])
def test_non_contiguous_arrays(which: str) -> None:
    arrays = {"a": np.zeros(10), "b": np.ones(10), "c": np.ones(10)}
    arrays[which] = np.zeros(20)[::2]
    with pytest.raises(ramnet.InvalidInputError):
        orchid.triad(arrays["a"], arrays["b"], arrays["c"], 2.0)
    with pytest.raises(ramnet.InvalidInputError):
        orchid.copy(np.zeros((3, 4), order="F"), np.ones((3, 4), order="F"))


def test_unknown_backend() -> None:
    with pytest.raises(ramnet.InvalidInputError):
        orchid.copy(np.zeros(3), np.ones(3), backend="gpu")


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2"])
def test_bad_threads(threads: object) -> None:
    with pytest.raises(ramnet.InvalidInputError):
        orchid.copy(np.zeros(2**18), np.ones(2**18), threads=threads, backend="c")  # type: ignore[arg-type]
