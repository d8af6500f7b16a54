"""The Fiat–Shamir transcript: BLAKE3 over everything said so far, challenges drawn from it."""

from __future__ import annotations

import struct

import blake3

from ramnet.valkyrie.field import P61, Fp2, fp2_bytes


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
