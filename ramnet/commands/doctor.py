"""``ramnet doctor``: what this installation runs on, as a table or JSON."""

from __future__ import annotations

from ramnet.commands._common import guarded, print_json, stdout
from ramnet.commands._options import JsonOption


@guarded
def doctor(
    as_json: JsonOption = False,
) -> None:
    """Report Python, numpy and its BLAS, the compiler, the C kernels, the code paths and whether
    Spark (pyspark and Java) can run here."""
    from ramnet.commands import _doctor

    info = _doctor.report()
    if as_json:
        print_json(info)
        return
    from rich.markup import escape
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
    spark = info["spark"]
    java = spark["java"]
    table.add_row("pyspark", spark["pyspark"] or "not installed")
    table.add_row("java", f"{java['version']} ({java['path']})" if java else "not found")
    # The problem names an extra in brackets ('ramnet[spark]'): not Rich markup.
    problem = escape(spark["problem"] or "")
    table.add_row("spark engine", "ready" if spark["ok"] else f"UNAVAILABLE: {problem}")
    stdout().print(table)
