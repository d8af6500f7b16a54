"""The sidecar's VALKYRIE proxy: a mesh node whose matrix work is done by an ORCHID daemon.

The proxy is an ordinary mesh worker (``Worker``: its own key, register, claim, commit, reveal)
whose compute function hands each shard's block products and tiles to the daemon over its Unix
socket and shared memory (``ramnet.sidecar.DaemonClient``). It sends the daemon nothing about
commitments or the job's checks, and it does not take the daemon's word: every partial that comes
back is checked against its own tiles (Freivalds for exact dtypes, the rounding-error range check
for floats) before the worker commits to it. A wrong partial is never submitted: it is recomputed
here with ORCHID and the failure is logged, so a broken daemon cannot get the node slashed. While
the daemon does not answer, the proxy claims no new work.

``serve_proxy`` runs it in the foreground with ``GET /health`` and ``GET /status`` on a TCP port,
until SIGTERM or SIGINT; the shard in hand is finished (or handed back) first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ramnet._errors import RamnetError
from ramnet.mesh.nodes.worker import Worker
from ramnet.mesh.rules.shard import TileMap, check_partial, compute_shard
from ramnet.orchid import BlockProduct
from ramnet.sidecar.client import DaemonClient
from ramnet.sidecar.frames import DaemonUnavailableError, SidecarError

__all__ = ["Proxy", "serve_proxy"]

Log = Callable[[str], None]
DAEMON_RETRY = 1.0  # seconds between pings while the daemon is down


class _ProxyWorker(Worker):
    """``Worker`` unchanged, but it claims no shard while the daemon is unreachable, and it
    tells the proxy once it is registered."""

    def __init__(self, proxy: Proxy, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._proxy = proxy

    def register(self) -> dict[str, Any]:
        reply = super().register()
        self._proxy.registered.set()
        return reply

    def step(self, stop: threading.Event) -> bool:
        if not self._proxy.daemon_alive():
            stop.wait(DAEMON_RETRY)
            return False
        return super().step(stop)


class Proxy:
    """One sidecar node: the mesh worker loop, its compute forwarded to the daemon and checked.

    Args:
        client: A ``MeshClient`` signed with the node's key.
        daemon: The daemon's client.
        bond: The bond to stake on registration.
        validator: Join the validator pool.
        payout_address: Where payments go.
        security_bits: Freivalds error bound 2^-bits for the check of each partial.
        poll: Seconds between polls when there is no work.
        log: Receives one line per event.
    """

    def __init__(
        self,
        client: Any,
        daemon: DaemonClient,
        *,
        bond: int = 0,
        validator: bool = False,
        payout_address: str | None = None,
        security_bits: int = 40,
        poll: float = 0.2,
        log: Log | None = None,
    ) -> None:
        self.daemon = daemon
        self.security_bits = security_bits
        self.log: Log = log or (lambda line: None)
        self.registered = threading.Event()
        self._lock = threading.Lock()
        self._daemon_up = True
        self.counts = {"blocks_by_daemon": 0, "blocks_rejected": 0, "blocks_recomputed": 0}
        self.last_error: str | None = None
        self.started = time.time()
        self.worker = _ProxyWorker(
            self,
            client,
            bond=bond,
            validator=validator,
            payout_address=payout_address,
            poll=poll,
            log=self.log,
            compute=self.compute,
        )

    @property
    def node_id(self) -> str | None:
        """This node's id (its public key, hex), when its client signs."""
        key = getattr(self.worker.client, "key", None)
        return getattr(key, "node_id", None)

    def _error(self, line: str) -> None:
        with self._lock:
            self.last_error = line
        self.log(f"error: {line}")

    def daemon_alive(self) -> bool:
        """Ping the daemon; log when it goes away and when it comes back."""
        try:
            self.daemon.ping()
            alive, reason = True, ""
        except (SidecarError, OSError) as exc:
            alive, reason = False, str(exc)
        with self._lock:
            changed, self._daemon_up = alive != self._daemon_up, alive
        if changed and not alive:
            self._error(f"{reason}; claiming no work until it answers")
        elif changed:
            self.log(f"the daemon at {self.daemon.url} answers again")
        return alive

    def compute(
        self, blocks: Sequence[BlockProduct], tiles_a: TileMap, tiles_b: TileMap
    ) -> dict[BlockProduct, np.ndarray]:
        """The worker's compute function: the daemon computes, the proxy checks.

        Returns:
            ``{block: P(i, j, k)}``, every partial checked against the block's tiles, or
            recomputed here where the daemon's failed the check or the daemon failed.

        Raises:
            InvalidInputError: Tiles that cannot be multiplied (the daemon and ORCHID agree).
        """
        blocks = list(blocks)
        try:
            partials, _trace = self.daemon.compute(blocks, tiles_a, tiles_b)
        except DaemonUnavailableError as exc:
            self._error(f"{exc}; computing this shard here instead")
            self._count(blocks_recomputed=len(blocks))
            return compute_shard(blocks, tiles_a, tiles_b)
        except RamnetError as exc:
            self._error(f"the daemon failed a shard of {len(blocks)} blocks ({exc}); recomputing")
            self._count(blocks_recomputed=len(blocks))
            return compute_shard(blocks, tiles_a, tiles_b)
        bad = [
            b
            for b in blocks
            if b not in partials
            or not check_partial(b, partials[b], tiles_a, tiles_b, security_bits=self.security_bits)
        ]
        self._count(blocks_by_daemon=len(blocks) - len(bad))
        if bad:
            names = ", ".join(f"({b.i}, {b.j}, {b.k})" for b in bad[:4])
            more = f" and {len(bad) - 4} more" if len(bad) > 4 else ""
            self._error(
                f"the daemon returned {len(bad)} wrong partial(s) (block {names}{more}): "
                "not submitted; recomputed here"
            )
            self._count(blocks_rejected=len(bad), blocks_recomputed=len(bad))
            partials.update(compute_shard(bad, tiles_a, tiles_b))
        return {b: partials[b] for b in blocks}

    def _count(self, **amounts: int) -> None:
        with self._lock:
            for name, amount in amounts.items():
                self.counts[name] += amount

    def status(self) -> dict[str, Any]:
        """What ``GET /status`` says: node, daemon, shards done, bytes through shared memory."""
        with self._lock:
            counts = dict(self.counts)
            last_error, daemon_up = self.last_error, self._daemon_up
        return {
            "node_id": self.node_id,
            "daemon": self.daemon.url,
            "daemon_up": daemon_up,
            "registered": self.registered.is_set(),
            "validator": self.worker.validator,
            "shards_done": self.worker.done,
            "daemon_requests": self.daemon.requests,
            "bytes_via_shm": self.daemon.shm_bytes,
            "bytes_via_socket": self.daemon.socket_bytes,
            **counts,
            "last_error": last_error,
            "uptime_s": round(time.time() - self.started, 3),
        }

    def run(self, stop: threading.Event) -> int:
        """Work until ``stop`` is set. Returns the shards revealed.

        Raises:
            MeshUnavailableError: The coordinator could not be reached to register.
        """
        return self.worker.run(stop)


def create_proxy_app(proxy: Proxy) -> Any:
    """The Starlette app of the proxy's TCP port: ``GET /health`` and ``GET /status``."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def health(request: Request) -> JSONResponse:
        info = await run_in_threadpool(proxy.status)
        ready = info["registered"] and info["daemon_up"]
        return JSONResponse(
            {"status": "ok" if ready else "starting or degraded", **info},
            status_code=200 if ready else 503,
        )

    async def status(request: Request) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(proxy.status))

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/status", status, methods=["GET"]),
        ]
    )


def serve_proxy(proxy: Proxy, *, host: str = "127.0.0.1", port: int = 9001) -> int:
    """Run the proxy in the foreground until SIGTERM or SIGINT.

    Args:
        proxy: The proxy.
        host, port: Where ``/health`` and ``/status`` listen.

    Returns:
        The shards it revealed.

    Raises:
        DaemonUnavailableError: The daemon does not answer at start.
        SidecarError: The port cannot be bound.
        MeshUnavailableError: The coordinator could not be reached to register.
    """
    from ramnet.mesh.transport.server import listen_tcp, run_http, stop_on_signals

    stop = threading.Event()
    with stop_on_signals(stop):
        proxy.daemon.ping()  # unreachable: fail now, with the daemon's address in the message
        sock = listen_tcp(host, port)
        failure: list[BaseException] = []
        done: list[int] = []

        def work() -> None:
            try:
                done.append(proxy.run(stop))
            except BaseException as exc:  # handed to the main thread, which raises it
                failure.append(exc)
                stop.set()

        worker = threading.Thread(target=work, name="ramnet-proxy-worker")
        worker.start()
        try:
            proxy.log(f"serving /health and /status on http://{host}:{port}")
            run_http(create_proxy_app(proxy), sock, stop)
        finally:
            stop.set()
            # The worker finishes the shard in hand (or hands it back) before it returns.
            worker.join()
        if failure:
            raise failure[0]
        return done[0] if done else proxy.worker.done
