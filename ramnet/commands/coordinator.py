"""``ramnet coordinator start``: the mesh's coordinator, in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ramnet._errors import InvalidInputError
from ramnet.commands import _node
from ramnet.commands._common import group, guarded, stderr

app = group("Run the mesh's coordinator.")


@app.command("start")
@guarded
def coordinator_start(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 9000,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="State folder (default: user data folder).")
    ] = None,
    default_credit: Annotated[
        int, typer.Option("--default-credit", min=0, help="Credit granted to new accounts.")
    ] = 1_000_000,
    price_per_block: Annotated[
        int, typer.Option("--price-per-block", min=1, help="Price of one block product.")
    ] = 1,
    durable: Annotated[
        bool,
        typer.Option(
            "--durable", help="fsync every state change (survives power loss, not only kills)."
        ),
    ] = False,
    lease: Annotated[
        float | None,
        typer.Option(
            "--lease",
            min=0.5,
            help="Seconds a worker has to commit, then to reveal (default: sized by each"
            " shard's work at a measured rate, at least 10 s).",
        ),
    ] = None,
    node_timeout: Annotated[
        float,
        typer.Option(
            "--node-timeout",
            min=2.0,
            help="Seconds of silence (no request, no heartbeat) after which a node counts as"
            " gone and its shards go to other nodes.",
        ),
    ] = 15.0,
    write_behind: Annotated[
        float,
        typer.Option(
            "--write-behind",
            min=0.0,
            help="Seconds a revealed result waits before it is written (a job settled by then"
            " never writes it; after a kill, its worker reveals it again). 0: at once.",
        ),
    ] = 1.0,
    validator_wait: Annotated[
        float,
        typer.Option(
            "--validator-wait",
            min=0.0,
            help="Seconds a dispute waits for an eligible validator before the coordinator"
            " recomputes the contested blocks and settles it itself.",
        ),
    ] = 10.0,
    dashboard: Annotated[
        bool,
        typer.Option(
            "--dashboard/--no-dashboard",
            help="Serve the read-only dashboard at /dashboard (nodes, jobs, disputes, ledger,"
            " live); --no-dashboard: those paths are 404.",
        ),
    ] = True,
    bench_no_audits: Annotated[
        bool,
        typer.Option(
            "--bench-no-audits", hidden=True, help="Benchmarking aid: plan jobs without audits."
        ),
    ] = False,
    bench_no_checks: Annotated[
        bool,
        typer.Option(
            "--bench-no-checks",
            hidden=True,
            help="Benchmarking aid: settle without the per-shard checks.",
        ),
    ] = False,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert",
            help="PEM certificate chain: serve HTTPS only (with --tls-key).",
            metavar="PEM",
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            "--tls-key",
            help="PEM private key of --tls-cert (unencrypted).",
            metavar="PEM",
        ),
    ] = None,
) -> None:
    """Run the coordinator in the foreground (stops cleanly on SIGTERM)."""
    if (tls_cert is None) != (tls_key is None):
        raise InvalidInputError("--tls-cert and --tls-key go together: give both or neither")
    scheme = "http"
    if tls_cert is not None and tls_key is not None:
        from ramnet.mesh.transport.tls import check_server_files

        check_server_files(tls_cert, tls_key)  # a bad file: one line naming it, exit 2
        scheme = "https"
    from ramnet.config import user_data_dir
    from ramnet.mesh import CoordinatorConfig, serve

    folder = data_dir or user_data_dir() / "coordinator"
    config = CoordinatorConfig(
        data_dir=folder,
        default_credit=default_credit,
        price_per_block=price_per_block,
        durable=durable,
        lease_s=lease,
        node_timeout=node_timeout,
        write_behind=write_behind,
        validator_wait=validator_wait,
        dashboard=dashboard,
        audits=not bench_no_audits,
        checks=not bench_no_checks,
    )
    if bench_no_audits or bench_no_checks:
        stderr().print(
            "coordinator: benchmarking aid: audits and/or per-shard checks are OFF; results are"
            " not verified",
            markup=False,
        )
    from ramnet.mesh.state.integrity import check_state_file

    # A damaged state is refused before anything is served: one line, exit 1.
    check_state_file(folder / "state.sqlite")
    stderr().print(f"coordinator on {scheme}://{host}:{port}, state in {folder}", markup=False)
    if dashboard:
        from ramnet.mesh.protocol.routes import page_url

        stderr().print(
            f"dashboard on {scheme}://{host}:{port}{page_url('dashboard')}", markup=False
        )
    _node.long_running()
    tls = {"tls_cert": str(tls_cert), "tls_key": str(tls_key)} if scheme == "https" else {}
    serve(config, host=host, port=port, **tls)
