"""``ramnet daemon start`` and ``ramnet proxy start``: the sidecar topology, an ORCHID daemon and
a VALKYRIE proxy on one host."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ramnet.commands import _node
from ramnet.commands._common import group, guarded, stderr
from ramnet.commands._options import (
    BackendChoice,
    CaFileOption,
    CoordinatorOption,
    KeyFileOption,
)

daemon_app = group("Run the sidecar's ORCHID daemon (block products over a Unix socket).")
proxy_app = group("Run the sidecar's VALKYRIE proxy: a mesh node whose work its daemon computes.")


@daemon_app.command("start")
@guarded
def daemon_start(
    # Not 9000: that is the coordinator's default, and a sidecar host may run one too.
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="HTTP port of /health and /traces.")
    ] = 9002,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    socket_path: Annotated[
        Path | None,
        typer.Option(
            "--socket",
            help="Unix socket to serve (default: $XDG_RUNTIME_DIR/ramnet/daemon.sock, else "
            "ramnet-<uid>/daemon.sock in the temp folder).",
            metavar="PATH",
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="Block products at once (default: every core)."),
    ] = None,
    backend: Annotated[BackendChoice | None, typer.Option("--backend")] = None,
) -> None:
    """Run the ORCHID daemon in the foreground (SIGTERM stops it and removes its socket)."""
    from ramnet.config import user_runtime_dir
    from ramnet.sidecar import serve_daemon

    settings = _node.settings(threads=threads, backend=backend.value if backend else None)
    err = stderr()
    _node.long_running()
    serve_daemon(
        socket_path,
        runtime_dir=user_runtime_dir(),
        host=host,
        port=port,
        backend=settings.backend,
        threads=settings.threads,
        log=lambda line: err.print(f"daemon: {line}", markup=False, soft_wrap=True),
    )


@proxy_app.command("start")
@guarded
def proxy_start(
    daemon: Annotated[
        str,
        typer.Option("--daemon", help="The daemon's socket: unix://PATH.", metavar="unix://PATH"),
    ],
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="HTTP port of /health and /status.")
    ] = 9001,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    coordinator: CoordinatorOption = None,
    ca_file: CaFileOption = None,
    key_file: KeyFileOption = None,
    bond: Annotated[int | None, typer.Option("--bond", min=0, help="Bond to stake.")] = None,
    payout_address: Annotated[
        str | None, typer.Option("--payout-address", help="Where to be paid.")
    ] = None,
    validator: Annotated[
        bool, typer.Option("--validator", help="Also join the validator pool.")
    ] = False,
) -> None:
    """Serve the coordinator's shards through the daemon, checking every partial, until
    SIGTERM (the shard in hand is finished first)."""
    from ramnet.mesh import MeshClient
    from ramnet.sidecar import DaemonClient, Proxy, parse_daemon_url, serve_proxy

    daemon_client = DaemonClient(parse_daemon_url(daemon))
    _reach_daemon(daemon_client)  # an unreachable daemon fails here, before a key is made or used
    settings = _node.settings(
        coordinator=coordinator,
        ca_file=str(ca_file) if ca_file else None,
        key_file=str(key_file) if key_file else None,
        bond=bond,
        payout_address=payout_address,
    )
    key = _node.node_key(settings.key_file)
    _node.hold_key(settings.key_file)  # one key, one process
    err = stderr()
    tag = f"proxy {key.node_id[:12]}"
    proxy = Proxy(
        MeshClient(settings.coordinator, key, retries=None, retry_for=30, ca_file=settings.ca_file),
        daemon_client,
        bond=settings.bond,
        validator=validator,
        payout_address=settings.payout_address,
        log=lambda line: err.print(f"{tag}: {line}", markup=False, soft_wrap=True),
    )
    _node.long_running()
    done = serve_proxy(proxy, host=host, port=port)
    err.print(f"{tag}: stopped after {done} shards", markup=False)


#: Seconds the proxy gives a daemon started beside it to come up (``daemon start &`` then
#: ``proxy start``, as the README runs them) before it says it cannot reach it.
DAEMON_GRACE = 5.0


def _reach_daemon(client: Any) -> None:
    # A daemon that is starting has no socket yet: try again for a few seconds, then fail with
    # the same one line as before.
    import time

    from ramnet.sidecar import DaemonUnavailableError

    deadline = time.monotonic() + DAEMON_GRACE
    while True:
        try:
            client.ping()
            return
        except DaemonUnavailableError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
