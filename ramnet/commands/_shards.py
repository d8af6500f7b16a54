"""A mesh job's shard states as a Rich table: shown live by ``ramnet run --mode mesh`` and once by
``ramnet job status``."""

from __future__ import annotations

from typing import Any


def shard_table(info: dict[str, Any]) -> Any:
    """A job's full id and state, a table of its shard counts by state, and under it why the job
    waits (``waiting``) or why it ended (``reason``).

    Args:
        info: A job status (``job_id``, ``state``, ``shards``, ``waiting``, ``reason``); ``{}``
            before the first one (the title then says the job is being submitted).

    Returns:
        A Rich renderable.
    """
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    if not info:
        return Text("job: submitting A and B to the coordinator")
    # The full id, on a line of its own (a table's title would wrap it): it is what
    # `ramnet job status/result/cancel` take (a prefix of it too).
    title = Text(f"job {info.get('job_id', '')}: {info.get('state', '?')}", style="bold")
    table = Table()
    table.add_column("shards")
    table.add_column("count", justify="right")
    for state, count in (info.get("shards") or {}).items():
        if count:
            table.add_row(state, str(count))
    why = info.get("waiting") or (f"reason: {info['reason']}" if info.get("reason") else None)
    return Group(title, table, Text(why)) if why else Group(title, table)
