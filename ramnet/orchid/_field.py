"""Prime-field kernels for VALKYRIE: arithmetic modulo p = 2^61 - 1 and in F_{p^2}.

p = 2^61 - 1 is a Mersenne prime with p = 3 (mod 4), so F_{p^2} = F_p[i] / (i^2 + 1). An F_p
element is an integer in [0, p) (uint64 in arrays); an F_{p^2} element a + b*i is the pair
(a, b), an array of them has shape (n, 2) uint64.

The big reductions (weighted column and row sums of an integer matrix modulo p: multilinear
extension evaluations and Freivalds checks) run in C (csrc/field.c, vectorized, picked at run
time) or numba, split over threads; they are exact for any int8/int16/int32/int64 entries and
every backend and code path returns the same bits. The F_{p^2} vector kernels (eq table,
sum-check round, fold, dot) are scalar and linear-time. The small pure-Python helpers
(:func:`fp2_add`, :func:`fp2_mul`, ...) are for the verifier's O(log n) work.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from ramnet._errors import (
    BackendUnavailableError,
    InvalidInputError,
    ShapeMismatchError,
    UnsupportedDTypeError,
)
from ramnet.orchid import _bindings, _numba_shim
from ramnet.orchid._pool import parallel_map
from ramnet.orchid._scheduler import default_threads

__all__ = [
    "P61",
    "RowSums",
    "SumcheckTables",
    "field_best_path",
    "field_paths",
    "fp2_add",
    "fp2_dot",
    "fp2_eq_table",
    "fp2_fold",
    "fp2_inv",
    "fp2_mul",
    "fp2_neg",
    "fp2_sub",
    "fp2_sumcheck_round",
    "weighted_colsums",
    "weighted_rowsums",
]

P61 = 2**61 - 1
"""The field modulus, the Mersenne prime 2^61 - 1."""

Fp2 = tuple[int, int]

_SUFFIX = {
    np.dtype(np.int8): ("s8", "int8_t *"),
    np.dtype(np.int16): ("s16", "int16_t *"),
    np.dtype(np.int32): ("s32", "int32_t *"),
    np.dtype(np.int64): ("s64", "int64_t *"),
}
_FIELD_PATHS = ("portable", "avx2", "avx512", "avx512-vnni", "avx512-ifma")
# RAMNET_PATH_* numbers (csrc/ramnet.h); avx512-ifma runs int8 through VNNI and
# int16/int32 through IFMA; avx512-vnni runs int8 through VNNI and the rest as avx512.
_PATH_NUMBERS = {"portable": 0, "avx2": 1, "avx512": 3, "avx512-vnni": 4, "avx512-ifma": 6}
_MIN_SPLIT = 1 << 18  # entries below which one thread does the whole reduction
_ALIGN = 64  # columns or rows per thread are multiples of this


# ---- backends and paths ----


def _backend(backend: str) -> str:
    if backend == "auto":
        return "c" if _bindings.AVAILABLE else "numba"
    if backend == "c":
        if not _bindings.AVAILABLE:
            raise BackendUnavailableError(
                f"the C kernels are not built ({_bindings.IMPORT_ERROR}); use backend='numba'"
            )
        return "c"
    if backend == "numba":
        if not _numba_shim.available():
            raise BackendUnavailableError("numba is not installed")
        return "numba"
    raise InvalidInputError(f"unknown backend {backend!r}; choose auto, c or numba")


def field_paths() -> list[str]:
    """Return the C code paths of the field kernels this CPU and build can run.

    Returns:
        Names among ``portable``, ``avx2``, ``avx512``, ``avx512-vnni`` and ``avx512-ifma``;
        empty without the C extension.
    """
    if not _bindings.AVAILABLE:
        return []
    lib = _bindings._native.lib
    return [name for name in _FIELD_PATHS if lib.ramnet_field_path_supported(_PATH_NUMBERS[name])]


def field_best_path() -> str | None:
    """Return the C code path ``auto`` picks for the field kernels, or None without C."""
    if not _bindings.AVAILABLE:
        return None
    number = int(_bindings._native.lib.ramnet_field_best_path())
    return {v: k for k, v in _PATH_NUMBERS.items()}[number]


def _path_number(path: str) -> int:
    if path == "auto":
        return -1
    if path not in _PATH_NUMBERS:
        raise InvalidInputError(
            f"unknown field code path {path!r}; choose auto or one of {', '.join(_FIELD_PATHS)}"
        )
    return _PATH_NUMBERS[path]


# ---- input checks ----


def _matrix(x: Any) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise InvalidInputError("x must be a numpy array")
    if x.ndim != 2:
        raise ShapeMismatchError(f"x must be 2-D, got shape {x.shape}")
    if x.dtype not in _SUFFIX:
        raise UnsupportedDTypeError(f"x must be int8, int16, int32 or int64, got {x.dtype}")
    rows, cols = x.shape
    item = x.itemsize
    if x.size == 0 or rows == 1:
        return x if cols <= 1 or x.strides[1] == item else np.ascontiguousarray(x)
    contiguous_rows = cols <= 1 or x.strides[1] == item
    stride = x.strides[0]
    if not contiguous_rows or stride % item or stride < cols * item:
        return np.ascontiguousarray(x)
    return x


def _leading(x: np.ndarray) -> int:
    if x.size == 0 or x.shape[0] == 1:
        return int(max(x.shape[1], 1))
    return int(x.strides[0] // x.itemsize)


def _field_array(values: Any, what: str) -> np.ndarray:
    """Return ``values`` as a C-contiguous uint64 array of canonical F_p elements."""
    a = np.asarray(values)
    if a.dtype == object:
        try:
            a = np.array(values, dtype=np.uint64)
        except (OverflowError, TypeError, ValueError):
            raise InvalidInputError(f"{what} must hold integers in [0, 2^61 - 1)") from None
    if a.dtype.kind not in "iu":
        raise UnsupportedDTypeError(f"{what} must be an integer array, got {a.dtype}")
    if a.size and (a.dtype.kind == "i" and int(a.min()) < 0):
        raise InvalidInputError(f"{what} must hold integers in [0, 2^61 - 1), found a negative")
    a = np.ascontiguousarray(a, dtype=np.uint64)
    if a.size and int(a.max()) >= P61:
        raise InvalidInputError(f"{what} must hold integers in [0, 2^61 - 1), found one >= p")
    return a


def _weights(weights: Any, length: int, what: str) -> tuple[np.ndarray, bool]:
    w = _field_array(weights, "weights")
    flat = w.ndim == 1
    if flat:
        w = w.reshape(1, -1)
    if w.ndim != 2 or w.shape[1] != length:
        raise ShapeMismatchError(
            f"weights must have shape (nw, {length}) or ({length},) to match the {what} of x, "
            f"got {np.shape(weights)}"
        )
    return w, flat


def _fp2_vector(values: Any, what: str) -> np.ndarray:
    a = _field_array(values, what)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ShapeMismatchError(f"{what} must have shape (n, 2) (re, im), got {a.shape}")
    return a


def _threads(threads: int | None) -> int:
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidInputError(f"threads must be a positive integer, got {threads!r}")
    return threads


def _splits(length: int, parts: int) -> list[tuple[int, int]]:
    """Split range(length) into up to ``parts`` pieces whose bounds are multiples of _ALIGN."""
    units = -(-length // _ALIGN)
    parts = max(1, min(parts, units))
    edges = [min(length, (units * k // parts) * _ALIGN) for k in range(parts + 1)]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def _run(tasks: list[Callable[[], None]]) -> None:
    """Run the tasks on the shared pool, the first in the calling thread."""
    parallel_map(lambda task: task(), tasks, len(tasks))


# ---- C calls ----


def _c_reduce(kind: str, path: int, x: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    """One C call: ``kind`` is ``vecmat`` (column sums) or ``matvec`` (row sums)."""
    ffi, lib = _bindings._native.ffi, _bindings._native.lib
    suffix, ctype = _SUFFIX[x.dtype]
    name = f"ramnet_p61_{kind}_{suffix}"
    m, n = x.shape
    code = getattr(lib, name)(
        path,
        m,
        n,
        ffi.cast(ctype, x.__array_interface__["data"][0]),
        _leading(x),
        w.shape[0],
        ffi.cast("uint64_t *", w.__array_interface__["data"][0]),
        ffi.cast("uint64_t *", out.__array_interface__["data"][0]),
    )
    _bindings._check(code, name)


def _reduce(
    kind: str, x: np.ndarray, w: np.ndarray, backend: str, threads: int, path: str
) -> np.ndarray:
    m, n = x.shape
    length = n if kind == "vecmat" else m
    out = np.zeros((w.shape[0], length), np.uint64)
    if out.size == 0:
        return out
    parts = _splits(length, threads if x.size >= _MIN_SPLIT else 1)
    if backend == "c":
        number = _path_number(path)

        def piece(a: int, b: int) -> Callable[[], None]:
            def task() -> None:
                if kind == "vecmat":
                    part = np.empty((w.shape[0], b - a), np.uint64)
                    _c_reduce(kind, number, x[:, a:b], w, part)
                else:
                    part = np.empty((w.shape[0], b - a), np.uint64)
                    _c_reduce(kind, number, x[a:b], np.ascontiguousarray(w), part)
                out[:, a:b] = part

            return task

    else:
        if path != "auto":
            raise InvalidInputError("a code path can only be chosen with the C backend")
        kernels = _numba_shim.field()
        w64 = w.view(np.int64)

        def piece(a: int, b: int) -> Callable[[], None]:
            def task() -> None:
                if kind == "vecmat":
                    out[:, a:b] = kernels.vecmat(x[:, a:b], w64)
                else:
                    out[:, a:b] = kernels.matvec(x[a:b], w64)

            return task

    _run([piece(a, b) for a, b in parts])
    return out


def weighted_colsums(
    x: np.ndarray,
    weights: Any,
    *,
    backend: str = "auto",
    threads: int | None = None,
    path: str = "auto",
) -> np.ndarray:
    """Weighted column sums modulo p: ``out[w, j] = sum_i weights[w, i] * x[i, j] mod p``.

    This is ``weights @ x`` over F_p, exact for any entries (a multilinear-extension evaluation
    when the weights are an eq table; for F_{p^2} weights pass the real and imaginary parts as two
    weight rows). The columns are split over ``threads`` threads.

    Args:
        x: (m, n) int8, int16, int32 or int64 array. Any view with contiguous rows is used in
            place (its leading dimension is its row stride); other layouts are copied.
        weights: (nw, m) or (m,) integers in [0, p).
        backend: ``auto`` (C if built, else numba), ``c`` or ``numba``.
        threads: Threads to use; default every core this process may run on.
        path: C code path: ``auto`` or one of :func:`field_paths` (C backend only).

    Returns:
        (nw, n) uint64 array of canonical residues, or (n,) for 1-D weights.

    Raises:
        InvalidInputError: Bad shapes, dtypes, weights out of range, or a bad option
            (ShapeMismatchError and UnsupportedDTypeError are subclasses).
        BackendUnavailableError: The backend or code path is not available here.
    """
    x = _matrix(x)
    w, flat = _weights(weights, x.shape[0], "rows")
    out = _reduce("vecmat", x, w, _backend(backend), _threads(threads), path)
    return out[0] if flat else out


def weighted_rowsums(
    x: np.ndarray,
    weights: Any,
    *,
    backend: str = "auto",
    threads: int | None = None,
    path: str = "auto",
) -> np.ndarray:
    """Weighted row sums modulo p: ``out[w, i] = sum_j x[i, j] * weights[w, j] mod p``.

    This is ``x @ weights.T`` over F_p, exact for any entries (a Freivalds check's ``x @ r``).
    The rows are split over ``threads`` threads.

    Args:
        x: (m, n) int8, int16, int32 or int64 array. Any view with contiguous rows is used in
            place; other layouts are copied.
        weights: (nw, n) or (n,) integers in [0, p).
        backend: ``auto`` (C if built, else numba), ``c`` or ``numba``.
        threads: Threads to use; default every core this process may run on.
        path: C code path: ``auto`` or one of :func:`field_paths` (C backend only).

    Returns:
        (nw, m) uint64 array of canonical residues, or (m,) for 1-D weights.

    Raises:
        InvalidInputError: Bad shapes, dtypes, weights out of range, or a bad option.
        BackendUnavailableError: The backend or code path is not available here.
    """
    x = _matrix(x)
    w, flat = _weights(weights, x.shape[1], "columns")
    out = _reduce("matvec", x, w, _backend(backend), _threads(threads), path)
    return out[0] if flat else out


class RowSums:
    """Weighted row sums modulo p of many matrices (or strips of one) against one set of weights.

    ``weighted_rowsums`` checks its weights and splits the rows over threads on every call; a
    caller that reduces a matrix strip by strip, each strip on the thread that is also hashing it,
    would pay that on every strip. This class checks the weights once; each call runs one kernel
    in the calling thread (the C kernels release the GIL, so several threads can call at once).
    """

    def __init__(self, weights: Any, *, backend: str = "auto", path: str = "auto") -> None:
        """Args:
            weights: (nw, n) integers in [0, p).
            backend: ``auto`` (C if built, else numba), ``c`` or ``numba``.
            path: C code path: ``auto`` or one of :func:`field_paths` (C backend only).

        Raises:
            InvalidInputError: Weights that are not 2-D or not in [0, p), or a bad option.
            BackendUnavailableError: The backend or code path is not available here.
        """
        w = _field_array(weights, "weights")
        if w.ndim != 2:
            raise ShapeMismatchError(f"weights must have shape (nw, n), got {np.shape(weights)}")
        self._backend = _backend(backend)
        if self._backend == "numba" and path != "auto":
            raise InvalidInputError("a code path can only be chosen with the C backend")
        self._path = _path_number(path)
        self._w = w

    @property
    def shape(self) -> tuple[int, int]:
        """(nw, n): the number of weight vectors and their length."""
        return (int(self._w.shape[0]), int(self._w.shape[1]))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``out[w, i] = sum_j x[i, j] * weights[w, j] mod p``, on the calling thread.

        Args:
            x: (m, n) int8, int16, int32 or int64 array; any view with contiguous rows is used
                in place.

        Returns:
            (nw, m) uint64 array of canonical residues.

        Raises:
            InvalidInputError: Not a 2-D integer array, or n differs from the weights' length.
        """
        x = _matrix(x)
        nw, n = self.shape
        if x.shape[1] != n:
            raise ShapeMismatchError(f"x has {x.shape[1]} columns, the weights {n}")
        out = np.zeros((nw, x.shape[0]), np.uint64)
        if out.size == 0:
            return out
        if self._backend == "numba":
            out[:] = _numba_shim.field().matvec(x, self._w.view(np.int64))
        else:
            _c_reduce("matvec", self._path, x, self._w, out)
        return out


# ---- F_{p^2} vector kernels ----


def _ptr(a: np.ndarray) -> Any:
    return _bindings._native.ffi.cast("uint64_t *", a.__array_interface__["data"][0])


def fp2_eq_table(r: Any, *, backend: str = "auto") -> np.ndarray:
    """The eq table of a point r in F_{p^2}^nvars.

    ``out[b] = prod_t (r_t if bit t of b else 1 - r_t)``, so that ``out @ f`` evaluates the
    multilinear extension of f (indexed with variable t as bit t) at r.

    Args:
        r: (nvars, 2) canonical F_{p^2} elements (nvars <= 40).
        backend: ``auto``, ``c`` or ``numba``.

    Returns:
        (2**nvars, 2) uint64 array.

    Raises:
        InvalidInputError: Bad shape or non-canonical values.
        BackendUnavailableError: The backend is not available here.
    """
    r = _fp2_vector(np.asarray(r).reshape(-1, 2) if np.size(r) == 0 else r, "r")
    if r.shape[0] > 40:
        raise InvalidInputError(f"eq table of {r.shape[0]} variables is too large")
    if _backend(backend) == "numba":
        return np.asarray(_numba_shim.field().eq_table(r))
    out = np.empty((1 << r.shape[0], 2), np.uint64)
    code = _bindings._native.lib.ramnet_p61x2_eq_table(r.shape[0], _ptr(r), _ptr(out))
    _bindings._check(code, "ramnet_p61x2_eq_table")
    return out


def _pair(u: Any, v: Any) -> tuple[np.ndarray, np.ndarray]:
    u = _fp2_vector(u, "u")
    v = _fp2_vector(v, "v")
    if u.shape != v.shape:
        raise ShapeMismatchError(f"u and v differ in shape: {u.shape} vs {v.shape}")
    return u, v


def fp2_sumcheck_round(u: Any, v: Any, *, backend: str = "auto") -> np.ndarray:
    """One sum-check round over the lowest variable of ``g(X) = sum_b u(X, b) v(X, b)``.

    u and v are tables of multilinear functions whose lowest index bit is X: pair t is
    ``(u[2t], u[2t+1]) = (u(0, t), u(1, t))``.

    Args:
        u: (n, 2) canonical F_{p^2} elements, n even.
        v: (n, 2) likewise.
        backend: ``auto``, ``c`` or ``numba``.

    Returns:
        (3, 2) uint64 array: g(0), g(1), g(2). g(0) + g(1) equals ``fp2_dot(u, v)``.

    Raises:
        InvalidInputError: Bad shapes, odd n, or non-canonical values.
        BackendUnavailableError: The backend is not available here.
    """
    u, v = _pair(u, v)
    if u.shape[0] % 2:
        raise ShapeMismatchError(f"sum-check tables need an even length, got {u.shape[0]}")
    if _backend(backend) == "numba":
        return np.asarray(_numba_shim.field().sumcheck_round(u, v))
    g = np.empty((3, 2), np.uint64)
    code = _bindings._native.lib.ramnet_p61x2_sumcheck_round(u.shape[0], _ptr(u), _ptr(v), _ptr(g))
    _bindings._check(code, "ramnet_p61x2_sumcheck_round")
    return g


def fp2_fold(u: Any, r: Any, *, backend: str = "auto") -> np.ndarray:
    """Fix the lowest variable of a table to r: ``out[t] = u[2t] + r (u[2t+1] - u[2t])``.

    The input is not modified; a new array is returned.

    Args:
        u: (n, 2) canonical F_{p^2} elements, n even.
        r: An F_{p^2} element: a (re, im) pair or a (2,) array.
        backend: ``auto``, ``c`` or ``numba``.

    Returns:
        (n/2, 2) uint64 array.

    Raises:
        InvalidInputError: Bad shapes, odd n, or non-canonical values.
        BackendUnavailableError: The backend is not available here.
    """
    u = _fp2_vector(u, "u")
    r = _field_array(r, "r").reshape(-1)
    if r.shape != (2,):
        raise ShapeMismatchError(f"r must be one (re, im) pair, got shape {np.shape(r)}")
    if u.shape[0] % 2:
        raise ShapeMismatchError(f"fold needs an even length, got {u.shape[0]}")
    if _backend(backend) == "numba":
        return np.asarray(_numba_shim.field().fold(u, r))
    work = u.copy()
    code = _bindings._native.lib.ramnet_p61x2_fold(u.shape[0], _ptr(work), _ptr(r))
    _bindings._check(code, "ramnet_p61x2_fold")
    half: np.ndarray = work[: u.shape[0] // 2].copy()
    return half


class SumcheckTables:
    """The prover's two tables for sum-check rounds, validated once and folded in place.

    ``fp2_sumcheck_round`` and ``fp2_fold`` check and copy their inputs on every call, which
    costs more than the arithmetic at small sizes; a prover runs log n rounds on the same
    tables, so this class checks them once and then calls the kernels directly.
    """

    def __init__(self, u: Any, v: Any, *, backend: str = "auto") -> None:
        """Args:
            u, v: (n, 2) canonical F_{p^2} tables of one power-of-two length n.
            backend: ``auto``, ``c`` or ``numba``.

        Raises:
            InvalidInputError: Bad shapes, a length that is not a power of two, or
                non-canonical values.
        """
        u, v = _pair(u, v)
        n = u.shape[0]
        if n == 0 or n & (n - 1):
            raise ShapeMismatchError(f"sum-check tables need a power-of-two length, got {n}")
        self._backend = _backend(backend)
        self._u, self._v = u.copy(), v.copy()
        self._n = int(n)
        # The tables are folded in place, so their addresses (and those of the round's output
        # and the fold point) are cast once: a round's arithmetic at n = 2048 costs less than
        # the conversions would on every call.
        self._g = np.empty((3, 2), np.uint64)
        self._point = np.empty(2, np.uint64)
        if self._backend == "c":
            self._ptrs = tuple(_ptr(x) for x in (self._u, self._v, self._g, self._point))

    @property
    def length(self) -> int:
        """The current table length (halved by each fold)."""
        return self._n

    def round(self) -> np.ndarray:
        """g(0), g(1), g(2) of the round over the lowest variable, as a (3, 2) array."""
        if self._n < 2:
            raise ShapeMismatchError("no variable left to sum over")
        if self._backend == "numba":
            u, v = self._u[: self._n], self._v[: self._n]
            return np.asarray(_numba_shim.field().sumcheck_round(u, v))
        pu, pv, pg, _ = self._ptrs
        code = _bindings._native.lib.ramnet_p61x2_sumcheck_round(self._n, pu, pv, pg)
        _bindings._check(code, "ramnet_p61x2_sumcheck_round")
        return self._g.copy()

    def fold(self, r: Fp2) -> None:
        """Bind the lowest variable to r in both tables (halves their length).

        Raises:
            InvalidInputError: r is not a canonical F_{p^2} element.
        """
        if self._n < 2:
            raise ShapeMismatchError("no variable left to fold")
        if not (0 <= r[0] < P61 and 0 <= r[1] < P61):
            raise InvalidInputError("r must be a canonical F_{p^2} element")
        point = self._point
        point[0], point[1] = r
        if self._backend == "numba":
            for name in ("_u", "_v"):
                table = getattr(self, name)
                table[: self._n // 2] = _numba_shim.field().fold(table[: self._n], point)
        else:
            lib = _bindings._native.lib
            pu, pv, _, pr = self._ptrs
            for pointer in (pu, pv):
                code = lib.ramnet_p61x2_fold(self._n, pointer, pr)
                _bindings._check(code, "ramnet_p61x2_fold")
        self._n //= 2

    def fold_and_round(self, r: Fp2) -> np.ndarray | None:
        """``fold(r)``, then ``round()`` of the folded tables: a prover's step in one kernel call.

        Returns:
            The next round's (3, 2) array, or None when the fold bound the last variable.

        Raises:
            InvalidInputError: r is not a canonical F_{p^2} element.
        """
        if self._backend == "numba" or self._n < 2:
            self.fold(r)
            return self.round() if self._n >= 2 else None
        if not (0 <= r[0] < P61 and 0 <= r[1] < P61):
            raise InvalidInputError("r must be a canonical F_{p^2} element")
        self._point[0], self._point[1] = r
        pu, pv, pg, pr = self._ptrs
        code = _bindings._native.lib.ramnet_p61x2_fold_round(self._n, pu, pv, pr, pg)
        _bindings._check(code, "ramnet_p61x2_fold_round")
        self._n //= 2
        return self._g.copy() if self._n >= 2 else None

    def values(self) -> tuple[Fp2, Fp2]:
        """(u[0], v[0]): the tables' values once every variable is bound."""
        return (int(self._u[0, 0]), int(self._u[0, 1])), (int(self._v[0, 0]), int(self._v[0, 1]))


def fp2_dot(u: Any, v: Any, *, backend: str = "auto") -> np.ndarray:
    """The inner product ``sum_t u[t] v[t]`` over F_{p^2} (no conjugation).

    Args:
        u: (n, 2) canonical F_{p^2} elements.
        v: (n, 2) likewise.
        backend: ``auto``, ``c`` or ``numba``.

    Returns:
        (2,) uint64 array (re, im).

    Raises:
        InvalidInputError: Bad shapes or non-canonical values.
        BackendUnavailableError: The backend is not available here.
    """
    u, v = _pair(u, v)
    if _backend(backend) == "numba":
        return np.asarray(_numba_shim.field().dot(u, v))
    out = np.empty(2, np.uint64)
    code = _bindings._native.lib.ramnet_p61x2_dot(u.shape[0], _ptr(u), _ptr(v), _ptr(out))
    _bindings._check(code, "ramnet_p61x2_dot")
    return out


# ---- scalar F_{p^2} helpers (Python ints, for the verifier's O(log n) work) ----


def _element(a: Fp2) -> Fp2:
    re, im = int(a[0]), int(a[1])
    if not (0 <= re < P61 and 0 <= im < P61):
        raise InvalidInputError(f"F_(p^2) element {a!r} is not canonical")
    return re, im


def fp2_add(a: Fp2, b: Fp2) -> Fp2:
    """Return a + b in F_{p^2}; elements are canonical (re, im) integer pairs."""
    (ar, ai), (br, bi) = _element(a), _element(b)
    return (ar + br) % P61, (ai + bi) % P61


def fp2_sub(a: Fp2, b: Fp2) -> Fp2:
    """Return a - b in F_{p^2}."""
    (ar, ai), (br, bi) = _element(a), _element(b)
    return (ar - br) % P61, (ai - bi) % P61


def fp2_neg(a: Fp2) -> Fp2:
    """Return -a in F_{p^2}."""
    ar, ai = _element(a)
    return (-ar) % P61, (-ai) % P61


def fp2_mul(a: Fp2, b: Fp2) -> Fp2:
    """Return a * b in F_{p^2} (i^2 = -1)."""
    (ar, ai), (br, bi) = _element(a), _element(b)
    return (ar * br - ai * bi) % P61, (ar * bi + ai * br) % P61


def fp2_inv(a: Fp2) -> Fp2:
    """Return 1 / a in F_{p^2}: conj(a) / (re^2 + im^2), the norm being nonzero for a != 0.

    Raises:
        InvalidInputError: a is zero (or not canonical).
    """
    ar, ai = _element(a)
    norm = (ar * ar + ai * ai) % P61
    if norm == 0:
        raise InvalidInputError("zero has no inverse in F_(p^2)")
    inv = pow(norm, P61 - 2, P61)
    return ar * inv % P61, (-ai) * inv % P61
