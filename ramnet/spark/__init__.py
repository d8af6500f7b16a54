"""RAMNET on Apache Spark (issue 18): work in progress.

What exists: the operand store (``ramnet.spark.store``): ``.npy`` and Zarr matrices opened, read
and written one block tile at a time, chunks aligned to a job's block grid, seeded operands written
chunk by chunk, atomic outputs, and tile digests. Not yet: the Spark engine
(``ramnet.spark.matmul``), ``ramnet run --mode spark``, its trace and its checks. Nothing here
imports pyspark. ``ramnet.spark`` sits between ``ramnet.commands`` and ``ramnet.mesh``: it may use
``ramnet.mesh.rules``, VALKYRIE and ORCHID, and nothing below it imports it.
"""

from __future__ import annotations

__all__: list[str] = []
