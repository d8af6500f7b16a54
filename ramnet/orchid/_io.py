"""Operands in, results out: ``.npy`` files (memory-mapped), seeded random matrices, atomic saves.

``.npy`` files are opened with ``allow_pickle=False``: object arrays are refused, never unpickled.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from ramnet._errors import InputFileError, InvalidInputError, OutputFileError
from ramnet.orchid._dtypes import parse_dtype


def _read_header(p: Path, name: str) -> tuple[tuple[int, ...], np.dtype, int]:
    # Validates the .npy header before numpy maps the file: clear errors for wrong or cut files.
    fmt = np.lib.format
    try:
        with p.open("rb") as f:
            if f.read(6) != b"\x93NUMPY":
                raise InputFileError(f"{name}: {p} is not a .npy file (bad magic bytes)")
            f.seek(0)
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, _, dtype = fmt.read_array_header_2_0(f)
            else:
                raise InputFileError(f"{name}: {p} has unsupported .npy version {version}")
            offset = f.tell()
    except InputFileError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise InputFileError(f"{name}: {p} has a corrupt .npy header ({exc})") from exc
    if dtype.hasobject:
        raise InputFileError(
            f"{name}: {p} holds Python objects; RAMNET never unpickles data, save numbers instead"
        )
    return tuple(shape), dtype, offset


def load_npy(path: str | os.PathLike[str], name: str = "input") -> np.ndarray:
    """Open a ``.npy`` file as a read-only memory map.

    Args:
        path: The file.
        name: How to call the operand in errors (``A``, ``B``).

    Returns:
        The array, memory-mapped (only the pages a computation touches are read).

    Raises:
        InputFileError: The file is missing, unreadable, not a ``.npy`` array, truncated, or holds
            Python objects.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{name}: no such file: {p}")
    shape, dtype, offset = _read_header(p, name)
    needed = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = p.stat().st_size
    if size < needed:
        raise InputFileError(f"{name}: {p} is truncated ({size} bytes, its header needs {needed})")
    try:
        array = np.load(p, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputFileError(f"{name}: {p} is not a readable .npy array ({exc})") from exc
    if not isinstance(array, np.ndarray):
        raise InputFileError(f"{name}: {p} is an archive, not a single .npy array")
    return array


def parse_shape(text: str) -> tuple[int, int, int]:
    """Parse ``MxKxN`` (for example ``2048x2048x2048``) into (M, K, N).

    Raises:
        InvalidInputError: Not three positive integers joined by ``x``.
    """
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None:
        raise InvalidInputError(f"--random takes MxKxN, for example 1024x1024x1024, not {text!r}")
    m, k, n = (int(g) for g in match.groups())
    if min(m, k, n) < 1:
        raise InvalidInputError(f"--random dimensions must be >= 1, got {text!r}")
    return m, k, n


def random_operands(
    m: int, k: int, n: int, dtype: str, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return seeded random operands A (m x k) and B (k x n).

    Integer entries are uniform over the dtype's full range, except int32, whose range is narrowed
    to +-floor(sqrt((2^60 - 1) / k)), so the exact product fits int64 with room for VALKYRIE's
    proof field. Floats are standard normal.

    Raises:
        UnsupportedDTypeError: An unsupported dtype name.
    """
    dt = parse_dtype(dtype)
    rng = np.random.default_rng(seed)
    if dt.kind == "f":
        a = rng.standard_normal((m, k), dtype=dt)
        b = rng.standard_normal((k, n), dtype=dt)
        return a, b
    info = np.iinfo(dt)
    lo, hi = int(info.min), int(info.max)
    if dt == np.int32:
        import math

        # K * max|A| * max|B| < 2^60: the product fits int64 and VALKYRIE's proof covers it.
        hi = min(hi, math.isqrt((2**60 - 1) // max(k, 1)))
        lo = -hi
    a = rng.integers(lo, hi, size=(m, k), dtype=dt, endpoint=True)
    b = rng.integers(lo, hi, size=(k, n), dtype=dt, endpoint=True)
    return a, b


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Check, before any work, that ``path`` can be written.

    Raises:
        OutputFileError: The folder is missing or not writable, or the path is a folder.
    """
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise OutputFileError(f"output {p} is a folder")
    if not parent.is_dir():
        raise OutputFileError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise OutputFileError(f"output {p} is not writable")
    return p


def _umask() -> int:
    # Read without setting it: os.umask can only be read by changing it, for every thread.
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_tempfile(path: Path) -> tuple[int, Path]:
    """A temporary file beside ``path`` to write an output into before it takes ``path``'s name.

    It gets the mode ``path`` would get from a plain ``open``: the existing file's, or 0666 less
    the umask (``mkstemp`` alone makes it 0600, and a result or trace is meant to be shared).

    Returns:
        Its open descriptor and its path.

    Raises:
        OSError: It cannot be created.
    """
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        os.fchmod(fd, mode)
    except OSError:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return fd, Path(tmp)


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write ``array`` to ``path`` as ``.npy``, atomically: readers never see half a file.

    Raises:
        OutputFileError: The file cannot be written.
    """
    p = check_writable(path)
    try:
        fd, tmp = output_tempfile(p)
    except OSError as exc:
        raise OutputFileError(f"cannot write {p}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, p)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputFileError(f"cannot write {p}: {exc.strerror or exc}") from exc
    return p


class NpyWriter:
    """A ``.npy`` file written piece by piece (a download), in place only once complete.

    The data go to a temporary file beside ``path``, so, as with ``save_npy``, readers never see
    half a file: ``commit`` moves it into place, ``discard`` (or leaving a ``with`` block without
    committing) removes it. ``array`` maps the written data for reading before the commit (a
    downloaded result is checked first): no copy of it is ever held in memory.

    Args:
        path: Where the file goes.
        dtype: The array's dtype (stored as it is, byte order included).
        shape: The array's shape.

    Raises:
        OutputFileError: The file cannot be created.
    """

    def __init__(self, path: str | os.PathLike[str], dtype: np.dtype, shape: tuple[int, ...]):
        self.path = check_writable(path)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.nbytes = int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header,
            {
                "descr": np.lib.format.dtype_to_descr(self.dtype),
                "fortran_order": False,
                "shape": self.shape,
            },
        )
        self._header = header.getvalue()
        self._written = 0
        self._closed = self._committed = False
        try:
            self._fd, self._tmp = output_tempfile(self.path)
        except OSError as exc:
            raise OutputFileError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self.restart()

    def restart(self) -> None:
        """Drop what was written (a download that starts again).

        Raises:
            OutputFileError: The file cannot be written.
        """
        try:
            os.ftruncate(self._fd, 0)
            os.lseek(self._fd, 0, os.SEEK_SET)
            self._write_all(self._header)
        except OSError as exc:
            self.discard()
            raise OutputFileError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self._written = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append the array's next bytes.

        Raises:
            InvalidInputError: More bytes than the array holds.
            OutputFileError: The file cannot be written.
        """
        piece = memoryview(data).cast("B")
        if self._written + piece.nbytes > self.nbytes:
            raise InvalidInputError(f"more than the {self.nbytes} bytes of {self.path.name}")
        try:
            self._write_all(piece)
        except OSError as exc:
            self.discard()
            raise OutputFileError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self._written += piece.nbytes

    def _write_all(self, piece: bytes | memoryview) -> None:
        view = memoryview(piece)
        while view.nbytes:
            view = view[os.write(self._fd, view) :]

    def array(self) -> np.ndarray:
        """The written array, read-only, mapped from the file (complete: ``write`` is done).

        Raises:
            InvalidInputError: Not all of the array's bytes were written.
        """
        if self._written != self.nbytes:
            raise InvalidInputError(f"{self.path.name}: {self._written} of {self.nbytes} bytes")
        if self.nbytes == 0:
            empty = np.empty(self.shape, self.dtype)
            empty.flags.writeable = False
            return empty
        size = len(self._header) + self.nbytes
        # Its pages are in the page cache: mapping them all at once costs no copy and no zeroing.
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        mapped = mmap.mmap(self._fd, size, flags=flags, prot=mmap.PROT_READ)
        return np.frombuffer(mapped, self.dtype, offset=len(self._header)).reshape(self.shape)

    def commit(self) -> Path:
        """Move the complete file into place.

        Raises:
            InvalidInputError: Not all of the array's bytes were written.
            OutputFileError: The file cannot be moved into place.
        """
        if self._written != self.nbytes:
            self.discard()
            raise InvalidInputError(f"{self.path.name}: {self._written} of {self.nbytes} bytes")
        try:
            os.close(self._fd)
            self._closed = True
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self.discard()
            raise OutputFileError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self._committed = True
        return self.path

    def discard(self) -> None:
        """Remove the temporary file (nothing is left behind); idempotent, and a no-op once
        committed."""
        if self._committed:
            return
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()  # a no-op once committed
