"""Probabilistic checks that C = A·B: Freivalds for exact dtypes, a rounding-error range check
for floats.

Freivalds, exact dtypes. With r uniform in F_p^N (p = 2^61 - 1, the verifier's own randomness),
compare C·r with A·(B·r) mod p. When every entry of C and of A·B lies in (-p/2, p/2) (the verifier
checks |C| < 2^60, and K·max|A|·max|B| < 2^60 bounds A·B), C ≠ A·B implies (C - A·B) mod p ≠ 0,
and a nonzero row is missed with probability at most 1/p < 2^-60. ``rounds`` = ceil(λ / 60)
independent vectors give error at most 2^-λ; they share one pass over each matrix.

Range check, floats. BLAS computes each entry as a sum of K products in some order, so
|fl(A·B) - A·B| <= γ_K |A|·|B| entrywise, γ_K = K·u / (1 - K·u), u the unit roundoff of the job's
dtype. The verifier draws r with entries ±1 and computes, in float64, x = C·r and z = A·(B·r), and
bounds its own rounding too: it accepts when, for every row,
|x - z| <= γ_K^job·(|A|·(|B|·1)) + γ_{K+N+2}^f64·(|C|·1 + 2·|A|·(|B|·1)), widened by 1%
for the rounding of the bound itself. A result off by more than twice that in one entry is caught
(the entry's row sees the whole error, ±1 times).
"""

from __future__ import annotations

import math
import os

import numpy as np

from ramnet._errors import ShapeMismatchError
from ramnet.valkyrie._sumcheck import RANGE_LIMIT, _max_abs
from ramnet.valkyrie.field import P61, weighted_rowsums

_UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53}


def _random_bytes(n: int) -> bytes:
    # The operating system's CSPRNG, as secrets draws from (without importing hashlib).
    return os.urandom(n)


def _shapes(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    if a.ndim != 2 or b.ndim != 2 or c.ndim != 2:
        raise ShapeMismatchError("A, B and C must be 2-D")
    if a.shape[1] != b.shape[0] or c.shape != (a.shape[0], b.shape[1]):
        raise ShapeMismatchError(
            f"C is {c.shape[0]}x{c.shape[1]} but A·B is {a.shape[0]}x{b.shape[1]}"
        )


def freivalds(
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    *,
    security_bits: int = 40,
    threads: int | None = None,
    rng_bytes: bytes | None = None,
) -> bool:
    """Freivalds' check of C = A·B for integer matrices, error at most 2^-security_bits.

    Args:
        a, b, c: Integer matrices, C of shape (M, N).
        security_bits: λ; ceil(λ / 60) random vectors are used.
        threads: Threads for the reductions.
        rng_bytes: Fixed randomness, for tests only (default: the OS's).

    Returns:
        True when C = A·B passes, False when it does not (or |C| >= 2^60 somewhere).

    Raises:
        ShapeMismatchError: Shapes that do not fit.
    """
    _shapes(a, b, c)
    if not c_in_range(c):
        return False
    r = freivalds_vectors(b.shape[1], security_bits, rng_bytes)
    cr = weighted_rowsums(c, r, threads=threads)
    br = weighted_rowsums(b, r, threads=threads)
    abr = weighted_rowsums(a, np.ascontiguousarray(br), threads=threads)
    return bool(np.array_equal(cr, abr))


def c_in_range(c: np.ndarray) -> bool:
    """Whether every entry of an integer C lies within (-2^60, 2^60), where the mod-p checks are
    exact. Free for int32 and narrower (always true); one pass over C for int64."""
    if c.dtype.kind != "i":
        return False
    return c.dtype.itemsize <= 4 or _max_abs(c) < RANGE_LIMIT


def freivalds_vectors(n: int, security_bits: int, rng_bytes: bytes | None = None) -> np.ndarray:
    """Return ceil(λ/60) random vectors of F_p^n, shape (rounds, n), from the OS's randomness.

    64 random bits mod p favour only 8 residues, by 2^-64 each.
    """
    rounds = max(1, math.ceil(security_bits / 60))
    source = rng_bytes if rng_bytes is not None else _random_bytes(8 * rounds * n)
    raw = np.frombuffer(source[: 8 * rounds * n], dtype="<u8").reshape(rounds, n)
    return np.ascontiguousarray(raw % np.uint64(P61))


def float_bound(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (|C·r - A·(B·r)|, the accepted bound) per row, for a fresh ±1 vector r.

    Raises:
        ShapeMismatchError: Shapes that do not fit.
    """
    _shapes(a, b, c)
    k, n = b.shape
    u_job = _UNIT_ROUNDOFF.get(np.result_type(a, b).name, 2.0**-53)
    r = np.where(np.frombuffer(_random_bytes(max(n, 1)), np.uint8)[:n] & 1, 1.0, -1.0)
    a64, b64, c64 = (np.asarray(x, dtype=np.float64) for x in (a, b, c))
    x = c64 @ r
    z = a64 @ (b64 @ r)
    ab_abs = np.abs(a64) @ (np.abs(b64) @ np.ones(n))
    c_abs = np.abs(c64) @ np.ones(n)

    def gamma(count: int, u: float) -> float:
        return count * u / (1.0 - count * u) if count * u < 0.5 else math.inf

    bound = gamma(k, u_job) * ab_abs + gamma(k + n + 2, 2.0**-53) * (c_abs + 2.0 * ab_abs)
    return np.abs(x - z), bound * 1.01


def float_range_check(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> bool:
    """Accept a float C only within what BLAS rounding can explain (see the module docstring).

    Returns:
        True when every row's residual is within its bound and C is finite.

    Raises:
        ShapeMismatchError: Shapes that do not fit.
    """
    if not np.isfinite(c).all():
        return False
    residual, bound = float_bound(a, b, c)
    return bool(np.all(residual <= bound))
