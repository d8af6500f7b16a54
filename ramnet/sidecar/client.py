"""The client of the sidecar's ORCHID daemon: hand it block products, get the partials back.

``DaemonClient.compute`` has the shape of the mesh worker's compute function (blocks, A tiles,
B tiles -> partials) plus the daemon's execution trace. For each call it creates one shared-memory
segment, copies the tiles in, sends the daemon a control frame that says where everything is,
waits for the few-byte answer, copies the partials and the trace out, and unlinks the segment,
whatever happened. Only blocks and tiles are sent: nothing about commitments or checks.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ramnet._errors import InvalidInputError, ShapeMismatchError, UnsupportedDTypeError
from ramnet.orchid._dtypes import SUPPORTED_DTYPES as SUPPORTED
from ramnet.orchid._hooks import BlockProduct
from ramnet.sidecar.frames import (
    VERSION,
    DaemonUnavailableError,
    SidecarProtocolError,
    TruncatedFrameError,
    check_socket_path,
    create_segment,
    decode_body,
    parse_reply,
    plan_request,
    read_frame,
    release_segment,
    segment_array,
    write_frame,
)

__all__ = ["DaemonClient"]

TileMap = Mapping[tuple[int, int], np.ndarray]
PING_TIMEOUT = 10.0  # seconds


class DaemonClient:
    """Talks to an ORCHID daemon over its Unix socket; arrays go through shared memory.

    Safe to share between threads (one connection per call).

    Args:
        socket_path: The daemon's socket.
        timeout: Seconds to wait for the answer to one request (the daemon computes meanwhile).
        connect_timeout: Seconds to wait for the connection.

    Attributes:
        socket_bytes: Control bytes sent and received over the socket so far.
        shm_bytes: Array and trace bytes moved through shared memory so far.
        requests: Compute requests answered.

    Raises:
        ConfigError: A socket path the kernel cannot use.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        *,
        timeout: float = 600.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.socket_path = check_socket_path(socket_path)
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.socket_bytes = 0
        self.shm_bytes = 0
        self.requests = 0
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The daemon's address, ``unix://PATH``."""
        return f"unix://{self.socket_path}"

    def _exchange(
        self, message: dict[str, Any], timeout: float | None = None
    ) -> tuple[dict[str, Any], int]:
        wait = self.timeout if timeout is None else timeout
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.connect_timeout)
            try:
                sock.connect(os.fspath(self.socket_path))
            except OSError as exc:
                raise DaemonUnavailableError(
                    f"cannot reach the daemon at {self.url} ({exc.strerror or exc})"
                ) from None
            sock.settimeout(wait)
            try:
                sent = write_frame(sock, message)
                frame = read_frame(sock)
            except TimeoutError:
                raise DaemonUnavailableError(
                    f"the daemon at {self.url} did not answer within {wait:g} s"
                ) from None
            except OSError as exc:
                raise DaemonUnavailableError(
                    f"the connection to the daemon at {self.url} broke ({exc.strerror or exc})"
                ) from None
            except TruncatedFrameError:
                raise DaemonUnavailableError(
                    f"the daemon at {self.url} hung up mid-reply"
                ) from None
            if frame is None:
                raise DaemonUnavailableError(f"the daemon at {self.url} hung up without answering")
            reply, received = frame
            return reply, sent + received
        finally:
            sock.close()

    def ping(self) -> dict[str, Any]:
        """Check the daemon answers.

        Returns:
            What the daemon says of itself (pid, version, backend, threads, totals).

        Raises:
            DaemonUnavailableError: It cannot be reached.
            SidecarProtocolError, DaemonRequestError: It answered something else than a pong.
        """
        request_id = os.urandom(8).hex()
        # A ping is answered at once, even while the daemon computes other requests.
        reply, size = self._exchange(
            {"v": VERSION, "op": "ping", "id": request_id}, min(self.timeout, PING_TIMEOUT)
        )
        with self._lock:
            self.socket_bytes += size
        op, info = parse_reply(reply, request_id)
        if op != "pong":
            raise SidecarProtocolError(f"the daemon answered a ping with {op}")
        return dict(info)

    def compute(
        self, blocks: Sequence[BlockProduct], tiles_a: TileMap, tiles_b: TileMap
    ) -> tuple[dict[BlockProduct, np.ndarray], dict[str, Any]]:
        """Have the daemon compute the partial tile of every block product.

        Args:
            blocks: The block products (at most ``MAX_BLOCKS``).
            tiles_a: A's tiles by (i, k) (at least those the blocks need).
            tiles_b: B's tiles by (k, j).

        Returns:
            ``({block: P(i, j, k)}, trace)``: fresh arrays (not views of the segment), and the
            daemon's trace of the execution (backend, code path, seconds per block...).
            The partials are the daemon's word: check them before relying on them.

        Raises:
            InvalidInputError: Missing tiles; ShapeMismatchError, UnsupportedDTypeError: tiles
                that do not fit together or are not one supported dtype.
            DaemonUnavailableError: The daemon cannot be reached, or hung up.
            DaemonRequestError: The daemon refused or failed the work.
            SidecarProtocolError: The daemon's answer is malformed.
            SidecarError: No shared memory could be had.
        """
        blocks = list(blocks)
        if not blocks:
            return {}, {"blocks": []}
        shapes_a, shapes_b, dtype = _check_tiles(blocks, tiles_a, tiles_b)
        request = plan_request(blocks, shapes_a, shapes_b, dtype)
        seg = create_segment(request.size)
        try:
            request = replace(request, shm=seg.name)
            for tiles, regions in ((tiles_a, request.tiles_a), (tiles_b, request.tiles_b)):
                for key, region in regions.items():
                    segment_array(seg, region, writable=True)[...] = tiles[key]
            reply, size = self._exchange(request.to_message())
            with self._lock:
                self.socket_bytes += size
            op, trace_bytes = parse_reply(reply, request.request_id)
            if op != "result" or trace_bytes > request.trace_capacity:
                raise SidecarProtocolError(f"the daemon's answer does not fit the request ({op})")
            # Copies: the segment is unlinked below, and the caller keeps the partials.
            partials = {
                block: np.array(segment_array(seg, region, writable=False))
                for block, region in request.blocks
            }
            buf = seg.buf
            assert buf is not None
            raw = bytes(buf[request.trace_offset : request.trace_offset + trace_bytes])
            del buf
            trace = decode_body(raw) if raw else {}
        finally:
            release_segment(seg, unlink=True)
        with self._lock:
            self.shm_bytes += request.bytes_in + request.bytes_out + trace_bytes
            self.requests += 1
        return partials, trace


def _check_tiles(
    blocks: Sequence[BlockProduct], tiles_a: TileMap, tiles_b: TileMap
) -> tuple[dict[tuple[int, int], tuple[int, int]], dict[tuple[int, int], tuple[int, int]], str]:
    shapes_a: dict[tuple[int, int], tuple[int, int]] = {}
    shapes_b: dict[tuple[int, int], tuple[int, int]] = {}
    dtypes: set[str] = set()
    for block in blocks:
        for key, tiles, shapes in (
            ((block.i, block.k), tiles_a, shapes_a),
            ((block.k, block.j), tiles_b, shapes_b),
        ):
            if key in shapes:
                continue
            if key not in tiles:
                raise InvalidInputError(f"the tiles of block {block} were not provided")
            tile = tiles[key]
            if not isinstance(tile, np.ndarray) or tile.ndim != 2 or 0 in tile.shape:
                raise ShapeMismatchError(
                    f"tile {key} of block {block} is not a non-empty 2-D array"
                )
            dtypes.add(tile.dtype.name)
            shapes[key] = (int(tile.shape[0]), int(tile.shape[1]))
    if len(dtypes) != 1 or next(iter(dtypes)) not in SUPPORTED:
        raise UnsupportedDTypeError(
            f"the tiles must share one of {', '.join(SUPPORTED)}, got {', '.join(sorted(dtypes))}"
        )
    for block in blocks:
        a, b = shapes_a[(block.i, block.k)], shapes_b[(block.k, block.j)]
        if a[1] != b[0]:
            raise ShapeMismatchError(
                f"block {block}: A tile {a} and B tile {b} do not fit together"
            )
    return shapes_a, shapes_b, next(iter(dtypes))
