"""Operands in, results out: ``.npy`` files (memory-mapped), seeded random matrices, atomic saves.

``.npy`` files are opened with ``allow_pickle=False``: object arrays are refused, never unpickled.
"""

from __future__ import annotations

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


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write ``array`` to ``path`` as ``.npy``, atomically: readers never see half a file.

    Raises:
        OutputFileError: The file cannot be written.
    """
    p = check_writable(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, p)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputFileError(f"cannot write {p}: {exc.strerror or exc}") from exc
    return p
