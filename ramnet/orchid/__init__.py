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

from typing import TYPE_CHECKING

from ramnet._lazy import lazy_getattr

if TYPE_CHECKING:  # the names of _PUBLIC, re-exported for type checkers
    from ramnet.orchid._dtypes import SUPPORTED_DTYPES as SUPPORTED_DTYPES
    from ramnet.orchid._dtypes import result_dtype as result_dtype
    from ramnet.orchid._hooks import BlockProduct as BlockProduct
    from ramnet.orchid._hooks import JobSpec as JobSpec
    from ramnet.orchid._hooks import TraceHook as TraceHook
    from ramnet.orchid._info import kernel_info as kernel_info
    from ramnet.orchid._io import load_npy as load_npy
    from ramnet.orchid._io import random_operands as random_operands
    from ramnet.orchid._io import save_npy as save_npy
    from ramnet.orchid._matmul import matmul as matmul
    from ramnet.orchid._matmul import matmul_many as matmul_many
    from ramnet.orchid._matmul import prepare as prepare
    from ramnet.orchid._pool import default_threads as default_threads
    from ramnet.orchid._scheduler import Grid as Grid
    from ramnet.orchid._scheduler import make_grid as make_grid
    from ramnet.orchid._stream import add as add
    from ramnet.orchid._stream import copy as copy
    from ramnet.orchid._stream import scale as scale
    from ramnet.orchid._stream import triad as triad

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
