"""A content-addressed blob store in a folder: the coordinator's tiles, results and verdicts.

A blob is named by the BLAKE3-256 digest of its bytes, as 64 lowercase hex digits, and lives at
``<root>/<first two digits>/<digest>``. Writes are atomic and durable: the bytes go to a temporary
file in ``<root>/tmp``, are fsynced, renamed into place, and the folder is fsynced, so a crash
leaves either no blob or the whole blob (a stray temporary file at worst, never a torn blob under
a digest's name). Putting the same bytes twice is a no-op. Reads re-hash the bytes, so a blob that
rotted on disk is reported instead of served.

Digests are validated before they touch the file system: only 64 lowercase hex digits are
accepted, so a digest can never name a path outside the store.

Deleted blobs' files are recycled: up to ``recycle_bytes`` of them wait in ``<root>/free`` and a
later write goes over one of them in place (then truncates it to size) instead of creating a new
file. Writing over pages the page cache already holds is a plain copy, while a new file's pages are
fresh memory for the kernel: on this project's reference VM, 32 MiB written over a kept file costs
about 4.5 ms of CPU against 9 to 80 ms into a new one (see ``docs/mesh.md``). A reader racing the
deletion of the blob it reads sees the old bytes, no blob, or (if the file was already being
reused) bytes that fail the digest check, reported as no blob: never a wrong blob.

A large blob with no kept file big enough to take it is written with direct I/O (``O_DIRECT``,
through a reused page-aligned staging buffer) where the file system allows: its bytes go to the
disk without passing through new page-cache pages. A settled job's 64 MiB C is written once and
served from memory while it is wanted, so caching it would only cost: on the reference VM, 64 MiB
took 120 to 170 ms of CPU through the page cache and about 3 ms (38 ms wall) direct. Where direct
I/O is refused (tmpfs, other systems) the store falls back to ordinary writes for good.

A blob that must survive the loss of one file (a settled job's C, once its inputs are dropped)
also has a replica: a second file of the same bytes at ``<root>/replicas/<two digits>/<digest>``
(``put_replica``). ``get_redundant`` reads the primary and falls back to the replica when the
primary is missing or corrupt, writing the primary back from it; ``check_replica`` does the
converse. Each copy is checked against the digest, so a damaged copy is never served.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import re
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import blake3

from ramnet._errors import InvalidInputError, RamnetError

__all__ = [
    "BadDigestError",
    "BlobCorruptError",
    "BlobError",
    "BlobNotFoundError",
    "BlobStore",
    "blob_digest",
    "check_digest",
]

_DIGEST_RE = re.compile(r"[0-9a-f]{64}")

#: How many bytes of deleted blobs' files a store keeps for reuse by default.
RECYCLE_BYTES = 512 << 20
# Files smaller than this are not worth keeping: their pages are few, and a name each is not.
_MIN_RECYCLE = 1 << 20
#: Blobs at least this large, with no kept file to take them, are written with direct I/O.
DIRECT_MIN = 4 << 20
# Direct I/O goes through a staging buffer of this size, in writes aligned to _ALIGN.
_DIRECT_PIECE = 8 << 20
_ALIGN = 4096


class BlobError(RamnetError):
    """A blob store failure (missing or corrupt blob)."""


class BlobNotFoundError(BlobError, LookupError):
    """No blob with that digest is stored."""


class BlobCorruptError(BlobError):
    """A stored blob's bytes no longer hash to its name."""


class BadDigestError(InvalidInputError):
    """A string that is not a blob digest (64 lowercase hex digits)."""


def blob_digest(data: bytes | bytearray | memoryview) -> str:
    """Return the BLAKE3-256 digest of ``data`` as 64 lowercase hex digits (a blob's name)."""
    return str(blake3.blake3(data).hexdigest())


def check_digest(digest: object) -> str:
    """Return ``digest`` if it is 64 lowercase hex digits; raise ``BadDigestError`` otherwise."""
    if not isinstance(digest, str) or _DIGEST_RE.fullmatch(digest) is None:
        shown = repr(digest) if len(repr(digest)) <= 80 else repr(digest)[:77] + "..."
        raise BadDigestError(f"not a blob digest (64 lowercase hex digits): {shown}")
    return digest


def _fsync_dir(path: Path) -> None:
    """fsync a directory so a rename into it survives a power cut (a no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


class BlobStore:
    """Content-addressed blobs under one folder (created if missing).

    Safe for concurrent use from threads and processes: every write goes through its own
    temporary file and an atomic rename, and two writers of the same digest write the same bytes.

    Args:
        path: The store's root folder.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durable: bool = True,
        recycle_bytes: int = RECYCLE_BYTES,
        direct: bool = True,
    ) -> None:
        """Args:
        path: The store's folder (created if missing).
        durable: fsync each blob and its folder (survives power loss); without it a blob
            is still written to a temporary file and renamed into place, which survives the
            process being killed at any point.
        recycle_bytes: Keep up to this many bytes of deleted blobs' files to write new blobs
            over (0: unlink them).
        direct: Write large blobs with direct I/O where the file system allows it.
        """
        self.root = Path(path)
        self.durable = durable
        self.recycle_bytes = max(0, int(recycle_bytes))
        self._tmp = self.root / "tmp"
        self._free = self.root / "free"
        self._replicas = self.root / "replicas"
        self._free_lock = threading.Lock()
        self.direct = direct and hasattr(os, "O_DIRECT")
        self._direct_lock = threading.Lock()
        self._staging: mmap.mmap | None = None
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
            self._free.mkdir(exist_ok=True)
        except OSError as exc:
            raise BlobError(f"cannot create blob store at {self.root}: {exc}") from exc

    def __repr__(self) -> str:
        return f"BlobStore({str(self.root)!r})"

    def path_of(self, digest: str) -> Path:
        """The file a blob with this digest lives in (whether or not it exists)."""
        d = check_digest(digest)
        return self.root / d[:2] / d

    def replica_path(self, digest: str) -> Path:
        """The file a blob's replica lives in (whether or not it exists)."""
        d = check_digest(digest)
        return self._replicas / d[:2] / d

    def has(self, digest: str) -> bool:
        """Whether a blob with this digest is stored (its bytes are not re-hashed)."""
        return self.path_of(digest).is_file()

    def size(self, digest: str) -> int:
        """The stored blob's size in bytes."""
        path = self.path_of(digest)
        try:
            return path.stat().st_size
        except FileNotFoundError:
            raise BlobNotFoundError(f"no blob {digest}") from None

    def put(self, data: bytes | bytearray | memoryview, *, digest: str | None = None) -> str:
        """Store ``data`` and return its digest. Atomic and durable once it returns.

        Idempotent: when the blob is already stored intact nothing is written; a stored copy that
        has rotted (its bytes no longer hash to its name) is replaced.

        Args:
            data: The bytes.
            digest: ``blob_digest(data)`` when the caller computed it already (a server that
                hashed a request body to check its signature); it is trusted, not checked.
        """
        view = memoryview(data).cast("B")
        digest = blob_digest(view) if digest is None else check_digest(digest)
        target = self.path_of(digest)
        if self._intact(target, digest):
            return digest
        self._place(self._write_tmp((view,))[0], target)
        return digest

    def _intact(self, target: Path, digest: str) -> bool:
        try:
            return blob_digest(target.read_bytes()) == digest
        except OSError:
            return False

    def put_stream(self, chunks: Iterable[bytes | bytearray | memoryview]) -> str:
        """Store the concatenation of ``chunks`` (hashed while written) and return its digest."""
        tmp, digest = self._write_tmp(chunks, hashed=True)
        self._place(tmp, self.path_of(digest))
        return digest

    def get(self, digest: str) -> bytes:
        """Return the blob's bytes, after checking they still hash to ``digest``.

        Raises:
            BadDigestError: ``digest`` is not 64 lowercase hex digits.
            BlobNotFoundError: No such blob.
            BlobCorruptError: The stored bytes do not match the digest.
        """
        path = self.path_of(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobNotFoundError(f"no blob {digest}") from None
        except OSError as exc:
            raise BlobError(f"cannot read blob {digest}: {exc}") from exc
        actual = blob_digest(data)
        if actual != digest:
            if not path.is_file():  # deleted (and its file reused) while we read it
                raise BlobNotFoundError(f"no blob {digest}")
            raise BlobCorruptError(
                f"blob {digest} is corrupt: its {len(data)} bytes hash to {actual}"
            )
        return data

    def put_replica(
        self,
        chunks: Iterable[bytes | bytearray | memoryview],
        digest: str,
        *,
        trusted: bool = False,
    ) -> None:
        """Store a second copy of blob ``digest`` (``chunks`` are its bytes) as its replica.

        Args:
            chunks: The blob's bytes.
            digest: Its name.
            trusted: The caller knows the chunks hash to ``digest`` (they are the very bytes it
                stored under that name), so they are not hashed again: the replica then costs a
                copy and a write, not a hash. Every read checks it all the same.

        Raises:
            BlobCorruptError: The chunks do not hash to ``digest`` (nothing is stored); only
                checked when not ``trusted``.
        """
        target = self.replica_path(digest)
        tmp, actual = self._write_tmp(chunks, hashed=not trusted)
        if not trusted and actual != digest:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise BlobCorruptError(f"a replica of blob {digest} would hash to {actual}")
        target.parent.parent.mkdir(exist_ok=True)
        self._place(tmp, target)

    def has_replica(self, digest: str) -> bool:
        """Whether a replica of the blob is stored (its bytes are not re-hashed)."""
        return self.replica_path(digest).is_file()

    def get_redundant(self, digest: str) -> tuple[bytes, str | None]:
        """Return a replicated blob's bytes from whichever copy is intact, repairing the other.

        The primary is read first; only when it is missing or corrupt is the replica read, and
        the primary written back from it.

        Returns:
            The bytes, and a one-line note of the damage found and repaired (None: none found).

        Raises:
            BlobCorruptError: Neither copy is intact (a corrupt one, or both, is named).
            BlobNotFoundError: Neither copy exists.
        """
        try:
            return self.get(digest), None
        except BlobError as exc:
            primary = exc
        replica = self._read_checked(self.replica_path(digest), digest)
        if isinstance(replica, BlobError):
            if isinstance(primary, BlobNotFoundError) and isinstance(replica, BlobNotFoundError):
                raise primary
            raise BlobCorruptError(
                f"blob {digest} is lost: primary: {_reason(primary)}; replica: {_reason(replica)}"
            )
        self.put(replica, digest=digest)
        return replica, f"blob {digest}: primary {_reason(primary)}; rewritten from its replica"

    def check_replica(self, digest: str) -> str | None:
        """Check a blob's replica against the digest; rewrite it from the primary when it is
        missing or corrupt.

        Returns:
            A one-line note of the damage repaired (None: the replica was intact).

        Raises:
            BlobError: The primary is not intact either (nothing to repair from).
        """
        replica = self._read_checked(self.replica_path(digest), digest)
        if not isinstance(replica, BlobError):
            return None
        self.put_replica((self.get(digest),), digest)
        return f"blob {digest}: replica {_reason(replica)}; rewritten from the primary"

    def _read_checked(self, path: Path, digest: str) -> bytes | BlobError:
        # The file's bytes if they hash to ``digest``, else the error that says why not.
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return BlobNotFoundError(f"no copy of blob {digest} at {path}")
        except OSError as exc:
            return BlobError(f"cannot read blob {digest}: {exc}")
        if blob_digest(data) != digest:
            return BlobCorruptError(f"the copy of blob {digest} at {path} is corrupt")
        return data

    def delete(self, digest: str) -> bool:
        """Remove a blob (its file is kept for reuse, see ``recycle_bytes``); return whether it
        existed. Its replica, if any, goes too."""
        path = self.path_of(digest)
        with contextlib.suppress(FileNotFoundError):
            self.replica_path(digest).unlink()
        try:
            size = path.stat().st_size
            with self._free_lock:
                if size >= _MIN_RECYCLE and self._free_size() + size <= self.recycle_bytes:
                    os.replace(path, self._free / os.urandom(8).hex())
                    return True
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def _free_files(self) -> list[tuple[int, Path]]:
        # (size, path) of the kept files; a file another thread or process takes meanwhile is
        # simply missing when we try to take it.
        files = []
        with contextlib.suppress(OSError), os.scandir(self._free) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    files.append((entry.stat().st_size, Path(entry.path)))
        return files

    def _free_size(self) -> int:
        return sum(size for size, _ in self._free_files())

    def _claim(self, size: int, *, whole: bool = False) -> Path | None:
        # A kept file renamed to a fresh temporary name (so no one else can take it): the one
        # that fits ``size`` most closely from above, else (unless ``whole``) the largest.
        with self._free_lock:
            files = self._free_files()
            if whole:
                files = [f for f in files if f[0] >= size]
            if not files:
                return None
            files.sort(key=lambda f: (f[0] < size, f[0] if f[0] >= size else -f[0]))
            for _, path in files:
                tmp = self._tmp / f"in-{os.urandom(8).hex()}"
                try:
                    os.replace(path, tmp)
                except FileNotFoundError:
                    continue
                return tmp
        return None

    def _write_tmp(
        self,
        chunks: Iterable[bytes | bytearray | memoryview],
        *,
        hashed: bool = False,
    ) -> tuple[Path, str]:
        # Write the chunks into a temporary file, synced when durable, and return it with their
        # digest (when ``hashed``, else ""); the caller moves it into place with ``_place``. A
        # kept file is written over and cut to length; a large blob that no kept file holds goes
        # direct to a new file; anything else is written to a new file through the page cache.
        pieces = [memoryview(chunk).cast("B") for chunk in chunks]
        size = sum(piece.nbytes for piece in pieces)
        large = self.direct and size >= DIRECT_MIN
        reused = self._claim(size, whole=large)
        if reused is None and large:
            written = self._write_direct(pieces, blake3.blake3() if hashed else None)
            if written is not None:
                return written
        hasher = blake3.blake3() if hashed else None
        if reused is not None:
            fd = os.open(reused, os.O_WRONLY)
            tmp = reused
        else:
            fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="in-")
            tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                for piece in pieces:
                    if hasher is not None:
                        hasher.update(piece)
                    fh.write(piece)
                fh.truncate()
                fh.flush()
                if self.durable:
                    os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return tmp, str(hasher.hexdigest()) if hasher is not None else ""

    def _write_direct(self, pieces: list[memoryview], hasher: Any) -> tuple[Path, str] | None:
        # The pieces copied through the staging buffer and written with O_DIRECT in aligned
        # writes; the tail is padded to the alignment and the file cut back to length. None when
        # the file system refuses direct I/O (then this store stops trying).
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="in-")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_DIRECT)
        except OSError:
            self.direct = False
            tmp.unlink()
            return None
        try:
            with self._direct_lock:
                if self._staging is None:
                    self._staging = mmap.mmap(-1, _DIRECT_PIECE)
                stage = memoryview(self._staging)
                fill = total = 0
                for piece in pieces:
                    if hasher is not None:
                        hasher.update(piece)
                    at = 0
                    while at < len(piece):
                        take = min(len(piece) - at, _DIRECT_PIECE - fill)
                        stage[fill : fill + take] = piece[at : at + take]
                        fill, at, total = fill + take, at + take, total + take
                        if fill == _DIRECT_PIECE:
                            _write_all(fd, stage)
                            fill = 0
                if fill:
                    padded = -(-fill // _ALIGN) * _ALIGN
                    stage[fill:padded] = bytes(padded - fill)
                    _write_all(fd, stage[:padded])
                os.ftruncate(fd, total)
                if self.durable:
                    os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            if exc.errno == errno.EINVAL:  # direct I/O refused after all: write it buffered
                self.direct = False
                return None
            raise
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        os.close(fd)
        return tmp, str(hasher.hexdigest()) if hasher is not None else ""

    def _place(self, tmp: Path, target: Path) -> None:
        # Atomically move a written temporary file to its blob's name.
        try:
            target.parent.mkdir(exist_ok=True)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        if self.durable:
            _fsync_dir(target.parent)


def _reason(exc: BlobError) -> str:
    # A copy's damage in a few words, for a note or an error naming both copies.
    if isinstance(exc, BlobNotFoundError):
        return "missing"
    if isinstance(exc, BlobCorruptError):
        return "corrupt"
    return "unreadable"


def _write_all(fd: int, data: memoryview) -> None:
    done = 0
    while done < len(data):
        done += os.write(fd, data[done:])
