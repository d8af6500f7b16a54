"""RAMNET: verifiable matrix compute.

The top-level package re-exports the public API. The compute functions load lazily, so that
``import ramnet`` (and ``ramnet --help``) stays fast; the errors load at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ramnet._errors import (
    BackendUnavailableError,
    ConfigError,
    EngineUnavailableError,
    InputFileError,
    InvalidInputError,
    KernelError,
    KeyFileError,
    NonFiniteInputError,
    OutputFileError,
    OverflowRiskError,
    ProofUnsupportedError,
    RamnetError,
    ShapeMismatchError,
    StoreChangedError,
    TraceFormatError,
    UnsupportedDTypeError,
)
from ramnet._version import __version__

if TYPE_CHECKING:
    from ramnet.orchid import matmul
    from ramnet.valkyrie import verify_trace

__all__ = [
    "BackendUnavailableError",
    "ConfigError",
    "EngineUnavailableError",
    "InputFileError",
    "InvalidInputError",
    "KernelError",
    "KeyFileError",
    "NonFiniteInputError",
    "OutputFileError",
    "OverflowRiskError",
    "ProofUnsupportedError",
    "RamnetError",
    "ShapeMismatchError",
    "StoreChangedError",
    "TraceFormatError",
    "UnsupportedDTypeError",
    "__version__",
    "matmul",
    "verify_trace",
]

_LAZY = {"matmul": "ramnet.orchid", "verify_trace": "ramnet.valkyrie"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ramnet' has no attribute {name!r}")
