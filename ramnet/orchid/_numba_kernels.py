"""numba kernels: the fallback for every C kernel, same arithmetic, same results.

Loaded only through ``_numba_shim.kernels()``. Each kernel is compiled with ``nogil=True`` so the
scheduler's threads run them in parallel, like the C kernels.
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(nogil=True, cache=True, fastmath=False, boundscheck=False)

_JB = 512  # columns of C per block, as in csrc/gemm_wide.c


@_jit
def _gemm_rows(a, b, out, acc_dtype):  # type: ignore[no-untyped-def]
    # out[i, :] += a[i, p] * b[p, :], blocked over columns; acc_dtype fixes the arithmetic width.
    m, k = a.shape
    n = b.shape[1]
    for j0 in range(0, n, _JB):
        j1 = min(n, j0 + _JB)
        for i in range(m):
            row = out[i, j0:j1]
            for p in range(k):
                aip = acc_dtype(a[i, p])
                brow = b[p, j0:j1]
                for j in range(j1 - j0):
                    row[j] += aip * acc_dtype(brow[j])


def gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray, accumulate: bool) -> None:
    """Compute ``out = a @ b`` or ``out += a @ b`` exactly for int8/int16/int32 operands.

    Args:
        a: (m, k) integer array.
        b: (k, n) array of the same dtype.
        out: (m, n) int32 (for int8 inputs) or int64 array.
        accumulate: Add to ``out`` instead of overwriting it.
    """
    if not accumulate:
        out[...] = 0
    if a.shape[1] == 0 or out.size == 0:
        return
    if out.dtype == np.int32:
        _gemm_rows(a, b, out, np.int32)
    else:
        _gemm_rows(a, b, out, np.int64)


@_jit
def _copy(a, b):  # type: ignore[no-untyped-def]
    for i in range(a.size):
        a[i] = b[i]


@_jit
def _scale(a, b, s):  # type: ignore[no-untyped-def]
    for i in range(a.size):
        a[i] = s * b[i]


@_jit
def _add(a, b, c):  # type: ignore[no-untyped-def]
    for i in range(a.size):
        a[i] = b[i] + c[i]


@_jit
def _triad(a, b, c, s):  # type: ignore[no-untyped-def]
    for i in range(a.size):
        a[i] = b[i] + s * c[i]


def stream(op: str, a: np.ndarray, *operands: np.ndarray, scalar: float = 0.0) -> None:
    """Run one STREAM operation (see ``ramnet.orchid.triad``) on contiguous 1-D vectors."""
    s = a.dtype.type(scalar)
    if op == "copy":
        _copy(a, operands[0])
    elif op == "scale":
        _scale(a, operands[0], s)
    elif op == "add":
        _add(a, operands[0], operands[1])
    else:
        _triad(a, operands[0], operands[1], s)
