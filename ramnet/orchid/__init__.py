"""ORCHID: the compute layer. Exact integer GEMM, STREAM kernels, the tile scheduler, TraceHooks.

ORCHID knows nothing of VALKYRIE or the mesh: it multiplies, and tells whatever hooks it is given.

The public API is ``__all__`` (the keys of ``_PUBLIC``): multiplying (``matmul``, ``matmul_many``,
``prepare``), the STREAM kernels (``copy``, ``scale``, ``add``, ``triad``), operands in and out
(``load_npy``, ``save_npy``, ``random_operands``), the job's dtypes and grid (``SUPPORTED_DTYPES``,
``result_dtype``, ``Grid``, ``make_grid``, ``default_threads``), the hook protocol a caller
implements to watch a job (``TraceHook``, ``JobSpec``, ``BlockProduct``) and ``kernel_info``.
Everything else (the scheduler's engine, backends, bindings, tile packing and hashing, the thread
pool, allocator tuning) is internal: other RAMNET packages import it from its module. Each name
loads its module on first use, so importing the package loads nothing, and importing one of its
modules (as ``ramnet verify`` does) loads only what that module needs.
"""

from __future__ import annotations

from ramnet._lazy import lazy_getattr

_PUBLIC = {
    "BlockProduct": "_hooks",
    "Grid": "_scheduler",
    "JobSpec": "_hooks",
    "SUPPORTED_DTYPES": "_dtypes",
    "TraceHook": "_hooks",
    "add": "_stream",
    "copy": "_stream",
    "default_threads": "_pool",
    "kernel_info": "_info",
    "load_npy": "_io",
    "make_grid": "_scheduler",
    "matmul": "_matmul",
    "matmul_many": "_matmul",
    "prepare": "_matmul",
    "random_operands": "_io",
    "result_dtype": "_dtypes",
    "save_npy": "_io",
    "scale": "_stream",
    "triad": "_stream",
}

__all__ = list(_PUBLIC)

__getattr__ = lazy_getattr(__name__, _PUBLIC, globals())
