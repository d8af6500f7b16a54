"""A tile's blob is its Merkle leaf's bytes: one hash names the blob and makes the leaf. The
coordinator's stored tiles, their digests and the job's commitments agree, tiles read back as
they were, and tile blobs written by an older version (wire containers) still read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramnet import orchid
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.protocol.messages import JobSubmission, RegisterRequest
from ramnet.mesh.protocol.wire import pack_parts
from ramnet.mesh.rules.tilecommit import (
    commit_tiles,
    is_tile_leaf,
    parse_tile_leaf,
    tile_leaf,
    tile_leaf_parts,
)
from ramnet.mesh.state.blobs import blob_digest
from ramnet.valkyrie import NodeKey

DTYPES = ["int8", "int16", "int32", "int64", "float32", "float64"]


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    rows=st.integers(0, 9),
    cols=st.integers(0, 9),
    kind=st.sampled_from(["a", "b"]),
    x=st.integers(0, 2**32 - 1),
    y=st.integers(0, 2**32 - 1),
    seed=st.integers(0, 2**31),
)
def test_a_tile_reads_back_from_its_leaf_bytes(
    dtype: str, rows: int, cols: int, kind: str, x: int, y: int, seed: int
) -> None:
    tile = (np.random.default_rng(seed).integers(-100, 100, (rows, cols))).astype(dtype)
    data = b"".join(bytes(part) for part in tile_leaf_parts(kind, x, y, tile))
    assert blob_digest(data) == tile_leaf(kind, x, y, tile).hex()
    assert is_tile_leaf(data)
    got_kind, got_x, got_y, values = parse_tile_leaf(data)
    assert (got_kind, got_x, got_y) == (kind, x, y)
    assert values.dtype == np.dtype(dtype) and values.shape == (rows, cols)
    np.testing.assert_array_equal(values, tile)
    assert values.flags.c_contiguous and values.flags.aligned


def test_a_big_endian_tile_has_the_little_endian_leaf() -> None:
    tile = np.arange(12, dtype=">i4").reshape(3, 4)
    assert tile_leaf("a", 1, 2, tile) == tile_leaf("a", 1, 2, tile.astype("<i4"))


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"RNMTILE1",  # the tag alone
        b"NOTATILE" + bytes(40),
        # a header for 2 x 2 int32 (16 bytes) with 15 bytes of values
        b"".join(bytes(p) for p in tile_leaf_parts("a", 0, 0, np.ones((2, 2), np.int32)))[:-1],
    ],
)
def test_what_is_not_a_tile_is_refused(bad: bytes) -> None:
    with pytest.raises(ValueError):
        parse_tile_leaf(bad)


def test_unknown_dtype_code_is_refused() -> None:
    data = bytearray(
        b"".join(bytes(p) for p in tile_leaf_parts("a", 0, 0, np.ones((1, 1), np.int8)))
    )
    data[8 + 1 + 4 + 4] = 99  # the dtype code
    with pytest.raises(ValueError):
        parse_tile_leaf(bytes(data))


def _coordinator(tmp_path: Path) -> tuple[Coordinator, str]:
    coord = Coordinator(CoordinatorConfig(data_dir=tmp_path, default_credit=10_000))
    consumer = NodeKey.generate().node_id
    coord.register(consumer, RegisterRequest(bond=0))
    return coord, consumer


def test_stored_tiles_are_their_leaves_and_make_the_commitments(tmp_path: Path) -> None:
    coord, consumer = _coordinator(tmp_path)
    a, b = orchid.random_operands(70, 50, 60, "int8", seed=2)
    job = coord.submit(consumer, JobSubmission(nodes=3, request_id="r"), {"A": a, "B": b})
    spec = coord.store.get_job(job["job_id"]).spec
    grid = orchid.Grid(*spec.edges)
    p, q, r = grid.shape
    tiles_a = {(i, kk): a[grid.rows(i), grid.inner(kk)] for i in range(p) for kk in range(r)}
    tiles_b = {(kk, j): b[grid.inner(kk), grid.cols(j)] for kk in range(r) for j in range(q)}
    for (i, kk), tile in tiles_a.items():
        blob = spec.tiles_a[f"{i}/{kk}"]
        assert blob == tile_leaf("a", i, kk, tile).hex()
        np.testing.assert_array_equal(coord.inputs.tile(blob), tile)
    for (kk, j), tile in tiles_b.items():
        blob = spec.tiles_b[f"{kk}/{j}"]
        assert blob == tile_leaf("b", kk, j, tile).hex()
        np.testing.assert_array_equal(coord.inputs.tile(blob), tile)
    # The roots a consumer recomputes from its own A and B (and validators open against).
    assert spec.commit_a == commit_tiles("a", tiles_a, (p, r))[0]
    assert spec.commit_b == commit_tiles("b", tiles_b, (r, q))[0]
    assert job["commitments"] == {"a": spec.commit_a, "b": spec.commit_b}
    coord.close()


def test_tile_blobs_of_an_older_version_still_read(tmp_path: Path) -> None:
    coord, _ = _coordinator(tmp_path)
    tile = np.arange(30, dtype=np.int16).reshape(5, 6)
    old = coord.blobs.put_stream(pack_parts({}, {"t": tile}))
    np.testing.assert_array_equal(coord.inputs.tile(old), tile)
    coord.close()
