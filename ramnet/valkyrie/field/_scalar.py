"""The field modulus and scalar arithmetic: F_p for p = 2^61 - 1, F_{p^2} = F_p[i]/(i^2 + 1).

p is a Mersenne prime with p = 3 (mod 4), so -1 is not a square mod p and i^2 + 1 is irreducible.
An F_{p^2} element a + b*i is the pair (a, b) of Python integers. These helpers are for the
verifier's O(log n) work (sum-check rounds, transcript challenges); they take any integers and
return canonical pairs (each part in [0, p)). The vector and matrix kernels are in ``_sums`` and
``_vectors``.
"""

from __future__ import annotations

import struct

from ramnet._errors import InvalidInputError

P61 = (1 << 61) - 1
"""The field modulus, the Mersenne prime 2^61 - 1."""

Fp2 = tuple[int, int]
"""An F_{p^2} element (re, im)."""


def fp2_add(x: Fp2, y: Fp2) -> Fp2:
    """Return x + y in F_{p^2}."""
    return ((x[0] + y[0]) % P61, (x[1] + y[1]) % P61)


def fp2_sub(x: Fp2, y: Fp2) -> Fp2:
    """Return x - y in F_{p^2}."""
    return ((x[0] - y[0]) % P61, (x[1] - y[1]) % P61)


def fp2_neg(x: Fp2) -> Fp2:
    """Return -x in F_{p^2}."""
    return ((-x[0]) % P61, (-x[1]) % P61)


def fp2_mul(x: Fp2, y: Fp2) -> Fp2:
    """Return x * y in F_{p^2} (i^2 = -1)."""
    return ((x[0] * y[0] - x[1] * y[1]) % P61, (x[0] * y[1] + x[1] * y[0]) % P61)


def fp2_scale(x: Fp2, k: int) -> Fp2:
    """Return k * x for an integer k."""
    return (x[0] * k % P61, x[1] * k % P61)


def fp2_inv(x: Fp2) -> Fp2:
    """Return 1 / x in F_{p^2}: conj(x) / (re^2 + im^2), the norm being nonzero for x != 0.

    Raises:
        InvalidInputError: x is zero.
    """
    re, im = x[0] % P61, x[1] % P61
    norm = (re * re + im * im) % P61
    if norm == 0:
        raise InvalidInputError("zero has no inverse in F_(p^2)")
    inv = pow(norm, P61 - 2, P61)
    return re * inv % P61, (-im) * inv % P61


def fp2_bytes(x: Fp2) -> bytes:
    """Serialise an F_{p^2} element as two little-endian u64 (re, then im)."""
    return struct.pack("<QQ", *x)
