"""``ramnet ui``: the local web app (run a job, verify a trace, identity, lend this machine),
served by this program and opened in the browser."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ramnet.commands import _node
from ramnet.commands._common import guarded, stderr
from ramnet.commands._options import KeyFileOption


@guarded
def ui(
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free one).")
    ] = 8765,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (loopback unless --allow-remote).")
    ] = "127.0.0.1",
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Print the address; do not open a browser.")
    ] = False,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            help="Listen on a non-loopback --host: anyone who reaches it can run jobs, read"
            " files and start a worker here.",
        ),
    ] = False,
    work_dir: Annotated[
        Path | None,
        typer.Option(
            "--work-dir", help="Where jobs' files and uploads go (default: the user data folder)."
        ),
    ] = None,
    key_file: KeyFileOption = None,
    coordinator: Annotated[
        str | None,
        typer.Option("--coordinator", help="The coordinator URL the mesh forms start with."),
    ] = None,
) -> None:
    """Open RAMNET's local web app: run jobs, verify traces, bind a wallet, lend this machine."""
    import threading
    import webbrowser

    from ramnet.config import user_data_dir
    from ramnet.mesh.transport.server import listen_tcp, run_http, stop_on_signals
    from ramnet.ui import UiConfig, create_app
    from ramnet.ui.security import local_hosts

    loopback = _is_loopback(host)
    if not loopback and not allow_remote:
        from ramnet._errors import InvalidInputError

        raise InvalidInputError(
            f"--host {host} is not a loopback address: the page runs jobs, reads files and starts"
            " workers on this machine; add --allow-remote to listen there anyway"
        )
    settings = _node.settings(key_file=str(key_file) if key_file else None, coordinator=coordinator)
    folder = (work_dir or user_data_dir() / "ui").expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    sock = listen_tcp(host, port)
    bound_port = sock.getsockname()[1]
    config = UiConfig(
        runners=_runners(settings),
        work_dir=folder,
        key_file=_node.key_path(Path(settings.key_file) if settings.key_file else None),
        ramnet_argv=_ramnet_argv(),
        coordinator=settings.coordinator,
        allowed_hosts=local_hosts(host, bound_port) if loopback else None,
    )
    app = create_app(config)
    shown = f"[{host}]" if ":" in host else host
    address = f"http://{shown}:{bound_port}/"
    if not loopback:
        stderr().print(
            f"warning: listening on {host}, not loopback: anyone who reaches {address} can run"
            " jobs and start workers here",
            markup=False,
            soft_wrap=True,
        )
    typer.echo(f"RAMNET UI at {address} (Ctrl-C to stop)")
    if not no_browser:
        threading.Thread(target=webbrowser.open, args=(address,), daemon=True).start()
    stop = threading.Event()
    try:
        with stop_on_signals(stop):
            # Open event streams end with the server: a short grace, then they are cut.
            run_http(app, sock, stop, graceful_s=1)
    finally:
        app.state.ui.worker.close()


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ramnet_argv() -> list[str]:
    """How to start this program again (for the lent worker): the one-file executable itself,
    or this Python running the CLI."""
    import sys

    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "ramnet.cli"]


def _runners(settings: Any) -> Any:
    """The runners of ``ramnet run``, handed to the UI (which sits below the commands)."""
    import functools

    from ramnet.commands import _mesh_run, _sovereign
    from ramnet.ui.runners import MeshRequest, OnStatus, Progress, Runners, SovereignRequest

    key = functools.partial(_node.node_key, settings.key_file)

    def sovereign(request: SovereignRequest, progress: Progress) -> dict[str, Any]:
        ops = request.operands
        job = _sovereign.SovereignJob(
            out=request.out,
            a_path=ops.a_path,
            b_path=ops.b_path,
            random=ops.random,
            dtype=ops.dtype,
            seed=ops.seed,
            backend=settings.backend,
            threads=settings.threads,
            save_inputs=request.save_inputs,
            trace=request.trace,
            prove=request.prove,
            key=key if request.trace is not None else None,
        )
        return _sovereign.run(job, progress=progress)

    def mesh(request: MeshRequest, on_status: OnStatus) -> dict[str, Any]:
        ops = request.operands
        job = _mesh_run.MeshJob(
            coordinator=request.coordinator,
            ca_file=settings.ca_file,
            nodes=request.nodes,
            out=request.out,
            key=key,
            a_path=ops.a_path,
            b_path=ops.b_path,
            random=ops.random,
            dtype=ops.dtype,
            seed=ops.seed,
            redundancy=request.redundancy,
        )
        return _mesh_run.run(job, on_status=on_status)

    return Runners(sovereign=sovereign, mesh=mesh)
