"""The TraceHook protocol: how the scheduler tells observers (VALKYRIE's recorder, tests) what ran.

The scheduler calls hooks from its worker threads, one call at a time (it holds a lock), in this
order: ``on_job_start`` once, ``on_block_done`` once per block product as each finishes (in
completion order, which depends on thread timing), ``on_job_end`` once. A job with no hooks pays
nothing: partial tiles are only materialised when a hook is registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class BlockProduct:
    """One block product P(i, j, k) = A[I_i, K_k] . B[K_k, J_j] of a job's grid."""

    i: int
    j: int
    k: int


@dataclass(frozen=True)
class JobSpec:
    """What a job computes, as the hooks see it.

    Attributes:
        m, k, n: C (m x n) = A (m x k) . B (k x n).
        dtype: The input dtype name (``int8``, ..., ``float64``).
        out_dtype: The result dtype name.
        grid: (p, q, r) block counts along M, N and K.
        row_edges, col_edges, k_edges: Block boundaries; block i spans
            ``row_edges[i]:row_edges[i + 1]``, and likewise for the others.
        backend: The backend name; code_path: the code path it runs.
    """

    m: int
    k: int
    n: int
    dtype: str
    out_dtype: str
    grid: tuple[int, int, int]
    row_edges: tuple[int, ...]
    col_edges: tuple[int, ...]
    k_edges: tuple[int, ...]
    backend: str
    code_path: str


@runtime_checkable
class TraceHook(Protocol):
    """Callbacks the scheduler makes during a job. Arrays passed in are read-only views."""

    def on_job_start(self, spec: JobSpec, a: np.ndarray, b: np.ndarray) -> None:
        """Called once before any block product runs, with the job's operands."""

    def on_block_done(self, block: BlockProduct, partial: np.ndarray) -> None:
        """Called when block product ``block`` is finished, with its partial tile P(i, j, k)."""

    def on_job_end(self, c: np.ndarray) -> None:
        """Called once after every block product of the job (or shard) has run."""
