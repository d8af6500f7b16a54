"""The ``ramnet`` command line: parse, call the library, render with Rich.

Exit codes, for every command: 0 success; 2 bad usage or invalid input (``InvalidInputError`` and
Click's usage errors); 1 anything else. Errors are one line on stderr, never a traceback. The
mapping lives in ``_exit_code`` and ``_guarded`` below, and nowhere else.

Heavy imports (numpy, numba, the kernels) happen inside the commands that need them, so
``ramnet --help`` stays fast.
"""

from __future__ import annotations

import atexit
import functools
import gc
import json
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from ramnet._errors import InvalidInputError, RamnetError
from ramnet._version import __version__


def _click_exceptions() -> Any:
    # typer >= 0.20 carries its own copy of click; older ones use click itself.
    import importlib

    try:
        return importlib.import_module("typer._click.exceptions")
    except ImportError:  # pragma: no cover - older typer
        return importlib.import_module("click.exceptions")


_CLICK = _click_exceptions()
_ClickException: Any = _CLICK.ClickException
_NoArgsIsHelpError: Any = _CLICK.NoArgsIsHelpError


class _OneLineErrors(typer.core.TyperGroup):
    """Usage errors (unknown option, bad value, missing option) as one ``error:`` line, exit 2."""

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
        except _NoArgsIsHelpError as exc:  # bare `ramnet` or `ramnet keys`: show the help
            if not standalone_mode:
                raise
            exc.show()
            sys.exit(0)
        except _ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            typer.echo(f"error: {exc.format_message()}{where}", err=True)
            if not standalone_mode:
                raise
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("aborted", err=True)
            if not standalone_mode:
                raise
            sys.exit(1)
        if standalone_mode:
            sys.exit(rv if isinstance(rv, int) else 0)
        return rv


app = typer.Typer(
    name="ramnet",
    cls=_OneLineErrors,
    help="RAMNET: verifiable matrix compute. Multiply big matrices fast and exactly.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _group(name: str, summary: str) -> typer.Typer:
    """A command group ``ramnet NAME``: shows its help when given no command."""
    group = typer.Typer(help=summary, no_args_is_help=True)
    app.add_typer(group, name=name)
    return group


keys_app = _group("keys", "Manage this node's Ed25519 key.")
coordinator_app = _group("coordinator", "Run the mesh's coordinator.")
worker_app = _group("worker", "Run a mesh worker (a provider).")
auditor_app = _group("auditor", "Run a mesh auditor (checks optimistic results).")
job_app = _group("job", "Follow mesh jobs.")
ledger_app = _group("ledger", "The mesh's ledger.")
bench_app = _group("bench", "Benchmark RAMNET's kernels against numpy, in one run.")

F = TypeVar("F", bound=Callable[..., Any])


def _stdout() -> Console:
    return Console()


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def _exit_code(exc: BaseException) -> int:
    return 2 if isinstance(exc, InvalidInputError) else 1


def _guarded(func: F) -> F:
    """Turn RAMNET's errors (and anything unexpected) into one line on stderr and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except RamnetError as exc:
            _stderr().print(f"error: {exc}", markup=False, soft_wrap=True)
            raise typer.Exit(_exit_code(exc)) from None
        except KeyboardInterrupt:
            _stderr().print("interrupted", markup=False)
            raise typer.Exit(130) from None
        except MemoryError:
            _stderr().print("error: out of memory", markup=False)
            raise typer.Exit(1) from None
        except Exception as exc:
            _stderr().print(
                f"error: unexpected {type(exc).__name__}: {exc}", markup=False, soft_wrap=True
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


class Mode(str, Enum):
    sovereign = "sovereign"
    mesh = "mesh"


class Redundancy(str, Enum):
    mirror = "mirror"
    none = "none"


class BackendChoice(str, Enum):
    auto = "auto"
    c = "c"
    numba = "numba"
    numpy = "numpy"


class DType(str, Enum):
    int8 = "int8"
    int16 = "int16"
    int32 = "int32"
    float32 = "float32"
    float64 = "float64"


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


@app.command()
@_guarded
def run(
    out: Annotated[Path, typer.Option("--out", help="Where to write C (.npy).")],
    mode: Annotated[
        Mode, typer.Option("--mode", help="sovereign: compute on this machine.")
    ] = Mode.sovereign,
    a: Annotated[Path | None, typer.Option("--a", help="A as a .npy file (M x K).")] = None,
    b: Annotated[Path | None, typer.Option("--b", help="B as a .npy file (K x N).")] = None,
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
        int | None, typer.Option("--threads", min=1, help="Threads (default: every core).")
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
        int | None, typer.Option("--nodes", help="Mesh: workers to use, a multiple of 3.")
    ] = None,
    coordinator: Annotated[
        str | None, typer.Option("--coordinator", help="Mesh: the coordinator's URL.")
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Mesh: print the job id and return at once.")
    ] = False,
    redundancy: Annotated[
        Redundancy | None,
        typer.Option(
            "--redundancy",
            help="Mesh: mirror triads (the default from 6 nodes on) or none.",
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Multiply A and B and write C, here (sovereign) or on the mesh."""
    from ramnet import _sovereign
    from ramnet.config import load_settings

    settings = load_settings(
        config,
        {
            "backend": backend.value if backend else None,
            "threads": threads,
            "key_file": str(key_file) if key_file else None,
            "coordinator": coordinator,
        },
    )
    from ramnet.orchid import parse_shape

    if mode is Mode.mesh:
        from ramnet import _mesh_run

        if nodes is None:
            raise InvalidInputError("--mode mesh needs --nodes N (a multiple of 3)")
        mesh_job = _mesh_run.MeshJob(
            coordinator=settings.coordinator,
            nodes=nodes,
            out=out,
            key=functools.partial(_node_key, settings.key_file),
            a_path=a,
            b_path=b,
            random=parse_shape(random) if random is not None else None,
            dtype=dtype.value if dtype else None,
            seed=seed,
            save_inputs=save_inputs,
            detach=detach,
            redundancy=redundancy.value if redundancy else None,
        )
        quiet = as_json or not sys.stdout.isatty()
        report = _mesh_run.run(mesh_job) if quiet else _mesh_with_live_view(mesh_job)
        if as_json:
            _print_json(report)
        elif detach:
            typer.echo(report["job_id"])
        else:
            _render_mesh(report)
        return
    # Loaded (or created) only once the job has been validated.
    node_key = functools.partial(_node_key, settings.key_file) if trace is not None else None

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
        _print_json(report)
    else:
        _render_run(report)


def _node_key(key_file: str | None) -> Any:
    """Load the node key, creating one (and saying where, on stderr) if there is none."""
    from ramnet.config import default_key_path
    from ramnet.valkyrie import load_or_create_key

    path = Path(key_file) if key_file else default_key_path()
    key, created = load_or_create_key(path)
    if created:
        _stderr().print(
            f"created a new node key at {path} (node id {key.node_id})",
            markup=False,
            soft_wrap=True,
        )
    return key


def _shard_table(info: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"job {info.get('job_id', '')[:16]}: {info.get('state', '?')}")
    table.add_column("shards")
    table.add_column("count", justify="right")
    for state, count in (info.get("shards") or {}).items():
        if count:
            table.add_row(state, str(count))
    return table


def _mesh_with_live_view(job: Any) -> dict[str, Any]:
    from rich.live import Live

    from ramnet import _mesh_run

    with Live(_shard_table({}), transient=True, refresh_per_second=8) as live:
        return _mesh_run.run(job, on_status=lambda info: live.update(_shard_table(info)))


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
    _stdout().print(table)


def _run_with_progress(job: Any) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from ramnet import _sovereign

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
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
    _stdout().print(table)


@bench_app.command("stream")
@_guarded
def bench_stream(
    size: Annotated[int, typer.Option("--size", min=1, help="Elements per vector.")] = 1 << 25,
    dtype: Annotated[str, typer.Option("--dtype", help="float64 or float32.")] = "float64",
    threads: Annotated[int | None, typer.Option("--threads", min=1)] = None,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Runs; best is kept.")] = 10,
    backend: Annotated[BackendChoice, typer.Option("--backend")] = BackendChoice.auto,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """STREAM copy/scale/add/triad: our kernels against numpy's best in-place forms."""
    from ramnet import _benchmarks

    if dtype not in ("float64", "float32"):
        raise InvalidInputError(f"--dtype must be float64 or float32, not {dtype!r}")
    result = _benchmarks.stream(
        size, dtype=dtype, threads=threads, repeat=repeat, backend=backend.value
    )
    if as_json:
        _print_json(result)
        return
    from rich.table import Table

    n, threads_used = result["n"], result["threads"]
    title = f"STREAM, {n:,} x {result['dtype']}, {threads_used} threads (best of {repeat})"
    table = Table(title=title)
    for col in ("op", "ramnet GB/s", "numpy GB/s", "ratio"):
        table.add_column(col, justify="right")
    for row in result["rows"]:
        table.add_row(
            row["op"], f"{row['ours_gbs']:.1f}", f"{row['numpy_gbs']:.1f}", f"{row['ratio']:.2f}x"
        )
    _stdout().print(table)


@bench_app.command("gemm")
@_guarded
def bench_gemm(
    size: Annotated[int, typer.Option("--size", min=1, help="Square size n.")] = 2048,
    dtype: Annotated[DType, typer.Option("--dtype")] = DType.int8,
    threads: Annotated[int | None, typer.Option("--threads", min=1)] = None,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Runs; the median is kept.")] = 5,
    backend: Annotated[BackendChoice, typer.Option("--backend")] = BackendChoice.auto,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Square GEMM: our kernels against numpy on the same data."""
    from ramnet import _benchmarks

    result = _benchmarks.gemm(
        size, dtype=dtype.value, threads=threads, repeat=repeat, backend=backend.value
    )
    if as_json:
        _print_json(result)
        return
    from rich.table import Table

    table = Table(
        title=f"GEMM n={size} {result['dtype']}, {result['threads']} threads (median of {repeat})"
    )
    for col in ("kernel", "n", "GOP/s", "seconds", "ramnet speedup"):
        table.add_column(col, justify="right")
    for row in result["rows"]:
        table.add_row(
            row["name"],
            str(row["n"]),
            f"{row['gops']:,.1f}",
            f"{row['seconds']:.4f}",
            f"{row['speedup']:,.2f}x",
        )
    _stdout().print(table)


@app.command()
@_guarded
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Report Python, numpy and its BLAS, the compiler, the C kernels and the code paths."""
    from ramnet import _doctor

    info = _doctor.report()
    if as_json:
        _print_json(info)
        return
    from rich.table import Table

    kernels = info["kernels"]
    table = Table(title="ramnet doctor", show_header=False)
    table.add_column("item")
    table.add_column("value")
    table.add_row("ramnet", info["ramnet"])
    table.add_row("python", f"{info['python']} ({info['executable']})")
    table.add_row("platform", info["platform"])
    blas = info["blas"]
    table.add_row(
        "numpy", f"{info['numpy']} (BLAS: {blas['name'] or 'unknown'} {blas['version'] or ''})"
    )
    table.add_row(
        "compiler",
        "none (a frozen executable)"
        if info.get("frozen")
        else f"{info['compiler']['name']} ({'found' if info['compiler']['found'] else 'missing'})",
    )
    if kernels["c_extension"]:
        table.add_row("C kernels", "loaded")
    else:
        table.add_row("C kernels", f"MISSING ({kernels['c_extension_error']}); using numba")
    table.add_row("numba", kernels["numba"] or "not installed")
    table.add_row("CPU features", " ".join(kernels["cpu_features"]) or "-")
    for family, paths in kernels["paths"].items():
        table.add_row(
            f"path: {family}", f"{paths['best']} (supported: {', '.join(paths['supported'])})"
        )
    table.add_row("threads", str(info["threads"]))
    _stdout().print(table)


KeyFileOption = Annotated[
    Path | None,
    typer.Option("--key-file", help="Key file (default: RAMNET_KEY_FILE or the config folder)."),
]


def _key_path(key_file: Path | None) -> Path:
    from ramnet.config import default_key_path, load_settings

    settings = load_settings(None, {"key_file": str(key_file) if key_file else None})
    return Path(settings.key_file) if settings.key_file else default_key_path()


@keys_app.command("init")
@_guarded
def keys_init(
    key_file: KeyFileOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key.")] = False,
) -> None:
    """Create a new node key (file mode 0600); refuses to replace one without --force."""
    from ramnet.valkyrie import NodeKey, save_key

    path = _key_path(key_file)
    key = save_key(NodeKey.generate(), path, force=force)
    _stderr().print(f"wrote {path}", markup=False, soft_wrap=True)
    typer.echo(key.node_id)


@keys_app.command("show")
@_guarded
def keys_show(key_file: KeyFileOption = None) -> None:
    """Print the node id: the public key as 64 lowercase hex digits."""
    from ramnet.valkyrie import load_key

    typer.echo(load_key(_key_path(key_file)).node_id)


@keys_app.command("bind")
@_guarded
def keys_bind(
    payout_address: Annotated[str, typer.Option("--payout-address", help="Where to be paid.")],
    key_file: KeyFileOption = None,
) -> None:
    """Print a statement, signed by the node key, that binds a payout address to this node."""
    from ramnet.valkyrie import bind_payout

    _print_json(bind_payout(_node_key(str(_key_path(key_file))), payout_address))


@keys_app.command("check-binding")
@_guarded
def keys_check_binding(
    binding: Annotated[str, typer.Argument(help="The binding's JSON file, or - for stdin.")],
) -> None:
    """Check a payout binding: exit 0 when its signature is valid, 1 when not, 2 if unreadable."""
    from ramnet._errors import InputFileError
    from ramnet.valkyrie import check_binding

    try:
        text = sys.stdin.read(1 << 16) if binding == "-" else Path(binding).read_text()[: 1 << 16]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read {binding}: {exc}") from exc
    if not check_binding(text):
        _stderr().print("invalid: bad signature", markup=False)
        raise typer.Exit(1)
    typer.echo("valid")


@app.command()
@_guarded
def verify(
    trace: Annotated[Path, typer.Argument(help="The trace file (trace.bin).")],
    a: Annotated[Path | None, typer.Option("--a", help="A.npy, to check its commitment.")] = None,
    b: Annotated[Path | None, typer.Option("--b", help="B.npy, to check its commitment.")] = None,
    c: Annotated[Path | None, typer.Option("--c", help="C.npy, to check its commitment.")] = None,
    security_bits: Annotated[
        int, typer.Option("--security-bits", min=1, max=512, help="Freivalds: error <= 2^-bits.")
    ] = 40,
    threads: Annotated[int | None, typer.Option("--threads", min=1)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Check a trace: format, signature, proof, and the matrices against it when given.

    Exit codes: 0 valid; 1 invalid (what failed is named); 2 unreadable input or bad usage.
    """
    from ramnet.valkyrie import verify_trace

    verdict = verify_trace(trace, a, b, c, security_bits=security_bits, threads=threads)
    if as_json:
        _print_json(verdict.to_dict())
    else:
        _render_verdict(verdict)
    if not verdict.valid:
        raise typer.Exit(1)


def _render_verdict(verdict: Any) -> None:
    from rich.table import Table

    table = Table(title="VALID" if verdict.valid else "INVALID")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for check in verdict.checks:
        table.add_row(check.name, "ok" if check.ok else "FAILED", check.detail)
    _stdout().print(table)
    if not verdict.valid:
        _stderr().print(f"invalid: {', '.join(verdict.failed)}", markup=False)


CoordinatorOption = Annotated[
    str | None,
    typer.Option("--coordinator", help="Coordinator URL (default: RAMNET_COORDINATOR or config)."),
]


def _settings(**overrides: Any) -> Any:
    from ramnet.config import load_settings

    return load_settings(None, overrides)


@coordinator_app.command("start")
@_guarded
def coordinator_start(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 9000,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="State folder (default: user data folder).")
    ] = None,
    default_credit: Annotated[
        int, typer.Option("--default-credit", min=0, help="Credit granted to new accounts.")
    ] = 1_000_000,
    price_per_block: Annotated[
        int, typer.Option("--price-per-block", min=1, help="Price of one block product.")
    ] = 1,
    durable: Annotated[
        bool,
        typer.Option(
            "--durable", help="fsync every state change (survives power loss, not only kills)."
        ),
    ] = False,
    lease: Annotated[
        float,
        typer.Option("--lease", min=0.5, help="Seconds a worker has to commit, then to reveal."),
    ] = 300.0,
    write_behind: Annotated[
        float,
        typer.Option(
            "--write-behind",
            min=0.0,
            help="Seconds a revealed result waits before it is written (a job settled by then"
            " never writes it; after a kill, its worker reveals it again). 0: at once.",
        ),
    ] = 1.0,
    bench_no_audits: Annotated[
        bool,
        typer.Option(
            "--bench-no-audits", hidden=True, help="Benchmarking aid: plan jobs without audits."
        ),
    ] = False,
    bench_no_checks: Annotated[
        bool,
        typer.Option(
            "--bench-no-checks",
            hidden=True,
            help="Benchmarking aid: settle without the per-shard checks.",
        ),
    ] = False,
) -> None:
    """Run the coordinator in the foreground (stops cleanly on SIGTERM)."""
    from ramnet.config import user_data_dir
    from ramnet.mesh import CoordinatorConfig, serve

    folder = data_dir or user_data_dir() / "coordinator"
    config = CoordinatorConfig(
        data_dir=folder,
        default_credit=default_credit,
        price_per_block=price_per_block,
        durable=durable,
        lease_s=lease,
        write_behind=write_behind,
        audits=not bench_no_audits,
        checks=not bench_no_checks,
    )
    if bench_no_audits or bench_no_checks:
        _stderr().print(
            "coordinator: benchmarking aid: audits and/or per-shard checks are OFF; results are"
            " not verified",
            markup=False,
        )
    _stderr().print(f"coordinator on http://{host}:{port}, state in {folder}", markup=False)
    _long_running()
    serve(config, host=host, port=port)


@worker_app.command("start")
@_guarded
def worker_start(
    coordinator: CoordinatorOption = None,
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
) -> None:
    """Serve the coordinator's shards until SIGTERM (the shard in hand is finished first)."""
    from ramnet.mesh import Worker
    from ramnet.mesh.nodes.worker import MISBEHAVIOURS

    if misbehave is not None and misbehave not in MISBEHAVIOURS:
        raise InvalidInputError(
            f"--misbehave must be one of {', '.join(MISBEHAVIOURS)}, got {misbehave!r}"
        )

    settings = _settings(
        coordinator=coordinator,
        key_file=str(key_file) if key_file else None,
        bond=bond,
        payout_address=payout_address,
        threads=threads,
        backend=backend.value if backend else None,
    )
    client, stop, log = _mesh_node("worker", settings)
    worker = Worker(
        client,
        bond=settings.bond,
        validator=validator,
        payout_address=settings.payout_address,
        backend=settings.backend,
        threads=settings.threads or 1,
        log=log,
        misbehave=misbehave,
        prove=not no_prove,
    )
    log(f"stopped after {worker.run(stop)} shards")


def _long_running() -> None:
    # A node handles one large body after another: let it reuse freed memory rather than pay
    # fresh page faults for every buffer (see ramnet.orchid.keep_freed_memory).
    from ramnet.orchid import keep_freed_memory

    keep_freed_memory()


def _mesh_node(role: str, settings: Any) -> tuple[Any, Any, Callable[[str], None]]:
    """A node's signed client (its key loaded or created), an event that SIGTERM and SIGINT
    set, and a function that logs one line on stderr as ``ROLE NODE-ID: ...``."""
    import signal
    import threading

    from ramnet.mesh import MeshClient

    key = _node_key(settings.key_file)
    _long_running()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    err = _stderr()

    def log(line: str) -> None:
        err.print(f"{role} {key.node_id[:12]}: {line}", markup=False, soft_wrap=True)

    client = MeshClient(settings.coordinator, key, retries=None, retry_for=30, stop=stop)
    return client, stop, log


@auditor_app.command("start")
@_guarded
def auditor_start(
    coordinator: CoordinatorOption = None,
    key_file: KeyFileOption = None,
    bond: Annotated[int | None, typer.Option("--bond", min=0, help="Bond to stake.")] = None,
    payout_address: Annotated[
        str | None, typer.Option("--payout-address", help="Where to be paid.")
    ] = None,
    backend: Annotated[BackendChoice | None, typer.Option("--backend")] = None,
) -> None:
    """Audit optimistic jobs (results of --no-prove workers) until SIGTERM: settle or revert."""
    from ramnet.mesh import Auditor

    settings = _settings(
        coordinator=coordinator,
        key_file=str(key_file) if key_file else None,
        bond=bond,
        payout_address=payout_address,
        backend=backend.value if backend else None,
    )
    client, stop, log = _mesh_node("auditor", settings)
    auditor = Auditor(
        client,
        bond=settings.bond,
        payout_address=settings.payout_address,
        backend=settings.backend,
        log=log,
    )
    log(f"stopped after {auditor.run(stop)} audits")


# ---- the sidecar topology: an ORCHID daemon and a VALKYRIE proxy on one host ----

daemon_app = _group(
    "daemon", "Run the sidecar's ORCHID daemon (block products over a Unix socket)."
)
proxy_app = _group(
    "proxy", "Run the sidecar's VALKYRIE proxy: a mesh node whose work its daemon computes."
)


@daemon_app.command("start")
@_guarded
def daemon_start(
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="HTTP port of /health and /traces.")
    ] = 9000,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    socket_path: Annotated[
        Path | None,
        typer.Option(
            "--socket",
            help="Unix socket to serve (default: $XDG_RUNTIME_DIR/ramnet/daemon.sock, else "
            "ramnet-<uid>/daemon.sock in the temp folder).",
            metavar="PATH",
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="Block products at once (default: every core)."),
    ] = None,
    backend: Annotated[BackendChoice | None, typer.Option("--backend")] = None,
) -> None:
    """Run the ORCHID daemon in the foreground (SIGTERM stops it and removes its socket)."""
    from ramnet.config import user_runtime_dir
    from ramnet.sidecar import serve_daemon

    settings = _settings(threads=threads, backend=backend.value if backend else None)
    err = _stderr()
    _long_running()
    serve_daemon(
        socket_path,
        runtime_dir=user_runtime_dir(),
        host=host,
        port=port,
        backend=settings.backend,
        threads=settings.threads,
        log=lambda line: err.print(f"daemon: {line}", markup=False, soft_wrap=True),
    )


@proxy_app.command("start")
@_guarded
def proxy_start(
    daemon: Annotated[
        str,
        typer.Option("--daemon", help="The daemon's socket: unix://PATH.", metavar="unix://PATH"),
    ],
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="HTTP port of /health and /status.")
    ] = 9001,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    coordinator: CoordinatorOption = None,
    key_file: KeyFileOption = None,
    bond: Annotated[int | None, typer.Option("--bond", min=0, help="Bond to stake.")] = None,
    payout_address: Annotated[
        str | None, typer.Option("--payout-address", help="Where to be paid.")
    ] = None,
    validator: Annotated[
        bool, typer.Option("--validator", help="Also join the validator pool.")
    ] = False,
) -> None:
    """Serve the coordinator's shards through the daemon, checking every partial, until
    SIGTERM (the shard in hand is finished first)."""
    from ramnet.mesh import MeshClient
    from ramnet.sidecar import DaemonClient, Proxy, parse_daemon_url, serve_proxy

    daemon_client = DaemonClient(parse_daemon_url(daemon))
    daemon_client.ping()  # an unreachable daemon fails here, before a key is made or used
    settings = _settings(
        coordinator=coordinator,
        key_file=str(key_file) if key_file else None,
        bond=bond,
        payout_address=payout_address,
    )
    key = _node_key(settings.key_file)
    err = _stderr()
    tag = f"proxy {key.node_id[:12]}"
    proxy = Proxy(
        MeshClient(settings.coordinator, key, retries=None, retry_for=30),
        daemon_client,
        bond=settings.bond,
        validator=validator,
        payout_address=settings.payout_address,
        log=lambda line: err.print(f"{tag}: {line}", markup=False, soft_wrap=True),
    )
    _long_running()
    done = serve_proxy(proxy, host=host, port=port)
    err.print(f"{tag}: stopped after {done} shards", markup=False)


def _consumer_client(coordinator: str | None, key_file: Path | None) -> Any:
    from ramnet import _mesh_run

    settings = _settings(coordinator=coordinator, key_file=str(key_file) if key_file else None)
    return _mesh_run.client_for(settings.coordinator, _node_key(settings.key_file), 30.0)


@job_app.command("status")
@_guarded
def job_status(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    coordinator: CoordinatorOption = None,
    key_file: KeyFileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show a mesh job's state and its shards' states."""
    from ramnet.mesh.nodes import consumer as _consumer

    info = _consumer.status(_consumer_client(coordinator, key_file), job_id)
    if as_json:
        _print_json(info)
    else:
        _stdout().print(_shard_table(info))


@job_app.command("result")
@_guarded
def job_result(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write C (.npy).")],
    coordinator: CoordinatorOption = None,
    key_file: KeyFileOption = None,
) -> None:
    """Download a settled job's C."""
    from ramnet.mesh.nodes import consumer as _consumer
    from ramnet.orchid._io import check_writable

    check_writable(out)
    _consumer.fetch_result_to(_consumer_client(coordinator, key_file), job_id, out, None, None)
    typer.echo(str(out))


@ledger_app.command("show")
@_guarded
def ledger_show(
    coordinator: CoordinatorOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show every account (bond, balance, slashed) and the conserved totals."""
    from ramnet.mesh import MeshClient

    settings = _settings(coordinator=coordinator)
    info = MeshClient(settings.coordinator, None, retry_for=10).get_json("/v1/ledger")
    if as_json:
        _print_json(info)
        return
    from rich.table import Table

    table = Table(title="ledger")
    for col in ("node", "bond", "balance", "slashed"):
        table.add_column(col, justify="right")
    for acct in info["accounts"]:
        table.add_row(
            acct["node_id"][:16], str(acct["bond"]), str(acct["balance"]), str(acct["slashed"])
        )
    _stdout().print(table)
    totals = info["totals"]
    _stdout().print(" ".join(f"{k}={v}" for k, v in totals.items()), markup=False)


@ledger_app.command("grant")
@_guarded
def ledger_grant(
    node_id: Annotated[str, typer.Argument(help="The account's node id (64 hex digits).")],
    amount: Annotated[int, typer.Argument(min=1, help="Units to mint into its balance.")],
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="The coordinator's state folder.")
    ] = None,
) -> None:
    """Mint credit into an account (operators, on the coordinator's host)."""
    from ramnet.config import user_data_dir
    from ramnet.mesh import Ledger, Store

    folder = data_dir or user_data_dir() / "coordinator"
    if not (folder / "state.sqlite").exists():
        raise InvalidInputError(f"no coordinator state in {folder}")
    store = Store(folder / "state.sqlite")
    try:
        Ledger(store).grant(node_id, amount)
        _print_json(Ledger(store).account(node_id))
    finally:
        store.close()


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
