"""Shared fixtures and helpers for RAMNET's tests."""

from __future__ import annotations

import numpy as np
import pytest

from ramnet.orchid import _bindings

C_AVAILABLE = _bindings.AVAILABLE

requires_c = pytest.mark.skipif(
    not C_AVAILABLE, reason=f"C extension not built: {_bindings.IMPORT_ERROR}"
)

INT_DTYPES = (np.int8, np.int16, np.int32)
FLOAT_DTYPES = (np.float32, np.float64)
ALL_DTYPES = INT_DTYPES + FLOAT_DTYPES
BACKENDS = ("c", "numba", "numpy")


def c_paths(family: str) -> list[str]:
    """Every C code path of a kernel family this CPU supports (empty without the extension)."""
    return _bindings.supported_paths(family) if C_AVAILABLE else []


def gemm_family(dtype: np.dtype | type) -> str:
    return "gemm_s8" if np.dtype(dtype) == np.int8 else "gemm_wide"


def backend_param(name: str) -> object:
    """A pytest param for a backend name, skipped when it cannot run here."""
    marks = [requires_c] if name == "c" else []
    return pytest.param(name, marks=marks, id=name)


def value_range(dtype: np.dtype | type, k: int = 1) -> tuple[int, int]:
    """Inclusive value range for random operands: full range for int8/int16, bounded for int32."""
    dt = np.dtype(dtype)
    if dt == np.int32:
        # Keep K * max|A| * max|B| far below 2^63.
        bound = min(2**31 - 1, int((2**62 // max(k, 1)) ** 0.5))
        return -bound, bound
    info = np.iinfo(dt)
    return int(info.min), int(info.max)


def random_matrix(
    rng: np.random.Generator, shape: tuple[int, int], dtype: np.dtype | type, k: int | None = None
) -> np.ndarray:
    """A random matrix of ``dtype``: integers over the dtype's range, or standard normal floats."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.standard_normal(shape).astype(dt)
    lo, hi = value_range(dt, k if k is not None else shape[-1])
    return rng.integers(lo, hi, size=shape, dtype=dt, endpoint=True)


def operands(
    rng: np.random.Generator, m: int, k: int, n: int, dtype: np.dtype | type
) -> tuple[np.ndarray, np.ndarray]:
    """Random A (m x k) and B (k x n) of one dtype."""
    return random_matrix(rng, (m, k), dtype, k), random_matrix(rng, (k, n), dtype, k)


def reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """numpy's product: exact int64 for integers, float64 for floats."""
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        return a.astype(np.int64) @ b.astype(np.int64)
    return a.astype(np.float64) @ b.astype(np.float64)


def assert_product(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """Assert C = A.B: bit-exact for integers, within float rounding for floats."""
    assert c.shape == (a.shape[0], b.shape[1])
    ref = reference(a, b)
    if c.dtype.kind == "i":
        np.testing.assert_array_equal(c.astype(np.int64), ref)
    else:
        k = a.shape[1]
        eps = np.finfo(c.dtype).eps
        # A rigorous-enough bound: K * eps * |A|.|B| (plus a small absolute floor).
        bound = (k + 2) * eps * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64))
        err = np.abs(c.astype(np.float64) - ref)
        assert np.all(err <= bound + 1e-30), float(np.max(err - bound))


def strided_copy(x: np.ndarray, layout: str) -> np.ndarray:
    """Return an array equal to ``x`` with an awkward memory layout.

    Layouts: ``T`` (a transposed view), ``F`` (Fortran order), ``rowstep`` (every other row of a
    bigger array), ``colstep`` (every other column), ``reversed`` (negative strides), ``offset``
    (a view starting one element into a bigger buffer).
    """
    if layout == "T":
        return np.ascontiguousarray(x.T).T
    if layout == "F":
        return np.asfortranarray(x)
    if layout == "rowstep":
        big = np.zeros((2 * x.shape[0], x.shape[1]), x.dtype)
        big[::2] = x
        return big[::2]
    if layout == "colstep":
        big = np.zeros((x.shape[0], 2 * x.shape[1]), x.dtype)
        big[:, ::2] = x
        return big[:, ::2]
    if layout == "reversed":
        return x[::-1, ::-1].copy()[::-1, ::-1]
    if layout == "offset":
        buf = np.zeros(x.size + 1, x.dtype)
        view = buf[1:].reshape(x.shape)
        view[...] = x
        return view
    raise ValueError(layout)


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator, fresh for each test."""
    return np.random.default_rng(20240601)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Isolate configuration: no RAMNET_* variables, and an empty user config folder."""
    import os

    for var in list(os.environ):
        if var.startswith("RAMNET_"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg")))
