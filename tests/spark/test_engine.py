"""The Spark engine end to end, black-box through ``ramnet.spark.matmul`` on a real ``local[2]``.

Exact integer products and float products within the rounding bound, from ``.npy`` and Zarr
operands into ``.npy`` and Zarr outputs; seeded operands; every injected fault caught and C still
exact; the signed trace (valid with and without the matrices, invalid for a tampered C); the
driver's received bytes independent of n; bad input refused with one line and nothing written;
and, in a process of its own, a barrier stage on three task slots.

One Spark session serves the whole module (a JVM takes seconds and ~500 MB to start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

pytest.importorskip("pyspark")
pytest.importorskip("zarr")

from ramnet._errors import (
    EngineUnavailableError,
    InputFileError,
    InvalidInputError,
    OverflowRiskError,
    ShapeMismatchError,
    StoreChangedError,
)
from ramnet.spark import FAULTS, SparkReport, job_grid, matmul
from ramnet.spark import store as stores
from ramnet.spark.session import check_java, spark_session
from ramnet.valkyrie import NodeKey, verify_trace

try:
    check_java()
except EngineUnavailableError as _exc:
    pytest.skip(f"no Java for Spark: {_exc}", allow_module_level=True)

MASTER = "local[2]"

# The driver may receive at most this many bytes of task results for a small grid, whatever n.
DRIVER_BYTES_BOUND = 64 << 10


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    session = spark_session(MASTER)
    yield session
    session.stop()


# ---- helpers ------------------------------------------------------------------------------


def _operands(dtype: str, m: int, k: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if dtype == "int8":
        return (
            rng.integers(-128, 128, (m, k), dtype=np.int8),
            rng.integers(-128, 128, (k, n), dtype=np.int8),
        )
    if dtype == "int16":
        return (
            rng.integers(-(2**15), 2**15, (m, k), dtype=np.int16),
            rng.integers(-(2**15), 2**15, (k, n), dtype=np.int16),
        )
    if dtype == "int32":
        # Large values whose products still fit int64 with room for K terms.
        return (
            rng.integers(-(2**26), 2**26, (m, k), dtype=np.int32),
            rng.integers(-(2**26), 2**26, (k, n), dtype=np.int32),
        )
    return (
        rng.standard_normal((m, k)).astype(dtype),
        rng.standard_normal((k, n)).astype(dtype),
    )


def _save(
    path: Path,
    x: np.ndarray,
    operand: Literal["A", "B"],
    dims: tuple[int, int, int],
    nodes: int,
    grid: tuple[int, int, int] | None,
) -> Path:
    """Write ``x`` as ``path`` (.npy, or a Zarr store chunked for the job's grid)."""
    if path.suffix == ".npy":
        np.save(path, x)
        return path
    tiles = stores.TileGrid.of_operand(job_grid(*dims, x.dtype.name, nodes, grid), operand)
    target = stores.create_matrix(path, x.dtype, tiles, operand)
    for rows, cols in tiles.tiles():
        target.write_tile(rows, cols, x[rows, cols])
    target.flush()
    return path


def _read(path: str | Path) -> np.ndarray:
    """A whole matrix store (.npy or .zarr) as an array."""
    store = stores.open_matrix(path, "C", dtypes=stores.OUTPUT_DTYPES)
    rows, cols = store.shape
    return np.asarray(store.read_tile(slice(0, rows), slice(0, cols)))


def _exact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    result: np.ndarray = a.astype(np.int64) @ b.astype(np.int64)
    return result


def _assert_float_product(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    # |C - A.B| <= gamma_K |A|.|B| elementwise (gamma_K ~ K eps), with room for the reference's
    # own rounding: both sides are computed in the operands' precision.
    eps = np.finfo(a.dtype).eps
    k = a.shape[1]
    exact = a.astype(np.float64) @ b.astype(np.float64)
    bound = 2 * (k + 2) * eps * (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64)))
    assert np.all(np.abs(c.astype(np.float64) - exact) <= bound + np.finfo(np.float64).tiny)


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, text
    return text


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---- 1. products ----------------------------------------------------------------------------

# dtype, (m, k, n), grid, nodes, A/B suffix, C suffix
PRODUCTS = [
    ("int8", (97, 61, 83), (3, 2, 2), 3, ".npy", ".npy"),
    ("int8", (97, 61, 83), (3, 2, 2), 6, ".zarr", ".zarr"),
    ("int16", (97, 61, 1), None, 6, ".zarr", ".npy"),
    ("int32", (40, 1, 50), None, 3, ".npy", ".zarr"),
    ("int32", (45, 61, 33), (2, 3, 2), 3, ".zarr", ".npy"),
    ("float32", (64, 48, 40), (2, 2, 2), 3, ".zarr", ".npy"),
    ("float64", (33, 70, 29), None, 6, ".npy", ".zarr"),
]


@pytest.mark.parametrize(
    ("dtype", "dims", "grid", "nodes", "src", "dst"),
    PRODUCTS,
    ids=[f"{d}-{m}x{k}x{n}-{g}-n{nd}-{s[1:]}-{o[1:]}" for d, (m, k, n), g, nd, s, o in PRODUCTS],
)
def test_product(
    spark: Any,
    tmp_path: Path,
    dtype: str,
    dims: tuple[int, int, int],
    grid: tuple[int, int, int] | None,
    nodes: int,
    src: str,
    dst: str,
) -> None:
    m, k, n = dims
    a, b = _operands(dtype, m, k, n, seed=m + k + n)
    pa = _save(tmp_path / f"A{src}", a, "A", dims, nodes, grid)
    pb = _save(tmp_path / f"B{src}", b, "B", dims, nodes, grid)
    out = tmp_path / f"C{dst}"
    report = matmul(pa, pb, out, spark=spark, nodes=nodes, grid=grid)
    c = _read(out)
    assert c.shape == (m, n)
    assert report.shape == [m, n] and report.a_shape == [m, k] and report.b_shape == [k, n]
    assert report.dtype == dtype and report.nodes == nodes and report.out == str(out)
    expected_out = {"int8": "int32", "int16": "int64", "int32": "int64"}.get(dtype, dtype)
    assert c.dtype == np.dtype(expected_out) and report.out_dtype == expected_out
    if grid is not None:
        assert report.grid == list(grid)
    if dtype.startswith("float"):
        _assert_float_product(a, b, c)
    else:
        assert np.array_equal(c, _exact(a, b))
    assert report.faults_caught == 0 and report.recomputed == [] and report.excluded == []
    assert len(report.slots) == nodes
    assert {s["slot"] for s in report.slots} == set(range(nodes))
    assert report.audit_blocks >= 1
    p, q, r = report.grid
    assert report.partials_checked == p * q * r
    # Only C (and the inputs) are left in the folder: no temporary store, no work folder.
    assert _leftovers(tmp_path) == sorted({pa.name, pb.name, out.name})
    assert report.to_dict()["mode"] == "spark"
    json.dumps(report.to_dict())


# ---- 2. seeded operands ---------------------------------------------------------------------


def test_random_operands_are_saved_and_reproducible(spark: Any, tmp_path: Path) -> None:
    runs = []
    for name in ("one", "two"):
        folder = tmp_path / name
        out = tmp_path / f"C-{name}.npy"
        report = matmul(
            None,
            None,
            out,
            spark=spark,
            random=(70, 45, 38),
            dtype="int16",
            seed=11,
            save_inputs=folder,
            grid=(2, 2, 2),
        )
        assert report.a_shape == [70, 45] and report.b_shape == [45, 38]
        a, b = _read(folder / "A.zarr"), _read(folder / "B.zarr")
        assert a.dtype == np.int16 and a.shape == (70, 45) and b.shape == (45, 38)
        c = _read(out)
        assert c.dtype == np.int64
        assert np.array_equal(c, _exact(a, b))
        runs.append((a, b))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert np.array_equal(runs[0][1], runs[1][1])
    assert np.unique(runs[0][0]).size > 100  # real random values, not zeros


# ---- 3 and 7. faults ------------------------------------------------------------------------


def _check_fault_report(report: SparkReport) -> None:
    assert report.faults_caught >= 1
    assert report.recomputed, "a caught fault is recomputed"
    faulty = report.slots[0]["executor"]  # the engine injects the fault in slot 0
    assert faulty in report.excluded
    for redo in report.recomputed:
        assert len(redo["block"]) == 3 and all(isinstance(x, int) for x in redo["block"])
        assert isinstance(redo["recomputed_on"], str) and redo["recomputed_on"]
    first = report.recomputed[0]
    assert first["executor"] == faulty and first["slot"] == 0
    lifted = any("excluded executor" in note for note in report.notes)
    if not lifted:
        # The exclusion held: the partial was redone by the other Python worker.
        assert all(redo["recomputed_on"] != redo["executor"] for redo in report.recomputed)
        assert all(redo["recomputed_on"] not in report.excluded for redo in report.recomputed)


@pytest.mark.parametrize("fault", FAULTS)
def test_injected_fault_is_caught_and_c_stays_exact(spark: Any, tmp_path: Path, fault: str) -> None:
    dims = (60, 50, 40)
    a, b = _operands("int8", *dims, seed=3)
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    out = tmp_path / "C.zarr"
    report = matmul(
        tmp_path / "A.npy", tmp_path / "B.npy", out, spark=spark, grid=(2, 2, 2), inject_fault=fault
    )
    _check_fault_report(report)
    assert np.array_equal(_read(out), _exact(a, b))
    assert _leftovers(tmp_path) == ["A.npy", "B.npy", "C.zarr"]


@pytest.mark.parametrize("fault", FAULTS)
def test_injected_fault_in_a_float_job_is_caught(spark: Any, tmp_path: Path, fault: str) -> None:
    dims = (40, 30, 36)
    a, b = _operands("float64", *dims, seed=4)
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    out = tmp_path / "C.npy"
    report = matmul(
        tmp_path / "A.npy", tmp_path / "B.npy", out, spark=spark, grid=(2, 2, 1), inject_fault=fault
    )
    _check_fault_report(report)
    _assert_float_product(a, b, _read(out))


# ---- 4. the trace ---------------------------------------------------------------------------


@pytest.mark.parametrize("grid", [(2, 2, 1), (2, 2, 3)], ids=["r1", "r3-split-k"])
def test_trace_verifies_and_a_tampered_c_does_not(
    spark: Any, tmp_path: Path, grid: tuple[int, int, int]
) -> None:
    dims = (50, 45, 30)
    a, b = _operands("int16", *dims, seed=5)
    pa = _save(tmp_path / "A.zarr", a, "A", dims, 3, grid)
    pb = _save(tmp_path / "B.zarr", b, "B", dims, 3, grid)
    out, trace = tmp_path / "C.zarr", tmp_path / "job.trace"
    key = NodeKey.generate()
    report = matmul(pa, pb, out, spark=spark, grid=grid, trace=trace, key=key)
    assert report.trace is not None and report.trace["path"] == str(trace)
    assert report.trace["node_id"] == key.node_id
    c = _read(out)
    assert np.array_equal(c, _exact(a, b))

    verdict = verify_trace(trace, _read(pa), _read(pb), c)
    names = [check.name for check in verdict.checks]
    assert verdict.valid, verdict.failed
    for name in ("format", "signature", "executors", "commitment of A", "commitment of B"):
        assert name in names
    assert "commitment of C" in names and "Freivalds" in names
    summary = verdict.to_dict()["trace"]
    assert summary["commitments"] == report.trace["commitments"]
    assert summary["executors"] == [slot["executor"] for slot in report.slots]
    assert summary["shape"] == [dims[0], dims[2]] and summary["k"] == dims[1]
    if grid[2] > 1:
        assert summary["blocks"] == grid[0] * grid[1] * grid[2]
    else:
        assert summary["blocks"] == 0

    alone = verify_trace(trace)
    assert alone.valid, alone.failed
    assert [x.name for x in alone.checks][:2] == ["format", "signature"]
    assert not any(x.name.startswith("commitment") for x in alone.checks)

    tampered = c.copy()
    tampered[-1, -1] += 1
    bad = verify_trace(trace, _read(pa), _read(pb), tampered)
    assert not bad.valid
    assert "commitment of C" in bad.failed and "Freivalds" in bad.failed
    assert "commitment of A" not in bad.failed and "signature" not in bad.failed


def test_float_trace_verifies(spark: Any, tmp_path: Path) -> None:
    dims = (30, 40, 20)
    a, b = _operands("float32", *dims, seed=6)
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    out, trace = tmp_path / "C.npy", tmp_path / "job.trace"
    matmul(
        tmp_path / "A.npy",
        tmp_path / "B.npy",
        out,
        spark=spark,
        grid=(2, 1, 2),
        trace=trace,
        key=NodeKey.generate,
    )
    c = _read(out)
    verdict = verify_trace(trace, a, b, c)
    assert verdict.valid, verdict.failed
    assert "range check" in [x.name for x in verdict.checks]
    tampered = c.copy()
    tampered[0, 0] += 1.0
    assert "commitment of C" in verify_trace(trace, a, b, tampered).failed


# ---- 5. what the driver receives --------------------------------------------------------------


def test_driver_receives_only_digests_and_sketches(spark: Any, tmp_path: Path) -> None:
    received = {}
    for n in (64, 512):
        report = matmul(
            None,
            None,
            tmp_path / f"C{n}.npy",
            spark=spark,
            random=(n, n, n),
            dtype="int8",
            seed=n,
            grid=(2, 2, 2),
            nodes=3,
        )
        assert report.driver_bytes > 0
        received[n] = report.driver_bytes
    # C alone is 4 n^2 bytes (1 MiB at n = 512): the driver sees a bounded amount whatever n.
    assert received[64] < DRIVER_BYTES_BOUND, received
    assert received[512] < DRIVER_BYTES_BOUND, received
    assert received[512] <= 1.25 * received[64], received


# ---- 6. bad input -----------------------------------------------------------------------------


@pytest.fixture
def operands(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A.npy and B.npy (int8, 30x20 and 20x25) in one folder, and an empty output folder."""
    a, b = _operands("int8", 30, 20, 25, seed=8)
    inputs = tmp_path / "in"
    inputs.mkdir()
    np.save(inputs / "A.npy", a)
    np.save(inputs / "B.npy", b)
    out = tmp_path / "out"
    out.mkdir()
    return inputs / "A.npy", inputs / "B.npy", out


def test_shapes_that_do_not_match(spark: Any, operands: tuple[Path, Path, Path]) -> None:
    pa, _, out = operands
    with pytest.raises(ShapeMismatchError) as info:
        matmul(pa, pa, out / "C.npy", spark=spark)  # 30x20 . 30x20
    assert "A's columns (20) must equal B's rows (30)" in _one_line(info.value)
    assert _leftovers(out) == []


def test_missing_store(spark: Any, operands: tuple[Path, Path, Path]) -> None:
    pa, _, out = operands
    for missing in (pa.parent / "nothing.npy", pa.parent / "nothing.zarr"):
        with pytest.raises(InputFileError) as info:
            matmul(pa, missing, out / "C.zarr", spark=spark)
        _one_line(info.value)
    assert _leftovers(out) == []


@pytest.mark.parametrize(
    "options",
    [{"nodes": 4}, {"nodes": 0}, {"inject_fault": "bit-flip"}],
    ids=["nodes-4", "nodes-0", "unknown-fault"],
)
def test_bad_options(
    spark: Any, operands: tuple[Path, Path, Path], options: dict[str, Any]
) -> None:
    pa, pb, out = operands
    with pytest.raises(InvalidInputError) as info:
        matmul(pa, pb, out / "C.npy", spark=spark, **options)
    text = _one_line(info.value)
    assert ("nodes" in text) if "nodes" in options else ("bit-flip" in text)
    assert _leftovers(out) == []


def test_output_with_a_bad_suffix(spark: Any, operands: tuple[Path, Path, Path]) -> None:
    pa, pb, out = operands
    with pytest.raises(InvalidInputError) as info:
        matmul(pa, pb, out / "C.txt", spark=spark)
    assert ".npy or .zarr" in _one_line(info.value)
    assert _leftovers(out) == []


def test_chunks_that_do_not_fit_the_grid(spark: Any, operands: tuple[Path, Path, Path]) -> None:
    import zarr

    pa, pb, out = operands
    a = np.load(pa)
    chunked = pa.parent / "A7.zarr"
    array = zarr.create_array(
        store=str(chunked), shape=a.shape, dtype=a.dtype, chunks=(7, 7), zarr_format=3
    )
    array[...] = a
    # grid (2, 2, 2) cuts A (30x20) at row 15 and column 10: neither a multiple of 7.
    with pytest.raises(stores.ChunkingError) as info:
        matmul(chunked, pb, out / "C.npy", spark=spark, grid=(2, 2, 2))
    assert "7" in _one_line(info.value)
    assert _leftovers(out) == []


def test_java_missing_is_one_line(
    operands: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    pa, pb, out = operands
    monkeypatch.setenv("JAVA_HOME", str(out.parent / "no-jdk"))
    monkeypatch.setenv("PATH", str(out.parent / "no-bin"))
    with pytest.raises(EngineUnavailableError) as info:
        matmul(pa, pb, out / "C.npy", master=MASTER)
    text = _one_line(info.value)
    assert "Java 17 or later" in text and "apt-get install" in text
    assert _leftovers(out) == []


@pytest.mark.parametrize("suffix", [".npy", ".zarr"])
def test_store_that_changes_during_the_job(spark: Any, tmp_path: Path, suffix: str) -> None:
    dims = (40, 30, 20)
    grid = (2, 2, 2)
    a, b = _operands("int8", *dims, seed=9)
    pa = _save(tmp_path / f"A{suffix}", a, "A", dims, 3, grid)
    pb = _save(tmp_path / f"B{suffix}", b, "B", dims, 3, grid)
    out = tmp_path / "out"
    out.mkdir()
    changed: list[str] = []

    def change_a(stage: str, done: int, total: int) -> None:
        # Once every partial is computed (so A's tiles were read), A changes on disk.
        if stage != "compute" or done != total or changed:
            return
        changed.append(stage)
        if suffix == ".npy":
            mapped = np.load(pa, mmap_mode="r+")
            mapped[0, 0] = np.int8(mapped[0, 0] ^ 1)
            mapped.flush()
            del mapped
        else:
            store = stores.open_matrix(pa, "A", writable=True)
            tiles = stores.TileGrid.of_operand(job_grid(*dims, "int8", 3, grid), "A")
            rows, cols = next(tiles.tiles())
            tile = store.read_tile(rows, cols).copy()
            tile[0, 0] ^= 1
            store.write_tile(rows, cols, tile)
            store.flush()

    with pytest.raises(StoreChangedError) as info:
        matmul(pa, pb, out / f"C{suffix}", spark=spark, grid=grid, progress=change_a)
    assert changed == ["compute"]
    assert "A changed" in _one_line(info.value)
    assert _leftovers(out) == []


# ---- 8. a barrier stage -----------------------------------------------------------------------

_BARRIER_JOB = """
import json, sys
from ramnet.spark import matmul
from ramnet.spark.session import spark_session

spark = spark_session("local[3]")
report = matmul(None, None, sys.argv[1], spark=spark, random=(60, 40, 50), dtype="int8",
                seed=1, nodes=3, grid=(2, 2, 2))
print(json.dumps(report.to_dict()))
spark.stop()
"""


def test_barrier_stage_puts_each_slot_on_its_own_executor(tmp_path: Path) -> None:
    # Spark allows one SparkContext per process: local[3] runs in a process of its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_"))}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_BARRIER_JOB), str(tmp_path / "C.npy")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["master"] == "local[3]"
    assert report["barrier"] is True
    executors = [slot["executor"] for slot in report["slots"]]
    assert len(executors) == 3 and len(set(executors)) == 3
    assert report["faults_caught"] == 0
    assert not any("not a barrier stage" in note for note in report["notes"])


# ---- errors raised inside tasks -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "value", "grid"),
    [(61, 2**31 - 1, (2, 2, 2)), (64, 2**29, (1, 1, 4))],
    ids=["within-a-block", "across-k-blocks"],
)
def test_int32_that_may_overflow_is_refused_in_one_line(
    spark: Any, tmp_path: Path, k: int, value: int, grid: tuple[int, int, int]
) -> None:
    # As a sovereign run does (OverflowRiskError: K * max|A| * max|B| >= 2^63), whether one
    # block's partial may overflow or only the sum of a row's partials over the K blocks does
    # (each 16 * 2^58 < 2^63, their sum 2^64): an input problem, not a faulty executor.
    a = np.full((8, k), value, dtype=np.int32)
    b = np.full((k, 8), value, dtype=np.int32)
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(OverflowRiskError) as info:
        matmul(tmp_path / "A.npy", tmp_path / "B.npy", out / "C.npy", spark=spark, grid=grid)
    assert "overflow" in _one_line(info.value)
    assert _leftovers(out) == []


def test_store_removed_during_the_job_is_one_line(spark: Any, tmp_path: Path) -> None:
    a, b = _operands("int8", 40, 30, 20, seed=10)
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    out = tmp_path / "out"
    out.mkdir()

    def remove_a(stage: str, done: int, total: int) -> None:
        if stage == "compute" and done == total and (tmp_path / "A.npy").exists():
            (tmp_path / "A.npy").unlink()

    with pytest.raises((InputFileError, StoreChangedError)) as info:
        matmul(
            tmp_path / "A.npy",
            tmp_path / "B.npy",
            out / "C.npy",
            spark=spark,
            grid=(2, 2, 2),
            progress=remove_a,
        )
    assert "A" in _one_line(info.value)
    assert _leftovers(out) == []
