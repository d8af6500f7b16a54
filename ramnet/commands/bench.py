"""``ramnet bench``: our kernels against numpy, measured in one run."""

from __future__ import annotations

from typing import Annotated

import typer

from ramnet._errors import InvalidInputError
from ramnet.commands._common import group, guarded, print_json, stdout
from ramnet.commands._options import BackendChoice, DType, JsonOption

app = group("Benchmark RAMNET's kernels against numpy, in one run.")


@app.command("stream")
@guarded
def bench_stream(
    size: Annotated[int, typer.Option("--size", min=1, help="Elements per vector.")] = 1 << 25,
    dtype: Annotated[str, typer.Option("--dtype", help="float64 or float32.")] = "float64",
    threads: Annotated[int | None, typer.Option("--threads", min=1)] = None,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Runs; best is kept.")] = 10,
    backend: Annotated[BackendChoice, typer.Option("--backend")] = BackendChoice.auto,
    as_json: JsonOption = False,
) -> None:
    """STREAM copy/scale/add/triad: our kernels against numpy's best in-place forms."""
    from ramnet.commands import _benchmarks

    if dtype not in ("float64", "float32"):
        raise InvalidInputError(f"--dtype must be float64 or float32, not {dtype!r}")
    result = _benchmarks.stream(
        size, dtype=dtype, threads=threads, repeat=repeat, backend=backend.value
    )
    if as_json:
        print_json(result)
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
    stdout().print(table)


@app.command("gemm")
@guarded
def bench_gemm(
    size: Annotated[int, typer.Option("--size", min=1, help="Square size n.")] = 2048,
    dtype: Annotated[DType, typer.Option("--dtype")] = DType.int8,
    threads: Annotated[int | None, typer.Option("--threads", min=1)] = None,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Runs; the median is kept.")] = 5,
    backend: Annotated[BackendChoice, typer.Option("--backend")] = BackendChoice.auto,
    as_json: JsonOption = False,
) -> None:
    """Square GEMM: our kernels against numpy on the same data."""
    from ramnet.commands import _benchmarks

    result = _benchmarks.gemm(
        size, dtype=dtype.value, threads=threads, repeat=repeat, backend=backend.value
    )
    if as_json:
        print_json(result)
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
    stdout().print(table)
