"""``ramnet job``: list the consumer's mesh jobs, follow one (its status and why it waits),
download its result, or cancel it (its unspent escrow refunded).

A job is named by its full id or any unique prefix of 6 hex digits or more."""

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
    # An unreachable coordinator is one line in seconds, as for `ramnet ledger show`.
    _mesh_run.reach(settings.coordinator, ca_file=settings.ca_file)
    key = _node.node_key(settings.key_file)
    client = _mesh_run.client_for(settings.coordinator, key, 30.0, settings.ca_file)
    # The coordinator serves registered nodes only; registering is idempotent (as submit does).
    from ramnet.mesh.nodes import consumer as _consumer

    _consumer.register(client)
    return client


_JobId = Annotated[str, typer.Argument(help="The job's id, or a unique prefix (6+ hex digits).")]


@app.command("status")
@guarded
def job_status(
    job_id: _JobId,
    coordinator: CoordinatorOption = None,
    ca_file: CaFileOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a mesh job's state, its shards' states, and why it waits."""
    from ramnet.mesh.nodes import consumer as _consumer

    info = _consumer.status(_consumer_client(coordinator, key_file, ca_file), job_id)
    if as_json:
        print_json(info)
    else:
        stdout().print(shard_table(info))


@app.command("result")
@guarded
def job_result(
    job_id: _JobId,
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


@app.command("list")
@guarded
def job_list(
    coordinator: CoordinatorOption = None,
    ca_file: CaFileOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """List this key's jobs, newest first: id, state, created, size."""
    import datetime

    from ramnet.mesh.nodes import consumer as _consumer

    jobs = _consumer.list_jobs(_consumer_client(coordinator, key_file, ca_file))
    if as_json:
        print_json({"jobs": jobs})
        return
    from rich.table import Table

    table = Table(title=f"jobs ({len(jobs)})")
    # The id is never cut (it is what every other command takes); on a narrow terminal the other
    # columns wrap instead of ending in an ellipsis.
    width = max((len(job["job_id"]) for job in jobs), default=6)
    table.add_column("job id", no_wrap=True, min_width=width)
    for col in ("state", "created", "size", "nodes"):
        table.add_column(col, overflow="fold")
    for job in jobs:
        created = datetime.datetime.fromtimestamp(job["created_at"]).strftime("%Y-%m-%d %H:%M")
        m, k, n = job["shape"]
        state = job["state"] + (f" ({job['reason']})" if job.get("reason") else "")
        table.add_row(
            job["job_id"], state, created, f"{m}x{k}x{n} {job['dtype']}", str(job["nodes"])
        )
    stdout().print(table)


@app.command("cancel")
@guarded
def job_cancel(
    job_id: _JobId,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why, in a few words (kept with the job).")
    ] = None,
    coordinator: CoordinatorOption = None,
    ca_file: CaFileOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a job that has not settled (yours only); its unspent escrow is refunded."""
    from ramnet.mesh.nodes import consumer as _consumer

    reply = _consumer.cancel(_consumer_client(coordinator, key_file, ca_file), job_id, reason)
    if as_json:
        print_json(reply)
    else:
        typer.echo(f"job {reply['job_id']} {reply['state']}: {reply['refunded']} refunded")
