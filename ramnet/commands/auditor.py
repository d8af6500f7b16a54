"""``ramnet auditor start``: a mesh auditor (it checks optimistic results) until SIGTERM."""

from __future__ import annotations

from typing import Annotated

import typer

from ramnet.commands import _node
from ramnet.commands._common import group, guarded
from ramnet.commands._options import (
    BackendChoice,
    CaFileOption,
    CoordinatorOption,
    KeyFileOption,
)

app = group("Run a mesh auditor (checks optimistic results).")


@app.command("start")
@guarded
def auditor_start(
    coordinator: CoordinatorOption = None,
    ca_file: CaFileOption = None,
    key_file: KeyFileOption = None,
    bond: Annotated[int | None, typer.Option("--bond", min=0, help="Bond to stake.")] = None,
    payout_address: Annotated[
        str | None, typer.Option("--payout-address", help="Where to be paid.")
    ] = None,
    backend: Annotated[BackendChoice | None, typer.Option("--backend")] = None,
) -> None:
    """Audit optimistic jobs (results of --no-prove workers) until SIGTERM: settle or revert."""
    from ramnet.mesh import Auditor

    settings = _node.settings(
        coordinator=coordinator,
        ca_file=str(ca_file) if ca_file else None,
        key_file=str(key_file) if key_file else None,
        bond=bond,
        payout_address=payout_address,
        backend=backend.value if backend else None,
    )
    client, stop, log = _node.mesh_node("auditor", settings)
    auditor = Auditor(
        client,
        bond=settings.bond,
        payout_address=settings.payout_address,
        backend=settings.backend,
        log=log,
    )
    done = _node.when_key_free(lambda: auditor.run(stop), stop, log)
    log(f"stopped after {done} audits")
