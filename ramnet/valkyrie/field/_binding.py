"""Where the field kernels come from: the compiled C functions, or numba, and which one to use.

The C field kernels (csrc/field.c, declared in csrc/field.h) are compiled into RAMNET's one cffi
extension, ``ramnet.orchid._native``, next to ORCHID's kernels; this module reads them from there by
name (the extension is loaded, and return codes checked, by ORCHID's binding); which backend the
field uses is VALKYRIE's own choice. Without the extension (no C compiler at install time) the
numba kernels of ``_numba`` run; numba loads only when one of them is asked for.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

from ramnet._errors import BackendUnavailableError, InvalidInputError

# The one compiled extension, and its return codes, are ORCHID's binding's: read from there.
from ramnet.orchid._bindings import AVAILABLE as AVAILABLE
from ramnet.orchid._bindings import IMPORT_ERROR as IMPORT_ERROR
from ramnet.orchid._bindings import check as check
from ramnet.orchid._bindings import native

_numba: ModuleType | None = None


def lib() -> Any:
    """The compiled library (``ffi``'s ``lib``); only call it when ``AVAILABLE``."""
    return native.lib


def ffi() -> Any:
    """The compiled module's ``ffi``; only call it when ``AVAILABLE``."""
    return native.ffi


def numba_available() -> bool:
    """Whether numba can be imported, without importing it."""
    return importlib.util.find_spec("numba") is not None


def numba_kernels() -> ModuleType:
    """Return the module of numba field kernels, importing numba on first call.

    Raises:
        BackendUnavailableError: numba is not installed.
    """
    global _numba
    if _numba is None:
        if not numba_available():
            raise BackendUnavailableError(
                "numba is not installed; install it or build the C kernels"
            )
        from ramnet.valkyrie.field import _numba as kernels

        _numba = kernels
    return _numba


def backend(name: str) -> str:
    """Resolve a field backend option to ``c`` or ``numba``.

    Args:
        name: ``auto`` (C if built, else numba), ``c`` or ``numba``.

    Returns:
        ``c`` or ``numba``.

    Raises:
        BackendUnavailableError: The backend cannot run here.
        InvalidInputError: An unknown backend.
    """
    if name == "auto":
        return "c" if AVAILABLE else "numba"
    if name == "c":
        if not AVAILABLE:
            raise BackendUnavailableError(
                f"the C kernels are not built ({IMPORT_ERROR}); use backend='numba'"
            )
        return "c"
    if name == "numba":
        if not numba_available():
            raise BackendUnavailableError("numba is not installed")
        return "numba"
    raise InvalidInputError(f"unknown backend {name!r}; choose auto, c or numba")


_ARRAY_TYPES = {"uint64_t *": "uint64_t[]"}


def pointer(a: Any, ctype: str = "uint64_t *") -> Any:
    """``a``'s data as a C pointer of type ``ctype`` (``a`` a numpy array the caller keeps alive).

    A C-contiguous array goes through ``ffi.from_buffer``, a fifth of the cost of reading its
    ``__array_interface__`` (which builds a dict): the verifier makes three such conversions for
    each strip of a matrix it reduces. Other layouts (a tile's rows inside a wider matrix) pass
    their address.
    """
    if a.flags.c_contiguous:
        array_type = _ARRAY_TYPES.get(ctype)
        if array_type is None:
            array_type = _ARRAY_TYPES[ctype] = ctype.replace(" *", "[]")
        return native.ffi.from_buffer(array_type, a)
    return native.ffi.cast(ctype, a.__array_interface__["data"][0])
