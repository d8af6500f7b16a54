"""``ramnet run --mode spark``: run a job on Apache Spark and render its report.

``run.py`` parses the options and calls ``run`` here; the job itself is
``ramnet.spark.engine.matmul``. The Spark engine is optional (``pip install 'ramnet[spark]'``) and
the one-file executable leaves it out, so it is imported only here, when a job starts.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ramnet._errors import EngineUnavailableError, InvalidInputError, RamnetError

#: The report's stages, in the order they run, as the table and the progress bar name them.
STAGES = ("session", "random", "compute", "check", "assemble", "trace")


@dataclass
class SparkJob:
    """What to run on Spark (``ramnet.spark.engine.matmul``'s arguments).

    Attributes:
        out: Where C goes (``.npy`` or ``.zarr``).
        master: Spark's master URL; None: spark-submit's, else ``local[*]``.
        a_path, b_path: Operand stores (``.npy`` or ``.zarr``); or ``random`` = (M, K, N).
        dtype, seed: Of the random operands (``dtype`` also checks stores).
        nodes: Plan slots, a multiple of 3.
        grid: (P, Q, R) block counts, or None for the engine's choice.
        trace: Where to write the signed trace, or None.
        key: A function returning the ``NodeKey`` that signs the trace (None without a trace).
        save_inputs: A folder to keep the random operands in.
        prove: Ask for a sum-check proof (the engine refuses it in one line).
        threads: ORCHID threads per task.
        backend: ORCHID backend.
        inject_fault: Testing aid: corrupt one partial (``off-by-one``, ``random``, ``zeros``).
    """

    out: Path
    master: str | None = None
    a_path: Path | None = None
    b_path: Path | None = None
    random: tuple[int, int, int] | None = None
    dtype: str | None = None
    seed: int = 0
    nodes: int = 3
    grid: tuple[int, int, int] | None = None
    trace: Path | None = None
    key: Callable[[], Any] | None = None
    save_inputs: Path | None = None
    prove: bool = False
    threads: int | None = None
    backend: str = "auto"
    inject_fault: str | None = None


def _engine() -> Any:
    """The engine's ``matmul``, or one line that says why this installation has none."""
    try:
        from ramnet.spark.engine import matmul
    except ImportError as exc:
        if getattr(sys, "frozen", False):  # packaging/pyinstaller.spec leaves the engine out
            raise EngineUnavailableError(
                "this executable has no Spark engine; pip install 'ramnet[spark]'"
            ) from exc
        raise EngineUnavailableError(
            f"the Spark engine cannot load ({exc}): pip install 'ramnet[spark]'"
        ) from exc
    return matmul


def _absolute(path: Path | None) -> Path | None:
    # Executors open the stores by path, from their own working folders.
    return None if path is None else path.absolute()


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def check_sources(job: SparkJob) -> None:
    """Refuse what the engine would ignore, before Spark starts (it checks the rest itself).

    Raises:
        InvalidInputError: ``--save-inputs`` without ``--random``.
    """
    if job.save_inputs is not None and job.random is None:
        raise InvalidInputError("--save-inputs keeps random operands: it needs --random")


def run(job: SparkJob, progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Run a job on Spark.

    Args:
        job: The job.
        progress: Called as ``progress(stage, tasks done, tasks in the stage)``.

    Returns:
        The JSON-ready report (``SparkReport.to_dict()``).

    Raises:
        RamnetError: Bad options or inputs, no Java or pyspark (``EngineUnavailableError``), a
            store that changed during the job, a partial that stayed wrong.
    """
    check_sources(job)
    matmul = _engine()
    try:
        report = matmul(
            _absolute(job.a_path),
            _absolute(job.b_path),
            _absolute(job.out),
            master=job.master,
            nodes=job.nodes,
            grid=job.grid,
            trace=job.trace,
            key=job.key,
            prove=job.prove,
            threads=job.threads,
            backend=job.backend,
            random=job.random,
            dtype=job.dtype,
            seed=job.seed,
            save_inputs=_absolute(job.save_inputs),
            inject_fault=job.inject_fault,
            progress=progress,
        )
    except RamnetError:
        raise
    except Exception as exc:  # a task's error as Spark relays it: many lines, a remote traceback
        raise RamnetError(f"the Spark job failed: {_last_line(exc)}") from exc
    result: dict[str, Any] = report.to_dict()
    return result


def run_with_progress(job: SparkJob) -> dict[str, Any]:
    """Run a job with a Rich progress bar on the terminal (transient: gone when the job ends).

    Returns:
        The report, as ``run``.
    """
    from ramnet.commands._common import transient_progress

    with transient_progress() as bar:
        # Spark's JVM takes seconds to start: say so until the first stage reports.
        task = bar.add_task(f"starting Spark ({job.master or 'default master'})", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=f"{stage} tasks", completed=done, total=total)

        return run(job, progress=progress)


#: Seconds without news from the job after which the narrator says Spark is still starting (a
#: refused job ends well before; Spark's JVM takes several seconds).
STARTING_NOTICE_S = 5.0


@contextlib.contextmanager
def narrator(
    say: Callable[[str], None], master: str | None
) -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback for logs, not terminals: it says each stage once, as it starts, and
    that Spark is starting when the first stage is slow to come.

    Args:
        say: Writes one line.
        master: The master, for the starting line.

    Yields:
        The callback, for ``run``.
    """
    seen: set[str] = set()
    lock = threading.Lock()

    def starting() -> None:
        with lock:
            if not seen:
                say(f"spark: starting Spark ({master or 'default master'})")

    timer = threading.Timer(STARTING_NOTICE_S, starting)
    timer.daemon = True

    def progress(stage: str, done: int, total: int) -> None:
        with lock:
            if stage not in seen:
                seen.add(stage)
                say(f"spark: {stage} ({total} task{'s' if total != 1 else ''})")

    timer.start()
    try:
        yield progress
    finally:
        timer.cancel()


def _seconds(sec: dict[str, Any]) -> str:
    parts = [f"{name} {sec[name]:.2f}" for name in STAGES if sec.get(name)]
    return " / ".join(parts) + f" s (total {sec.get('total', 0):.2f} s)"


def _checks(report: dict[str, Any]) -> list[tuple[str, str]]:
    if not report.get("checks", True):
        return [("checks", "OFF (no audit copies, no Freivalds)")]
    rows = [
        ("audit blocks", str(report["audit_blocks"])),
        ("partials checked", str(report["partials_checked"])),
        ("faults caught", str(report["faults_caught"])),
    ]
    for redo in report["recomputed"]:
        i, j, k = redo["block"]
        reason = f": {redo['reason']}" if redo.get("reason") else ""
        rows.append(
            (
                "recomputed",
                f"block ({i},{j},{k}) of slot {redo['slot']} on {redo['executor']}"
                f" -> {redo['recomputed_on']}{reason}",
            )
        )
    rows.append(("excluded", ", ".join(report["excluded"]) or "none"))
    return rows


def render(report: dict[str, Any]) -> None:
    """Print a job's report as a table on stdout."""
    from rich.table import Table

    from ramnet.commands._common import stdout

    m, n = report["shape"]
    k = report["a_shape"][1]
    table = Table(
        title=f"C = A·B on Spark  ({m}x{k} · {k}x{n}, {report['dtype']} -> {report['out_dtype']})"
    )
    table.add_column("item")
    table.add_column("value", justify="right", overflow="fold")
    table.add_row("C", f"{m}x{n} {report['out_dtype']}")
    table.add_row("master", report["master"])
    table.add_row("grid", "x".join(str(x) for x in report["grid"]))
    barrier = "barrier stage" if report.get("barrier") else "no barrier"
    table.add_row("nodes / slots", f"{report['nodes']} slots ({barrier})")
    table.add_row("executors", ", ".join(report["executors"]) or "-")
    for item, value in _checks(report):
        table.add_row(item, value)
    table.add_row("seconds", _seconds(report["seconds"]))
    gops = report.get("gops")
    table.add_row("rate", f"{gops:,.3g} GOP/s" if gops is not None else "-")
    table.add_row("output", report["out"])
    trace = report.get("trace")
    if trace:
        table.add_row("trace", trace["path"])
        table.add_row("node id", trace["node_id"])
    for note in report.get("notes") or []:
        table.add_row("note", note)
    stdout().print(table)
