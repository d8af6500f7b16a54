"""STREAM operations on float vectors: copy, scale, add, triad.

Large vectors are cut into one contiguous chunk per thread; each chunk is one C call (the GIL is
released), so the threads stream in parallel.
"""

from __future__ import annotations

import itertools

import numpy as np

from ramnet._errors import InvalidInputError, ShapeMismatchError, UnsupportedDTypeError
from ramnet.orchid import _bindings, _numba_shim
from ramnet.orchid._backends import BACKENDS
from ramnet.orchid._pool import check_threads, parallel_map

# Below this many elements per thread, one thread is faster than waking several.
_MIN_PER_THREAD = 1 << 16


def _check(op: str, a: np.ndarray, operands: tuple[np.ndarray, ...]) -> None:
    if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
        raise UnsupportedDTypeError(f"{op}: arrays must be float32 or float64 numpy arrays")
    if not a.flags.writeable:
        raise InvalidInputError(f"{op}: the destination is read-only")
    for x in (a, *operands):
        if not isinstance(x, np.ndarray) or x.dtype != a.dtype:
            raise UnsupportedDTypeError(f"{op}: all arrays must have the destination's dtype")
        if x.shape != a.shape:
            raise ShapeMismatchError(f"{op}: shapes {x.shape} and {a.shape} differ")
        if not x.flags.c_contiguous:
            raise InvalidInputError(f"{op}: arrays must be C-contiguous")


def run(
    op: str,
    a: np.ndarray,
    *operands: np.ndarray,
    scalar: float = 0.0,
    threads: int | None = None,
    backend: str = "auto",
    path: str = "auto",
) -> None:
    """Run STREAM operation ``op`` in place on ``a`` (see ``ramnet.orchid.triad``).

    Raises:
        UnsupportedDTypeError, ShapeMismatchError, InvalidInputError: Bad arrays.
        BackendUnavailableError: The backend or path cannot run here.
    """
    _check(op, a, operands)
    nthreads = check_threads(threads)
    if backend not in BACKENDS:
        raise InvalidInputError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = "c" if _bindings.AVAILABLE else "numba"
    flat = [x.reshape(-1) for x in (a, *operands)]
    if backend == "numpy":
        _numpy(op, *flat, scalar=scalar)
        return
    if backend == "numba":
        _numba_shim.kernels().stream(op, *flat, scalar=scalar)
        return
    number = _bindings.path_number(path)
    n = a.size
    threads = max(1, min(nthreads, n // _MIN_PER_THREAD or 1))
    if threads == 1:
        _bindings.stream(op, number, *flat, scalar=scalar)
        return
    bounds = [n * t // threads for t in range(threads + 1)]
    # Chunk edges on 64-byte lines, so no two threads write the same cache line.
    per_line = 64 // a.itemsize
    bounds = [bounds[0], *[x - x % per_line for x in bounds[1:-1]], bounds[-1]]
    parallel_map(
        lambda span: _bindings.stream(
            op, number, *[x[span[0] : span[1]] for x in flat], scalar=scalar
        ),
        list(itertools.pairwise(bounds)),
        threads,
    )


def _numpy(op: str, a: np.ndarray, *operands: np.ndarray, scalar: float) -> None:
    s = a.dtype.type(scalar)
    if op == "copy":
        np.copyto(a, operands[0])
    elif op == "scale":
        np.multiply(operands[0], s, out=a)
    elif op == "add":
        np.add(operands[0], operands[1], out=a)
    else:
        np.multiply(operands[1], s, out=a)
        a += operands[0]


def copy(
    a: np.ndarray, b: np.ndarray, *, threads: int | None = None, backend: str = "auto"
) -> None:
    """Write ``a = b`` in place (STREAM copy).

    Args:
        a: Destination, a writable C-contiguous float32 or float64 array.
        b: Source of the same dtype and shape.
        threads: Threads to use; all cores when None.
        backend: ``auto``, ``c``, ``numba`` or ``numpy``.

    Raises:
        UnsupportedDTypeError: Not float32/float64, or dtypes differ.
        ShapeMismatchError: Shapes differ.
        InvalidInputError: Read-only or non-contiguous arrays, unknown backend.
        BackendUnavailableError: The backend cannot run here.
    """
    run("copy", a, b, threads=threads, backend=backend)


def scale(
    a: np.ndarray,
    b: np.ndarray,
    scalar: float,
    *,
    threads: int | None = None,
    backend: str = "auto",
) -> None:
    """Write ``a = scalar * b`` in place (STREAM scale). Arguments and errors as for ``copy``."""
    run("scale", a, b, scalar=scalar, threads=threads, backend=backend)


def add(
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    *,
    threads: int | None = None,
    backend: str = "auto",
) -> None:
    """Write ``a = b + c`` in place (STREAM add). Arguments and errors as for ``copy``."""
    run("add", a, b, c, threads=threads, backend=backend)


def triad(
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    scalar: float,
    *,
    threads: int | None = None,
    backend: str = "auto",
) -> None:
    """Write ``a = b + scalar * c`` in place (STREAM triad).

    Rounded as numpy rounds ``b + scalar * c`` (a multiply, then an add), on every code path.

    Args:
        a: Destination, a writable C-contiguous float32 or float64 array.
        b: Addend of the same dtype and shape.
        c: Multiplicand of the same dtype and shape.
        scalar: The multiplier.
        threads: Threads to use; all cores when None.
        backend: ``auto``, ``c``, ``numba`` or ``numpy``.

    Raises:
        UnsupportedDTypeError: Not float32/float64, or dtypes differ.
        ShapeMismatchError: Shapes differ.
        InvalidInputError: Read-only or non-contiguous arrays, unknown backend.
        BackendUnavailableError: The backend cannot run here.
    """
    run("triad", a, b, c, scalar=scalar, threads=threads, backend=backend)
