"""A replicated blob (a settled job's C) survives the damage of either copy: the intact copy is
served and the damaged one rewritten; damage to both is reported, never served."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ramnet.mesh.state.blobs import (
    BlobCorruptError,
    BlobNotFoundError,
    BlobStore,
    blob_digest,
)


def flip(path: Path, at: int = 10) -> None:
    """Flip one byte of a file in place (real damage on disk)."""
    data = bytearray(path.read_bytes())
    data[at % len(data)] ^= 0xFF
    path.write_bytes(bytes(data))


def _replicated(tmp_path: Path, size: int = 5000) -> tuple[BlobStore, str, bytes]:
    blobs = BlobStore(tmp_path / "blobs", durable=False)
    data = os.urandom(size)
    digest = blobs.put(data)
    blobs.put_replica([data[:100], data[100:]], digest)
    assert blobs.has_replica(digest)
    assert blobs.replica_path(digest) == tmp_path / "blobs" / "replicas" / digest[:2] / digest
    return blobs, digest, data


def test_both_copies_intact_serve_the_primary_without_a_note(tmp_path: Path) -> None:
    blobs, digest, data = _replicated(tmp_path)
    assert blobs.get_redundant(digest) == (data, None)
    assert blobs.check_replica(digest) is None


@pytest.mark.parametrize("damage", ["flip", "delete"])
def test_a_damaged_primary_is_served_from_the_replica_and_rewritten(
    tmp_path: Path, damage: str
) -> None:
    blobs, digest, data = _replicated(tmp_path)
    if damage == "flip":
        flip(blobs.path_of(digest))
        with pytest.raises(BlobCorruptError):
            blobs.get(digest)
    else:
        blobs.path_of(digest).unlink()
    got, note = blobs.get_redundant(digest)
    assert got == data
    assert note is not None and digest in note and "rewritten from its replica" in note
    assert ("corrupt" if damage == "flip" else "missing") in note
    assert blobs.get(digest) == data  # repaired on disk
    assert blobs.get_redundant(digest) == (data, None)


@pytest.mark.parametrize("damage", ["flip", "delete"])
def test_a_damaged_replica_is_rewritten_from_the_primary(tmp_path: Path, damage: str) -> None:
    blobs, digest, data = _replicated(tmp_path)
    if damage == "flip":
        flip(blobs.replica_path(digest), at=4000)
    else:
        blobs.replica_path(digest).unlink()
    assert blobs.get_redundant(digest) == (data, None)  # the primary serves
    note = blobs.check_replica(digest)
    assert note is not None and "rewritten from the primary" in note
    assert blobs.replica_path(digest).read_bytes() == data
    assert blobs.check_replica(digest) is None
    # And the repaired replica now serves when the primary goes.
    flip(blobs.path_of(digest))
    assert blobs.get_redundant(digest)[0] == data


def test_damage_to_both_copies_is_an_error_naming_both(tmp_path: Path) -> None:
    blobs, digest, _ = _replicated(tmp_path)
    flip(blobs.path_of(digest))
    flip(blobs.replica_path(digest))
    with pytest.raises(BlobCorruptError, match="primary: corrupt; replica: corrupt"):
        blobs.get_redundant(digest)
    blobs.replica_path(digest).unlink()
    with pytest.raises(BlobCorruptError, match="primary: corrupt; replica: missing"):
        blobs.get_redundant(digest)
    with pytest.raises(BlobCorruptError):
        blobs.check_replica(digest)  # nothing intact to repair from
    blobs.path_of(digest).unlink()
    with pytest.raises(BlobNotFoundError):
        blobs.get_redundant(digest)


def test_a_replica_must_hash_to_its_name_and_goes_with_its_blob(tmp_path: Path) -> None:
    blobs, digest, data = _replicated(tmp_path)
    other = blob_digest(b"other")
    with pytest.raises(BlobCorruptError, match="would hash to"):
        blobs.put_replica([data], other)
    assert not blobs.has_replica(other)
    # Trusted bytes (the ones just stored under that name) are not hashed again: a wrong
    # replica written that way is still never served, as every read checks it.
    blobs.put_replica([b"not the blob"], digest, trusted=True)
    assert blobs.check_replica(digest) is not None  # found and rewritten from the primary
    assert blobs.replica_path(digest).read_bytes() == data
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []  # nothing left behind
    assert blobs.delete(digest)
    assert not blobs.has(digest) and not blobs.has_replica(digest)
