"""The work behind the run and verify pages, run in a task's thread: a job through the runners
of ``ramnet run``, then VALKYRIE's verdict on what it wrote; a trace through ``verify_trace``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ramnet.ui.runners import MeshRequest, Runners, SovereignRequest
from ramnet.ui.tasks import Task


def verdict_view(verdict: Any) -> dict[str, Any]:
    """A ``Verdict`` as the pages show it: ``ramnet verify``'s table, in its words.

    Args:
        verdict: A ``ramnet.valkyrie.Verdict``.

    Returns:
        ``valid``, ``title`` (VALID or INVALID), ``checks`` (name, result ``ok``/``FAILED``,
        detail, ok) and ``failed_line`` (``invalid: ...``, or None).
    """
    return {
        "valid": verdict.valid,
        "title": "VALID" if verdict.valid else "INVALID",
        "checks": [
            {"name": c.name, "ok": c.ok, "result": "ok" if c.ok else "FAILED", "detail": c.detail}
            for c in verdict.checks
        ],
        "failed_line": None if verdict.valid else f"invalid: {', '.join(verdict.failed)}",
    }


def verify_files(
    task: Task, trace: Path, a: Path | None, b: Path | None, c: Path | None
) -> dict[str, Any]:
    """Verify a trace, with whichever matrices were given, as ``ramnet verify`` does.

    Returns:
        ``verdict_view`` of the verdict, and ``given`` (the matrices' names).

    Raises:
        InputFileError: A file that cannot be read.
    """
    from ramnet.valkyrie import verify_trace

    task.report(stage="verifying")
    verdict = verify_trace(trace, a, b, c)
    given = [name for name, path in (("A", a), ("B", b), ("C", c)) if path is not None]
    return {"verdict": verdict_view(verdict), "given": given}


def run_sovereign(task: Task, runners: Runners, request: SovereignRequest) -> dict[str, Any]:
    """Run a sovereign job, reporting block products and GOP/s, then verify its trace.

    Returns:
        The runner's report and, with a trace, ``verdict`` (``verdict_view``).
    """
    start = time.monotonic()
    shape = request.operands.shape or _file_shape(request.operands.a_path, request.operands.b_path)

    def progress(done: int, total: int) -> None:
        elapsed = max(time.monotonic() - start, 1e-9)
        gops = None
        if shape is not None and total:
            m, k, n = shape
            gops = round(2.0 * m * k * n * done / total / elapsed / 1e9, 2)
        task.report(stage="computing", done=done, total=total, gops=gops, elapsed=elapsed)

    task.report(stage="loading")
    report = runners.sovereign(request, progress)
    task.files["c"] = str(request.out)
    if request.trace is not None:
        task.files["trace"] = str(request.trace)
        task.report(stage="verifying")
        a, b = _operand_files(request)
        from ramnet.valkyrie import verify_trace

        report["verdict"] = verdict_view(verify_trace(request.trace, a, b, request.out))
        report["verified_with"] = [n for n, p in (("A", a), ("B", b)) if p] + ["C"]
    return report


def _file_shape(a: Path | None, b: Path | None) -> tuple[int, int, int] | None:
    """(M, K, N) from the ``.npy`` headers (memory-mapped, nothing read), for GOP/s; None when
    unknown (the runner reports bad files itself)."""
    from ramnet._errors import RamnetError
    from ramnet.orchid import load_npy

    if a is None or b is None:
        return None
    try:
        a_shape, b_shape = load_npy(a, "A").shape, load_npy(b, "B").shape
    except RamnetError:
        return None
    if len(a_shape) != 2 or len(b_shape) != 2:
        return None
    return int(a_shape[0]), int(a_shape[1]), int(b_shape[1])


def _operand_files(request: SovereignRequest) -> tuple[Path | None, Path | None]:
    if request.save_inputs is not None:
        return request.save_inputs / "A.npy", request.save_inputs / "B.npy"
    return request.operands.a_path, request.operands.b_path


def run_mesh(task: Task, runners: Runners, request: MeshRequest) -> dict[str, Any]:
    """Run a mesh job, reporting each status the coordinator gives.

    Returns:
        The runner's report, with ``last_status`` (the final job status: shards by state,
        disputes) and ``checks`` (the consumer's own check of C).
    """
    last: dict[str, Any] = {}

    def on_status(info: dict[str, Any]) -> None:
        last.clear()
        last.update(info)
        job_id = info.get("job_id")
        task.report(
            stage=str(info.get("state", "")),
            job_id=job_id,
            dashboard=dashboard_url(request.coordinator, job_id) if job_id else None,
            shards=info.get("shards") or {},
            shard_list=info.get("shard_list") or [],
            total_shards=info.get("total_shards"),
            waiting=info.get("waiting"),
            disputes=len(info.get("disputes") or ()),
        )

    task.report(stage="submitting")
    report = runners.mesh(request, on_status)
    task.files["c"] = str(request.out)
    report["last_status"] = dict(last)
    report["dashboard"] = dashboard_url(request.coordinator, str(report["job_id"]))
    report["checks"] = [
        {
            "name": "Freivalds (this machine)",
            "ok": True,
            "result": "ok",
            "detail": "C as downloaded agrees with A·B at random vectors (error <= 2^-40)",
        },
        *(
            {
                "name": f"dispute {d.get('dispute_id')}",
                "ok": True,
                "result": str(d.get("state")),
                "detail": f"validator {str(d.get('validator') or '-')[:12]}",
            }
            for d in last.get("disputes") or ()
        ),
    ]
    return report


def dashboard_url(coordinator: str, job_id: str) -> str:
    """The coordinator's dashboard page of a job: each shard's state, node and timings."""
    from ramnet.mesh.protocol.routes import page_url

    return coordinator.rstrip("/") + page_url("dashboard_job", job_id=job_id)
