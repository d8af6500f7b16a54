"""In-process benchmarks behind ``ramnet bench``: our kernels against numpy, measured in one run.

Figures are best-of-N (STREAM's convention) or median-of-N wall times; a library function, so it
prints nothing. The fuller benchmarks with external peers (onnxruntime, McCalpin's STREAM, the
register peak) live in ``bench/``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ramnet import orchid
from ramnet.orchid._backends import resolve as resolve_backend

STREAM_BYTES = {"copy": 2, "scale": 2, "add": 3, "triad": 3}


def _times(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def stream(
    n: int = 1 << 25,
    *,
    dtype: str = "float64",
    threads: int | None = None,
    repeat: int = 10,
    backend: str = "auto",
) -> dict[str, Any]:
    """Measure the four STREAM operations, ours against numpy's best in-place forms.

    Args:
        n: Elements per vector (three vectors are allocated).
        dtype: ``float64`` or ``float32``.
        threads: Threads for our kernels (numpy's are single-threaded).
        repeat: Runs per operation; the best rate is reported, as STREAM does.
        backend: Our backend (``auto``, ``c``, ``numba``).

    Returns:
        ``{"n", "dtype", "threads", "rows": [{"op", "ours_gbs", "numpy_gbs", "ratio"}, ...]}``.
    """
    dt = np.dtype(dtype)
    a = np.zeros(n, dt)
    b = np.full(n, 2.0, dt)
    c = np.full(n, 0.5, dt)
    s = dt.type(3.0)
    threads = threads or orchid.default_threads()
    ours: dict[str, Callable[[], object]] = {
        "copy": lambda: orchid.copy(a, b, threads=threads, backend=backend),
        "scale": lambda: orchid.scale(a, b, 3.0, threads=threads, backend=backend),
        "add": lambda: orchid.add(a, b, c, threads=threads, backend=backend),
        "triad": lambda: orchid.triad(a, b, c, 3.0, threads=threads, backend=backend),
    }

    def np_triad() -> None:
        np.multiply(c, s, out=a)
        np.add(a, b, out=a)

    theirs: dict[str, Callable[[], object]] = {
        "copy": lambda: np.copyto(a, b),
        "scale": lambda: np.multiply(b, s, out=a),
        "add": lambda: np.add(b, c, out=a),
        "triad": np_triad,
    }
    rows = []
    for op in ("copy", "scale", "add", "triad"):
        nbytes = STREAM_BYTES[op] * n * dt.itemsize
        ours[op]()  # warm: page faults, numba compilation
        theirs[op]()
        mine = nbytes / min(_times(ours[op], repeat)) / 1e9
        numpy_rate = nbytes / min(_times(theirs[op], repeat)) / 1e9
        rows.append(
            {
                "op": op,
                "ours_gbs": round(mine, 2),
                "numpy_gbs": round(numpy_rate, 2),
                "ratio": round(mine / numpy_rate, 3),
            }
        )
    return {"n": n, "dtype": dt.name, "threads": threads, "rows": rows}


def gemm(
    size: int = 2048,
    *,
    dtype: str = "int8",
    threads: int | None = None,
    repeat: int = 5,
    backend: str = "auto",
    numpy_int_size: int = 384,
) -> dict[str, Any]:
    """Measure our square GEMM against numpy on the same data.

    Peers: numpy float64 (and float32 for float jobs) matmul of the same matrices, BLAS, which is
    what a user would do instead; and for integer dtypes numpy's own integer matmul, which has no
    BLAS and is so slow that it is measured at ``numpy_int_size`` and reported as a rate.

    Returns:
        ``{"size", "dtype", "threads", "backend", "code_path", "rows": [{"name", "n", "gops",
        "seconds", "speedup"}, ...]}``; ``speedup`` is our rate over the row's.
    """
    threads = threads or orchid.default_threads()
    a, b = orchid.random_operands(size, size, size, dtype, seed=1)
    chosen = resolve_backend(backend, a.dtype)
    ops = 2.0 * size**3

    def ours() -> object:
        return orchid.matmul(a, b, backend=backend, threads=threads)

    ours()
    mine = statistics.median(_times(ours, repeat))
    rows: list[dict[str, Any]] = [
        {"name": f"ramnet {chosen.name} ({chosen.code_path})", "n": size, "seconds": mine}
    ]
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    np.matmul(a64, b64)
    rows.append(
        {
            "name": "numpy float64 matmul (BLAS)",
            "n": size,
            "seconds": statistics.median(_times(lambda: np.matmul(a64, b64), repeat)),
        }
    )
    if a.dtype.kind == "i":
        s = min(size, numpy_int_size)
        wide = np.int32 if a.dtype == np.int8 else np.int64
        ai, bi = a[:s, :s].astype(wide), b[:s, :s].astype(wide)
        t = statistics.median(_times(lambda: np.matmul(ai, bi), max(1, repeat // 2)))
        rows.append({"name": f"numpy {np.dtype(wide).name} matmul", "n": s, "seconds": t})
    elif a.dtype == np.float64:
        a32, b32 = a.astype(np.float32), b.astype(np.float32)
        np.matmul(a32, b32)
        rows.append(
            {
                "name": "numpy float32 matmul (BLAS)",
                "n": size,
                "seconds": statistics.median(_times(lambda: np.matmul(a32, b32), repeat)),
            }
        )
    our_rate = ops / mine / 1e9
    for row in rows:
        row["gops"] = round(2.0 * row["n"] ** 3 / row["seconds"] / 1e9, 3)
        row["seconds"] = round(row["seconds"], 6)
        row["speedup"] = round(our_rate / row["gops"], 2)
    return {
        "size": size,
        "dtype": a.dtype.name,
        "threads": threads,
        "backend": chosen.name,
        "code_path": chosen.code_path,
        "rows": rows,
    }
