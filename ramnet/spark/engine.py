"""``ramnet.spark.matmul``: a verified product on Apache Spark, with operands that never pass
through one process.

The driver deals the mesh's 3-way plan (``mesh.rules.plan``: triads, scrambled styles, audit blocks
hidden among primary work) and runs the job as Spark stages (``stages.StageRunner``) of tasks
(``tasks``):

1. *compute*: one task per plan slot (a barrier stage where the cluster has a task slot for each)
   reads its A and B tiles from the stores, computes its block products with ORCHID, writes the
   partials into the job's work folder and returns their digests;
2. *check*: the driver draws fresh Freivalds vectors (after every partial is fixed by its
   digest) and compares every audit block's copies;
3. *assemble*: one task per row of blocks re-reads the row's partials (their digests must match),
   sketches them, sums them in ascending k into C's tiles and sketches those; the driver compares
   the sketches (``judge.row_verdict``). A wrong partial is recomputed away from the executor
   that made it, which is excluded for the rest of the job, and its row is assembled again;
4. *trace* (``trace=``): tasks hash the Merkle leaves of A, B (before the compute stage) and C; the
   driver joins them into the commitments of a signed trace that ``ramnet verify`` checks.

The driver holds the plan, digests and sketches (one residue per block and round), never a tile.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ramnet._errors import InvalidInputError, KernelError, OverflowRiskError
from ramnet.mesh.rules.plan import ShardPlan, grid_for, plan_shards
from ramnet.orchid._dtypes import SUPPORTED_DTYPES, result_dtype
from ramnet.orchid._scheduler import Grid, make_grid
from ramnet.spark import store as stores
from ramnet.spark.judge import Copies, TileRecord, row_verdict
from ramnet.spark.messages import (
    AssembleTask,
    ComputeLimits,
    ComputeResult,
    ComputeTask,
    JobFiles,
    LeafResult,
    LeafTask,
    RandomTask,
    RowResult,
    Sketch,
    decode,
    encode,
)
from ramnet.spark.report import SparkReport
from ramnet.spark.stages import Progress, StageRunner
from ramnet.spark.tasks import FAULTS

__all__ = ["job_grid", "matmul"]

Block = tuple[int, int, int]

# Rounds of recomputing wrong partials before the job gives up (each round runs them elsewhere).
_REPAIR_ROUNDS = 3
# int32 jobs: the mod-p checks are exact while every entry of C stays within 2^60 (c_in_range).
_CHECKED_LIMIT = 2**60
# About this many bytes of a matrix per leaf-hashing task.
_LEAF_TASK_BYTES = 32 << 20


def job_grid(
    m: int, k: int, n: int, dtype: str, nodes: int, grid: tuple[int, int, int] | None = None
) -> Grid:
    """The block grid a Spark job of these dimensions uses (the mesh's choice, ``grid_for``).

    Operands written for a job (``store.create_matrix``, ``store.write_random``) should use
    ``store.TileGrid.of_operand(job_grid(...), "A")`` so that their chunks fit.

    Args:
        m, k, n: C (m x n) = A (m x k) . B (k x n).
        dtype: The operands' dtype.
        nodes: Plan slots.
        grid: (p, q, r) asked for, or None.

    Returns:
        The grid.

    Raises:
        InvalidInputError: A bad grid or node count.
    """
    parts = grid if grid is not None else grid_for(m, k, n, nodes, dtype=dtype)
    return make_grid(m, k, n, parts)


def _absolute(path: str | os.PathLike[str]) -> str:
    # A URL stays as it is, for the store to refuse it by name.
    text = os.fspath(path)
    return text if "://" in text else os.path.abspath(text)


def _check_options(
    nodes: object, inject_fault: str | None, random: object, a: object, b: object
) -> None:
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 3 or nodes % 3:
        raise InvalidInputError(
            f"--nodes must be a positive multiple of 3 (slots work in triads), got {nodes!r}"
        )
    if inject_fault is not None and inject_fault not in FAULTS:
        raise InvalidInputError(f"--inject-fault takes {', '.join(FAULTS)}; got {inject_fault!r}")
    if random is not None and (a is not None or b is not None):
        raise InvalidInputError("give either --a and --b, or --random, not both")
    if random is None and (a is None or b is None):
        raise InvalidInputError("give --a and --b (.npy or .zarr), or --random MxKxN")


class _Job:
    """One job's state on the driver: what is known so far, and the stages still to run."""

    def __init__(self, runner: StageRunner, files: JobFiles, grid: Grid, plan: ShardPlan) -> None:
        self.runner = runner
        self.files = files
        self.grid = grid
        self.plan = plan
        self.tiles = TileRecord()
        self.copies = Copies()
        self.slot_of: dict[str, int] = {}  # copy tag -> plan slot (recomputations: -1)
        self.executor_of: dict[str, str] = {}  # copy tag -> executor
        self.excluded: set[str] = set()
        self.executors: set[str] = set()
        self.faults = 0
        self.recomputed: list[dict[str, Any]] = []
        self.wrong_seen: set[tuple[Block, str]] = set()
        self.checked: set[tuple[Block, str]] = set()
        self.barrier = False

    # ---- compute ------------------------------------------------------------------------

    def compute(self, fault: str | None, checks: bool) -> list[dict[str, Any]]:
        plan = self.plan
        messages = []
        for slot in range(plan.nodes):
            blocks = [(b.i, b.j, b.k) for b in plan.assignment(slot)]
            this_fault = fault if slot == 0 else None
            if this_fault is not None:
                # The fault hits the slot's first primary block: the copy C would be built from.
                target = min((b.i, b.j, b.k) for b in plan.primary_list[0])
                blocks.remove(target)
                blocks.insert(0, target)
            messages.append(
                encode(ComputeTask(self.files, f"s{slot}", blocks, [], this_fault, checks))
            )
        barrier = plan.nodes <= self.runner.parallelism
        results = [
            decode(x, ComputeResult)
            for x in self.runner.run("compute", "compute", messages, barrier=barrier)
        ]
        self._check_int32_range([r.limits for r in results if r.limits is not None])
        slots = []
        for slot, result in enumerate(results):
            self.tiles.add(result.tiles)
            self.executors.add(result.executor)
            self.slot_of[result.tag] = slot
            self.executor_of[result.tag] = result.executor
            primary = {(b.i, b.j, b.k) for b in plan.primary_list[slot]}
            for d in result.blocks:
                block = (d.i, d.j, d.k)
                self.copies.add(block, result.tag, d.digest, primary=block in primary)
            if not checks:
                for block in primary:
                    self.copies.accepted[block] = result.tag
                    self.copies.digests.setdefault(block, {})[result.tag] = b""
            slots.append(
                {
                    "slot": slot,
                    "executor": result.executor,
                    "blocks": len(plan.assignment(slot)),
                    "seconds": round(result.seconds, 6),
                }
            )
        self.barrier = barrier
        return slots

    def _check_int32_range(self, limits: list[ComputeLimits]) -> None:
        """Refuse an int32 job whose product could leave the range the checks are exact in.

        Raises:
            OverflowRiskError: K * max|A| * max|B| >= 2^60 (at 2^63 no exact int64 C exists;
                from 2^60 the mod-p Freivalds checks no longer decide it).
        """
        if not limits:
            return
        k = self.grid.k_edges[-1]
        bound = k * max(x.max_a for x in limits) * max(x.max_b for x in limits)
        if bound >= _CHECKED_LIMIT:
            raise OverflowRiskError(
                f"int32 job may overflow the range its checks are exact in: K * max|A| * max|B| "
                f"= {bound} >= 2^60; scale the inputs down"
            )

    # ---- checks -------------------------------------------------------------------------

    def assemble(
        self,
        out: str,
        rows: list[int],
        vectors: list[Sketch],
        checks: bool,
        digest_c: bool,
    ) -> dict[int, RowResult]:
        """Check and sum the given rows of blocks into C (a task each).

        Args:
            out: The temporary C store.
            rows: The rows of blocks to (re)assemble.
            vectors: The Freivalds vectors r_j (empty: floats, or no checks).
            checks: Run the checks.
            digest_c: Digest C's tiles (a trace compares them with its own reads).

        Returns:
            Row -> its task's result.

        Raises:
            StoreChangedError: A tile of A or B read here differs from an earlier read.
        """
        _, q, r = self.grid.shape
        exact = np.dtype(self.files.dtype).kind != "f"

        def build(i: int, avoid: list[str]) -> bytes:
            partials = []
            for j in range(q):
                for k in range(r):
                    block = (i, j, k)
                    tag = self.copies.accepted[block]
                    partials.append((j, k, tag, self.copies.digests[block][tag]))
            u = None
            if checks and exact:
                from ramnet.valkyrie._checks import freivalds_vectors

                height = self.grid.row_edges[i + 1] - self.grid.row_edges[i]
                u = Sketch.of(freivalds_vectors(height, 40))
            return encode(
                AssembleTask(self.files, out, i, partials, vectors, u, avoid, checks, digest_c)
            )

        results = self.runner.run_excluding(
            "assemble",
            "assemble",
            build,
            rows,
            self.excluded,
            lambda x: decode(x, RowResult).declined,
        )
        decoded = {i: decode(results[i], RowResult) for i in rows}
        for result in decoded.values():
            self.executors.add(result.executor)
            if checks:
                self.tiles.add(result.tiles)
        return decoded

    def recompute(self, blocks: list[Block], round_: int, reasons: dict[Block, str]) -> None:
        def build(block: Block, avoid: list[str]) -> bytes:
            tag = f"r{round_}-{block[0]}-{block[1]}-{block[2]}"
            return encode(ComputeTask(self.files, tag, [block], avoid, None, True))

        results = self.runner.run_excluding(
            "recompute",
            "compute",
            build,
            blocks,
            self.excluded,
            lambda x: decode(x, ComputeResult).declined,
        )
        for block in blocks:
            result = decode(results[block], ComputeResult)
            self.tiles.add(result.tiles)
            self.executors.add(result.executor)
            before = self.copies.accepted[block]
            self.slot_of[result.tag] = -1
            self.executor_of[result.tag] = result.executor
            (digest,) = [d.digest for d in result.blocks]
            self.copies.add(block, result.tag, digest, primary=True)
            self.recomputed.append(
                {
                    "block": list(block),
                    "slot": self.slot_of.get(before, -1),
                    "executor": self.executor_of.get(before),
                    "recomputed_on": result.executor,
                    "reason": reasons[block],
                }
            )

    def blame(self, block: Block, tag: str) -> None:
        """Count a wrong copy once and exclude the executor that made it."""
        if (block, tag) in self.wrong_seen:
            return
        self.wrong_seen.add((block, tag))
        self.faults += 1
        who = self.executor_of.get(tag)
        if who is not None:
            self.excluded.add(who)

    # ---- trace --------------------------------------------------------------------------

    def leaves(
        self,
        path: str,
        name: str,
        dtype: np.dtype,
        shape: tuple[int, int],
        tile: tuple[int, int],
        edges: tuple[tuple[int, ...], tuple[int, ...]],
    ) -> list[bytes]:
        """Every leaf digest of a matrix, hashed by tasks of about ``_LEAF_TASK_BYTES`` each,
        each over whole block rows (so the grid tiles they digest can be compared)."""
        row_edges, col_edges = edges
        rows, cols = shape
        tr = tile[0]
        row_bytes = max(1, cols * dtype.itemsize)
        tasks = []
        x = 0
        while x < len(row_edges) - 1:
            y = x + 1
            while (
                y < len(row_edges) - 1
                and (row_edges[y + 1] - row_edges[x]) * row_bytes <= _LEAF_TASK_BYTES
            ):
                y += 1
            r0, r1 = row_edges[x], row_edges[y]
            t0, t1 = r0 // tr, -(-r1 // tr)
            tasks.append(
                LeafTask(path, name, tile, (t0, t1), (x, y), list(row_edges), list(col_edges))
            )
            x = y
        if rows == 0 or cols == 0:
            return []

        def build(index: int, avoid: list[str]) -> bytes:
            t = tasks[index]
            return encode(
                LeafTask(
                    t.path,
                    t.name,
                    t.tile,
                    t.tile_rows,
                    t.grid_rows,
                    t.row_edges,
                    t.col_edges,
                    avoid,
                )
            )

        results = self.runner.run_excluding(
            "trace",
            "leaves",
            build,
            list(range(len(tasks))),
            self.excluded,
            lambda x: decode(x, LeafResult).declined,
        )
        gc = -(-cols // tile[1])
        found: dict[int, bytes] = {}
        for index in range(len(tasks)):
            result = decode(results[index], LeafResult)
            self.executors.add(result.executor)
            self.tiles.add(result.tiles)
            base = result.start * gc
            for t in range(len(result.leaves) // 32):
                leaf = result.leaves[32 * t : 32 * t + 32]
                if found.setdefault(base + t, leaf) != leaf:
                    raise KernelError(f"{name}: two tasks hashed one leaf differently")
        count = -(-rows // tr) * gc
        return [found[t] for t in range(count)]


def _random_operands(
    runner: StageRunner,
    folder: Path,
    shape: tuple[int, int, int],
    dtype: str,
    seed: int,
    grid: Grid,
) -> tuple[Path, Path]:
    m, k, n = shape
    paths = []
    messages = []
    for operand, dims in (("A", (m, k)), ("B", (k, n))):
        tile_grid = stores.TileGrid.of_operand(grid, operand)  # type: ignore[arg-type]
        path = folder / f"{operand}.zarr"
        store = stores.create_matrix(path, dtype, tile_grid, operand)
        regions = stores.chunk_regions(store.shape, store.chunks or stores.chunks_for(tile_grid))
        per_task = max(1, math.ceil(len(regions) / (4 * runner.parallelism)))
        for start in range(0, len(regions), per_task):
            chunk_ids = list(range(start, min(len(regions), start + per_task)))
            messages.append(
                encode(
                    RandomTask(
                        str(path),
                        operand,
                        dims,
                        dtype,
                        seed,
                        list(tile_grid.row_edges),
                        list(tile_grid.col_edges),
                        chunk_ids,
                    )
                )
            )
        paths.append(path)
    runner.run("random operands", "random", messages)
    return paths[0], paths[1]


def matmul(
    a: str | os.PathLike[str] | None,
    b: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    *,
    spark: Any = None,
    master: str | None = None,
    nodes: int = 3,
    grid: tuple[int, int, int] | None = None,
    trace: str | os.PathLike[str] | None = None,
    key: Any = None,
    prove: bool = False,
    threads: int | None = None,
    backend: str = "auto",
    random: tuple[int, int, int] | None = None,
    dtype: str | None = None,
    seed: int = 0,
    save_inputs: str | os.PathLike[str] | None = None,
    inject_fault: str | None = None,
    checks: bool = True,
    progress: Progress | None = None,
) -> SparkReport:
    """Multiply A and B on Spark, checking every partial, and write C (and a signed trace).

    Args:
        a, b: A (m x k) and B (k x n) as ``.npy`` or ``.zarr`` stores on a filesystem every
            executor sees; None with ``random``.
        out: Where C goes (``.npy`` or ``.zarr``), written atomically: nothing appears there
            unless the job succeeds.
        spark: A ``SparkSession`` to use; None starts one on ``master``.
        master: Spark's master URL when ``spark`` is None (``local[*]``, ``spark://HOST:7077``,
            ``yarn``, ``k8s://...``); None: spark-submit's when it started this process, else
            ``local[*]``.
        nodes: Plan slots, a multiple of 3 (each a Spark task).
        grid: (p, q, r) block counts; None picks the mesh's grid (``job_grid``).
        trace: Write a signed trace here (needs ``key``).
        key: The ``NodeKey`` that signs the trace, or a function returning it.
        prove: A sum-check proof; not available on Spark (it needs A and B in one process).
        threads: ORCHID threads per task (None: every core of the executor's machine).
        backend: ORCHID backend.
        random: (m, k, n): seeded operands written chunk by chunk by the executors.
        dtype: The operands' dtype (required with ``random``; checked against stores).
        seed: The seed of ``random``.
        save_inputs: A folder to keep the random operands in (``A.zarr``, ``B.zarr``).
        inject_fault: Testing aid: one of ``FAULTS``; slot 0 corrupts one partial.
        checks: False skips audit copies and every check (to measure what they cost).
        progress: ``progress(stage, tasks done, tasks total)``.

    Returns:
        The report.

    Raises:
        InvalidInputError: Bad options, shapes that do not match, a dtype mismatch.
        ChunkingError: A Zarr operand whose chunks do not fit the grid.
        InputFileError: A missing or unreadable store.
        StoreChangedError: An operand changed while the job read it.
        EngineUnavailableError: No Java or pyspark.
        KernelError: A partial stayed wrong after recomputing it on other executors.
    """
    t_start = time.perf_counter()
    _check_options(nodes, inject_fault, random, a, b)
    if prove:
        raise InvalidInputError(
            "--prove is not available with --mode spark: the sum-check proof needs A and B in "
            "one process; the trace's commitments and Freivalds checks still cover the job"
        )
    if trace is not None and key is None:
        raise InvalidInputError("a trace needs a node key to sign it")
    if trace is not None and not checks:
        raise InvalidInputError("a trace needs the checks (checks=False only measures them)")
    if random is not None:
        if dtype is None:
            raise InvalidInputError("--random needs --dtype")
        if dtype not in SUPPORTED_DTYPES:
            raise InvalidInputError(f"--dtype must be one of {', '.join(SUPPORTED_DTYPES)}")
        if min(random) < 1:
            raise InvalidInputError(f"--random dimensions must be >= 1, got {random}")
    # Executors may run in another folder (or on another host): they get absolute paths.
    out_path = Path(_absolute(out))
    stores.check_output_path(out_path)
    if trace is not None:
        from ramnet.orchid._io import check_writable

        check_writable(Path(trace))
    a_store = b_store = None
    if random is None:
        a_store = stores.open_matrix(_absolute(a), "A")  # type: ignore[arg-type]
        b_store = stores.open_matrix(_absolute(b), "B")  # type: ignore[arg-type]
        stores.check_operands(a_store, b_store)
        if a_store.dtype != b_store.dtype:
            raise InvalidInputError(
                f"A is {a_store.dtype} but B is {b_store.dtype}: both operands need one dtype"
            )
        if dtype is not None and a_store.dtype.name != dtype:
            raise InvalidInputError(f"the operands are {a_store.dtype}, not --dtype {dtype}")
    t_session = time.perf_counter()
    if spark is None:
        from ramnet.spark.session import spark_session

        spark = spark_session(master)
    master_url = str(spark.sparkContext.master)
    runner = StageRunner(spark.sparkContext, progress)
    seconds = {"session": time.perf_counter() - t_session}
    work = out_path.parent / f".{out_path.stem}.work-{secrets.token_hex(4)}"
    work.mkdir(parents=True)
    try:
        t0 = time.perf_counter()
        if random is not None:
            m, k, n = random
            assert dtype is not None
            the_grid = job_grid(m, k, n, dtype, nodes, grid)
            folder = Path(os.path.abspath(save_inputs)) if save_inputs is not None else work
            folder.mkdir(parents=True, exist_ok=True)
            a_path, b_path = _random_operands(runner, folder, random, dtype, seed, the_grid)
            a_store, b_store = stores.open_matrix(a_path, "A"), stores.open_matrix(b_path, "B")
        assert a_store is not None and b_store is not None
        m, k, n = stores.check_operands(a_store, b_store)
        job_dtype = a_store.dtype.name
        the_grid = job_grid(m, k, n, job_dtype, nodes, grid)
        stores.check_fits(
            a_store.chunks, stores.TileGrid.of_operand(the_grid, "A"), "A", a_store.shape
        )
        stores.check_fits(
            b_store.chunks, stores.TileGrid.of_operand(the_grid, "B"), "B", b_store.shape
        )
        seconds["random"] = time.perf_counter() - t0
        out_dtype = result_dtype(np.dtype(job_dtype), k).name
        plan = plan_shards(
            secrets.token_bytes(16),
            the_grid.shape,
            nodes,
            audit_per_triad=1 if checks else 0,
            audit_salt=secrets.token_bytes(16),
        )
        files = JobFiles(
            str(a_store.path),
            str(b_store.path),
            str(work),
            list(the_grid.row_edges),
            list(the_grid.col_edges),
            list(the_grid.k_edges),
            job_dtype,
            out_dtype,
            backend,
            threads or 0,
        )
        job = _Job(runner, files, the_grid, plan)
        report = _run(job, out_path, trace, key, checks, inject_fault, seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds["total"] = time.perf_counter() - t_start
    job_seconds = seconds["total"] - seconds["session"]
    report.master = master_url
    report.seconds = {name: round(value, 6) for name, value in seconds.items()}
    report.gops = round(2.0 * m * n * k / job_seconds / 1e9, 3) if job_seconds > 0 else None
    return report


def _run(
    job: _Job,
    out: Path,
    trace: str | os.PathLike[str] | None,
    key: Any,
    checks: bool,
    fault: str | None,
    seconds: dict[str, float],
) -> SparkReport:
    grid, files, runner = job.grid, job.files, job.runner
    p, q, r = grid.shape
    m, n, k = grid.row_edges[-1], grid.col_edges[-1], grid.k_edges[-1]
    dtype = np.dtype(files.dtype)
    exact = dtype.kind != "f"
    commitments: dict[str, Any] = {}
    t0 = time.perf_counter()
    if trace is not None:
        from ramnet.valkyrie._merkle import commitment_from_leaves, default_tile, row_strip_tile

        a_tile = row_strip_tile(dtype, (m, k))
        b_tile = default_tile(dtype)
        for name, path, shape, tile, edges in (
            ("A", files.a, (m, k), a_tile, (grid.row_edges, grid.k_edges)),
            ("B", files.b, (k, n), b_tile, (grid.k_edges, grid.col_edges)),
        ):
            leaves = job.leaves(path, name, dtype, shape, tile, edges)
            commitments[name] = commitment_from_leaves(dtype.name, shape, tile, leaves)
    seconds["trace"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    slots = job.compute(fault, checks)
    seconds["compute"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    vectors: list[Sketch] = []
    if checks and exact:
        from ramnet.valkyrie._checks import freivalds_vectors

        # Drawn now, after every partial is committed by its digest.
        widths = [grid.col_edges[j + 1] - grid.col_edges[j] for j in range(q)]
        vectors = [Sketch.of(freivalds_vectors(w, 40)) for w in widths]
    seconds["check"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    blocks_of_row = {i: [(i, j, kk) for j in range(q) for kk in range(r)] for i in range(p)}
    with stores.atomic_output(out) as tmp:
        stores.create_matrix(tmp, files.out_dtype, stores.TileGrid.of_operand(grid, "C"), "C")
        rows = list(range(p))
        for round_ in range(_REPAIR_ROUNDS + 1):
            results = job.assemble(str(tmp), rows, vectors, checks, trace is not None)
            if not checks:
                break
            redo: dict[Block, str] = {}
            again: set[int] = set()
            for i, result in results.items():
                job.checked.update(
                    (x, job.copies.accepted[x]) for x in blocks_of_row[i] if x not in result.changed
                )
                verdict = row_verdict(result, blocks_of_row[i])
                for block in verdict.wrong:
                    job.blame(block, job.copies.accepted[block])
                    redo[block] = "failed its check"
                for block in verdict.changed:
                    redo.setdefault(block, "changed on disk after it was computed")
                if not verdict.assembly_ok and not verdict.wrong and not verdict.changed:
                    job.excluded.add(result.executor)
                    job.faults += 1
                    again.add(i)
                if verdict.wrong or verdict.changed:
                    again.add(i)
            if not again:
                break
            if round_ == _REPAIR_ROUNDS:
                raise KernelError(
                    f"partials {sorted(redo)} were still wrong after {_REPAIR_ROUNDS} "
                    "recomputations on other executors; nothing was written"
                )
            if redo:
                job.recompute(sorted(redo), round_, redo)
            rows = sorted(again)
            for i in rows:
                job.tiles.forget_row("C", i)
        # Audit copies that differ from a copy that passed its check are wrong too.
        audit_blocks = sum(len(x) for x in job.plan.audit_list)
        for block in job.copies.disagreeing():
            for tag in job.copies.wrong_copies(block):
                job.blame(block, tag)
        seconds["assemble"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        trace_info = None
        if trace is not None:
            from ramnet.valkyrie._merkle import commitment_from_leaves, row_strip_tile

            out_dt = np.dtype(files.out_dtype)
            c_tile = row_strip_tile(out_dt, (m, n))
            leaves = job.leaves(
                str(tmp), "C", out_dt, (m, n), c_tile, (grid.row_edges, grid.col_edges)
            )
            commitments["C"] = commitment_from_leaves(out_dt.name, (m, n), c_tile, leaves)
            trace_info = _write_trace(job, Path(trace), key, commitments)
        seconds["trace"] += time.perf_counter() - t0
    notes = []
    if runner.lifted:
        notes.append("some work ran on an excluded executor: no other executor took it")
    if checks and not job.barrier:
        notes.append(
            f"{job.plan.nodes} slots on {runner.parallelism} task slots: not a barrier stage, so "
            "the copies of an audit block may come from one executor"
        )
    return SparkReport(
        master="",
        shape=[m, n],
        a_shape=[m, k],
        b_shape=[k, n],
        dtype=files.dtype,
        out_dtype=files.out_dtype,
        grid=[p, q, r],
        nodes=job.plan.nodes,
        barrier=job.barrier,
        executors=sorted(job.executors),
        excluded=sorted(job.excluded),
        slots=slots,
        audit_blocks=audit_blocks if checks else 0,
        partials_checked=len(job.checked),
        faults_caught=job.faults,
        recomputed=job.recomputed,
        driver_bytes=runner.received,
        seconds={},
        gops=None,
        out=str(out),
        trace=trace_info,
        checks=checks,
        notes=notes,
    )


def _write_trace(job: _Job, path: Path, key: Any, commitments: dict[str, Any]) -> dict[str, Any]:
    from ramnet.orchid._backends import resolve
    from ramnet.orchid._scheduler import grid_spec
    from ramnet.valkyrie._trace import BlockDigest, Trace, write_trace

    node_key: Callable[[], Any] | Any = key
    signer = node_key() if callable(node_key) else node_key
    grid, files = job.grid, job.files
    dtype = np.dtype(files.dtype)
    spec = grid_spec(grid, dtype, resolve(files.backend, dtype))
    blocks: tuple[BlockDigest, ...] = ()
    if grid.shape[2] > 1:
        blocks = tuple(
            BlockDigest(i, j, k, job.copies.digest((i, j, k)))
            for i, j, k in sorted(job.copies.accepted)
        )
    executors = tuple(job.executor_of[f"s{slot}"] for slot in range(job.plan.nodes))
    trace = Trace(
        spec=spec,
        threads=files.threads,
        created=int(time.time()),
        node_id=signer.public_key,
        a=commitments["A"],
        b=commitments["B"],
        c=commitments["C"],
        blocks=blocks,
        executors=executors,
    )
    write_trace(path, trace, signer)
    return {
        "path": str(path),
        "node_id": signer.node_id,
        "proof_bytes": 0,
        "commitments": {name.lower(): c.hex() for name, c in commitments.items()},
    }
