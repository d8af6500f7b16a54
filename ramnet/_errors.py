"""RAMNET's exception hierarchy: one root, specific subclasses.

Each error also subclasses the built-in exception a Python user would expect (``ValueError`` for bad
values, ``OSError`` for files), so generic handlers keep working. The CLI maps these classes to exit
codes in one place (``ramnet.cli``): ``InvalidInputError`` and its subclasses mean exit 2, any other
``RamnetError`` exit 1. A server maps them to HTTP statuses in one place too: each class carries its
``http_status`` (500 unless a class says otherwise; 400 for the caller's bad input).
"""

from __future__ import annotations

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
]


class RamnetError(Exception):
    """Root of every error RAMNET raises on purpose.

    Attributes:
        http_status: The HTTP status a server answers when a request ends in this error.
    """

    http_status: int = 500


class InvalidInputError(RamnetError, ValueError):
    """The caller's input or usage is wrong; nothing was computed or written."""

    http_status = 400


class ShapeMismatchError(InvalidInputError):
    """Operands that are not 2-D, or whose inner dimensions differ."""


class UnsupportedDTypeError(InvalidInputError, TypeError):
    """An operand's dtype is not one RAMNET multiplies (complex, strings, objects, ...)."""


class NonFiniteInputError(InvalidInputError):
    """NaN or Inf where finite values are needed, or a value that does not fit the job's dtype."""


class OverflowRiskError(InvalidInputError, OverflowError):
    """An exact product whose result could exceed the range of its output dtype."""


class InputFileError(InvalidInputError, OSError):
    """An input file that is missing, unreadable, or not a valid ``.npy`` array."""


class OutputFileError(InvalidInputError, OSError):
    """An output path that cannot be written."""


class ConfigError(InvalidInputError):
    """A bad configuration file, environment variable or option value."""


class BackendUnavailableError(InvalidInputError, RuntimeError):
    """A backend or code path was asked for that this build or CPU cannot provide."""


class KernelError(RamnetError, RuntimeError):
    """A native kernel reported a failure it should not have (a bug or an exhausted resource)."""


class KeyFileError(InvalidInputError):
    """A node key file that is missing, malformed, too open, or would be overwritten."""


class TraceFormatError(InvalidInputError):
    """Bytes that are not a well-formed RAMNET trace (or commitment, proof, binding)."""


class ProofUnsupportedError(InvalidInputError):
    """A proof was asked for a job it cannot cover exactly (floats, or int32 beyond 2^60)."""


class EngineUnavailableError(InvalidInputError, RuntimeError):
    """An engine was asked for that this machine cannot run (Spark without Java or pyspark)."""


class StoreChangedError(InvalidInputError):
    """An operand or intermediate store whose bytes changed while a job was reading it."""
