"""Write the known-answer trace ``trace_v1.bin`` and its matrices ``A.npy``, ``B.npy``, ``C.npy``.

Run once, from the repository root, to (re)create the committed files::

    python tests/data/make_trace_v1.py

Everything is fixed, so the output is the same bytes on every machine: the operands come from a
seeded generator, the Ed25519 key from a fixed seed (Ed25519 signatures are deterministic), the
creation time is a constant, and the job spec (grid, backend, code path, threads) is written out
here rather than taken from this machine. C and the block digests are computed with numpy.

``tests/valkyrie/test_trace.py`` checks that the committed bytes keep verifying and that
re-encoding the decoded trace reproduces them exactly: trace format version 1 must not drift.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nacl.signing
import numpy as np

from ramnet.orchid import BlockProduct, JobSpec
from ramnet.valkyrie import (
    BlockDigest,
    NodeKey,
    Trace,
    block_digest,
    commit_matrix,
    encode,
    prove_matmul,
)

HERE = Path(__file__).resolve().parent
KEY_SEED = bytes(range(32))  # the known-answer key: test data only, never a real node's key
CREATED = 1_700_000_000
M, K, N = 12, 10, 9
ROW_EDGES, COL_EDGES, K_EDGES = (0, 6, 12), (0, 5, 9), (0, 5, 10)


def known_key() -> NodeKey:
    """The fixed key that signs the known-answer trace."""
    return NodeKey(nacl.signing.SigningKey(KEY_SEED))


def operands() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A (12x10 int8), B (10x9 int8) and their exact product C (int32)."""
    rng = np.random.default_rng(20240601)
    a = rng.integers(-128, 127, size=(M, K), dtype=np.int8, endpoint=True)
    b = rng.integers(-128, 127, size=(K, N), dtype=np.int8, endpoint=True)
    c = (a.astype(np.int32) @ b.astype(np.int32)).astype(np.int32)
    return a, b, c


def build() -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    """Return (trace bytes, A, B, C)."""
    a, b, c = operands()
    key = known_key()
    spec = JobSpec(
        M,
        K,
        N,
        "int8",
        "int32",
        (len(ROW_EDGES) - 1, len(COL_EDGES) - 1, len(K_EDGES) - 1),
        ROW_EDGES,
        COL_EDGES,
        K_EDGES,
        "c",
        "plain",
    )
    blocks = []
    for i in range(spec.grid[0]):
        for j in range(spec.grid[1]):
            for k in range(spec.grid[2]):
                rs = slice(ROW_EDGES[i], ROW_EDGES[i + 1])
                cs = slice(COL_EDGES[j], COL_EDGES[j + 1])
                ks = slice(K_EDGES[k], K_EDGES[k + 1])
                partial = a[rs, ks].astype(np.int32) @ b[ks, cs].astype(np.int32)
                digest = block_digest(BlockProduct(i, j, k), partial.astype(np.int32))
                blocks.append(BlockDigest(i, j, k, digest))
    trace = Trace(
        spec=spec,
        threads=2,
        created=CREATED,
        node_id=key.public_key,
        a=commit_matrix(a)[0],
        b=commit_matrix(b)[0],
        c=commit_matrix(c)[0],
        blocks=tuple(blocks),
    )
    proof = prove_matmul(a, b, trace.seed(), threads=1)
    trace = Trace(**{**trace.__dict__, "proof": proof})
    return encode(trace, key), a, b, c


def main() -> int:
    data, a, b, c = build()
    (HERE / "trace_v1.bin").write_bytes(data)
    np.save(HERE / "A.npy", a)
    np.save(HERE / "B.npy", b)
    np.save(HERE / "C.npy", c)
    print(f"wrote {HERE / 'trace_v1.bin'} ({len(data)} bytes) and A.npy, B.npy, C.npy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
