"""The driver's judgement of what tasks report: pure rules over digests and sketches, no I/O.

- ``TileRecord`` keeps the first digest seen of every tile of A, B and C; a task that read other
  bytes for the same tile means the store changed during the job.
- ``Copies`` keeps every copy's digest of every block product (audit blocks have three) and which
  copy C is assembled from.
- ``row_verdict`` reads one row's check sketches and names the partials that are wrong, and
  whether the row's C tiles are the sum of the partials that were checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ramnet._errors import StoreChangedError
from ramnet.spark.messages import RowResult, TileDigest
from ramnet.valkyrie.field import P61

__all__ = ["Copies", "RowVerdict", "TileRecord", "row_verdict"]

Block = tuple[int, int, int]


class TileRecord:
    """The digest of every tile of A, B and C as the first task that read (or wrote) it saw it."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, int, int], bytes] = {}

    def add(self, tiles: Iterable[TileDigest]) -> None:
        """Record tiles; compare each with the digest recorded before.

        Raises:
            StoreChangedError: A tile's bytes differ from an earlier read's.
        """
        for tile in tiles:
            key = (tile.name, tile.x, tile.y)
            first = self._seen.setdefault(key, tile.digest)
            if first != tile.digest:
                raise StoreChangedError(
                    f"{tile.name} changed while the job was running (tile {tile.x},{tile.y} read "
                    "twice with different bytes); nothing was written"
                )

    def forget_row(self, name: str, x: int) -> None:
        """Drop the digests of one row of tiles (C's row, before it is assembled again)."""
        for key in [key for key in self._seen if key[0] == name and key[1] == x]:
            del self._seen[key]

    def __len__(self) -> int:
        return len(self._seen)


@dataclass
class Copies:
    """Every copy of every block product: which slot computed it and its digest.

    Attributes:
        digests: block -> {copy tag -> digest}.
        accepted: block -> the tag C is assembled from (the primary copy, or a recomputation).
    """

    digests: dict[Block, dict[str, bytes]] = field(default_factory=dict)
    accepted: dict[Block, str] = field(default_factory=dict)

    def add(self, block: Block, tag: str, digest: bytes, *, primary: bool) -> None:
        """Record one copy; the primary copy is the one accepted first."""
        self.digests.setdefault(block, {})[tag] = digest
        if primary:
            self.accepted[block] = tag

    def digest(self, block: Block) -> bytes:
        """The accepted copy's digest."""
        return self.digests[block][self.accepted[block]]

    def disagreeing(self) -> list[Block]:
        """Blocks whose copies are not all the same bytes (audit blocks), in (i, j, k) order."""
        return sorted(b for b, d in self.digests.items() if len(set(d.values())) > 1)

    def wrong_copies(self, block: Block) -> list[str]:
        """Once the accepted copy of ``block`` has passed its check: the copies that differ."""
        good = self.digest(block)
        return sorted(tag for tag, d in self.digests[block].items() if d != good)


@dataclass(frozen=True)
class RowVerdict:
    """What one row's check found.

    Attributes:
        wrong: Partials that failed their check (the slot that computed them is faulty). A K
            block with a partial missing from its sums (changed or out of range) is judged on the
            next pass, after that partial is redone.
        changed: Partials whose bytes on disk are not the ones their task reported (redone, no
            one blamed).
        assembly_ok: Whether the C tiles as written are the sum of the checked partials.
    """

    wrong: tuple[Block, ...]
    changed: tuple[Block, ...]
    assembly_ok: bool


def _add(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    total: np.ndarray = (x + y) % np.uint64(P61)
    return total


def row_verdict(result: RowResult, blocks_in_row: Iterable[Block]) -> RowVerdict:
    """Judge one row of blocks from its assembly task's sketches (integer jobs) or range checks.

    Args:
        result: The task's result.
        blocks_in_row: Every (i, j, k) of the row.

    Returns:
        The verdict. A K block whose two sides disagree but whose own pairs name no partial marks
        every partial of that K block wrong (the task's report contradicts itself).
    """
    changed = tuple(sorted(result.changed))
    wrong = set(result.out_of_range)
    if result.c_sides:
        c_sides = [s.array() for s in result.c_sides]
        ab_sides = [s.array() for s in result.ab_sides]
        if len(c_sides) != len(ab_sides):
            return RowVerdict(tuple(sorted(set(blocks_in_row))), changed, False)
        named = {
            (b.i, b.j, b.k)
            for b in result.blocks
            if not np.array_equal(b.c_side.array(), b.ab_side.array())
        }
        # A K block missing a partial from its sums (changed on disk, or out of range) is judged
        # again once that partial is redone; judging it now would blame the others.
        incomplete = {x[2] for x in (*changed, *result.out_of_range)}
        for k, (c, ab) in enumerate(zip(c_sides, ab_sides, strict=True)):
            if k in incomplete or np.array_equal(c, ab):
                continue
            in_k = {x for x in named if x[2] == k}
            wrong |= in_k or {x for x in blocks_in_row if x[2] == k and x not in changed}
        total = c_sides[0]
        for c in c_sides[1:]:
            total = _add(total, c)
        sketch = result.c_sketch.array() if result.c_sketch is not None else None
        assembly_ok = sketch is not None and np.array_equal(sketch, total)
    else:
        assembly_ok = True
    return RowVerdict(tuple(sorted(wrong - set(changed))), changed, assembly_ok)
