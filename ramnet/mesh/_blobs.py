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
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
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
    ) -> None:
        """Args:
        path: The store's folder (created if missing).
        durable: fsync each blob and its folder (survives power loss); without it a blob
            is still written to a temporary file and renamed into place, which survives the
            process being killed at any point.
        recycle_bytes: Keep up to this many bytes of deleted blobs' files to write new blobs
            over (0: unlink them).
        """
        self.root = Path(path)
        self.durable = durable
        self.recycle_bytes = max(0, int(recycle_bytes))
        self._tmp = self.root / "tmp"
        self._free = self.root / "free"
        self._free_lock = threading.Lock()
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
        self._place(self._write_tmp((view,), size=view.nbytes), target)
        return digest

    def _intact(self, target: Path, digest: str) -> bool:
        try:
            return blob_digest(target.read_bytes()) == digest
        except OSError:
            return False

    def put_stream(
        self, chunks: Iterable[bytes | bytearray | memoryview], *, size: int | None = None
    ) -> str:
        """Store the concatenation of ``chunks`` (hashed while written) and return its digest.

        Args:
            chunks: The pieces, in order.
            size: Their total length when known (it picks the kept file to write over).
        """
        hasher = blake3.blake3()
        tmp = self._write_tmp(chunks, hasher, size)
        digest = str(hasher.hexdigest())
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

    def delete(self, digest: str) -> bool:
        """Remove a blob (its file is kept for reuse, see ``recycle_bytes``); return whether it
        existed."""
        path = self.path_of(digest)
        try:
            size = path.stat().st_size
            with self._free_lock:
                if size >= _MIN_RECYCLE and self._free_size() + size <= self.recycle_bytes:
                    os.replace(path, self._free / secrets.token_hex(8))
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

    def _claim(self, size: int | None) -> Path | None:
        # A kept file renamed to a fresh temporary name (so no one else can take it): the one
        # that fits ``size`` most closely from above, else the largest.
        with self._free_lock:
            files = self._free_files()
            if not files:
                return None
            if size is None:
                files.sort(key=lambda f: -f[0])
            else:
                files.sort(key=lambda f: (f[0] < size, f[0] if f[0] >= size else -f[0]))
            for _, path in files:
                tmp = self._tmp / f"in-{secrets.token_hex(8)}"
                try:
                    os.replace(path, tmp)
                except FileNotFoundError:
                    continue
                return tmp
        return None

    def _write_tmp(
        self,
        chunks: Iterable[bytes | bytearray | memoryview],
        hasher: Any = None,
        size: int | None = None,
    ) -> Path:
        # Write (and, with ``hasher``, hash) the chunks into a temporary file, synced when
        # durable; the caller moves it into place with ``_place``. A kept file is written over
        # and cut to length; otherwise a new file is made.
        reused = self._claim(size)
        if reused is not None:
            fd = os.open(reused, os.O_WRONLY)
            tmp = reused
        else:
            fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="in-")
            tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    if hasher is not None:
                        hasher.update(chunk)
                    fh.write(chunk)
                fh.truncate()
                fh.flush()
                if self.durable:
                    os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return tmp

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
