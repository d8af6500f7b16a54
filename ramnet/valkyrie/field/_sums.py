"""Weighted row and column sums of integer matrices modulo p = 2^61 - 1.

The big reductions of VALKYRIE's checks (multilinear-extension evaluations and Freivalds checks)
run in C (csrc/field.c, vectorized, the code path picked at run time) or numba, split over
threads; they are exact for any int8/int16/int32/int64 entries, and every backend and code path
returns the same bits. Weights are canonical F_p elements (integers in [0, p), uint64 in arrays).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from ramnet._errors import InvalidInputError, ShapeMismatchError, UnsupportedDTypeError
from ramnet.orchid._pool import check_threads, parallel_map
from ramnet.valkyrie.field import _binding
from ramnet.valkyrie.field._scalar import P61

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


# ---- code paths ----


def field_paths() -> list[str]:
    """Return the C code paths of the field kernels this CPU and build can run.

    Returns:
        Names among ``portable``, ``avx2``, ``avx512``, ``avx512-vnni`` and ``avx512-ifma``;
        empty without the C extension.
    """
    if not _binding.AVAILABLE:
        return []
    lib = _binding.lib()
    return [name for name in _FIELD_PATHS if lib.ramnet_field_path_supported(_PATH_NUMBERS[name])]


def field_best_path() -> str | None:
    """Return the C code path ``auto`` picks for the field kernels, or None without C."""
    if not _binding.AVAILABLE:
        return None
    number = int(_binding.lib().ramnet_field_best_path())
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


def field_array(values: Any, what: str) -> np.ndarray:
    """Return ``values`` as a C-contiguous uint64 array of canonical F_p elements.

    Raises:
        InvalidInputError: Not integers, or an element outside [0, p) (``what`` names it).
    """
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
    w = field_array(weights, "weights")
    flat = w.ndim == 1
    if flat:
        w = w.reshape(1, -1)
    if w.ndim != 2 or w.shape[1] != length:
        raise ShapeMismatchError(
            f"weights must have shape (nw, {length}) or ({length},) to match the {what} of x, "
            f"got {np.shape(weights)}"
        )
    return w, flat


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
    suffix, ctype = _SUFFIX[x.dtype]
    name = f"ramnet_p61_{kind}_{suffix}"
    m, n = x.shape
    code = getattr(_binding.lib(), name)(
        path,
        m,
        n,
        _binding.pointer(x, ctype),
        _leading(x),
        w.shape[0],
        _binding.pointer(w),
        _binding.pointer(out),
    )
    _binding.check(code, name)


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
        kernels = _binding.numba_kernels()
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
    out = _reduce("vecmat", x, w, _binding.backend(backend), check_threads(threads), path)
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
    out = _reduce("matvec", x, w, _binding.backend(backend), check_threads(threads), path)
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
        w = field_array(weights, "weights")
        if w.ndim != 2:
            raise ShapeMismatchError(f"weights must have shape (nw, n), got {np.shape(weights)}")
        self._backend = _binding.backend(backend)
        if self._backend == "numba" and path != "auto":
            raise InvalidInputError("a code path can only be chosen with the C backend")
        self._path = _path_number(path)
        self._w = w
        self._w_ptr: Any = None

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
        m = x.shape[0]
        if self._backend == "numba" or nw * m == 0:
            out = np.zeros((nw, m), np.uint64)
            if out.size:
                out[:] = _binding.numba_kernels().matvec(x, self._w.view(np.int64))
            return out
        # The verifier calls this once per strip of every matrix it reduces: the weights'
        # pointer is made once, and the kernel writes every entry of ``out`` (zeroing it first).
        if self._w_ptr is None:
            self._w_ptr = _binding.pointer(self._w)
        suffix, ctype = _SUFFIX[x.dtype]
        name = f"ramnet_p61_matvec_{suffix}"
        out = np.empty((nw, m), np.uint64)
        code = getattr(_binding.lib(), name)(
            self._path,
            m,
            n,
            _binding.pointer(x, ctype),
            _leading(x),
            nw,
            self._w_ptr,
            _binding.pointer(out),
        )
        _binding.check(code, name)
        return out
