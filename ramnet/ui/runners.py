"""What the UI asks the runners of ``ramnet run`` to do, and the adapter they come through.

The runners (``SovereignJob``/``run`` and the mesh consumer's run) live in ``ramnet.commands``,
a layer above this one. ``ramnet ui`` (``ramnet/commands/ui.py``) hands them in as ``Runners``,
so the page runs exactly the code the command line runs without importing upward.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: ``progress(done, total)``: block products done, out of ``total``.
Progress = Callable[[int, int], None]
#: ``on_status(info)``: a mesh job's status, as the coordinator answers it.
OnStatus = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Operands:
    """Where a job's A and B come from: two ``.npy`` files, or seeded random ones.

    Attributes:
        a_path, b_path: The files (both or neither).
        random: (M, K, N) of random operands, with ``dtype`` and ``seed``.
        dtype: The job's dtype (required with ``random``; forced on files when given).
        seed: The random operands' seed.
    """

    a_path: Path | None = None
    b_path: Path | None = None
    random: tuple[int, int, int] | None = None
    dtype: str | None = None
    seed: int = 0

    @property
    def shape(self) -> tuple[int, int, int] | None:
        """(M, K, N) when known before loading (random operands), else None."""
        return self.random


@dataclass(frozen=True)
class SovereignRequest:
    """A sovereign job: compute here.

    Attributes:
        operands: A and B.
        out: Where C goes (``.npy``).
        trace: Where the signed trace goes; None for none.
        prove: Add a sum-check proof to the trace.
        save_inputs: A folder for A.npy and B.npy of random operands (so the verdict can check
            Freivalds against them, and they can be downloaded); None to keep them in memory.
    """

    operands: Operands
    out: Path
    trace: Path | None = None
    prove: bool = False
    save_inputs: Path | None = None


@dataclass(frozen=True)
class MeshRequest:
    """A mesh job: submit to a coordinator and wait for C.

    Attributes:
        operands: A and B.
        out: Where C goes (``.npy``).
        coordinator: The coordinator's URL.
        nodes: Workers (a multiple of 3).
        redundancy: ``mirror``, ``none``, or None for the coordinator's default.
    """

    operands: Operands
    out: Path
    coordinator: str
    nodes: int
    redundancy: str | None = None


@dataclass(frozen=True)
class Runners:
    """The runners of ``ramnet run``, handed in by the command.

    Attributes:
        sovereign: Runs a sovereign job, calling ``progress`` after each block product, and
            returns ``ramnet run --json``'s report.
        mesh: Runs a mesh job, calling ``on_status`` with each status, and returns the report.
    """

    sovereign: Callable[[SovereignRequest, Progress], dict[str, Any]]
    mesh: Callable[[MeshRequest, OnStatus], dict[str, Any]]
