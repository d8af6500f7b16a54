"""``ramnet job``: follow a mesh job (its status) and download its result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ramnet.commands import _node
from ramnet.commands._common import group, guarded, print_json, stdout
from ramnet.commands._options import CaFileOption, CoordinatorOption, JsonOption, KeyFileOption
from ramnet.commands._shards import shard_table

app = group("Follow mesh jobs.")


def _consumer_client(
    coordinator: str | None, key_file: Path | None, ca_file: Path | None = None
) -> Any:
    from ramnet.commands import _mesh_run

    settings = _node.settings(
        coordinator=coordinator,
        key_file=str(key_file) if key_file else None,
        ca_file=str(ca_file) if ca_file else None,
    )
    key = _node.node_key(settings.key_file)
    return _mesh_run.client_for(settings.coordinator, key, 30.0, settings.ca_file)


@app.command("status")
@guarded
def job_status(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    coordinator: CoordinatorOption = None,
    ca_file: CaFileOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a mesh job's state and its shards' states."""
    from ramnet.mesh.nodes import consumer as _consumer

    info = _consumer.status(_consumer_client(coordinator, key_file, ca_file), job_id)
    if as_json:
        print_json(info)
    else:
        stdout().print(shard_table(info))


@app.command("result")
@guarded
def job_result(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write C (.npy).")],
    coordinator: CoordinatorOption = None,
    ca_file: CaFileOption = None,
    key_file: KeyFileOption = None,
) -> None:
    """Download a settled job's C."""
    from ramnet.mesh.nodes import consumer as _consumer
    from ramnet.orchid._io import check_writable

    check_writable(out)
    client = _consumer_client(coordinator, key_file, ca_file)
    _consumer.fetch_result_to(client, job_id, out, None, None)
    typer.echo(str(out))
