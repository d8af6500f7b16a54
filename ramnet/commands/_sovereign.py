"""The sovereign run: load or generate operands, multiply on this machine, save C, report timings.

Used by ``ramnet run --mode sovereign``; a library function, so it prints nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ramnet import orchid
from ramnet._errors import InvalidInputError
from ramnet.commands._operands import check_sources, load_operands, save_operands
from ramnet.orchid._backends import resolve as resolve_backend
from ramnet.orchid._io import check_writable
from ramnet.orchid._scheduler import ProgressCallback, default_grid


@dataclass
class SovereignJob:
    """What to run.

    Attributes:
        out: Where C goes (``.npy``).
        a_path, b_path: Operand files; or ``random`` = (M, K, N) with ``dtype`` and ``seed``.
        dtype: The job dtype; forced on file operands when given (values must fit exactly).
        backend, threads, grid: As for ``ramnet.matmul``.
        save_inputs: A folder to write A.npy and B.npy into (random operands only).
        trace: Where to write the signed trace (VALKYRIE); None for no trace.
        prove: Add a sum-check proof to the trace.
        key: The ``NodeKey`` that signs the trace (required with ``trace``), or a function that
            returns it, called only once the job is known to be valid (so that a refused job
            creates no key).
    """

    out: Path
    a_path: Path | None = None
    b_path: Path | None = None
    random: tuple[int, int, int] | None = None
    dtype: str | None = None
    seed: int = 0
    backend: str = "auto"
    threads: int | None = None
    grid: tuple[int, int, int] | None = None
    save_inputs: Path | None = None
    trace: Path | None = None
    prove: bool = False
    key: Any = None
    hooks: list[orchid.TraceHook] = field(default_factory=list)


def validate(job: SovereignJob) -> None:
    """Check a job's options before any work.

    Raises:
        InvalidInputError: Conflicting or missing operand options.
        OutputFileError: An unwritable output.
    """
    check_sources(job.a_path, job.b_path, job.random, job.dtype, None)
    if job.prove and job.trace is None:
        raise InvalidInputError("--prove needs --trace PATH to write the proof into")
    if job.trace is not None and job.key is None:
        raise InvalidInputError("a trace needs a node key to sign it")
    check_writable(job.out)
    if job.trace is not None:
        check_writable(job.trace)
    check_sources(job.a_path, job.b_path, job.random, job.dtype, job.save_inputs)


def run(job: SovereignJob, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Run a sovereign job.

    Args:
        job: The job.
        progress: Called as ``progress(done, total)`` after each block product.

    Returns:
        A JSON-ready report: ``shape``, ``dtype``, ``out_dtype``, ``backend``, ``code_path``,
        ``threads``, ``grid``, ``seconds`` (``load``, ``compute``, ``save``, ``total``), ``gops``,
        ``out``.

    Raises:
        RamnetError: Any invalid input (see ``ramnet.matmul``), unreadable or unwritable files.
    """
    validate(job)
    t0 = time.perf_counter()
    a, b = load_operands(job.a_path, job.b_path, job.random, job.dtype, job.seed)
    recorder = None
    if job.trace is not None:
        from ramnet.valkyrie import TraceRecorder
        from ramnet.valkyrie._sumcheck import check_range

        if job.prove:
            check_range(a, b)  # refuse before computing, not after
        recorder = TraceRecorder(threads=job.threads)
    key = job.key() if callable(job.key) else job.key
    threads = job.threads or orchid.default_threads()
    backend = resolve_backend(job.backend, a.dtype)
    m, k = a.shape
    n = b.shape[1]
    grid = (
        orchid.make_grid(m, k, n, job.grid) if job.grid else default_grid(m, k, n, a.dtype, threads)
    )
    t1 = time.perf_counter()
    hooks = [*job.hooks, *([recorder] if recorder else [])]
    c = orchid.matmul(
        a, b, backend=job.backend, threads=threads, grid=grid, hooks=hooks, progress=progress
    )
    t2 = time.perf_counter()
    # The recorder hashes inside its hooks, i.e. during the compute phase: report that apart.
    hook_seconds = recorder.seconds if recorder else 0.0
    trace_info = None
    if recorder is not None and job.trace is not None:
        from ramnet.valkyrie import write_trace

        trace = recorder.build(key, prove=job.prove, threads=threads)
        write_trace(job.trace, trace, key)
        trace_info = {
            "path": str(job.trace),
            "node_id": key.node_id,
            "proof_bytes": trace.proof.size if trace.proof else 0,
            "commitments": {"a": trace.a.hex(), "b": trace.b.hex(), "c": trace.c.hex()},
        }
    t_trace = time.perf_counter()
    if job.save_inputs is not None:
        save_operands(job.save_inputs, a, b)
    orchid.save_npy(job.out, c)
    t3 = time.perf_counter()
    compute = t2 - t1 - hook_seconds
    return {
        "mode": "sovereign",
        "shape": [m, n],
        "a_shape": [m, k],
        "b_shape": [k, n],
        "dtype": a.dtype.name,
        "out_dtype": c.dtype.name,
        "backend": backend.name,
        "code_path": backend.code_path,
        "threads": threads,
        "grid": list(grid.shape),
        "seconds": {
            "load": round(t1 - t0, 6),
            "compute": round(compute, 6),
            "save": round(t3 - t_trace, 6),
            "trace": round(hook_seconds + t_trace - t2, 6),
            "total": round(t3 - t0, 6),
        },
        "gops": round(2.0 * m * n * k / compute / 1e9, 3) if compute > 0 else None,
        "out": str(job.out),
        "trace": trace_info,
    }
