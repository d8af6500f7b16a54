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
from ramnet.orchid._pool import parallel_map

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
    from ramnet.orchid._scheduler import check_threads

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
