"""RAMNET: verifiable matrix compute.

The top-level package re-exports the public API. The compute functions load lazily, so that
``import ramnet`` (and ``ramnet --help``) stays fast; the errors load at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ramnet._errors import (
    BackendUnavailableError,
    ConfigError,
    InputFileError,
    InvalidInputError,
    KernelError,
    NonFiniteInputError,
    OutputFileError,
    OverflowRiskError,
    RamnetError,
    ShapeMismatchError,
    UnsupportedDTypeError,
)
from ramnet._version import __version__

if TYPE_CHECKING:
    from ramnet.orchid import matmul

__all__ = [
    "BackendUnavailableError",
    "ConfigError",
    "InputFileError",
    "InvalidInputError",
    "KernelError",
    "NonFiniteInputError",
    "OutputFileError",
    "OverflowRiskError",
    "RamnetError",
    "ShapeMismatchError",
    "UnsupportedDTypeError",
    "__version__",
    "matmul",
]

_LAZY = {"matmul": "ramnet.orchid"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ramnet' has no attribute {name!r}")
