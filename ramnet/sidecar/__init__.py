"""The sidecar topology: an ORCHID daemon and a VALKYRIE proxy on one host.

The daemon (``ramnet daemon start``) does the matrix work; the proxy (``ramnet proxy start``) is
the mesh node: it holds the key, commits, reveals and checks every partial. Control frames go over
a Unix socket, tiles and partials through shared memory. The daemon knows no keys and no mesh;
the proxy composes the mesh's worker with the daemon's client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ramnet._lazy import lazy_getattr

if TYPE_CHECKING:
    from ramnet.sidecar.client import DaemonClient
    from ramnet.sidecar.daemon import DaemonServer, default_socket_path, serve_daemon
    from ramnet.sidecar.frames import (
        DaemonRequestError,
        DaemonUnavailableError,
        SidecarError,
        SidecarProtocolError,
        parse_daemon_url,
    )
    from ramnet.sidecar.proxy import Proxy, serve_proxy

# Loaded on first use: the daemon needs no mesh, the proxy's client no server.
_LAZY = {
    "DaemonClient": "client",
    "DaemonServer": "daemon",
    "default_socket_path": "daemon",
    "serve_daemon": "daemon",
    "DaemonRequestError": "frames",
    "DaemonUnavailableError": "frames",
    "SidecarError": "frames",
    "SidecarProtocolError": "frames",
    "parse_daemon_url": "frames",
    "Proxy": "proxy",
    "serve_proxy": "proxy",
}

__getattr__ = lazy_getattr(__name__, _LAZY, globals())

__all__ = [
    "DaemonClient",
    "DaemonRequestError",
    "DaemonServer",
    "DaemonUnavailableError",
    "Proxy",
    "SidecarError",
    "SidecarProtocolError",
    "default_socket_path",
    "parse_daemon_url",
    "serve_daemon",
    "serve_proxy",
]
