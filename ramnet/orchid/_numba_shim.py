"""The one place in ORCHID that imports numba (VALKYRIE's field kernels load it on their own).

numba is heavy to import (about half a second) and JIT-compiles on first use, so it loads only when
a numba kernel is actually asked for: when the C extension is missing, or with ``backend="numba"``.
Compiled kernels are cached on disk (``NUMBA_CACHE_DIR``, which the packaged executable points at a
per-user folder).
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

from ramnet._errors import BackendUnavailableError

_kernels: ModuleType | None = None


def available() -> bool:
    """Return whether numba can be imported, without importing it."""
    return importlib.util.find_spec("numba") is not None


def version() -> str | None:
    """Return numba's version string, or None if it is not installed."""
    if not available():
        return None
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("numba")
    except PackageNotFoundError:
        return None


def kernels() -> ModuleType:
    """Return the module of numba kernels, importing numba on first call.

    Raises:
        BackendUnavailableError: numba is not installed.
    """
    global _kernels
    if _kernels is None:
        if not available():
            raise BackendUnavailableError(
                "numba is not installed; install it or build the C kernels"
            )
        from ramnet.orchid import _numba_kernels

        _kernels = _numba_kernels
    return _kernels
