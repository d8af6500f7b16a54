"""``ramnet verify``: check a trace, and the matrices against it when given."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ramnet._errors import EngineUnavailableError
from ramnet.commands._common import guarded, print_json, stderr, stdout
from ramnet.commands._options import JsonOption


@guarded
def verify(
    trace: Annotated[Path, typer.Argument(help="The trace file (trace.bin).")],
    a: Annotated[
        Path | None, typer.Option("--a", help="A (.npy or .zarr), to check its commitment.")
    ] = None,
    b: Annotated[
        Path | None, typer.Option("--b", help="B (.npy or .zarr), to check its commitment.")
    ] = None,
    c: Annotated[
        Path | None, typer.Option("--c", help="C (.npy or .zarr), to check its commitment.")
    ] = None,
    security_bits: Annotated[
        int, typer.Option("--security-bits", min=1, max=512, help="Freivalds: error <= 2^-bits.")
    ] = 40,
    threads: Annotated[int | None, typer.Option("--threads", min=1)] = None,
    as_json: JsonOption = False,
) -> None:
    """Check a trace: format, signature, proof, and the matrices against it when given.

    Exit codes: 0 valid; 1 invalid (what failed is named); 2 unreadable input or bad usage.
    """
    from ramnet.valkyrie import verify_trace

    matrices = [_matrix(path, name) for path, name in ((a, "A"), (b, "B"), (c, "C"))]
    verdict = verify_trace(trace, *matrices, security_bits=security_bits, threads=threads)
    if as_json:
        print_json(verdict.to_dict())
    else:
        _render_verdict(verdict)
    if not verdict.valid:
        raise typer.Exit(1)


def _matrix(path: Path | None, name: str) -> Any:
    """A ``.npy`` path as it is (verify_trace maps it); a Zarr array (a Spark job's store) read
    whole into memory, as verify_trace checks matrices in one process."""
    if path is None or path.suffix.lower() != ".zarr":
        return path
    try:
        from ramnet.spark.store import OUTPUT_DTYPES, open_matrix
    except ImportError as exc:  # the one-file executable leaves the Spark engine's stores out
        raise EngineUnavailableError(
            f"{name}: this executable reads no Zarr stores; give a .npy file, or pip install "
            "'ramnet[spark]'"
        ) from exc

    store = open_matrix(path, name, dtypes=OUTPUT_DTYPES)
    rows, cols = store.shape
    return store.read_tile(slice(0, rows), slice(0, cols))


def _render_verdict(verdict: Any) -> None:
    from rich.table import Table

    table = Table(title="VALID" if verdict.valid else "INVALID")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for check in verdict.checks:
        table.add_row(check.name, "ok" if check.ok else "FAILED", check.detail)
    stdout().print(table)
    if not verdict.valid:
        stderr().print(f"invalid: {', '.join(verdict.failed)}", markup=False)
