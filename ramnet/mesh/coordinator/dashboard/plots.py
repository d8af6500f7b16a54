"""The dashboard's plots as data: events over time (``dashboard_queries.Timeline``) counted in
equal time buckets, in the column layout uPlot draws (one list of x values, one list per series).
Pure: no I/O, no clock (the caller gives ``now``)."""

from __future__ import annotations

import math
from typing import Any

from ramnet.mesh.state.dashboard_queries import Timeline

__all__ = ["BUCKETS", "MIN_SPAN_S", "plot_data"]

#: Buckets across the span of the plots.
BUCKETS = 60
#: The shortest span drawn, seconds (a fresh coordinator still shows a minute).
MIN_SPAN_S = 60.0


def _bucket(t: float, start: float, width: float, count: int) -> int:
    return min(count - 1, max(0, int((t - start) // width)))


def plot_data(timeline: Timeline, now: float, buckets: int = BUCKETS) -> dict[str, Any]:
    """The plots' columns: bucket end times and each series over them.

    Args:
        timeline: The events.
        now: The plots' right edge (Unix seconds).
        buckets: How many buckets.

    Returns:
        ``{"t": [...], "settled": [...], "gops": [...], "disputes": [...], "slashes": [...],
        "width_s": w}``: ``t`` the end of each bucket (Unix seconds); ``settled``, ``disputes``
        and ``slashes`` running totals (jobs settled, disputes opened, slashings) at each
        bucket's end; ``gops`` the GOP/s served in the bucket (2·m·n·k of the jobs that settled
        in it, over its width).
    """
    times = [t for t, _ in timeline.settled] + timeline.disputes + [t for t, _ in timeline.slashes]
    start = min([*times, now - MIN_SPAN_S])
    end = max([*times, now])
    width = max(1.0, (end - start) / buckets)
    count = max(1, math.ceil((end - start) / width))
    settled = [0] * count
    ops = [0] * count
    disputes = [0] * count
    slashes = [0] * count
    for t, job_ops in timeline.settled:
        i = _bucket(t, start, width, count)
        settled[i] += 1
        ops[i] += job_ops
    for t in timeline.disputes:
        disputes[_bucket(t, start, width, count)] += 1
    for t, _ in timeline.slashes:
        slashes[_bucket(t, start, width, count)] += 1
    return {
        "t": [round(start + (i + 1) * width, 3) for i in range(count)],
        "settled": _running(settled),
        "gops": [round(o / width / 1e9, 3) for o in ops],
        "disputes": _running(disputes),
        "slashes": _running(slashes),
        "width_s": round(width, 3),
    }


def _running(counts: list[int]) -> list[int]:
    out, total = [], 0
    for c in counts:
        total += c
        out.append(total)
    return out
