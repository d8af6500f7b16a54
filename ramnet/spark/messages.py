"""The messages between the Spark driver and its tasks: typed, encoded once, parsed strictly.

Every task takes one ``*Task`` message and returns one ``*Result`` message, both as msgpack
bytes. The driver never receives a tile: only digests (32 bytes) and Freivalds sketches folded
to one residue per block (and round), so what it receives depends on the block grid, not on n.
Spark itself moves these bytes (and pickles them inside its own transport, between the driver
and the executors of the user's own cluster); RAMNET decodes them with msgspec's typed
decoder, never with pickle.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
import numpy as np

__all__ = [
    "AssembleTask",
    "BlockDigest",
    "BlockSketch",
    "ComputeLimits",
    "ComputeResult",
    "ComputeTask",
    "JobFiles",
    "LeafResult",
    "LeafTask",
    "RandomTask",
    "RowResult",
    "Sketch",
    "TaskError",
    "TileDigest",
    "decode",
    "encode",
]

_T = TypeVar("_T")


class Sketch(msgspec.Struct, array_like=True, frozen=True):
    """A Freivalds sketch: uint64 residues mod 2^61 - 1, shape (rounds, rows), little-endian."""

    rounds: int
    rows: int
    data: bytes

    @classmethod
    def of(cls, residues: np.ndarray) -> Sketch:
        """Wrap a (rounds, rows) uint64 array."""
        x = np.ascontiguousarray(residues, dtype="<u8")
        return cls(int(x.shape[0]), int(x.shape[1]), x.tobytes())

    def array(self) -> np.ndarray:
        """The residues as a (rounds, rows) uint64 array.

        Raises:
            msgspec.ValidationError: The byte count does not match the shape.
        """
        if self.rounds < 0 or self.rows < 0 or len(self.data) != 8 * self.rounds * self.rows:
            raise msgspec.ValidationError("a sketch's bytes do not match its shape")
        return np.frombuffer(self.data, dtype="<u8").reshape(self.rounds, self.rows)


class TileDigest(msgspec.Struct, array_like=True, frozen=True):
    """The digest of one grid tile of A, B or C (``store.array_digest``) as a task read it."""

    name: str
    x: int
    y: int
    digest: bytes


class BlockDigest(msgspec.Struct, array_like=True, frozen=True):
    """The digest of one partial tile P(i, j, k) (``valkyrie block_digest``)."""

    i: int
    j: int
    k: int
    digest: bytes


class BlockSketch(msgspec.Struct, array_like=True, frozen=True):
    """One partial's own Freivalds sides, sent only for a group whose sums disagreed."""

    i: int
    j: int
    k: int
    c_side: Sketch
    ab_side: Sketch


class JobFiles(msgspec.Struct, frozen=True):
    """Where a job's stores live and how its grid cuts them (every task gets one)."""

    a: str
    b: str
    work: str
    row_edges: list[int]
    col_edges: list[int]
    k_edges: list[int]
    dtype: str
    out_dtype: str
    backend: str = "auto"
    threads: int = 0


class ComputeTask(msgspec.Struct, frozen=True):
    """Compute some block products and write their partials (a plan slot, or a recomputation).

    Attributes:
        tag: The partials' folder under ``work/parts`` (``s3``: slot 3; ``r1-0``: a recompute).
        blocks: (i, j, k) of each block product.
        excluded: Executors that must not do this work (they decline it).
        fault: Testing aid: corrupt the first partial this way (``tasks.FAULTS``).
        digests: Hash the partials and the tiles read (off only for a run without checks).
    """

    files: JobFiles
    tag: str
    blocks: list[tuple[int, int, int]]
    excluded: list[str] = []
    fault: str | None = None
    digests: bool = True


class ComputeResult(msgspec.Struct, frozen=True):
    tag: str
    executor: str
    declined: bool
    seconds: float
    tiles: list[TileDigest]
    blocks: list[BlockDigest]
    limits: ComputeLimits | None = None


class AssembleTask(msgspec.Struct, frozen=True):
    """Check and sum one row of blocks: C(i, j) = sum over k of P(i, j, k), ascending k.

    Attributes:
        out: The temporary output store.
        partials: For every (j, k) of row i: the partials' folder tag and the accepted digest.
        vectors: r_j for every j (empty: no checks).
        u: Weights that fold each row sketch into one residue per round: (rounds, rows of i).
        digest_c: Return the digests of the C tiles written (a trace re-reads and compares them).
    """

    files: JobFiles
    out: str
    i: int
    partials: list[tuple[int, int, str, bytes]]
    vectors: list[Sketch] = []
    u: Sketch | None = None
    excluded: list[str] = []
    checks: bool = True
    digest_c: bool = False


class RowResult(msgspec.Struct, frozen=True):
    i: int
    executor: str
    declined: bool
    seconds: float
    tiles: list[TileDigest]  # A(i, k) and B read, C(i, j) written (with digest_c)
    changed: list[tuple[int, int, int]]  # partials whose bytes differ from their digest
    out_of_range: list[tuple[int, int, int]]  # partials that fail a check outright
    # Every sketch below is folded by u into one residue per round (shape (rounds, 1)).
    c_sides: list[Sketch]  # per k: sum over j of P(i, j, k) . r_j
    ab_sides: list[Sketch]  # per k: A(i, k) . sum over j of B(k, j) . r_j
    c_sketch: Sketch | None  # sum over j of C(i, j) . r_j, from the tiles as written
    blocks: list[BlockSketch]


class LeafTask(msgspec.Struct, frozen=True):
    """Hash the Merkle leaves of some rows of a matrix (a trace's commitment)."""

    path: str
    name: str
    tile: tuple[int, int]
    tile_rows: tuple[int, int]  # leaf rows [start, stop) of the tile grid
    grid_rows: tuple[int, int]  # block rows [start, stop) whose tiles are digested too
    row_edges: list[int]
    col_edges: list[int]
    excluded: list[str] = []


class LeafResult(msgspec.Struct, frozen=True):
    name: str
    executor: str
    declined: bool
    start: int
    leaves: bytes  # 32 bytes per leaf, row-major from tile row ``start``
    tiles: list[TileDigest]


class RandomTask(msgspec.Struct, frozen=True):
    """Write some chunks of a seeded random operand."""

    path: str
    operand: str
    shape: tuple[int, int]
    dtype: str
    seed: int
    row_edges: list[int]
    col_edges: list[int]
    chunk_indices: list[int]


class TaskError(msgspec.Struct, frozen=True):
    """A RamnetError a task raised (bad input it found, such as an int32 block that would
    overflow): its class name and one-line message, raised again on the driver."""

    kind: str
    message: str


class ComputeLimits(msgspec.Struct, array_like=True, frozen=True):
    """The largest magnitudes of A and B a task read (int32 jobs only; 0 otherwise)."""

    max_a: int
    max_b: int


_ENCODER = msgspec.msgpack.Encoder()


def encode(message: Any) -> bytes:
    """A message as msgpack bytes."""
    return _ENCODER.encode(message)


def decode(data: bytes, kind: type[_T]) -> _T:
    """Parse a message of type ``kind``; anything else is an error.

    Raises:
        msgspec.DecodeError: Malformed bytes or the wrong shape of message.
    """
    return msgspec.msgpack.decode(data, type=kind)
