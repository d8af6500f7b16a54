"""BLAKE3 with domain separation: every hash RAMNET takes says what it hashes."""

from __future__ import annotations

import blake3

DIGEST_SIZE = 32

LEAF_TAG = b"RNLEAF1\x00"
NODE_TAG = b"RNNODE1\x00"
ROOT_TAG = b"RNROOT1\x00"
EMPTY_TAG = b"RNEMPT1\x00"
BLOCK_TAG = b"RNBLOK1\x00"


def digest(*parts: bytes | memoryview) -> bytes:
    """BLAKE3-256 of the concatenation of ``parts``."""
    hasher = blake3.blake3()
    for part in parts:
        hasher.update(part)
    return bytes(hasher.digest())


def node(left: bytes, right: bytes) -> bytes:
    """The Merkle parent of two child digests."""
    return bytes(blake3.blake3(NODE_TAG + left + right).digest())
