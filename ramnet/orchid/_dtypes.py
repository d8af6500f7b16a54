"""Which dtypes a job takes, what its result dtype is, and the checks that keep integer jobs exact.

The result-dtype rule (documented in docs/dtypes.md):

- int8 x int8 -> int32 when K <= 131071, else int64. |a*b| <= 2^14, so K * 2^14 < 2^31 holds
  exactly up to K = 131071.
- int16 x int16 -> int64. |a*b| <= 2^30; sums stay below 2^63 for any K < 2^33.
- int32 x int32 -> int64, when K * max|A| * max|B| < 2^63 for the actual data; otherwise the job is
  refused (OverflowRiskError), since no exact result would fit.
- float32 -> float32, float64 -> float64, through BLAS.

Mixed dtypes promote as numpy does (int8 with int16 is an int16 job); a promotion that lands outside
these five dtypes is refused.
"""

from __future__ import annotations

import numpy as np

from ramnet._errors import (
    NonFiniteInputError,
    OverflowRiskError,
    ShapeMismatchError,
    UnsupportedDTypeError,
)

SUPPORTED_DTYPES = ("int8", "int16", "int32", "float32", "float64")
INT8_INT32_MAX_K = 131071
_INT64_LIMIT = 2**63


def job_dtype(a_dtype: np.dtype, b_dtype: np.dtype) -> np.dtype:
    """Return the dtype both operands are multiplied in.

    Raises:
        UnsupportedDTypeError: Either dtype, or their promotion, is not supported.
    """
    for name, dtype in (("A", a_dtype), ("B", b_dtype)):
        if dtype.name not in SUPPORTED_DTYPES:
            raise UnsupportedDTypeError(
                f"{name} has dtype {dtype}; RAMNET multiplies {', '.join(SUPPORTED_DTYPES)}"
            )
    promoted = np.promote_types(a_dtype, b_dtype)
    if promoted.name not in SUPPORTED_DTYPES:
        raise UnsupportedDTypeError(
            f"A ({a_dtype}) and B ({b_dtype}) promote to {promoted}, which is not supported"
        )
    return promoted


def parse_dtype(name: str) -> np.dtype:
    """Return the numpy dtype of a supported dtype name.

    Raises:
        UnsupportedDTypeError: The name is not one of the supported dtypes.
    """
    if name not in SUPPORTED_DTYPES:
        raise UnsupportedDTypeError(
            f"unsupported dtype {name!r}; choose from {', '.join(SUPPORTED_DTYPES)}"
        )
    return np.dtype(name)


def result_dtype(dtype: np.dtype, k: int) -> np.dtype:
    """Return the dtype of C for a job of input ``dtype`` and inner dimension ``k``."""
    if dtype == np.int8:
        return np.dtype(np.int32) if k <= INT8_INT32_MAX_K else np.dtype(np.int64)
    if dtype in (np.int16, np.int32):
        return np.dtype(np.int64)
    return dtype


def check_shapes(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Return (M, K, N) for operands of these shapes.

    Raises:
        ShapeMismatchError: Either operand is not 2-D, or A's columns differ from B's rows.
    """
    for name, shape in (("A", a_shape), ("B", b_shape)):
        if len(shape) != 2:
            raise ShapeMismatchError(f"{name} must be a 2-D matrix, got shape {tuple(shape)}")
    if a_shape[1] != b_shape[0]:
        raise ShapeMismatchError(
            f"A is {a_shape[0]}x{a_shape[1]} but B is {b_shape[0]}x{b_shape[1]}: "
            f"A's columns ({a_shape[1]}) must equal B's rows ({b_shape[0]})"
        )
    return a_shape[0], a_shape[1], b_shape[1]


def _max_abs(x: np.ndarray) -> int:
    if x.size == 0:
        return 0
    return max(abs(int(x.min())), abs(int(x.max())))


def check_exact_range(a: np.ndarray, b: np.ndarray, dtype: np.dtype) -> None:
    """Refuse an int32 job whose result could overflow int64 (see the module docstring).

    Raises:
        OverflowRiskError: K * max|A| * max|B| >= 2^63.
    """
    if dtype != np.int32:
        return
    k = a.shape[1]
    bound = k * _max_abs(a) * _max_abs(b)
    if bound >= _INT64_LIMIT:
        raise OverflowRiskError(
            f"int32 job may overflow int64: K * max|A| * max|B| = {bound} >= 2^63; "
            "scale the inputs down or split K"
        )


def check_finite(name: str, x: np.ndarray) -> None:
    """Refuse NaN or Inf in a floating-point operand.

    Raises:
        NonFiniteInputError: ``x`` holds a NaN or an Inf.
    """
    if x.dtype.kind == "f" and x.size and not np.isfinite(x).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise NonFiniteInputError(f"{name} holds {x[where]} at {where}; values must be finite")


def cast_exact(name: str, x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Convert ``x`` to ``dtype`` only if that loses nothing.

    Float data going to an integer dtype must be finite, integral and in range; integer data must be
    in range. Returns ``x`` itself when it already has the dtype.

    Raises:
        NonFiniteInputError: A value is NaN/Inf, not an integer, or out of range of ``dtype``.
    """
    if x.dtype == dtype:
        return x
    if dtype.kind == "f":
        check_finite(name, x)
        return x.astype(dtype)
    if x.dtype.kind == "f":
        if x.size and not np.isfinite(x).all():
            where = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
            raise NonFiniteInputError(
                f"{name} holds {x[where]} at {where}; an {dtype} job needs finite integers"
            )
        if x.size and not (np.floor(x) == x).all():
            where = tuple(int(i) for i in np.argwhere(np.floor(x) != x)[0])
            raise NonFiniteInputError(
                f"{name} holds {x[where]} at {where}; an {dtype} job needs integers"
            )
    elif x.dtype.kind not in "iub":
        raise UnsupportedDTypeError(f"{name} has dtype {x.dtype}, which cannot become {dtype}")
    info = np.iinfo(dtype)
    if x.size and (x.min() < info.min or x.max() > info.max):
        raise NonFiniteInputError(
            f"{name} holds values in [{x.min()}, {x.max()}], outside {dtype}'s range "
            f"[{info.min}, {info.max}]"
        )
    return x.astype(dtype)
