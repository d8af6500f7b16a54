"""The ``ramnet`` command line: the Typer app, assembled from the command groups in
``ramnet.commands``, and ``main``, the entry point.

Exit codes, for every command: 0 success; 2 bad usage or invalid input; 1 anything else (the
mapping lives in ``ramnet.commands._common``). Heavy imports (numpy, numba, the kernels, the mesh)
happen inside the commands that need them, so ``ramnet --help`` stays fast.
"""

from __future__ import annotations

import atexit
import gc
import sys
from typing import Annotated

import typer

from ramnet._errors import RamnetError
from ramnet._version import __version__
from ramnet.commands import (
    auditor,
    bench,
    coordinator,
    doctor,
    job,
    keys,
    ledger,
    run,
    sidecar,
    ui,
    verify,
    worker,
)
from ramnet.commands._common import OneLineErrors
from ramnet.commands._options import PlainValues

app = typer.Typer(
    name="ramnet",
    cls=OneLineErrors,
    help="RAMNET: verifiable matrix compute. Multiply big matrices fast and exactly.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ramnet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """RAMNET: verifiable matrix compute."""


# The order here is the order of `ramnet --help`: the commands, then the groups.
app.command()(run.run)
app.command()(doctor.doctor)
app.command(cls=PlainValues)(verify.verify)  # values converted without pydantic
app.command()(ui.ui)
app.add_typer(keys.app, name="keys")
app.add_typer(coordinator.app, name="coordinator")
app.add_typer(worker.app, name="worker")
app.add_typer(auditor.app, name="auditor")
app.add_typer(job.app, name="job")
app.add_typer(ledger.app, name="ledger")
app.add_typer(bench.app, name="bench")
app.add_typer(sidecar.daemon_app, name="daemon")
app.add_typer(sidecar.proxy_app, name="proxy")


def main() -> None:
    """Entry point of the ``ramnet`` executable.

    With no arguments and ``RAMNET_MODE=worker`` (environment or config file), it runs
    ``ramnet worker start``: a container needs nothing but its environment.
    """
    # The process ends with the command: freezing the heap at exit spares the collector a last
    # walk over everything typer, pydantic, rich and numpy allocated (about 40 ms of a 0.35 s
    # `ramnet verify` on the reference machine). Registered first, so it runs last.
    atexit.register(gc.freeze)
    if len(sys.argv) == 1:
        from ramnet.config import load_settings

        try:
            mode = load_settings().mode
        except RamnetError:
            mode = "sovereign"  # the command below reports the bad setting properly
        if mode == "worker":
            app(args=["worker", "start"])
            return
    app()


if __name__ == "__main__":
    main()
