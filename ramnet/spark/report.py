"""``SparkReport``: what a job on Spark did, for people (the CLI's table) and programs (JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["SparkReport"]


@dataclass
class SparkReport:
    """The outcome of ``ramnet.spark.matmul``.

    Attributes:
        master: The Spark master the job ran on.
        shape, a_shape, b_shape: C's, A's and B's shapes.
        dtype, out_dtype: The operands' and C's dtypes.
        grid: (p, q, r) block counts.
        nodes: Plan slots (a multiple of 3), one Spark task each.
        barrier: Whether the slots ran as one barrier stage (each on its own task slot).
        executors: Every executor (``host:pid`` of a Python worker) that ran a task.
        excluded: Executors found faulty and kept away from the rest of the job.
        slots: Per slot: ``slot``, ``executor``, ``blocks`` (block products), ``seconds``.
        audit_blocks: Block products computed three times and compared bit for bit.
        partials_checked: Partials checked by Freivalds (or the floats' range check).
        faults_caught: Wrong partials found (failed checks and disagreeing audit copies).
        recomputed: Per partial redone: ``block`` [i, j, k], ``slot``, ``executor``,
            ``recomputed_on``, ``reason``.
        driver_bytes: Bytes of task results the driver received.
        seconds: ``session``, ``random``, ``compute``, ``check``, ``assemble``, ``trace``,
            ``total``.
        gops: Useful operations (2·m·n·k) per second of the job (without the session start).
        out: Where C was written.
        trace: None, or ``path``, ``node_id`` and the ``commitments`` of A, B and C.
        checks: Whether the checks ran (off only to measure what they cost).
        notes: Anything the user should know (an exclusion lifted, copies on one executor).
    """

    master: str
    shape: list[int]
    a_shape: list[int]
    b_shape: list[int]
    dtype: str
    out_dtype: str
    grid: list[int]
    nodes: int
    barrier: bool
    executors: list[str]
    excluded: list[str]
    slots: list[dict[str, Any]]
    audit_blocks: int
    partials_checked: int
    faults_caught: int
    recomputed: list[dict[str, Any]]
    driver_bytes: int
    seconds: dict[str, float]
    gops: float | None
    out: str
    trace: dict[str, Any] | None = None
    checks: bool = True
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values, with ``mode`` = ``"spark"``."""
        return {"mode": "spark", **asdict(self)}
