"""The Fiat–Shamir transcript: BLAKE3 over everything said so far, challenges drawn from it."""

from __future__ import annotations

import struct

import blake3

P61 = (1 << 61) - 1

Fp2 = tuple[int, int]


class Transcript:
    """A hash-chained transcript. Each absorbed item is length-prefixed and labelled."""

    def __init__(self, protocol: bytes) -> None:
        self._hasher = blake3.blake3(b"RNTRANS1" + struct.pack("<I", len(protocol)) + protocol)
        self._count = 0

    def absorb(self, label: bytes, data: bytes) -> None:
        """Add ``data`` under ``label``."""
        self._hasher.update(struct.pack("<II", len(label), len(data)) + label + data)

    def challenge_fp2(self) -> Fp2:
        """Draw an element of F_{p^2} (p = 2^61 - 1), uniform up to 2^-67, and absorb it."""
        fork = self._hasher.copy()
        fork.update(b"challenge" + struct.pack("<Q", self._count))
        raw = fork.digest(length=32)
        self._count += 1
        value = (int.from_bytes(raw[:16], "little") % P61, int.from_bytes(raw[16:], "little") % P61)
        self.absorb(b"challenge", fp2_bytes(value))
        return value

    def challenges(self, count: int) -> list[Fp2]:
        """Draw ``count`` challenges."""
        return [self.challenge_fp2() for _ in range(count)]


def fp2_bytes(value: Fp2) -> bytes:
    """Serialise an F_{p^2} element as two little-endian u64."""
    return struct.pack("<QQ", *value)


def fp2_add(x: Fp2, y: Fp2) -> Fp2:
    """x + y in F_{p^2}."""
    return ((x[0] + y[0]) % P61, (x[1] + y[1]) % P61)


def fp2_sub(x: Fp2, y: Fp2) -> Fp2:
    """x - y in F_{p^2}."""
    return ((x[0] - y[0]) % P61, (x[1] - y[1]) % P61)


def fp2_mul(x: Fp2, y: Fp2) -> Fp2:
    """x * y in F_{p^2} = F_p[i]/(i^2 + 1)."""
    return ((x[0] * y[0] - x[1] * y[1]) % P61, (x[0] * y[1] + x[1] * y[0]) % P61)


def fp2_scale(x: Fp2, k: int) -> Fp2:
    """k * x for an integer k."""
    return (x[0] * k % P61, x[1] * k % P61)
