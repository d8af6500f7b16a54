"""The sidecar's wire: small JSON control frames over a Unix socket, the arrays in shared memory.

The sidecar topology runs ORCHID as a daemon and VALKYRIE (a mesh node) as a proxy on one host.
The proxy puts the A and B tiles of a shard into one shared-memory segment it creates, and sends
the daemon a control message that says where they are and where each partial tile goes; the daemon
multiplies, writes the partials and its execution trace into the same segment, and answers with a
few bytes. The socket never carries array data, so a frame stays small and is capped hard.

Frame: a 4-byte big-endian unsigned length ``L`` (``1 <= L <= MAX_FRAME``), then ``L`` bytes of
UTF-8 JSON holding exactly one object. No pickle, no NaN or Infinity, nothing nested deeper than
the messages need. Every message carries ``"v": 1``, an ``op`` and an ``id``:

- ``ping`` -> ``pong`` (the daemon's identity and settings);
- ``compute`` -> ``result`` (the trace's length in the segment) or ``error``.

Everything read from the peer is validated here before it is used: unknown keys, wrong types,
names that are not ours, regions that leave the segment, overlap or are misaligned, and shapes
whose tiles do not fit together are refused with ``SidecarProtocolError``. ``docs/sidecar.md``
describes the protocol byte by byte.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import secrets
import socket
import struct
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ramnet._errors import ConfigError, InvalidInputError, RamnetError
from ramnet.orchid._dtypes import SUPPORTED_DTYPES as SUPPORTED
from ramnet.orchid._dtypes import result_dtype
from ramnet.orchid._hooks import BlockProduct

if TYPE_CHECKING:
    from multiprocessing.shared_memory import SharedMemory

__all__ = [
    "ALIGN",
    "MAX_BLOCKS",
    "MAX_FRAME",
    "MAX_SEGMENT",
    "VERSION",
    "ComputeRequest",
    "DaemonRequestError",
    "DaemonUnavailableError",
    "Region",
    "SidecarError",
    "SidecarProtocolError",
    "TruncatedFrameError",
    "attach_segment",
    "create_segment",
    "decode_body",
    "encode_frame",
    "error_reply",
    "parse_daemon_url",
    "parse_reply",
    "parse_request",
    "plan_request",
    "read_frame",
    "release_segment",
    "segment_array",
    "unpack_frame",
    "valid_id",
    "write_frame",
]

VERSION = 1
HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024  # bytes of JSON in one frame; a 1,024-block request needs about 150 KiB
MAX_BLOCKS = 1024  # block products in one request (a mesh shard has about 8)
MAX_TILES = MAX_BLOCKS  # A tiles, and B tiles, in one request: a block needs one of each
MAX_DIM = 2**31 - 1  # rows or columns of one tile
MAX_SEGMENT = 1 << 36  # bytes in one shared-memory segment (64 GiB)
MAX_TRACE = 1 << 20  # bytes the daemon may write as its trace
MAX_ERROR = 500  # characters of an error message on the wire
ALIGN = 64  # every array starts on a cache line: aligned loads, no false sharing
TRACE_BASE = 4096  # trace capacity: this plus TRACE_PER_BLOCK per block product
TRACE_PER_BLOCK = 512
SEGMENT_PREFIX = "ramnet_"
# A segment's name: our prefix, the creating process's id, 64 random bits. The peer may only
# name segments of this form: never a path, never somebody else's segment by accident.
_NAME = re.compile(r"ramnet_([0-9]{1,10})_[0-9a-f]{16}\Z")
_ID = re.compile(r"[0-9a-f]{1,32}\Z")
_OPS = ("ping", "compute")
_REPLY_OPS = ("pong", "result", "error")
ERROR_KINDS = ("protocol", "invalid", "failed", "busy", "internal")


class SidecarError(RamnetError):
    """Root of the sidecar's errors (daemon and proxy)."""


class SidecarProtocolError(SidecarError, InvalidInputError):
    """A frame or message that breaks the sidecar protocol (size, JSON, types, regions)."""


class TruncatedFrameError(SidecarProtocolError):
    """The connection closed inside a frame (the peer died or hung up mid-message)."""


class DaemonUnavailableError(SidecarError, ConnectionError):
    """The daemon's socket could not be reached, or the connection broke mid-request."""


class DaemonRequestError(SidecarError):
    """The daemon answered a request with an error.

    Attributes:
        kind: ``protocol``, ``invalid`` (bad operands), ``failed``, ``busy`` or ``internal``.
    """

    def __init__(self, message: str, kind: str = "failed") -> None:
        super().__init__(message)
        self.kind = kind


def _one_line(text: str, limit: int = MAX_ERROR) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


# ---- frames ----------------------------------------------------------------------------------


def encode_frame(message: Mapping[str, Any]) -> bytes:
    """One frame: the length header and the message as compact JSON.

    Raises:
        SidecarProtocolError: The message is not JSON-serialisable or exceeds ``MAX_FRAME``.
    """
    try:
        body = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise SidecarProtocolError(f"message cannot be sent: {exc}") from None
    if len(body) > MAX_FRAME:
        raise SidecarProtocolError(f"message of {len(body)} bytes exceeds {MAX_FRAME}")
    return HEADER.pack(len(body)) + body


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def decode_body(body: bytes) -> dict[str, Any]:
    """Parse a frame's body: UTF-8 JSON, one object.

    Raises:
        SidecarProtocolError: Not UTF-8, not JSON, too deep, NaN/Infinity, or not an object.
    """
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise SidecarProtocolError(f"frame is not valid JSON: {_one_line(str(exc), 120)}") from None
    if not isinstance(value, dict):
        raise SidecarProtocolError(f"frame holds a JSON {type(value).__name__}, not an object")
    return value


def _check_length(length: int) -> None:
    if length == 0:
        raise SidecarProtocolError("empty frame")
    if length > MAX_FRAME:
        raise SidecarProtocolError(f"frame of {length} bytes exceeds the limit of {MAX_FRAME}")


def unpack_frame(data: bytes) -> dict[str, Any]:
    """Parse one complete frame (header and body, nothing after it).

    Raises:
        SidecarProtocolError: A short or oversized frame, trailing bytes, or a bad body.
    """
    if len(data) < HEADER.size:
        raise SidecarProtocolError(f"truncated frame header ({len(data)} bytes)")
    (length,) = HEADER.unpack_from(data)
    _check_length(length)
    body = data[HEADER.size :]
    if len(body) != length:
        raise SidecarProtocolError(f"frame announces {length} bytes, holds {len(body)}")
    return decode_body(bytes(body))


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(sock: socket.socket) -> tuple[dict[str, Any], int] | None:
    """Read one frame from a connected socket.

    Returns:
        ``(message, bytes read)``, or None when the peer closed the connection between frames.

    Raises:
        SidecarProtocolError: A truncated or oversized frame, or a bad body (the connection is
            then out of step and must be closed).
        OSError: The socket failed (``TimeoutError`` on its timeout).
    """
    header = _recv_exactly(sock, HEADER.size)
    if not header:
        return None
    if len(header) < HEADER.size:
        raise TruncatedFrameError("connection closed inside a frame header")
    (length,) = HEADER.unpack(header)
    _check_length(length)
    body = _recv_exactly(sock, length)
    if len(body) < length:
        raise TruncatedFrameError(f"connection closed after {len(body)} of {length} bytes")
    return decode_body(body), HEADER.size + length


def write_frame(sock: socket.socket, message: Mapping[str, Any]) -> int:
    """Send one frame; returns the bytes sent.

    Raises:
        SidecarProtocolError: The message is too large. OSError: The socket failed.
    """
    frame = encode_frame(message)
    sock.sendall(frame)
    return len(frame)


# ---- messages --------------------------------------------------------------------------------


def _int(value: Any, what: str, lo: int, hi: int) -> int:
    # bool is an int in Python, never in this protocol.
    if type(value) is not int:
        raise SidecarProtocolError(f"{what} must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise SidecarProtocolError(f"{what} must be in [{lo}, {hi}], got {value}")
    return value


def _ints(value: Any, what: str, count: int) -> list[Any]:
    if not isinstance(value, list) or len(value) != count:
        raise SidecarProtocolError(f"{what} must be a list of {count} integers")
    return value


def _keys(message: Mapping[str, Any], required: set[str], what: str) -> None:
    missing = sorted(required - message.keys())
    extra = sorted(message.keys() - required)
    if missing:
        raise SidecarProtocolError(f"{what} lacks {', '.join(missing)}")
    if extra:
        shown = ", ".join(repr(k)[:40] for k in extra[:5])
        raise SidecarProtocolError(f"{what} has unknown fields: {shown}")


def _header(message: Mapping[str, Any], ops: Sequence[str]) -> tuple[str, str]:
    if message.get("v") != VERSION or type(message.get("v")) is not int:
        raise SidecarProtocolError(f"unsupported protocol version {message.get('v')!r:.40}")
    op = message.get("op")
    if not isinstance(op, str) or op not in ops:
        raise SidecarProtocolError(f"unknown op {op!r:.40}; expected one of {', '.join(ops)}")
    request_id = message.get("id")
    if not isinstance(request_id, str) or not _ID.match(request_id):
        raise SidecarProtocolError("id must be 1 to 32 lowercase hex digits")
    return op, request_id


@dataclass(frozen=True)
class Region:
    """One 2-D C-order array in a segment.

    Attributes:
        offset: Its first byte, a multiple of ``ALIGN``.
        shape: (rows, columns).
        dtype: Its numpy dtype.
    """

    offset: int
    shape: tuple[int, int]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        """Its size in bytes."""
        return self.shape[0] * self.shape[1] * self.dtype.itemsize


@dataclass(frozen=True)
class ComputeRequest:
    """A ``compute`` message: block products, where their tiles are, where their partials go.

    Attributes:
        request_id: The request's id (hex).
        shm: The segment's name.
        size: The segment's size in bytes, as its creator made it.
        dtype: The input dtype name (one of ``SUPPORTED_DTYPES``).
        tiles_a: A's tiles by (i, k). tiles_b: B's tiles by (k, j).
        blocks: Each block product with the region its partial goes to, in request order.
        trace_offset, trace_capacity: Where the daemon may write its trace (UTF-8 JSON).
    """

    request_id: str
    shm: str
    size: int
    dtype: str
    tiles_a: dict[tuple[int, int], Region]
    tiles_b: dict[tuple[int, int], Region]
    blocks: list[tuple[BlockProduct, Region]]
    trace_offset: int
    trace_capacity: int

    @property
    def bytes_in(self) -> int:
        """Bytes of tiles handed to the daemon."""
        return sum(r.nbytes for r in (*self.tiles_a.values(), *self.tiles_b.values()))

    @property
    def bytes_out(self) -> int:
        """Bytes of partial tiles the daemon writes back."""
        return sum(r.nbytes for _, r in self.blocks)

    def to_message(self) -> dict[str, Any]:
        """The message as it goes on the wire."""
        return {
            "v": VERSION,
            "op": "compute",
            "id": self.request_id,
            "shm": self.shm,
            "size": self.size,
            "dtype": self.dtype,
            "a": [[x, y, r.offset, *r.shape] for (x, y), r in self.tiles_a.items()],
            "b": [[x, y, r.offset, *r.shape] for (x, y), r in self.tiles_b.items()],
            "blocks": [[b.i, b.j, b.k, r.offset] for b, r in self.blocks],
            "trace": [self.trace_offset, self.trace_capacity],
        }


def _tiles(value: Any, what: str, size: int, dtype: np.dtype) -> dict[tuple[int, int], Region]:
    if not isinstance(value, list) or len(value) > MAX_TILES:
        raise SidecarProtocolError(f"{what} must be a list of at most {MAX_TILES} tiles")
    out: dict[tuple[int, int], Region] = {}
    for entry in value:
        x, y, offset, rows, cols = _ints(entry, f"a tile of {what}", 5)
        key = (_int(x, f"{what} index", 0, MAX_DIM), _int(y, f"{what} index", 0, MAX_DIM))
        if key in out:
            raise SidecarProtocolError(f"{what} lists tile {key} twice")
        shape = (_int(rows, f"{what} rows", 1, MAX_DIM), _int(cols, f"{what} cols", 1, MAX_DIM))
        out[key] = Region(_int(offset, f"{what} offset", 0, size), shape, dtype)
    return out


def _check_regions(regions: list[tuple[str, int, int]], size: int) -> None:
    # Every array lies inside the segment, aligned, and apart from every other: the daemon
    # writes the partials while it reads the tiles.
    for name, offset, nbytes in regions:
        if offset % ALIGN:
            raise SidecarProtocolError(f"{name} starts at {offset}, not a multiple of {ALIGN}")
        if offset + nbytes > size:
            raise SidecarProtocolError(
                f"{name} ({nbytes} bytes at {offset}) does not fit the {size}-byte segment"
            )
    ordered = sorted(regions, key=lambda r: r[1])
    for (name0, off0, n0), (name1, off1, _) in itertools.pairwise(ordered):
        if off0 + n0 > off1:
            raise SidecarProtocolError(f"{name0} overlaps {name1}")


def parse_request(message: Mapping[str, Any]) -> ComputeRequest | str:
    """Validate a request read from the socket.

    Returns:
        The ``ComputeRequest``, or the id of a ``ping``.

    Raises:
        SidecarProtocolError: Anything that is not a well-formed request of this version.
    """
    op, request_id = _header(message, _OPS)
    if op == "ping":
        _keys(message, {"v", "op", "id"}, "ping")
        return request_id
    _keys(message, {"v", "op", "id", "shm", "size", "dtype", "a", "b", "blocks", "trace"}, op)
    shm = message["shm"]
    if not isinstance(shm, str) or not _NAME.match(shm):
        raise SidecarProtocolError(f"shm {shm!r:.60} is not a ramnet segment name")
    size = _int(message["size"], "size", 1, MAX_SEGMENT)
    dtype_name = message["dtype"]
    if not isinstance(dtype_name, str) or dtype_name not in SUPPORTED:
        raise SidecarProtocolError(f"dtype {dtype_name!r:.40} is not one of {', '.join(SUPPORTED)}")
    dtype = np.dtype(dtype_name)
    tiles_a = _tiles(message["a"], "a", size, dtype)
    tiles_b = _tiles(message["b"], "b", size, dtype)
    raw_blocks = message["blocks"]
    if not isinstance(raw_blocks, list) or not 1 <= len(raw_blocks) <= MAX_BLOCKS:
        raise SidecarProtocolError(f"blocks must be a list of 1 to {MAX_BLOCKS} block products")
    blocks: list[tuple[BlockProduct, Region]] = []
    seen: set[BlockProduct] = set()
    for entry in raw_blocks:
        i, j, k, offset = (
            _int(v, "a block field", 0, MAX_SEGMENT) for v in _ints(entry, "a block", 4)
        )
        block = BlockProduct(i, j, k)
        if block in seen:
            raise SidecarProtocolError(f"block ({i}, {j}, {k}) is listed twice")
        seen.add(block)
        a, b = tiles_a.get((i, k)), tiles_b.get((k, j))
        if a is None or b is None:
            raise SidecarProtocolError(f"block ({i}, {j}, {k}) lacks its A or B tile")
        if a.shape[1] != b.shape[0]:
            raise SidecarProtocolError(
                f"block ({i}, {j}, {k}): A tile {a.shape} and B tile {b.shape} do not fit together"
            )
        out = Region(offset, (a.shape[0], b.shape[1]), result_dtype(dtype, a.shape[1]))
        blocks.append((block, out))
    trace_offset, capacity = _ints(message["trace"], "trace", 2)
    trace_offset = _int(trace_offset, "trace offset", 0, size)
    capacity = _int(capacity, "trace capacity", 1, MAX_TRACE)
    regions = [(f"A tile {key}", r.offset, r.nbytes) for key, r in tiles_a.items()]
    regions += [(f"B tile {key}", r.offset, r.nbytes) for key, r in tiles_b.items()]
    regions += [(f"partial {(b.i, b.j, b.k)}", r.offset, r.nbytes) for b, r in blocks]
    regions.append(("the trace", trace_offset, capacity))
    _check_regions(regions, size)
    return ComputeRequest(
        request_id, shm, size, dtype_name, tiles_a, tiles_b, blocks, trace_offset, capacity
    )


def valid_id(value: Any) -> str | None:
    """``value`` if it is a well-formed request id, else None."""
    return value if isinstance(value, str) and _ID.match(value) else None


def error_reply(request_id: str | None, kind: str, message: str) -> dict[str, Any]:
    """An ``error`` reply (``request_id`` None when the request's own id was unreadable)."""
    return {
        "v": VERSION,
        "op": "error",
        "id": request_id,
        "kind": kind,
        "error": _one_line(message),
    }


def parse_reply(message: Mapping[str, Any], request_id: str) -> tuple[str, Any]:
    """Validate a reply read from the socket.

    Args:
        message: The decoded frame.
        request_id: The id of the request it answers.

    Returns:
        ``("pong", info dict)`` or ``("result", trace length in bytes)``.

    Raises:
        DaemonRequestError: The daemon answered with an error.
        SidecarProtocolError: A malformed reply, or one to another request.
    """
    if message.get("op") == "error":
        _keys(message, {"v", "op", "id", "kind", "error"}, "error reply")
        kind, text = message["kind"], message["error"]
        if not isinstance(kind, str) or kind not in ERROR_KINDS or not isinstance(text, str):
            raise SidecarProtocolError("malformed error reply")
        if message["id"] not in (None, request_id):
            raise SidecarProtocolError("error reply to another request")
        raise DaemonRequestError(f"the daemon refused the work ({kind}): {_one_line(text)}", kind)
    op, reply_id = _header(message, _REPLY_OPS)
    if reply_id != request_id:
        raise SidecarProtocolError(f"reply to request {reply_id}, expected {request_id}")
    if op == "pong":
        _keys(message, {"v", "op", "id", "daemon"}, "pong")
        if not isinstance(message["daemon"], dict):
            raise SidecarProtocolError("pong must describe the daemon in an object")
        return op, message["daemon"]
    _keys(message, {"v", "op", "id", "trace_bytes"}, "result")
    return op, _int(message["trace_bytes"], "trace_bytes", 0, MAX_TRACE)


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def plan_request(
    blocks: Sequence[BlockProduct],
    shapes_a: Mapping[tuple[int, int], tuple[int, int]],
    shapes_b: Mapping[tuple[int, int], tuple[int, int]],
    dtype: str,
    shm: str = "",
) -> ComputeRequest:
    """Lay out a request's segment: A tiles, B tiles, partials, trace, each on an ``ALIGN`` line.

    Args:
        blocks: The block products (1 to ``MAX_BLOCKS``).
        shapes_a: The shape of each A tile the blocks need, by (i, k).
        shapes_b: The shape of each B tile, by (k, j).
        dtype: The input dtype name.
        shm: The segment's name (fill in later with ``dataclasses.replace`` if not known yet).

    Returns:
        The request; its ``size`` is the segment size to create.

    Raises:
        InvalidInputError: Too many or no blocks, missing tiles, tiles that do not fit together.
    """
    if not 1 <= len(blocks) <= MAX_BLOCKS:
        raise InvalidInputError(f"a daemon request takes 1 to {MAX_BLOCKS} block products")
    if dtype not in SUPPORTED:
        raise InvalidInputError(f"dtype {dtype} is not one of {', '.join(SUPPORTED)}")
    dt = np.dtype(dtype)
    offset = 0

    def place(shape: tuple[int, int], out_dtype: np.dtype) -> Region:
        nonlocal offset
        region = Region(offset, shape, out_dtype)
        offset += _aligned(region.nbytes)
        return region

    tiles_a: dict[tuple[int, int], Region] = {}
    tiles_b: dict[tuple[int, int], Region] = {}
    for block in blocks:
        for key, shapes, tiles in (
            ((block.i, block.k), shapes_a, tiles_a),
            ((block.k, block.j), shapes_b, tiles_b),
        ):
            if key not in tiles:
                if key not in shapes:
                    raise InvalidInputError(f"the tiles of block {block} were not provided")
                tiles[key] = place(shapes[key], dt)
    out: list[tuple[BlockProduct, Region]] = []
    for block in blocks:
        a, b = tiles_a[(block.i, block.k)], tiles_b[(block.k, block.j)]
        if a.shape[1] != b.shape[0]:
            raise InvalidInputError(
                f"block {block}: A tile {a.shape} and B tile {b.shape} do not fit together"
            )
        out.append((block, place((a.shape[0], b.shape[1]), result_dtype(dt, a.shape[1]))))
    capacity = min(MAX_TRACE, TRACE_BASE + TRACE_PER_BLOCK * len(blocks))
    trace_offset = offset
    size = trace_offset + capacity
    if size > MAX_SEGMENT:
        raise InvalidInputError(f"a daemon request of {size} bytes exceeds {MAX_SEGMENT}")
    return ComputeRequest(
        secrets.token_hex(8), shm, size, dtype, tiles_a, tiles_b, out, trace_offset, capacity
    )


# ---- shared-memory segments ------------------------------------------------------------------


def create_segment(size: int) -> SharedMemory:
    """Create a new segment of ``size`` bytes (mode 0600), named ``ramnet_<pid>_<random>``.

    The creator unlinks it (``release_segment(seg, unlink=True)``); should the process die
    first, multiprocessing's resource tracker unlinks it.

    Raises:
        SidecarError: The segment cannot be created (no space in /dev/shm, ...).
    """
    from multiprocessing.shared_memory import SharedMemory

    name = f"{SEGMENT_PREFIX}{os.getpid()}_{secrets.token_hex(8)}"
    try:
        return SharedMemory(name=name, create=True, size=size)
    except OSError as exc:
        raise SidecarError(f"cannot create a {size}-byte shared-memory segment: {exc}") from None


def attach_segment(name: str, size: int) -> SharedMemory:
    """Map a segment the peer created, checking it holds at least ``size`` bytes.

    Raises:
        SidecarProtocolError: A bad name, no such segment, or a segment smaller than ``size``.
    """
    from multiprocessing import resource_tracker
    from multiprocessing.shared_memory import SharedMemory

    match = _NAME.match(name) if isinstance(name, str) else None
    if match is None:
        raise SidecarProtocolError(f"{name!r:.60} is not a ramnet segment name")
    try:
        if sys.version_info >= (3, 13):
            seg = SharedMemory(name=name, create=False, track=False)
        else:
            seg = SharedMemory(name=name, create=False)
            # Before 3.13 attaching registers the segment with this process's resource tracker,
            # which would unlink it (the creator's!) when this process exits. The creator owns
            # it: unregister, unless we are the creator (in-process use), whose entry it is.
            if int(match.group(1)) != os.getpid():
                resource_tracker.unregister(getattr(seg, "_name", "/" + name), "shared_memory")
    except FileNotFoundError:
        raise SidecarProtocolError(f"no shared-memory segment named {name}") from None
    except (OSError, ValueError) as exc:
        raise SidecarProtocolError(f"cannot map segment {name}: {exc}") from None
    if seg.size < size:
        actual = seg.size
        release_segment(seg, unlink=False)
        raise SidecarProtocolError(f"segment {name} holds {actual} bytes, not {size}")
    return seg


def release_segment(seg: SharedMemory, *, unlink: bool) -> None:
    """Unmap a segment and, on the creating side, unlink it. Never raises.

    A numpy view still alive (held by a traceback, say) keeps the mapping until it is collected;
    the name is unlinked regardless, so nothing is left in /dev/shm.
    """
    with contextlib.suppress(BufferError, OSError):
        seg.close()
    if unlink:
        with contextlib.suppress(OSError):
            seg.unlink()


def segment_array(seg: SharedMemory, region: Region, *, writable: bool) -> np.ndarray:
    """A numpy view of one region of a mapped segment (read-only unless ``writable``).

    Raises:
        SidecarProtocolError: The region leaves the mapping.
    """
    buf = seg.buf
    if buf is None or region.offset + region.nbytes > len(buf):
        raise SidecarProtocolError("region outside the mapped segment")
    count = region.shape[0] * region.shape[1]
    view = np.frombuffer(buf, dtype=region.dtype, count=count, offset=region.offset)
    view = view.reshape(region.shape)
    if not writable:
        view.flags.writeable = False
    return view


# ---- addresses -------------------------------------------------------------------------------

MAX_SOCKET_PATH = 107  # bytes in sun_path on Linux, without the terminating NUL


def check_socket_path(path: str | os.PathLike[str]) -> Path:
    """Refuse a socket path the kernel cannot bind (empty, NUL byte, over 107 bytes).

    Raises:
        ConfigError: Such a path.
    """
    text = os.fspath(path)
    if not text or "\0" in text:
        raise ConfigError("the daemon's socket path is empty or holds a NUL byte")
    if len(os.fsencode(text)) > MAX_SOCKET_PATH:
        raise ConfigError(
            f"the daemon's socket path is {len(os.fsencode(text))} bytes; Unix sockets allow "
            f"{MAX_SOCKET_PATH}: {text}"
        )
    return Path(text)


def parse_daemon_url(url: str) -> Path:
    """The socket path of a daemon address ``unix://PATH`` (``unix:///run/x.sock`` is absolute).

    Raises:
        ConfigError: Not ``unix://`` followed by a usable socket path.
    """
    if not isinstance(url, str) or not url.startswith("unix://"):
        raise ConfigError(f"--daemon must be unix://PATH (the daemon's socket), not {url!r}")
    return check_socket_path(url[len("unix://") :])
