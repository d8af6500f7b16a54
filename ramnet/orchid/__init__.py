"""ORCHID: the compute layer. Exact integer GEMM, STREAM kernels, the tile scheduler, TraceHooks.

ORCHID knows nothing of VALKYRIE or the mesh: it multiplies, and tells whatever hooks it is given.
"""

from __future__ import annotations

import numpy as np

from ramnet.orchid import _stream
from ramnet.orchid._backends import BACKENDS, Backend
from ramnet.orchid._backends import resolve as resolve_backend
from ramnet.orchid._dtypes import SUPPORTED as SUPPORTED_DTYPES
from ramnet.orchid._dtypes import result_dtype
from ramnet.orchid._hooks import BlockProduct, JobSpec, TraceHook
from ramnet.orchid._info import kernel_info
from ramnet.orchid._io import load_npy, parse_shape, random_operands, save_npy
from ramnet.orchid._matmul import matmul, matmul_many, prepare
from ramnet.orchid._memory import freed_memory_kept, keep_freed_memory
from ramnet.orchid._pool import parallel_map
from ramnet.orchid._scheduler import (
    Grid,
    default_grid,
    default_threads,
    execute_blocks,
    make_grid,
    run_job,
    spec_for,
)
from ramnet.orchid._tiles import (
    hash_paths,
    node_digests,
    pack_tiles,
    tile_digests,
    tile_leaf_sizes,
)

__all__ = [
    "BACKENDS",
    "SUPPORTED_DTYPES",
    "Backend",
    "BlockProduct",
    "Grid",
    "JobSpec",
    "TraceHook",
    "add",
    "copy",
    "default_grid",
    "default_threads",
    "execute_blocks",
    "freed_memory_kept",
    "hash_paths",
    "keep_freed_memory",
    "kernel_info",
    "load_npy",
    "make_grid",
    "matmul",
    "matmul_many",
    "node_digests",
    "pack_tiles",
    "parallel_map",
    "parse_shape",
    "prepare",
    "random_operands",
    "resolve_backend",
    "result_dtype",
    "run_job",
    "save_npy",
    "scale",
    "spec_for",
    "tile_digests",
    "tile_leaf_sizes",
    "triad",
]


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
    _stream.run("copy", a, b, threads=threads, backend=backend)


def scale(
    a: np.ndarray,
    b: np.ndarray,
    scalar: float,
    *,
    threads: int | None = None,
    backend: str = "auto",
) -> None:
    """Write ``a = scalar * b`` in place (STREAM scale). Arguments and errors as for ``copy``."""
    _stream.run("scale", a, b, scalar=scalar, threads=threads, backend=backend)


def add(
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    *,
    threads: int | None = None,
    backend: str = "auto",
) -> None:
    """Write ``a = b + c`` in place (STREAM add). Arguments and errors as for ``copy``."""
    _stream.run("add", a, b, c, threads=threads, backend=backend)


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
    _stream.run("triad", a, b, c, scalar=scalar, threads=threads, backend=backend)
