"""A mesh job's shard states as a Rich table: shown live by ``ramnet run --mode mesh`` and once by
``ramnet job status``."""

from __future__ import annotations

from typing import Any


def shard_table(info: dict[str, Any]) -> Any:
    """A table of a job's shard counts by state, titled with the job id and state.

    Args:
        info: A job status (``job_id``, ``state``, ``shards``); ``{}`` before the first one.

    Returns:
        A ``rich.table.Table``.
    """
    from rich.table import Table

    table = Table(title=f"job {info.get('job_id', '')[:16]}: {info.get('state', '?')}")
    table.add_column("shards")
    table.add_column("count", justify="right")
    for state, count in (info.get("shards") or {}).items():
        if count:
            table.add_row(state, str(count))
    return table
