"""The Spark engine's tasks and the driver's judge, run in this process without Spark: a task is
a function of its message and the stores it names."""

from __future__ import annotations

import contextlib
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramnet._errors import StoreChangedError
from ramnet.orchid import Grid, make_grid
from ramnet.spark import tasks
from ramnet.spark.judge import Copies, TileRecord, row_verdict
from ramnet.spark.messages import (
    AssembleTask,
    ComputeResult,
    ComputeTask,
    JobFiles,
    RowResult,
    Sketch,
    TileDigest,
    decode,
    encode,
)
from ramnet.spark.store import TileGrid, create_matrix, open_matrix
from ramnet.valkyrie._checks import freivalds_vectors

Block = tuple[int, int, int]


def _job(
    tmp_path: Path, m: int, k: int, n: int, grid: tuple[int, int, int], dtype: str = "int8"
) -> tuple[np.ndarray, np.ndarray, Grid, JobFiles]:
    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, (m, k)).astype(dtype)
    b = rng.integers(-128, 128, (k, n)).astype(dtype)
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    g = make_grid(m, k, n, grid)
    out_dtype = "int32" if dtype == "int8" else ("int64" if dtype.startswith("int") else dtype)
    files = JobFiles(
        str(tmp_path / "A.npy"),
        str(tmp_path / "B.npy"),
        str(tmp_path / "work"),
        list(g.row_edges),
        list(g.col_edges),
        list(g.k_edges),
        dtype,
        out_dtype,
        "auto",
        1,
    )
    return a, b, g, files


def _compute_all(files: JobFiles, g: Grid, fault: str | None = None) -> dict[Block, bytes]:
    blocks = [(x.i, x.j, x.k) for x in g.blocks()]
    result = decode(
        tasks.compute_blocks(encode(ComputeTask(files, "s0", blocks, [], fault))), ComputeResult
    )
    return {(d.i, d.j, d.k): d.digest for d in result.blocks}


def _assemble(
    tmp_path: Path, files: JobFiles, g: Grid, digests: dict[Block, bytes], out: str
) -> list[RowResult]:
    p, q, r = g.shape
    exact = not files.dtype.startswith("float")
    widths = [g.col_edges[j + 1] - g.col_edges[j] for j in range(q)]
    vectors = [Sketch.of(freivalds_vectors(w, 40)) for w in widths] if exact else []
    create_matrix(out, files.out_dtype, TileGrid.of_operand(g, "C"), "C")
    results = []
    for i in range(p):
        height = g.row_edges[i + 1] - g.row_edges[i]
        partials = [(j, k, "s0", digests[(i, j, k)]) for j in range(q) for k in range(r)]
        u = Sketch.of(freivalds_vectors(height, 40)) if exact else None
        msg = AssembleTask(files, out, i, partials, vectors, u, digest_c=True)
        results.append(decode(tasks.assemble_row(encode(msg)), RowResult))
    return results


def test_honest_rows_pass_and_c_is_exact(tmp_path: Path) -> None:
    a, b, g, files = _job(tmp_path, 37, 29, 23, (3, 2, 2))
    digests = _compute_all(files, g)
    out = str(tmp_path / "C.npy")
    for result in _assemble(tmp_path, files, g, digests, out):
        blocks = [(result.i, j, k) for j in range(2) for k in range(2)]
        verdict = row_verdict(result, blocks)
        assert verdict.wrong == () and verdict.changed == () and verdict.assembly_ok
        # One residue per K block and round, whatever the size: the driver's bytes do not grow.
        assert all(s.rows == 1 for s in result.c_sides + result.ab_sides)
    c = np.load(out)
    assert np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64))


@pytest.mark.parametrize("fault", tasks.FAULTS)
def test_a_corrupted_partial_is_named(tmp_path: Path, fault: str) -> None:
    _, _, g, files = _job(tmp_path, 40, 30, 20, (2, 2, 3))
    digests = _compute_all(files, g, fault=fault)
    first = min((x.i, x.j, x.k) for x in g.blocks())
    wrong: list[Block] = []
    for result in _assemble(tmp_path, files, g, digests, str(tmp_path / "C.npy")):
        blocks = [(result.i, j, k) for j in range(2) for k in range(3)]
        wrong += row_verdict(result, blocks).wrong
    assert wrong == [first]


def test_a_partial_changed_on_disk_is_redone_not_blamed(tmp_path: Path) -> None:
    _, _, g, files = _job(tmp_path, 24, 16, 24, (2, 2, 2))
    digests = _compute_all(files, g)
    path = tasks.partial_path(files.work, "s0", (1, 0, 1))
    x = np.load(path)
    x[0, 0] += 5
    np.save(path, x)
    results = _assemble(tmp_path, files, g, digests, str(tmp_path / "C.npy"))
    verdict = row_verdict(results[1], [(1, j, k) for j in range(2) for k in range(2)])
    assert verdict.changed == ((1, 0, 1),)
    assert verdict.wrong == ()


def test_float_partials_get_the_range_check(tmp_path: Path) -> None:
    _, _, g, files = _job(tmp_path, 30, 20, 10, (2, 1, 2), dtype="float64")
    digests = _compute_all(files, g, fault="off-by-one")
    first = min((x.i, x.j, x.k) for x in g.blocks())
    results = _assemble(tmp_path, files, g, digests, str(tmp_path / "C.npy"))
    wrong = [x for res in results for x in res.out_of_range]
    assert wrong == [first]


def test_an_excluded_executor_declines(tmp_path: Path) -> None:
    _, _, _g, files = _job(tmp_path, 8, 8, 8, (1, 1, 1))
    msg = ComputeTask(files, "s0", [(0, 0, 0)], [tasks.executor_id()])
    result = decode(tasks.compute_blocks(encode(msg)), ComputeResult)
    assert result.declined and result.blocks == []


def test_c_tiles_are_digested_only_when_asked(tmp_path: Path) -> None:
    _, _, g, files = _job(tmp_path, 16, 16, 16, (1, 2, 2))
    digests = _compute_all(files, g)
    out = str(tmp_path / "C.npy")
    create_matrix(out, "int32", TileGrid.of_operand(g, "C"), "C")
    partials = [(j, k, "s0", digests[(0, j, k)]) for j in range(2) for k in range(2)]
    vectors = [Sketch.of(freivalds_vectors(8, 40)) for _ in range(2)]
    u = Sketch.of(freivalds_vectors(16, 40))
    for digest_c in (False, True):
        msg = AssembleTask(files, out, 0, partials, vectors, u, digest_c=digest_c)
        result = decode(tasks.assemble_row(encode(msg)), RowResult)
        names = sorted({t.name for t in result.tiles})
        assert names == (["A", "B", "C"] if digest_c else ["A", "B"])
        assert row_verdict(result, [(0, j, k) for j in range(2) for k in range(2)]).assembly_ok


def test_corrupt_always_changes_the_partial() -> None:
    for dtype in ("int32", "int64", "float32", "float64"):
        for x in (np.zeros((3, 4), dtype), np.ones((1, 1), dtype)):
            for fault in tasks.FAULTS:
                assert not np.array_equal(tasks.corrupt(fault, x, seed=1), x)


def test_tile_record_catches_a_changed_tile() -> None:
    record = TileRecord()
    record.add([TileDigest("A", 0, 1, b"x" * 32)])
    record.add([TileDigest("A", 0, 1, b"x" * 32)])
    with pytest.raises(StoreChangedError, match="A changed"):
        record.add([TileDigest("A", 0, 1, b"y" * 32)])
    record.forget_row("C", 0)  # nothing recorded for C: a no-op
    assert len(record) == 1


def test_copies_name_the_wrong_audit_copy() -> None:
    copies = Copies()
    copies.add((0, 0, 0), "s0", b"a", primary=True)
    copies.add((0, 0, 0), "s1", b"a", primary=False)
    copies.add((0, 0, 0), "s2", b"b", primary=False)
    copies.add((1, 0, 0), "s1", b"c", primary=True)
    assert copies.disagreeing() == [(0, 0, 0)]
    assert copies.wrong_copies((0, 0, 0)) == ["s2"]
    assert copies.digest((1, 0, 0)) == b"c"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_row_results_from_random_bytes_never_decode_into_anything_else(data: bytes) -> None:
    try:
        result = decode(data, RowResult)
    except msgspec.DecodeError:
        return
    with contextlib.suppress(msgspec.ValidationError):
        row_verdict(result, [(0, 0, 0)])


def test_a_store_opened_by_a_task_is_read_only(tmp_path: Path) -> None:
    _, _, _, files = _job(tmp_path, 8, 8, 8, (1, 1, 1))
    assert not open_matrix(files.a, "A").writable
