"""RAMNET on Apache Spark: verified matrix products larger than one machine.

``matmul(a, b, out, ...)`` multiplies operands held in ``.npy`` or Zarr stores on a filesystem
every executor sees, with the mesh's 3-way plan, audit blocks and Freivalds checks of every
partial, recomputing wrong partials on other executors, and writes C (and a signed trace) without
any matrix passing through the driver. See ``docs/spark.md``.

- ``ramnet.spark.store``: the operand stores (read and written one block tile at a time).
- ``ramnet.spark.engine``: the driver; ``stages`` runs its Spark stages, ``tasks`` is what the
  executors run, ``messages`` what passes between them, ``judge`` the driver's pure rules.
- ``ramnet.spark.session``: Java and pyspark checks, and the session.

Nothing here imports pyspark until a job runs. ``ramnet.spark`` sits between ``ramnet.commands``
and ``ramnet.mesh``: it may use ``ramnet.mesh.rules``, VALKYRIE and ORCHID, and nothing below it
imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ramnet.spark.engine import job_grid, matmul
    from ramnet.spark.report import SparkReport
    from ramnet.spark.tasks import FAULTS

__all__ = ["FAULTS", "SparkReport", "job_grid", "matmul"]

_LAZY = {
    "FAULTS": "ramnet.spark.tasks",
    "SparkReport": "ramnet.spark.report",
    "job_grid": "ramnet.spark.engine",
    "matmul": "ramnet.spark.engine",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ramnet.spark' has no attribute {name!r}")
