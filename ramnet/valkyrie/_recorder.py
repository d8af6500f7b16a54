"""TraceRecorder: the TraceHook that turns an ORCHID run into a signed trace."""

from __future__ import annotations

import struct
import time

import numpy as np

from ramnet.orchid._hooks import BlockProduct, JobSpec
from ramnet.valkyrie import _hash
from ramnet.valkyrie._keys import NodeKey
from ramnet.valkyrie._merkle import (
    DTYPE_CODES,
    Commitment,
    MerkleTree,
    commit_matrices,
    commit_matrix,
    leaf_digests,
    row_strip_tile,
)
from ramnet.valkyrie._sumcheck import prove_matmul
from ramnet.valkyrie._trace import BlockDigest, Trace


def block_digest(block: BlockProduct, partial: np.ndarray) -> bytes:
    """BLAKE3 of a partial tile P(i, j, k): tag, (i, j, k), dtype, shape, bytes in C order."""
    x = (
        partial
        if partial.dtype.byteorder != ">"
        else partial.astype(partial.dtype.newbyteorder("<"))
    )
    rows, cols = x.shape
    prefix = _hash.BLOCK_TAG + struct.pack(
        "<IIIBQQ", block.i, block.j, block.k, DTYPE_CODES[x.dtype.name], rows, cols
    )
    if x.size == 0:
        return _hash.digest(prefix)
    # One leaf holding the whole partial, hashed in place: a packed copy of every partial cost a
    # worker and the coordinator as much as the hashing (fresh pages for each 7 MiB copy).
    return leaf_digests(x, (rows, cols), 0, prefix)[0]


class TraceRecorder:
    """Records a job through ORCHID's TraceHook callbacks, then builds and signs its trace.

    Usage::

        recorder = TraceRecorder()
        c = ramnet.matmul(a, b, hooks=[recorder])
        trace = recorder.build(key, prove=True)

    Attributes:
        seconds: Time spent in the recorder's own work (hashing, proving), for reports.
    """

    def __init__(self, *, threads: int | None = None) -> None:
        self.threads = threads
        self.seconds = 0.0
        self._spec: JobSpec | None = None
        self._a: np.ndarray | None = None
        self._b: np.ndarray | None = None
        self._c: np.ndarray | None = None
        self._commitments: dict[str, tuple[Commitment, MerkleTree]] = {}
        self._blocks: list[BlockDigest] = []

    def on_job_start(self, spec: JobSpec, a: np.ndarray, b: np.ndarray) -> None:
        """Commit to A and B."""
        t0 = time.perf_counter()
        self._spec, self._a, self._b = spec, a, b
        # Rows of A and C, columns of B: what a fraud proof opens (see row_strip_tile). One
        # queue for both, so that neither thread idles between them.
        self._commitments["a"], self._commitments["b"] = commit_matrices(
            [(a, row_strip_tile(a.dtype, a.shape)), (b, None)], threads=self.threads
        )
        self.seconds += time.perf_counter() - t0

    def on_block_done(self, block: BlockProduct, partial: np.ndarray) -> None:
        """Record the digest of a block product's partial tile (only when K is split: otherwise
        each partial tile is a tile of C, which the C commitment already covers)."""
        if self._spec is not None and self._spec.grid[2] == 1:
            return
        t0 = time.perf_counter()
        self._blocks.append(BlockDigest(block.i, block.j, block.k, block_digest(block, partial)))
        self.seconds += time.perf_counter() - t0

    def on_job_end(self, c: np.ndarray) -> None:
        """Commit to C."""
        t0 = time.perf_counter()
        self._c = c
        self._commitments["c"] = commit_matrix(
            c, tile=row_strip_tile(c.dtype, c.shape), threads=self.threads
        )
        self.seconds += time.perf_counter() - t0

    @property
    def trees(self) -> tuple[MerkleTree, MerkleTree, MerkleTree]:
        """The Merkle trees of A, B and C (to open tiles for fraud proofs)."""
        return tuple(self._commitments[x][1] for x in "abc")  # type: ignore[return-value]

    def build(self, key: NodeKey, *, prove: bool = False, threads: int | None = None) -> Trace:
        """Assemble the trace of the recorded job (sign it with ``write_trace``).

        Args:
            key: The node key whose id goes into the trace.
            prove: Add a sum-check proof (exact dtypes only).
            threads: The job's thread count, recorded in the trace.

        Returns:
            The unsigned trace.

        Raises:
            RuntimeError: No complete job was recorded.
            ProofUnsupportedError: ``prove`` for a job the proof cannot cover.
        """
        if self._spec is None or self._c is None or self._a is None or self._b is None:
            raise RuntimeError("TraceRecorder.build called before a job finished")
        t0 = time.perf_counter()
        blocks = tuple(sorted(self._blocks, key=lambda x: (x.i, x.j, x.k)))
        trace = Trace(
            spec=self._spec,
            threads=threads or 0,
            created=int(time.time()),
            node_id=key.public_key,
            a=self._commitments["a"][0],
            b=self._commitments["b"][0],
            c=self._commitments["c"][0],
            blocks=blocks,
        )
        if prove:
            proof = prove_matmul(self._a, self._b, trace.seed(), threads=self.threads)
            trace = Trace(**{**trace.__dict__, "proof": proof})
        self.seconds += time.perf_counter() - t0
        return trace
