"""The sidecar's ORCHID daemon: block products handed over a Unix socket, arrays in shared memory.

``DaemonServer`` listens on a Unix socket (mode 0600; only this user's processes may connect),
reads ``compute`` requests (``ramnet.sidecar.frames``), multiplies the tiles it finds in the
requester's shared-memory segment, writes the partial tiles and its execution trace back into that
segment, and answers with a few bytes. It knows nothing of commitments or checks: the proxy that
feeds it does those. It keeps the recent traces for ``GET /traces``.

``serve_daemon`` runs it in the foreground with a small HTTP API (``/health``, ``/traces``) on a
TCP port, until SIGTERM or SIGINT; the socket file is removed on the way out.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import select
import socket
import stat
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ramnet._errors import InvalidInputError, KernelError, RamnetError
from ramnet._version import __version__
from ramnet.mesh.transport.server import listen_tcp, run_http, stop_on_signals
from ramnet.orchid._backends import resolve
from ramnet.orchid._matmul import matmul
from ramnet.orchid._pool import default_threads, parallel_map
from ramnet.sidecar.frames import (
    MAX_FRAME,
    VERSION,
    ComputeRequest,
    SidecarError,
    SidecarProtocolError,
    attach_segment,
    check_socket_path,
    error_reply,
    parse_request,
    read_frame,
    release_segment,
    segment_array,
    valid_id,
    write_frame,
)

if TYPE_CHECKING:
    from multiprocessing.shared_memory import SharedMemory

__all__ = ["DaemonServer", "create_daemon_app", "default_socket_path", "serve_daemon"]

Log = Callable[[str], None]
MAX_TRACES = 256  # executions kept for GET /traces
FRAME_TIMEOUT = 10.0  # seconds a peer may take to finish a frame it has started
IDLE_TIMEOUT = 60.0  # seconds a connection may sit idle between requests
TICK = 0.2  # how often blocking waits look at the stop flag


def default_socket_path(runtime_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the daemon listens unless told otherwise.

    Args:
        runtime_dir: The user's runtime folder (``$XDG_RUNTIME_DIR``), if there is one.

    Returns:
        ``<runtime_dir>/ramnet/daemon.sock``, else ``<temp dir>/ramnet-<uid>/daemon.sock``.
    """
    if runtime_dir:
        return Path(runtime_dir) / "ramnet" / "daemon.sock"
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"ramnet-{uid}" / "daemon.sock"


def _make_dir(folder: Path) -> None:
    # A socket path given by the user: its folder is made if missing (private, as the default
    # one), an existing one is the user's choice.
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SidecarError(f"cannot create the socket folder {folder}: {exc}") from None


def _private_dir(folder: Path) -> None:
    # The default socket's folder: ours alone (0700). In a shared temp dir someone else could
    # have made it first, so an existing one is checked, never trusted.
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(folder)
    except OSError as exc:
        raise SidecarError(f"cannot create the socket folder {folder}: {exc}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise SidecarError(f"{folder} is not a folder")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise SidecarError(f"refusing socket folder {folder}: it belongs to uid {info.st_uid}")
    if info.st_mode & 0o077:
        try:
            os.chmod(folder, 0o700)
        except OSError as exc:
            raise SidecarError(f"cannot make {folder} private (0700): {exc}") from None


def _peer_uid(conn: socket.socket) -> int | None:
    # Linux tells who is at the other end; elsewhere the socket's mode is the only gate.
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    return int(struct.unpack("3i", creds)[1])


def _drain(conn: socket.socket) -> None:
    # Closing with unread input makes the kernel reset the connection, and the peer would lose
    # the error just sent: close our side for writing and read what is left, a little while.
    conn.shutdown(socket.SHUT_WR)
    deadline, left = time.monotonic() + 1.0, MAX_FRAME
    while left > 0 and (wait := deadline - time.monotonic()) > 0:
        conn.settimeout(wait)
        chunk = conn.recv(min(left, 1 << 16))
        if not chunk:
            return
        left -= len(chunk)


class DaemonServer:
    """ORCHID's side of the sidecar: a Unix-socket server that multiplies what it is handed.

    Args:
        socket_path: Where to listen; None for ``default_socket_path(runtime_dir)`` (its folder is
            created private, 0700).
        runtime_dir: The user's runtime folder, for the default path.
        backend: ORCHID backend for the GEMMs (``auto``, ``c``, ``numba``, ``numpy``).
        threads: Block products computed at once (None: every core).
        max_connections: Connections served at once; more are refused with ``busy``.
        log: Receives one line per notable event (errors, start, stop).

    Raises:
        InvalidInputError: An unknown backend or bad thread count.
        BackendUnavailableError: The backend cannot run here.
        ConfigError: A socket path the kernel cannot bind.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        runtime_dir: str | os.PathLike[str] | None = None,
        backend: str = "auto",
        threads: int | None = None,
        max_connections: int = 32,
        log: Log | None = None,
    ) -> None:
        self._default_path = socket_path is None
        path = default_socket_path(runtime_dir) if socket_path is None else socket_path
        self.socket_path = check_socket_path(path)
        resolve(backend, np.dtype(np.int8))  # an unusable backend fails now, not per request
        if threads is not None and (type(threads) is not int or threads < 1):
            raise InvalidInputError(f"threads must be a positive integer, got {threads!r}")
        self.backend = backend
        self.threads = threads or default_threads()
        self.max_connections = max_connections
        self.log: Log = log or (lambda line: None)
        self._listener: socket.socket | None = None
        self._inode: tuple[int, int] | None = None
        self._stopping = threading.Event()
        self._accepter: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connections: set[threading.Thread] = set()
        self._traces: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_TRACES)
        self._totals = {"requests": 0, "errors": 0, "blocks": 0, "shm_bytes": 0, "socket_bytes": 0}
        self.started = time.time()

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the socket (mode 0600) and start accepting connections.

        Raises:
            SidecarError: Another daemon listens there, or the socket cannot be bound.
            InvalidInputError: The path exists and is not a socket.
        """
        path = self.socket_path
        if self._default_path:
            _private_dir(path.parent)
        else:
            _make_dir(path.parent)
        self._clear_stale(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # The umask makes the socket 0600 from its first instant; the chmod confirms it.
        old = os.umask(0o177)
        try:
            listener.bind(os.fspath(path))
        except OSError as exc:
            listener.close()
            raise SidecarError(f"cannot bind the daemon's socket {path}: {exc}") from None
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        info = os.lstat(path)
        self._inode = (info.st_dev, info.st_ino)
        listener.listen(64)
        listener.setblocking(False)
        self._listener = listener
        self._accepter = threading.Thread(target=self._accept_loop, name="ramnet-daemon-accept")
        self._accepter.daemon = True
        self._accepter.start()

    def _clear_stale(self, path: Path) -> None:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SidecarError(f"cannot inspect {path}: {exc}") from None
        if not stat.S_ISSOCK(info.st_mode):
            raise InvalidInputError(f"{path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(2.0)
        try:
            probe.connect(os.fspath(path))
        except (ConnectionRefusedError, FileNotFoundError):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # a socket left by a daemon that died: nobody listens
            return
        except OSError as exc:
            raise SidecarError(f"cannot probe the existing socket {path}: {exc}") from None
        finally:
            probe.close()
        raise SidecarError(f"another daemon is already listening on {path}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let requests in progress finish (up to ``timeout`` s), remove the
        socket file. Idempotent; never raises."""
        self._stopping.set()
        if self._accepter is not None:
            self._accepter.join(timeout)
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._connections)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None
        self._unlink_socket()

    def _unlink_socket(self) -> None:
        # Only the socket this daemon bound: another daemon may have replaced it since.
        if self._inode is None:
            return
        try:
            info = os.lstat(self.socket_path)
            if (info.st_dev, info.st_ino) == self._inode:
                os.unlink(self.socket_path)
        except OSError:
            pass
        self._inode = None

    def __enter__(self) -> DaemonServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- connections ------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopping.is_set():
            try:
                ready, _, _ = select.select([listener], [], [], TICK)
                if not ready:
                    continue
                conn, _ = listener.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(TICK)
                continue
            conn.setblocking(True)
            with self._lock:
                busy = len(self._connections) >= self.max_connections
                if not busy:
                    thread = threading.Thread(
                        target=self._serve_connection, args=(conn,), name="ramnet-daemon-conn"
                    )
                    thread.daemon = True
                    self._connections.add(thread)
            if busy:
                with contextlib.suppress(OSError, SidecarError):
                    conn.settimeout(1.0)
                    write_frame(conn, error_reply(None, "busy", "too many connections"))
                conn.close()
                continue
            thread.start()

    def _serve_connection(self, conn: socket.socket) -> None:
        try:
            with conn:
                uid = _peer_uid(conn)
                if uid is not None and uid not in (os.getuid(), 0):
                    self.log(f"refused a connection from uid {uid}")
                    return
                idle_since = time.monotonic()
                while not self._stopping.is_set():
                    # Wait for the next request without blocking a stop for long.
                    ready, _, _ = select.select([conn], [], [], TICK)
                    if not ready:
                        if time.monotonic() - idle_since > IDLE_TIMEOUT:
                            return
                        continue
                    conn.settimeout(FRAME_TIMEOUT)
                    try:
                        frame = read_frame(conn)
                    except SidecarProtocolError as exc:
                        # The stream is out of step: say why once, then hang up.
                        with contextlib.suppress(OSError):
                            write_frame(conn, error_reply(None, "protocol", str(exc)))
                            _drain(conn)
                        return
                    except OSError:
                        return
                    if frame is None:
                        return
                    message, size = frame
                    reply = self.handle(message, socket_bytes=size)
                    try:
                        write_frame(conn, reply)
                    except (OSError, SidecarError):
                        return
                    idle_since = time.monotonic()
        finally:
            with self._lock:
                self._connections.discard(threading.current_thread())

    # -- requests ---------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """What ``/health`` and ``pong`` say: identity, settings, totals."""
        backend = resolve(self.backend, np.dtype(np.int8))
        with self._lock:
            totals = dict(self._totals)
        return {
            "ramnet": __version__,
            "protocol": VERSION,
            "pid": os.getpid(),
            "socket": os.path.abspath(self.socket_path),
            "backend": self.backend,
            "int8_code_path": f"{backend.name}/{backend.code_path}",
            "threads": self.threads,
            "uptime_s": round(time.time() - self.started, 3),
            **totals,
        }

    def traces(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The most recent executions, oldest first (at most ``limit``)."""
        with self._lock:
            items = list(self._traces)
        return items[-limit:] if limit else items

    def handle(self, message: dict[str, Any], *, socket_bytes: int = 0) -> dict[str, Any]:
        """Answer one request (already decoded from its frame). Never raises.

        Args:
            message: The request.
            socket_bytes: The size of its frame, for the totals.

        Returns:
            The reply: ``pong``, ``result`` or ``error``.
        """
        try:
            parsed = parse_request(message)
        except SidecarProtocolError as exc:
            self._count(errors=1, socket_bytes=socket_bytes)
            return error_reply(valid_id(message.get("id")), "protocol", str(exc))
        if isinstance(parsed, str):
            self._count(socket_bytes=socket_bytes)
            return {"v": VERSION, "op": "pong", "id": parsed, "daemon": self.info()}
        return self._compute(parsed, socket_bytes)

    def _count(self, **amounts: int) -> None:
        with self._lock:
            for name, amount in amounts.items():
                self._totals[name] += amount

    def _compute(self, request: ComputeRequest, socket_bytes: int) -> dict[str, Any]:
        started, t0 = time.time(), time.perf_counter()
        dtype = np.dtype(request.dtype)
        trace: dict[str, Any] = {
            "id": request.request_id,
            "time": round(started, 6),
            "dtype": request.dtype,
            "backend": self.backend,
            "threads": self.threads,
            "shm": {
                "segment": request.shm,
                "bytes_in": request.bytes_in,
                "bytes_out": request.bytes_out,
            },
            "socket_request_bytes": socket_bytes,
            "blocks": [],
        }
        try:
            chosen = resolve(self.backend, dtype)
            trace["backend"], trace["code_path"] = chosen.name, chosen.code_path
            seg = attach_segment(request.shm, request.size)
            try:
                trace["blocks"] = self._run_blocks(seg, request, chosen.name, chosen.code_path)
                trace["ok"] = True
                trace["seconds"] = round(time.perf_counter() - t0, 6)
                body = json.dumps(trace, separators=(",", ":")).encode()
                if len(body) > request.trace_capacity:
                    raise SidecarProtocolError(
                        f"the trace ({len(body)} bytes) exceeds its "
                        f"{request.trace_capacity}-byte room"
                    )
                # The trace goes back through the segment too: the socket carries its length.
                buf = seg.buf
                assert buf is not None
                buf[request.trace_offset : request.trace_offset + len(body)] = body
                del buf
            finally:
                release_segment(seg, unlink=False)  # the requester created it and unlinks it
        except SidecarProtocolError as exc:
            return self._failed(trace, "protocol", exc, socket_bytes)
        except InvalidInputError as exc:
            return self._failed(trace, "invalid", exc, socket_bytes)
        except RamnetError as exc:
            return self._failed(trace, "failed", exc, socket_bytes)
        except MemoryError:
            return self._failed(trace, "failed", "out of memory", socket_bytes)
        except Exception as exc:  # a bug: answer, log, keep serving
            self.log(f"internal error on request {request.request_id}: {exc!r}")
            return self._failed(trace, "internal", f"{type(exc).__name__}: {exc}", socket_bytes)
        with self._lock:
            self._traces.append(trace)
            self._totals["requests"] += 1
            self._totals["blocks"] += len(request.blocks)
            self._totals["shm_bytes"] += request.bytes_in + request.bytes_out + len(body)
            self._totals["socket_bytes"] += socket_bytes
        return {"v": VERSION, "op": "result", "id": request.request_id, "trace_bytes": len(body)}

    def _failed(
        self, trace: dict[str, Any], kind: str, exc: object, socket_bytes: int
    ) -> dict[str, Any]:
        trace.update(ok=False, error=str(exc), blocks=trace.get("blocks", []))
        with self._lock:
            self._traces.append(trace)
            self._totals["requests"] += 1
            self._totals["errors"] += 1
            self._totals["socket_bytes"] += socket_bytes
        return error_reply(trace["id"], kind, str(exc))

    def _run_blocks(
        self, seg: SharedMemory, request: ComputeRequest, backend: str, code_path: str
    ) -> list[dict[str, Any]]:
        # Views straight into the requester's segment: the tiles are never copied here.
        tiles_a = {key: segment_array(seg, r, writable=False) for key, r in request.tiles_a.items()}
        tiles_b = {key: segment_array(seg, r, writable=False) for key, r in request.tiles_b.items()}

        def one(item: Any) -> dict[str, Any]:
            block, region = item
            a, b = tiles_a[(block.i, block.k)], tiles_b[(block.k, block.j)]
            t = time.perf_counter()
            # One thread per block, as the unified worker computes it: the same grid, so
            # float partials agree bit for bit with other nodes' copies of an audit block.
            product = matmul(a, b, backend=self.backend, threads=1)
            seconds = time.perf_counter() - t
            out = segment_array(seg, region, writable=True)
            if product.shape != out.shape or product.dtype != out.dtype:
                raise KernelError(
                    f"block ({block.i}, {block.j}, {block.k}) came out {product.dtype}"
                    f"{product.shape}, expected {out.dtype}{out.shape}"
                )
            out[...] = product
            del out
            return {
                "block": [block.i, block.j, block.k],
                "a": list(a.shape),
                "b": list(b.shape),
                "out": list(product.shape),
                "dtype": request.dtype,
                "out_dtype": product.dtype.name,
                "backend": backend,
                "code_path": code_path,
                "seconds": round(seconds, 6),
            }

        try:
            return parallel_map(one, request.blocks, self.threads)
        finally:
            # Drop the views, so that the segment can be unmapped at once.
            tiles_a.clear()
            tiles_b.clear()


# ---- HTTP ------------------------------------------------------------------------------------


def create_daemon_app(server: DaemonServer) -> Any:
    """The Starlette app of the daemon's TCP port: ``GET /health`` and ``GET /traces``.

    ``/traces?limit=N`` returns the N most recent executions (default and maximum 256).
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def health(request: Request) -> JSONResponse:
        ready = server._listener is not None and not server._stopping.is_set()
        return JSONResponse(
            {"status": "ok" if ready else "stopping", **server.info()},
            status_code=200 if ready else 503,
        )

    async def traces(request: Request) -> JSONResponse:
        raw = request.query_params.get("limit", str(MAX_TRACES))
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_TRACES:
            return JSONResponse(
                {"error": f"limit must be an integer in [1, {MAX_TRACES}]"}, status_code=400
            )
        return JSONResponse({"daemon": server.info(), "traces": server.traces(int(raw))})

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/traces", traces, methods=["GET"]),
        ]
    )


def serve_daemon(
    socket_path: str | os.PathLike[str] | None = None,
    *,
    runtime_dir: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 9002,
    backend: str = "auto",
    threads: int | None = None,
    log: Log | None = None,
) -> None:
    """Run the daemon in the foreground until SIGTERM or SIGINT.

    Args:
        socket_path: The Unix socket; None for ``default_socket_path(runtime_dir)``.
        runtime_dir: The user's runtime folder (``$XDG_RUNTIME_DIR``), for the default path.
        host, port: Where the HTTP API (``/health``, ``/traces``) listens.
        backend: ORCHID backend. threads: Block products at once (None: every core).
        log: Receives one line per notable event.

    Raises:
        SidecarError: The socket or the port cannot be bound, or a daemon already listens.
        InvalidInputError: Bad settings.
    """
    say: Log = log or (lambda line: None)
    stop = threading.Event()
    with stop_on_signals(stop):
        server = DaemonServer(
            socket_path, runtime_dir=runtime_dir, backend=backend, threads=threads, log=say
        )
        server.start()
        try:
            sock = listen_tcp(host, port)
            say(
                f"listening on unix://{server.socket_path} and http://{host}:{port} "
                f"(threads {server.threads}, backend {server.backend})"
            )
            if not stop.is_set():
                run_http(create_daemon_app(server), sock, stop)
        finally:
            server.stop()
        say("stopped")
