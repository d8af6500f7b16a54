"""The content-addressed blob store: round trips, corruption, recycled files, direct I/O."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from ramnet._errors import RamnetError
from ramnet.mesh.state import blobs as _blobs
from ramnet.mesh.state.blobs import (
    DIRECT_MIN,
    BadDigestError,
    BlobCorruptError,
    BlobNotFoundError,
    BlobStore,
    blob_digest,
)


def test_blob_round_trip_and_idempotent_put(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    data = bytes(range(256)) * 100
    d = blobs.put(data)
    assert d == blob_digest(data) and len(d) == 64
    assert blobs.get(d) == data and blobs.has(d) and blobs.size(d) == len(data)
    assert blobs.put(data) == d
    assert blobs.path_of(d) == tmp_path / "blobs" / d[:2] / d
    assert blobs.put_stream([data[:1000], data[1000:]]) == d
    assert blobs.put(b"") == blob_digest(b"")
    assert blobs.get(blob_digest(b"")) == b""
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []  # no temporary file left
    assert blobs.delete(d) and not blobs.has(d) and not blobs.delete(d)
    # A digest the caller computed already names the blob (a request body hashed for its
    # signature), and must still look like a digest.
    assert blobs.put(bytearray(data), digest=d) == d and blobs.get(d) == data
    with pytest.raises(BadDigestError):
        blobs.put(data, digest="nope")


def test_blob_missing_corrupt_and_bad_digests(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    d = blobs.put(b"tile bytes")
    with pytest.raises(BlobNotFoundError):
        blobs.get("0" * 64)
    with pytest.raises(BlobNotFoundError):
        blobs.size("0" * 64)
    path = blobs.path_of(d)
    path.write_bytes(b"tile bytez")
    with pytest.raises(BlobCorruptError, match="corrupt"):
        blobs.get(d)
    assert blobs.put(b"tile bytes") == d  # a put repairs a rotted copy
    assert blobs.get(d) == b"tile bytes"
    for bad in ("../" * 10 + "etc/passwd", "A" * 64, "0" * 63, "0" * 65, "", None, "/" + "0" * 63):
        with pytest.raises(BadDigestError):
            blobs.get(bad)  # type: ignore[arg-type]
        with pytest.raises(BadDigestError):
            blobs.has(bad)  # type: ignore[arg-type]
    assert issubclass(BlobCorruptError, RamnetError) and issubclass(BadDigestError, ValueError)


MIB = 1 << 20


def _blob(size: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def test_deleted_blobs_files_are_written_over(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    first = blobs.put(_blob(3 * MIB, 1))
    inode = blobs.path_of(first).stat().st_ino
    assert blobs.delete(first) and not blobs.has(first) and not blobs.delete(first)
    assert [p.stat().st_ino for p in (tmp_path / "blobs" / "free").iterdir()] == [inode]
    data = _blob(2 * MIB + 5, 2)
    second = blobs.put(data)
    path = blobs.path_of(second)
    assert path.stat().st_ino == inode  # the same file, written over
    assert path.stat().st_size == len(data) and blobs.get(second) == data  # and cut to size
    assert list((tmp_path / "blobs" / "free").iterdir()) == []
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_recycling_picks_the_closest_fit_and_keeps_a_bounded_pool(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs", recycle_bytes=8 * MIB)
    sizes = {2: _blob(2 * MIB, 3), 5: _blob(5 * MIB, 4), 4: _blob(4 * MIB, 5)}
    digests = {size: blobs.put(data) for size, data in sizes.items()}
    inodes = {size: blobs.path_of(d).stat().st_ino for size, d in digests.items()}
    for d in digests.values():
        blobs.delete(d)
    free = tmp_path / "blobs" / "free"
    # 2 + 5 MiB fit the 8 MiB pool; the 4 MiB file did not and was unlinked.
    assert sorted(p.stat().st_size for p in free.iterdir()) == [2 * MIB, 5 * MIB]
    small = blobs.put(_blob(MIB + 1, 6))  # the smallest kept file that holds it
    assert blobs.path_of(small).stat().st_ino == inodes[2]
    big = blobs.put_stream([_blob(3 * MIB, 7)])  # the 5 MiB file, the only one that holds it
    assert blobs.path_of(big).stat().st_ino == inodes[5]
    tiny = blobs.put(b"x" * 1000)
    blobs.delete(tiny)  # too small to be worth keeping
    assert list(free.iterdir()) == []
    off = BlobStore(tmp_path / "off", recycle_bytes=0)
    blobs_off = off.put(_blob(2 * MIB, 8))
    off.delete(blobs_off)
    assert list((tmp_path / "off" / "free").iterdir()) == []


def test_a_read_racing_a_reused_file_reports_no_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    old = blobs.put(_blob(2 * MIB, 9))
    old_path = blobs.path_of(old)
    real = Path.read_bytes

    def racing(self: Path) -> bytes:
        if self == old_path:
            blobs.delete(old)  # deleted while we read, and its file reused at once
            blobs.put(_blob(2 * MIB, 10))
            return _blob(2 * MIB, 10)
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", racing)
    with pytest.raises(BlobNotFoundError):
        blobs.get(old)


def test_blobs_from_many_threads_with_recycling(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs", recycle_bytes=6 * MIB)
    errors: list[BaseException] = []

    def churn(seed: int) -> None:
        try:
            for round_ in range(12):
                data = _blob(MIB + 4096 * ((seed * 7 + round_) % 50), seed * 100 + round_)
                d = blobs.put(data)
                assert blobs.get(d) == data
                blobs.delete(d)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
    assert sum(p.stat().st_size for p in (tmp_path / "blobs" / "free").iterdir()) <= 6 * MIB


def _direct_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the files the blob store opens with O_DIRECT."""
    opened: list[str] = []
    real = os.open

    def spy(path: object, flags: int, *args: int) -> int:
        if flags & os.O_DIRECT:
            opened.append(str(path))
        return real(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(_blobs.os, "open", spy)
    return opened


@pytest.mark.parametrize(
    "size", [4 * MIB, 8 * MIB, 8 * MIB + 1, 20 * MIB + 123, 5 * MIB - 1]
)  # at the threshold, a whole staging piece, one byte over, several pieces and a tail, below
def test_large_blobs_are_written_direct_and_read_back_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    opened = _direct_opens(monkeypatch)
    blobs = BlobStore(tmp_path / "blobs")
    data = _blob(size, size)
    cut = size // 3
    d = blobs.put_stream([data[:cut], memoryview(data)[cut:]])
    assert d == blob_digest(data) and blobs.get(d) == data and blobs.size(d) == size
    assert len(opened) == 1 and blobs.direct
    d2 = blobs.put(data[::-1])
    assert blobs.get(d2) == data[::-1] and len(opened) == 2
    small = blobs.put(_blob(DIRECT_MIN - 1, 5))  # below the threshold: through the page cache
    assert blobs.has(small) and len(opened) == 2
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_a_kept_file_that_holds_a_large_blob_is_preferred_to_direct_io(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = _direct_opens(monkeypatch)
    blobs = BlobStore(tmp_path / "blobs", direct=False)
    small, big = blobs.put(_blob(2 * MIB, 20)), blobs.put(_blob(12 * MIB, 21))
    inode = blobs.path_of(big).stat().st_ino
    blobs.delete(small)
    blobs.delete(big)
    blobs.direct = True
    d = blobs.put(_blob(10 * MIB, 22))  # the 12 MiB kept file holds it
    assert blobs.path_of(d).stat().st_ino == inode and opened == []
    d = blobs.put(_blob(6 * MIB, 23))  # only the 2 MiB file is left: direct to a new file
    assert len(opened) == 1 and blobs.get(d) == _blob(6 * MIB, 23)
    assert [p.stat().st_size for p in (tmp_path / "blobs" / "free").iterdir()] == [2 * MIB]


@pytest.mark.parametrize("where", ["open", "write"])
def test_direct_io_refused_falls_back_to_ordinary_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    real_open, real_write = os.open, _blobs._write_all

    def no_direct_open(path: object, flags: int, *args: int) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    def failing_write(fd: int, data: memoryview) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")  # after the first pieces were hashed

    if where == "open":
        monkeypatch.setattr(_blobs.os, "open", no_direct_open)
    else:
        monkeypatch.setattr(_blobs, "_write_all", failing_write)
    blobs = BlobStore(tmp_path / "blobs")
    data = _blob(9 * MIB, 30)
    d = blobs.put_stream([data[: 3 * MIB], data[3 * MIB :]])
    assert d == blob_digest(data) and blobs.get(d) == data
    assert not blobs.direct  # and it stops trying
    monkeypatch.setattr(_blobs, "_write_all", real_write)
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_direct_write_errors_other_than_refusal_are_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: memoryview) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_blobs, "_write_all", full)
    blobs = BlobStore(tmp_path / "blobs")
    with pytest.raises(OSError, match="No space"):
        blobs.put(_blob(5 * MIB, 31))
    assert blobs.direct and list((tmp_path / "blobs" / "tmp").iterdir()) == []
