"""``ramnet worker start``: a mesh worker (a provider) until SIGTERM."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ramnet._errors import InvalidInputError
from ramnet.commands import _node
from ramnet.commands._common import group, guarded
from ramnet.commands._options import (
    BackendChoice,
    CaFileOption,
    CoordinatorOption,
    KeyFileOption,
)

app = group("Run a mesh worker (a provider).")


@app.command("start")
@guarded
def worker_start(
    coordinator: CoordinatorOption = None,
    ca_file: CaFileOption = None,
    key_file: KeyFileOption = None,
    bond: Annotated[int | None, typer.Option("--bond", min=0, help="Bond to stake.")] = None,
    validator: Annotated[
        bool, typer.Option("--validator", help="Also join the validator pool.")
    ] = False,
    payout_address: Annotated[
        str | None, typer.Option("--payout-address", help="Where to be paid.")
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1)] = None,
    backend: Annotated[BackendChoice | None, typer.Option("--backend")] = None,
    misbehave: Annotated[
        str | None,
        typer.Option(
            "--misbehave",
            help="Testing aid: random, off-by-one, zeros, replay, crash or stall.",
            metavar="STRATEGY",
        ),
    ] = None,
    no_prove: Annotated[
        bool,
        typer.Option(
            "--no-prove",
            help="Only compute: post results without commit-reveal; an auditor checks them.",
        ),
    ] = False,
    binding: Annotated[
        Path | None,
        typer.Option(
            "--binding",
            help="Wallet binding file (ramnet keys bind): its address becomes the bound payout.",
        ),
    ] = None,
) -> None:
    """Serve the coordinator's shards until SIGTERM (the shard in hand is finished first)."""
    from ramnet.commands._binding import binding_document
    from ramnet.mesh import Worker
    from ramnet.mesh.nodes.worker import MISBEHAVIOURS

    if misbehave is not None and misbehave not in MISBEHAVIOURS:
        raise InvalidInputError(
            f"--misbehave must be one of {', '.join(MISBEHAVIOURS)}, got {misbehave!r}"
        )

    document = None if binding is None else binding_document(binding)
    settings = _node.settings(
        coordinator=coordinator,
        ca_file=str(ca_file) if ca_file else None,
        key_file=str(key_file) if key_file else None,
        bond=bond,
        payout_address=payout_address,
        threads=threads,
        backend=backend.value if backend else None,
    )
    client, stop, log = _node.mesh_node("worker", settings)
    worker = Worker(
        client,
        bond=settings.bond,
        validator=validator,
        # A binding names the payout address; one given as well must be the same.
        payout_address=settings.payout_address if document is None else payout_address,
        backend=settings.backend,
        threads=settings.threads or 1,
        log=log,
        misbehave=misbehave,
        prove=not no_prove,
        binding=document,
    )
    done = _node.when_key_free(lambda: worker.run(stop), stop, log)
    log(f"stopped after {done} shards")
