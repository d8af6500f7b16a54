"""Running a coordinator: uvicorn on its port until SIGTERM or SIGINT."""

from __future__ import annotations

import threading

from ramnet._errors import ConfigError
from ramnet.mesh.coordinator.admission import Admission
from ramnet.mesh.coordinator.app import create_app, http_protocol
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.transport.server import listen_tcp, raise_read_buffer, run_http, stop_on_signals
from ramnet.mesh.transport.tls import check_server_files


def serve(
    config: CoordinatorConfig,
    host: str = "127.0.0.1",
    port: int = 9000,
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> None:
    """Run the coordinator in the foreground until SIGTERM or SIGINT (uvicorn stops cleanly).

    Args:
        config: The coordinator's settings.
        host, port: Where it listens.
        tls_cert, tls_key: PEM certificate chain and private key: serve HTTPS only (both or
            neither).

    Raises:
        ConfigError: Only one of ``tls_cert`` and ``tls_key``.
        TlsFileError: A certificate or key file that cannot be used (checked before anything
            else starts).
        ListenError: The address cannot be bound.
        RamnetError: The state in ``config.data_dir`` cannot be opened.
    """
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("a TLS certificate and its key go together: give both or neither")
    if tls_cert is not None and tls_key is not None:
        check_server_files(tls_cert, tls_key)
    raise_read_buffer()
    stop = threading.Event()
    with stop_on_signals(stop):
        coordinator = Coordinator(config)
        try:
            sock = listen_tcp(host, port)
            run_http(
                create_app(coordinator, stopping=stop),
                sock,
                stop,
                # A body is read straight into its buffer only once its headers pass the checks
                # the app makes before reading one (its route's limit, a registered sender).
                http=http_protocol(config.max_body, Admission(coordinator.store, config.max_body)),
                graceful_s=10,
                # The loop the receive path is built and measured on; uvloop (which "auto" picks
                # where installed) read uploads at a higher CPU cost in bench/bench_transport.py.
                loop="asyncio",
                tls_cert=tls_cert,
                tls_key=tls_key,
            )
        finally:
            coordinator.close()
