"""``ramnet run``: multiply A and B here (sovereign), on the mesh or on Apache Spark, and render
the report."""

from __future__ import annotations

import functools
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from ramnet._errors import InvalidInputError
from ramnet.commands import _node
from ramnet.commands._common import guarded, print_json, stderr, stdout
from ramnet.commands._options import BackendChoice, DType, JsonOption
from ramnet.commands._shards import shard_table


class Mode(str, Enum):
    sovereign = "sovereign"
    mesh = "mesh"
    spark = "spark"


class Fault(str, Enum):
    """``--inject-fault``: how one partial is corrupted (``ramnet.spark.engine.FAULTS``)."""

    off_by_one = "off-by-one"
    random = "random"
    zeros = "zeros"


class Redundancy(str, Enum):
    mirror = "mirror"
    none = "none"


def _parse_grid(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    parts = text.replace("x", ",").split(",")
    try:
        p, q, r = (int(x) for x in parts)
    except ValueError:
        raise InvalidInputError(
            f"--grid takes P,Q,R (three positive integers), not {text!r}"
        ) from None
    if min(p, q, r) < 1:
        raise InvalidInputError(f"--grid counts must be >= 1, got {text!r}")
    return p, q, r


@guarded
def run(
    out: Annotated[
        Path, typer.Option("--out", help="Where to write C (.npy; .npy or .zarr with spark).")
    ],
    mode: Annotated[
        Mode,
        typer.Option(
            "--mode",
            help="sovereign: compute on this machine; mesh: on the mesh's workers; spark: on"
            " Apache Spark (--master).",
        ),
    ] = Mode.sovereign,
    a: Annotated[
        Path | None, typer.Option("--a", help="A (M x K): .npy; .npy or .zarr with spark.")
    ] = None,
    b: Annotated[
        Path | None, typer.Option("--b", help="B (K x N): .npy; .npy or .zarr with spark.")
    ] = None,
    random: Annotated[
        str | None,
        typer.Option("--random", help="Random operands of shape MxKxN.", metavar="MxKxN"),
    ] = None,
    dtype: Annotated[
        DType | None, typer.Option("--dtype", help="Job dtype (required with --random).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of --random.")] = 0,
    save_inputs: Annotated[
        Path | None, typer.Option("--save-inputs", help="Write A.npy and B.npy of --random here.")
    ] = None,
    backend: Annotated[
        BackendChoice | None, typer.Option("--backend", help="Kernels to use (default auto).")
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads", min=1, help="Threads (default: every core); per task with spark."
        ),
    ] = None,
    grid: Annotated[
        str | None,
        typer.Option("--grid", help="Block counts P,Q,R along M, N, K.", metavar="P,Q,R"),
    ] = None,
    trace: Annotated[
        Path | None, typer.Option("--trace", help="Write a signed trace (commitments) here.")
    ] = None,
    prove: Annotated[
        bool, typer.Option("--prove", help="Add a sum-check proof to the trace.")
    ] = False,
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="Node key that signs the trace.")
    ] = None,
    nodes: Annotated[
        int | None,
        typer.Option(
            "--nodes",
            help="Mesh: workers to use; spark: plan slots (default 3). A multiple of 3.",
        ),
    ] = None,
    master: Annotated[
        str | None,
        typer.Option(
            "--master",
            help="Spark: the master URL (default local[*], or spark-submit's; spark://HOST:7077,"
            " yarn, k8s://...).",
        ),
    ] = None,
    inject_fault: Annotated[
        Fault | None,
        typer.Option(
            "--inject-fault",
            help="Spark, testing aid: corrupt one partial on one executor (caught, recomputed).",
        ),
    ] = None,
    coordinator: Annotated[
        str | None, typer.Option("--coordinator", help="Mesh: the coordinator's URL.")
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            help="Mesh: PEM CA certificates to trust for an https coordinator (default:"
            " RAMNET_CA_FILE, else the system's store).",
            metavar="PEM",
        ),
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Mesh: print the job id and return at once.")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Mesh: keep trying to reach the coordinator (default: fail after a few seconds).",
        ),
    ] = False,
    redundancy: Annotated[
        Redundancy | None,
        typer.Option(
            "--redundancy",
            help="Mesh: mirror triads (the default from 6 nodes on) or none.",
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings file.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Multiply A and B and write C, here (sovereign) or on the mesh."""
    from ramnet.commands import _sovereign
    from ramnet.config import load_settings

    settings = load_settings(
        config,
        {
            "backend": backend.value if backend else None,
            "threads": threads,
            "key_file": str(key_file) if key_file else None,
            "coordinator": coordinator,
            "ca_file": str(ca_file) if ca_file else None,
        },
    )
    from ramnet.orchid._io import parse_shape

    _refuse_foreign_options(
        mode,
        master=master,
        inject_fault=inject_fault,
        coordinator=coordinator,
        ca_file=ca_file,
        detach=detach,
        wait=wait,
        redundancy=redundancy,
    )
    if mode is Mode.spark:
        _run_spark(
            out=out,
            master=master,
            a_path=a,
            b_path=b,
            random=parse_shape(random) if random is not None else None,
            dtype=dtype.value if dtype else None,
            seed=seed,
            nodes=3 if nodes is None else nodes,
            grid=_parse_grid(grid),
            trace=trace,
            key_file=settings.key_file,
            save_inputs=save_inputs,
            prove=prove,
            threads=settings.threads,
            backend=settings.backend,
            inject_fault=inject_fault.value if inject_fault else None,
            as_json=as_json,
        )
        return
    if mode is Mode.mesh:
        from ramnet.commands import _mesh_run

        if nodes is None:
            raise InvalidInputError("--mode mesh needs --nodes N (a multiple of 3)")
        mesh_job = _mesh_run.MeshJob(
            coordinator=settings.coordinator,
            ca_file=settings.ca_file,
            nodes=nodes,
            out=out,
            key=functools.partial(_node.node_key, settings.key_file),
            a_path=a,
            b_path=b,
            random=parse_shape(random) if random is not None else None,
            dtype=dtype.value if dtype else None,
            seed=seed,
            save_inputs=save_inputs,
            detach=detach,
            redundancy=redundancy.value if redundancy else None,
            wait=wait,
            say=_say,
        )
        quiet = as_json or not sys.stdout.isatty()
        try:
            if quiet:
                report = _mesh_run.run(mesh_job, on_status=_mesh_run.Narrator(_say))
            else:
                report = _mesh_with_live_view(mesh_job)
        except _mesh_run.JobInterrupted as exc:
            _say(str(exc))  # the job goes on: say which it is and how to get its C
            raise typer.Exit(130) from None
        if as_json:
            print_json(report)
        elif detach:
            typer.echo(report["job_id"])
        else:
            _render_mesh(report)
        return
    # Loaded (or created) only once the job has been validated.
    node_key = functools.partial(_node.node_key, settings.key_file) if trace is not None else None

    job = _sovereign.SovereignJob(
        out=out,
        a_path=a,
        b_path=b,
        random=parse_shape(random) if random is not None else None,
        dtype=dtype.value if dtype else None,
        seed=seed,
        backend=settings.backend,
        threads=settings.threads,
        grid=_parse_grid(grid),
        save_inputs=save_inputs,
        trace=trace,
        prove=prove,
        key=node_key,
    )
    quiet = as_json or not sys.stdout.isatty()
    report = _sovereign.run(job) if quiet else _run_with_progress(job)
    if as_json:
        print_json(report)
    else:
        _render_run(report)


def _refuse_foreign_options(mode: Mode, **given: Any) -> None:
    """One line for an option of another mode: Spark's outside spark, the mesh's with spark.

    (Sovereign runs have always ignored the mesh's options; that stays as it was.)
    """
    spark_only = ("master", "inject_fault")
    mesh_only = ("coordinator", "ca_file", "detach", "wait", "redundancy")
    foreign = mesh_only if mode is Mode.spark else spark_only
    for name in foreign:
        if given[name] not in (None, False):
            flag = "--" + name.replace("_", "-")
            needs = "--mode mesh" if name in mesh_only else "--mode spark"
            raise InvalidInputError(f"{flag} applies to {needs} only, not --mode {mode.value}")


def _run_spark(*, as_json: bool, key_file: str | None, **options: Any) -> None:
    from ramnet.commands import _spark_run

    trace = options["trace"]
    job = _spark_run.SparkJob(
        # Loaded (or created) only once the job has been validated.
        key=functools.partial(_node.node_key, key_file) if trace is not None else None,
        **options,
    )
    if as_json:
        print_json(_spark_run.run(job))
        return
    if sys.stdout.isatty():
        report = _spark_run.run_with_progress(job)
    else:
        with _spark_run.narrator(_say, job.master) as progress:
            report = _spark_run.run(job, progress=progress)
    _spark_run.render(report)


def _say(line: str) -> None:
    stderr().print(line, markup=False, soft_wrap=True, highlight=False)


def _mesh_with_live_view(job: Any) -> dict[str, Any]:
    from rich.live import Live

    from ramnet.commands import _mesh_run

    with Live(shard_table({}), transient=True, refresh_per_second=8) as live:
        return _mesh_run.run(job, on_status=lambda info: live.update(shard_table(info)))


def _render_mesh(report: dict[str, Any]) -> None:
    from rich.table import Table

    m, n = report["shape"]
    table = Table(title=f"mesh job {report['job_id']}: C {m}x{n} {report.get('out_dtype', '')}")
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row("state", report["state"])
    table.add_row("nodes", str(report["nodes"]))
    table.add_row("price", str(report.get("price")))
    sec = report["seconds"]
    table.add_row(
        "load / compute / save", f"{sec['load']:.3f} / {sec['compute']:.3f} / {sec['save']:.3f} s"
    )
    table.add_row("check", "Freivalds passed")
    table.add_row("output", report["out"])
    stdout().print(table)


def _run_with_progress(job: Any) -> dict[str, Any]:
    from ramnet.commands import _sovereign
    from ramnet.commands._common import transient_progress

    with transient_progress() as bar:
        task = bar.add_task("block products", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return _sovereign.run(job, progress=progress)


def _render_run(report: dict[str, Any]) -> None:
    from rich.table import Table

    m, n = report["shape"]
    k = report["a_shape"][1]
    sec = report["seconds"]
    table = Table(title=f"C = A·B  ({m}x{k} · {k}x{n}, {report['dtype']} -> {report['out_dtype']})")
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row("backend", f"{report['backend']} ({report['code_path']})")
    table.add_row("threads", str(report["threads"]))
    table.add_row("grid", "x".join(str(x) for x in report["grid"]))
    table.add_row(
        "load / compute / save", f"{sec['load']:.3f} / {sec['compute']:.3f} / {sec['save']:.3f} s"
    )
    table.add_row("rate", f"{report['gops']:,.1f} GOP/s" if report["gops"] else "-")
    table.add_row("output", report["out"])
    if report.get("trace"):
        info = report["trace"]
        proof = f", proof {info['proof_bytes']} bytes" if info["proof_bytes"] else ""
        table.add_row("trace", f"{info['path']} ({sec['trace']:.3f} s{proof})")
        table.add_row("node id", info["node_id"])
    stdout().print(table)
