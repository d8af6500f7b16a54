"""A job's inputs: its tiles in the blob store (and in memory until it settles), and its plan."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ramnet import orchid
from ramnet.mesh.protocol.wire import unpack
from ramnet.mesh.rules.plan import ShardPlan, plan_shards
from ramnet.mesh.rules.tilecommit import is_tile_leaf, parse_tile_leaf, tile_leaf_parts
from ramnet.mesh.state.blobs import BlobError, BlobStore
from ramnet.mesh.state.records import JobSpec

__all__ = ["JobInputs", "OnDamage", "TileMaps"]

#: A job's A tiles by (i, k) and B tiles by (k, j).
TileMaps = tuple[dict[tuple[int, int], np.ndarray], dict[tuple[int, int], np.ndarray]]
#: What handles a job's tile blob that cannot be read back: (job id, blob, error) -> the error
#: the request answers with (``Damage.inputs_damaged``).
OnDamage = Callable[[str, str, BlobError], Exception]


class JobInputs:
    """Stores and reads a job's tiles, keeps them at hand until it settles, and rebuilds its plan.

    Args:
        blobs: The blob store the tiles live in.
        max_body: The largest wire container read back (an old version's tile blob).
        on_damage: Called when a tile blob is missing or fails its digest; what it returns is
            raised (None: the blob store's error is raised as it is).
    """

    def __init__(
        self, blobs: BlobStore, max_body: int, *, on_damage: OnDamage | None = None
    ) -> None:
        self._blobs = blobs
        self._max_body = max_body
        self._on_damage = on_damage
        # Hot copies of what is also on disk, until the job settles; re-read after a restart.
        self._tiles: dict[str, TileMaps] = {}

    def put_tile(self, kind: str, xy: tuple[int, int], tile: np.ndarray) -> str:
        """Store one tile as its Merkle leaf's bytes; returns its blob name (the leaf's digest).

        Args:
            kind: ``"a"`` or ``"b"``.
            xy: Its (i, k) or (k, j).
            tile: The tile, C-contiguous.
        """
        # Written piece by piece, hashed on the way (no packed copy): the digest is the leaf's.
        return self._blobs.put_stream(tile_leaf_parts(kind, xy[0], xy[1], tile))

    def keep(self, job_id: str, tiles: TileMaps) -> None:
        """Keep a new job's tiles in memory (they are also stored)."""
        self._tiles[job_id] = tiles

    def forget(self, job_id: str) -> None:
        """Drop a settled job's tiles from memory."""
        self._tiles.pop(job_id, None)

    def tile(self, blob: str) -> np.ndarray:
        """The tile stored as ``blob``.

        Raises:
            BlobNotFoundError: No such blob.
            BlobCorruptError: Its bytes fail their digest.
        """
        data = self._blobs.get(blob)
        if is_tile_leaf(data):
            return parse_tile_leaf(data)[3]
        # Stored by an older version: a wire container of one array.
        _, arrays = unpack(data, max_bytes=self._max_body)
        return arrays["t"]

    def tiles(self, job_id: str, spec: JobSpec) -> TileMaps:
        """The job's tiles: from memory, else read from the blob store (and kept).

        Raises:
            Exception: What ``on_damage`` returns for a tile blob that is missing or corrupt
                (``InputsDamagedError``: the job failed); without it, the ``BlobError``.
        """
        if job_id not in self._tiles:
            self._tiles[job_id] = (
                {_pair(key): self._tile_of(job_id, v) for key, v in spec.tiles_a.items()},
                {_pair(key): self._tile_of(job_id, v) for key, v in spec.tiles_b.items()},
            )
        return self._tiles[job_id]

    def _tile_of(self, job_id: str, blob: str) -> np.ndarray:
        try:
            return self.tile(blob)
        except BlobError as exc:
            if self._on_damage is None:
                raise
            raise self._on_damage(job_id, blob, exc) from exc

    def plan(self, job_id: str, spec: JobSpec) -> tuple[ShardPlan, orchid.Grid]:
        """The job's sharding plan and grid, rebuilt from its spec."""
        grid = orchid.Grid(*spec.edges)
        salt = bytes.fromhex(spec.audit_salt)
        plan = plan_shards(
            job_id.encode(),
            grid.shape,
            spec.plan_nodes,
            audit_per_triad=spec.audit_per_triad,
            audit_salt=salt,
        )
        return plan, grid


def _pair(key: str) -> tuple[int, int]:
    x, y = key.split("/")
    return int(x), int(y)
