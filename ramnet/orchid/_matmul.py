"""``matmul``: the public entry point of ORCHID's exact matrix product."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ramnet._errors import UnsupportedDTypeError
from ramnet.orchid import _backends, _bindings, _dtypes
from ramnet.orchid._hooks import TraceHook
from ramnet.orchid._pool import check_threads, parallel_map
from ramnet.orchid._scheduler import (
    Grid,
    ProgressCallback,
    default_grid,
    make_grid,
    run_job,
)


def prepare(a: object, b: object, dtype: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate two operands and bring them to one job dtype, losing nothing.

    Args:
        a: (M, K) array-like.
        b: (K, N) array-like.
        dtype: Force the job dtype (a supported name); values must then fit it exactly.

    Returns:
        (A, B) as numpy arrays of the job dtype (the inputs themselves when no cast is needed).

    Raises:
        ShapeMismatchError: Not 2-D, or inner dimensions differ.
        UnsupportedDTypeError: Complex, strings, objects, or other unsupported dtypes.
        NonFiniteInputError: NaN/Inf, or values that do not fit a forced integer dtype.
        OverflowRiskError: An int32 product that could overflow int64.
    """
    arrays = []
    for name, x in (("A", a), ("B", b)):
        if not isinstance(x, np.ndarray):
            try:
                x = np.asarray(x)
            except (TypeError, ValueError) as exc:
                raise UnsupportedDTypeError(f"{name} is not a numeric array ({exc})") from exc
        arrays.append(x)
    a_arr, b_arr = arrays
    _dtypes.check_shapes(a_arr.shape, b_arr.shape)
    if dtype is not None:
        job = _dtypes.parse_dtype(dtype)
        for name, x in (("A", a_arr), ("B", b_arr)):
            if x.dtype.kind not in "iubf":
                raise UnsupportedDTypeError(
                    f"{name} has dtype {x.dtype}, which cannot become {job}"
                )
    else:
        job = _dtypes.job_dtype(a_arr.dtype, b_arr.dtype)
    a_arr = _dtypes.cast_exact("A", a_arr, job)
    b_arr = _dtypes.cast_exact("B", b_arr, job)
    for name, x in (("A", a_arr), ("B", b_arr)):
        _dtypes.check_finite(name, x)
    _dtypes.check_exact_range(a_arr, b_arr, job)
    return _rows_contiguous(a_arr), _rows_contiguous(b_arr)


def _rows_contiguous(x: np.ndarray) -> np.ndarray:
    # The kernels take any row stride but need each row's elements adjacent; one copy fixes a
    # transposed view or a Fortran-order file, instead of one per tile.
    if x.ndim == 2 and x.shape[1] > 1 and x.strides[1] != x.itemsize:
        return np.ascontiguousarray(x)
    return x


def matmul(
    a: object,
    b: object,
    *,
    backend: str = "auto",
    threads: int | None = None,
    grid: tuple[int, int, int] | Grid | None = None,
    path: str = "auto",
    hooks: Sequence[TraceHook] = (),
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Multiply two matrices, exactly for integer dtypes.

    Integer results are exact: int8 inputs give int32 (int64 when K > 131071), int16 and int32
    inputs give int64 (see ``docs/dtypes.md``). float32 and float64 go through numpy's BLAS.

    Args:
        a: (M, K) array-like of int8, int16, int32, float32 or float64.
        b: (K, N) array-like; mixed dtypes promote as in numpy.
        backend: ``auto`` (C kernels if built, else numba), ``c``, ``numba`` or ``numpy``.
        threads: Threads to use; all cores when None.
        grid: Block counts (p, q, r) along M, N, K, or a Grid; chosen for speed when None.
        path: For the C backend, force a code path (``avx512-vnni``, ``avx2``, ``portable``...).
        hooks: TraceHooks to call during the job.
        progress: Called as ``progress(done, total)`` after each block product.

    Returns:
        C = A . B as a new numpy array.

    Raises:
        ShapeMismatchError, UnsupportedDTypeError, NonFiniteInputError, OverflowRiskError: Bad
            operands.
        InvalidInputError: An unknown backend, or a bad grid or thread count.
        BackendUnavailableError: The backend or path cannot run here.
    """
    a_arr, b_arr = prepare(a, b)
    m, k = a_arr.shape
    n = b_arr.shape[1]
    chosen = _backends.resolve(backend, a_arr.dtype, path)
    nthreads = check_threads(threads)
    if grid is None:
        job_grid = default_grid(m, k, n, a_arr.dtype, nthreads)
    elif isinstance(grid, Grid):
        job_grid = grid
    else:
        job_grid = make_grid(m, k, n, grid)
    if chosen.name == "numpy" and a_arr.dtype.kind == "f":
        # BLAS runs its own threads: one task at a time.
        nthreads = 1
    return run_job(a_arr, b_arr, job_grid, chosen, threads=nthreads, hooks=hooks, progress=progress)


def matmul_many(
    pairs: Sequence[tuple[object, object]],
    *,
    backend: str = "auto",
    threads: int | None = None,
    path: str = "auto",
) -> list[np.ndarray]:
    """Multiply several pairs of matrices, packing an operand that several pairs share only once.

    Pairs share an operand when they hold the same array object (a mesh worker's shard: each A
    tile meets several B tiles and each B tile several A tiles). On the C backend an int8 job
    with an int32 result packs each shared operand once per panel instead of once per product;
    every other case is ``matmul`` of each pair. The products are the same either way.

    Args:
        pairs: (A, B) operand pairs, each as ``matmul`` takes them.
        backend: As for ``matmul``.
        threads: Threads to use; all cores when None. Pairs are split between threads by their
            A operand, so a thread packs each of its As once.
        path: For the C backend, force a code path (as for ``matmul``).

    Returns:
        ``A . B`` for each pair, in order, as new numpy arrays.

    Raises:
        As ``matmul``.
    """
    nthreads = check_threads(threads)
    # Holds every operand while ids number them, so that no two share an id.
    ready = [prepare(a, b) for a, b in pairs]
    shared = bool(ready) and all(
        a.dtype == np.int8 and _dtypes.result_dtype(a.dtype, a.shape[1]) == np.int32
        for a, _ in ready
    )
    chosen = _backends.resolve(backend, np.dtype(np.int8), path) if shared else None
    if chosen is None or chosen.name != "c":
        return [matmul(a, b, backend=backend, threads=threads, path=path) for a, b in ready]
    out = [np.empty((a.shape[0], b.shape[1]), np.int32) for a, b in ready]
    # One kernel call per inner dimension and thread; operands numbered by identity.
    calls: dict[tuple[int, int], list[int]] = {}
    a_slot: dict[int, int] = {}
    for t, (a, _) in enumerate(ready):
        slot = a_slot.setdefault(id(a), len(a_slot))
        calls.setdefault((a.shape[1], slot % nthreads), []).append(t)

    def run(products: list[int]) -> None:
        a_ops = list({id(ready[t][0]): ready[t][0] for t in products}.values())
        b_ops = list({id(ready[t][1]): ready[t][1] for t in products}.values())
        a_index = {id(x): n for n, x in enumerate(a_ops)}
        b_index = {id(x): n for n, x in enumerate(b_ops)}
        _bindings.gemm_s8_many(
            chosen.path_number,
            a_ops,
            b_ops,
            [(a_index[id(ready[t][0])], b_index[id(ready[t][1])]) for t in products],
            [out[t] for t in products],
        )

    parallel_map(run, list(calls.values()), nthreads)
    return out
