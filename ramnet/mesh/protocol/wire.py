"""The mesh's body format for arrays and metadata, RNWIRE1: JSON plus raw array bytes, no pickle.

Layout (all integers little-endian)::

    offset  size        field
    0       8           magic b"RNWIRE1\\0"
    8       4           u32: J, the length of the JSON text
    12      J           JSON text, UTF-8: {"meta": {...}, "arrays": [entry, ...]}
    12+J    to D        zero bytes, up to D = the next multiple of 64 (the data start)
    D       ...         array data: each entry's bytes at D + offset, raw, little-endian, C order

Each entry of ``arrays`` is ``{"name": str, "dtype": str, "shape": [int, ...], "offset": int,
"length": int}``; ``dtype`` is a numpy name (``int8`` ... ``float64``), ``length`` is exactly
``prod(shape) * itemsize``, ``offset`` (from D) a multiple of 8. Arrays do not overlap, and the
container ends exactly where its last array ends (at D when there are none). ``pack`` places each
array at a multiple of 64.

``unpack`` checks all of this against bounds fixed before it reads anything (total size, JSON size
and nesting depth, number of arrays, allowed dtypes), allocates nothing the container's size does
not justify, and returns read-only arrays that share the input's memory (no copy). Anything
malformed raises ``WireFormatError``.
"""

from __future__ import annotations

import itertools
import json
import math
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ramnet._errors import InvalidInputError, TraceFormatError, UnsupportedDTypeError

__all__ = [
    "DEFAULT_WIRE_DTYPES",
    "PREFIX_BYTES",
    "WIRE_CONTENT_TYPE",
    "WIRE_MAGIC",
    "ArrayStream",
    "ArrayTarget",
    "WireArray",
    "WireFormatError",
    "head_size",
    "is_wire",
    "pack",
    "read_layout",
    "unpack",
]

WIRE_MAGIC = b"RNWIRE1\0"
#: The HTTP Content-Type of an RNWIRE1 body.
WIRE_CONTENT_TYPE = "application/vnd.ramnet.wire"
#: The dtypes ``unpack`` accepts unless told otherwise.
DEFAULT_WIRE_DTYPES: tuple[type[np.generic], ...] = (
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.float32,
    np.float64,
    np.uint8,
    np.uint64,
)

_PREFIX = struct.Struct("<8sI")
_ALIGN = 64
_OFFSET_ALIGN = 8
#: Defaults for ``unpack``'s bounds (``pack`` applies the same ones).
MAX_JSON_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
MAX_ARRAYS = 4096
MAX_NAME = 256
MAX_NDIM = 32
_ENTRY_KEYS = frozenset({"name", "dtype", "shape", "offset", "length"})


class WireFormatError(TraceFormatError):
    """Bytes that are not a well-formed RNWIRE1 container (or exceed the reader's bounds)."""

    http_status = 400


def is_wire(content_type: str | None) -> bool:
    """Whether an HTTP Content-Type header (parameters allowed) names an RNWIRE1 body."""
    return (content_type or "").split(";")[0].strip() == WIRE_CONTENT_TYPE


def _align(n: int, to: int = _ALIGN) -> int:
    return -(-n // to) * to


def _depth_ok(value: Any, limit: int) -> bool:
    # Iterative, so a deep document cannot exhaust the Python stack here.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > limit:
                return False
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            if depth > limit:
                return False
            stack.extend((v, depth + 1) for v in item)
    return True


def _dtype_table(dtypes: Iterable[Any]) -> dict[str, np.dtype[Any]]:
    table: dict[str, np.dtype[Any]] = {}
    for d in dtypes:
        dt = np.dtype(d)
        if dt.kind not in "iufb" or dt.hasobject or dt.fields is not None or dt.subdtype:
            raise UnsupportedDTypeError(f"dtype {dt} cannot travel in RNWIRE1")
        table[dt.name] = dt.newbyteorder("<")
    return table


def pack(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> bytes:
    """Build an RNWIRE1 container.

    Returns:
        The container's bytes (one copy of each array's data).

    Raises:
        As ``pack_parts``.
    """
    return b"".join(pack_parts(meta, arrays))


def pack_parts(
    meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
) -> list[bytes | memoryview]:
    """An RNWIRE1 container as the pieces that, concatenated, make it: a server sends them one
    after another without building the container (arrays that are already little-endian and in C
    order are not copied; keep them unchanged until the pieces are sent).

    Args:
        meta: A JSON-serialisable mapping (str keys; no NaN or Inf; nesting within the bounds).
        arrays: Named numeric arrays (bool, int, uint or float of 1 to 8 bytes); any byte order
            and memory layout (written little-endian, C order).

    Returns:
        The pieces, in order.

    Raises:
        InvalidInputError: ``meta`` is not JSON-serialisable within the bounds, or a name is bad.
        UnsupportedDTypeError: An array of objects, strings, structures or complex numbers.
    """
    if not isinstance(meta, Mapping):
        raise InvalidInputError("wire metadata must be a mapping")
    if len(arrays) > MAX_ARRAYS:
        raise InvalidInputError(f"at most {MAX_ARRAYS} arrays per wire container")
    entries: list[dict[str, Any]] = []
    chunks: list[Any] = []
    position = 0
    for name, array in arrays.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
            raise InvalidInputError(f"wire array names must be 1 to {MAX_NAME} characters")
        arr = np.asarray(array)
        dt = _dtype_table([arr.dtype])[arr.dtype.name]
        if arr.ndim > MAX_NDIM:
            raise InvalidInputError(f"wire array {name!r} has more than {MAX_NDIM} dimensions")
        data = np.asarray(arr, dtype=dt, order="C")
        start = _align(position)
        if start > position:
            chunks.append(bytes(start - position))
        length = data.nbytes
        if length:
            chunks.append(data.reshape(-1).view(np.uint8).data)
        entries.append(
            {
                "name": name,
                "dtype": dt.name,
                "shape": [int(s) for s in data.shape],
                "offset": start,
                "length": length,
            }
        )
        position = start + length
    doc = {"meta": dict(meta), "arrays": entries}
    if not _depth_ok(doc["meta"], MAX_JSON_DEPTH - 1):
        raise InvalidInputError(f"wire metadata nests deeper than {MAX_JSON_DEPTH - 1} levels")
    try:
        text = json.dumps(doc, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"wire metadata is not JSON-serialisable: {exc}") from exc
    head = text.encode("utf-8")
    if len(head) > MAX_JSON_BYTES:
        raise InvalidInputError(f"wire metadata is over {MAX_JSON_BYTES} bytes of JSON")
    prefix_len = _PREFIX.size + len(head)
    padding = bytes(_align(prefix_len) - prefix_len)
    return [_PREFIX.pack(WIRE_MAGIC, len(head)) + head + padding, *chunks]


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key in a JSON object")
    return out


def _short(value: Any, limit: int = 60) -> str:
    try:
        text = str(value)
    except ValueError:  # an integer with more digits than Python will print
        return "(a huge number)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class WireArray:
    """Where one array of an RNWIRE1 container lies (``read_layout``).

    Attributes:
        name: Its name.
        dtype: Its dtype (little-endian).
        shape: Its shape.
        start: The offset of its first byte from the container's start.
        count: Its number of elements.
    """

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    start: int
    count: int

    @property
    def nbytes(self) -> int:
        """The bytes of its data."""
        return self.count * self.dtype.itemsize


#: The bytes at the start of a container that tell how long its head is (``head_size``).
PREFIX_BYTES = _PREFIX.size


def head_size(
    prefix: bytes | bytearray | memoryview,
    total: int,
    *,
    max_bytes: int,
    max_json_bytes: int = MAX_JSON_BYTES,
) -> int:
    """The length of a container's head (its prefix, JSON and padding: where its data start).

    Args:
        prefix: At least the container's first ``PREFIX_BYTES`` bytes.
        total: The container's size in bytes.
        max_bytes, max_json_bytes: As for ``unpack``.

    Raises:
        WireFormatError: Bad magic bytes, or sizes past the bounds or past ``total``.
    """
    if total > max_bytes:
        raise WireFormatError(f"wire body of {total} bytes is over the limit of {max_bytes}")
    if total < _PREFIX.size or len(prefix) < _PREFIX.size:
        raise WireFormatError(f"wire body too short ({min(total, len(prefix))} bytes)")
    magic, json_len = _PREFIX.unpack_from(prefix, 0)
    if magic != WIRE_MAGIC:
        raise WireFormatError("not an RNWIRE1 body (bad magic bytes)")
    if json_len > max_json_bytes:
        raise WireFormatError(
            f"wire JSON of {json_len} bytes is over the limit of {max_json_bytes}"
        )
    header_end = _PREFIX.size + json_len
    if header_end > total:
        raise WireFormatError(f"wire body truncated: {total} bytes, its header needs {header_end}")
    data_start = _align(header_end)
    if data_start > total:
        raise WireFormatError(f"wire body truncated: {total} bytes, its data start at {data_start}")
    return data_start


def read_layout(
    head: bytes | bytearray | memoryview,
    total: int,
    *,
    max_bytes: int,
    allowed_dtypes: Iterable[Any] = DEFAULT_WIRE_DTYPES,
    max_json_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
    max_arrays: int = MAX_ARRAYS,
) -> tuple[dict[str, Any], list[WireArray]]:
    """Validate a container from its head alone: a body streamed elsewhere is checked as
    ``unpack`` checks a whole one before any of its data is read.

    Args:
        head: At least the container's first ``head_size`` bytes (more are ignored).
        total: The container's size in bytes.
        max_bytes, allowed_dtypes, max_json_bytes, max_depth, max_arrays: As for ``unpack``.

    Returns:
        (meta, arrays): the metadata object and where each array lies, in the order listed.

    Raises:
        WireFormatError: The head is not well formed, or does not fit ``total`` bytes.
    """
    view = memoryview(head).cast("B")
    data_start = head_size(view, total, max_bytes=max_bytes, max_json_bytes=max_json_bytes)
    if view.nbytes < data_start:
        raise WireFormatError(f"wire head truncated: {view.nbytes} of {data_start} bytes")
    header_end = _PREFIX.size + _PREFIX.unpack_from(view, 0)[1]
    if any(view[header_end:data_start]):
        raise WireFormatError("wire padding after the JSON is not zero")
    try:
        text = bytes(view[_PREFIX.size : header_end]).decode("utf-8")
        doc = json.loads(text, parse_constant=_no_constants, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise WireFormatError("wire JSON nests too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireFormatError(f"wire JSON is malformed: {str(exc)[:200]}") from None
    if not isinstance(doc, dict) or set(doc) != {"meta", "arrays"}:
        raise WireFormatError('wire JSON must be an object with exactly "meta" and "arrays"')
    if not _depth_ok(doc, max_depth):
        raise WireFormatError(f"wire JSON nests deeper than {max_depth} levels")
    meta, entries = doc["meta"], doc["arrays"]
    if not isinstance(meta, dict):
        raise WireFormatError('wire "meta" must be an object')
    if not isinstance(entries, list):
        raise WireFormatError('wire "arrays" must be a list')
    if len(entries) > max_arrays:
        raise WireFormatError(
            f"wire body has {len(entries)} arrays, over the limit of {max_arrays}"
        )
    try:
        dtypes = _dtype_table(allowed_dtypes)
    except (TypeError, UnsupportedDTypeError) as exc:
        raise InvalidInputError(f"bad allowed_dtypes for unpack: {exc}") from None
    data_len = total - data_start
    spans: list[tuple[int, int, str]] = []
    parsed: list[WireArray] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
            raise WireFormatError(
                f"wire array entry {i} must have exactly the keys {sorted(_ENTRY_KEYS)}"
            )
        name, dname, shape = entry["name"], entry["dtype"], entry["shape"]
        offset, length = entry["offset"], entry["length"]
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
            raise WireFormatError(f"wire array entry {i}: name must be 1 to {MAX_NAME} characters")
        label = f"wire array {name[:64]!r}"
        if not isinstance(dname, str) or dname not in dtypes:
            raise WireFormatError(
                f"{label}: dtype {str(dname)[:32]!r} is not allowed (allowed: {', '.join(dtypes)})"
            )
        dt = dtypes[dname]
        if (
            not isinstance(shape, list)
            or len(shape) > MAX_NDIM
            or not all(_is_int(s) and s >= 0 for s in shape)
        ):
            raise WireFormatError(
                f"{label}: shape must be a list of at most {MAX_NDIM} non-negative integers"
            )
        if not _is_int(offset) or not _is_int(length) or offset < 0 or length < 0:
            raise WireFormatError(f"{label}: offset and length must be non-negative integers")
        # Python integers: no overflow; compare against the bytes present before any allocation.
        count = math.prod(shape)
        if count * dt.itemsize != length:
            raise WireFormatError(
                f"{label}: length {_short(length)} does not match shape {_short(shape)} of {dname}"
            )
        if offset % _OFFSET_ALIGN:
            raise WireFormatError(
                f"{label}: offset {_short(offset)} is not a multiple of {_OFFSET_ALIGN}"
            )
        if length > data_len or offset > data_len - length:
            raise WireFormatError(
                f"{label}: {_short(length)} bytes at offset {_short(offset)} lie outside "
                f"the {data_len} data bytes"
            )
        spans.append((offset, offset + length, name))
        parsed.append(WireArray(name, dt, tuple(shape), data_start + offset, count))
    names = [p.name for p in parsed]
    if len(set(names)) != len(names):
        raise WireFormatError("wire array names are not unique")
    spans.sort()
    for (_, end, a), (start, _, b) in itertools.pairwise(spans):
        if start < end:
            raise WireFormatError(f"wire arrays {a[:64]!r} and {b[:64]!r} overlap")
    used_end = max((end for _, end, _ in spans), default=0)
    if used_end != data_len:
        raise WireFormatError(f"wire body has {data_len - used_end} bytes after its last array")
    return meta, parsed


def unpack(
    data: bytes | bytearray | memoryview,
    *,
    max_bytes: int,
    allowed_dtypes: Iterable[Any] = DEFAULT_WIRE_DTYPES,
    max_json_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
    max_arrays: int = MAX_ARRAYS,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Parse and validate an RNWIRE1 container.

    Args:
        data: The container (bytes, or a contiguous buffer).
        max_bytes: The largest container accepted.
        allowed_dtypes: The dtypes accepted (any other dtype name is refused).
        max_json_bytes: The largest JSON text accepted.
        max_depth: The deepest JSON nesting accepted (the top object is depth 1).
        max_arrays: The most arrays accepted.

    Returns:
        (meta, arrays): the metadata object and the named arrays, read-only views of ``data``.

    Raises:
        WireFormatError: The bytes are not a well-formed container within the bounds.
    """
    try:
        view = memoryview(data).cast("B")
    except (TypeError, ValueError) as exc:
        raise WireFormatError(f"wire data must be a contiguous byte buffer ({exc})") from None
    meta, layout = read_layout(
        view,
        view.nbytes,
        max_bytes=max_bytes,
        allowed_dtypes=allowed_dtypes,
        max_json_bytes=max_json_bytes,
        max_depth=max_depth,
        max_arrays=max_arrays,
    )
    arrays: dict[str, np.ndarray] = {}
    for entry in layout:
        arr = np.frombuffer(view, dtype=entry.dtype, count=entry.count, offset=entry.start)
        arr = arr.reshape(entry.shape)
        arr.flags.writeable = False
        arrays[entry.name] = arr
    return meta, arrays


class ArrayTarget(Protocol):
    """Where ``ArrayStream`` puts an array's bytes (``orchid._io.NpyWriter`` is one)."""

    def write(self, data: memoryview) -> None:
        """The array's next bytes."""

    def discard(self) -> None:
        """Drop what was written."""


class ArrayStream:
    """Takes an RNWIRE1 body as it arrives and passes one array's bytes on, unbuffered.

    A download that goes to a file (``MeshClient.get_wire_into``) never holds the array in
    memory: the container's head is kept until ``read_layout`` has checked it (exactly as
    ``unpack`` would), then the wanted array's bytes go to the target ``open_target`` returns
    for it, and any other array's bytes are skipped. A body that starts again (a retried
    request) discards the target and opens a new one.

    Args:
        name: The array wanted.
        open_target: Called with (meta, the array's ``WireArray``) once the head is checked.
        max_bytes, allowed_dtypes: As for ``unpack``.
    """

    def __init__(
        self,
        name: str,
        open_target: Callable[[dict[str, Any], WireArray], ArrayTarget],
        *,
        max_bytes: int,
        allowed_dtypes: Iterable[Any] = DEFAULT_WIRE_DTYPES,
    ) -> None:
        self.name = name
        self._open = open_target
        self._max_bytes = max_bytes
        self._dtypes = tuple(allowed_dtypes)
        self._target: ArrayTarget | None = None
        self.start(0)

    def start(self, length: int) -> None:
        """A body of ``length`` bytes begins."""
        if self._target is not None:
            self._target.discard()
        self._target = None
        self._meta: dict[str, Any] | None = None
        self._array: WireArray | None = None
        self._head = bytearray()
        self._need = PREFIX_BYTES
        self._total = length
        self._at = 0
        if length > self._max_bytes:
            raise WireFormatError(
                f"wire body of {length} bytes is over the limit of {self._max_bytes}"
            )

    def write(self, piece: memoryview) -> None:
        """The body's next bytes.

        Raises:
            WireFormatError: The head is malformed, or more bytes than the body's length.
            Exception: Whatever the target raises.
        """
        piece = memoryview(piece).cast("B")
        if self._at + piece.nbytes > self._total:
            raise WireFormatError("more wire bytes than the body's length")
        while self._meta is None:
            take = min(piece.nbytes, self._need - len(self._head))
            self._head += piece[:take]
            piece = piece[take:]
            self._at += take
            if len(self._head) < self._need:
                return
            if self._need == PREFIX_BYTES:  # the data start past the prefix (a multiple of 64)
                self._need = head_size(self._head, self._total, max_bytes=self._max_bytes)
            else:
                self._begin()
        if self._array is not None and piece.nbytes:
            first, end = self._array.start, self._array.start + self._array.nbytes
            lo, hi = max(self._at, first), min(self._at + piece.nbytes, end)
            if lo < hi:
                assert self._target is not None
                self._target.write(piece[lo - self._at : hi - self._at])
        self._at += piece.nbytes

    def _begin(self) -> None:
        meta, layout = read_layout(
            self._head, self._total, max_bytes=self._max_bytes, allowed_dtypes=self._dtypes
        )
        found = [entry for entry in layout if entry.name == self.name]
        if not found:
            raise WireFormatError(f"the wire body holds no array {self.name!r}")
        self._meta, self._array = meta, found[0]
        self._head = bytearray()
        self._target = self._open(meta, found[0])

    def result(self) -> tuple[dict[str, Any], ArrayTarget]:
        """The body's metadata and the target that holds the array, once the body is complete.

        Raises:
            WireFormatError: The body ended early (or never began).
        """
        if self._meta is None or self._target is None or self._at != self._total:
            raise WireFormatError(f"wire body truncated: {self._at} of {self._total} bytes")
        return self._meta, self._target

    def discard(self) -> None:
        """Discard the target, if one was opened."""
        if self._target is not None:
            self._target.discard()
        self._target = None
