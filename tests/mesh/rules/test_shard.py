"""A shard's compute, result digest, per-partial checks and assembly, against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from ramnet import InvalidInputError, orchid
from ramnet.mesh.rules import shard as _shard
from ramnet.mesh.rules.shard import (
    CheckVectors,
    assemble,
    check_partial,
    check_partials,
    compute_shard,
    result_digest,
)
from ramnet.orchid import BlockProduct


def _tiles(a: np.ndarray, b: np.ndarray, grid: orchid.Grid):  # type: ignore[no-untyped-def]
    p, q, r = grid.shape
    ta = {(i, k): a[grid.rows(i), grid.inner(k)] for i in range(p) for k in range(r)}
    tb = {(k, j): b[grid.inner(k), grid.cols(j)] for k in range(r) for j in range(q)}
    return ta, tb


@pytest.mark.parametrize("dtype", ["int8", "int16", "float32"])
def test_shards_assemble_to_the_product(dtype: str) -> None:
    a, b = orchid.random_operands(70, 50, 40, dtype, seed=2)
    grid = orchid.make_grid(70, 50, 40, (3, 2, 2))
    ta, tb = _tiles(a, b, grid)
    blocks = grid.blocks()
    half = len(blocks) // 2
    partials = {
        **compute_shard(blocks[:half], ta, tb),
        **compute_shard(blocks[half:], ta, tb, threads=2),
    }
    for block, partial in partials.items():
        assert check_partial(block, partial, ta, tb)
    c = assemble(grid, partials, orchid.result_dtype(a.dtype, 50))
    if dtype == "float32":
        np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)
    else:
        np.testing.assert_array_equal(c, a.astype(np.int64) @ b.astype(np.int64))


@pytest.mark.parametrize("split", [(1, 1, 1), (2, 3, 1), (3, 2, 2), (2, 2, 3), (4, 1, 5)])
@pytest.mark.parametrize("dtype", ["int32", "int64", "float32", "float64"])
@pytest.mark.parametrize("threads", [1, 3])
def test_assembly_sums_partials_in_ascending_k(
    split: tuple[int, int, int], dtype: str, threads: int
) -> None:
    # Against the definition: C tile (i, j) = ((0 + P(i,j,0)) + P(i,j,1)) + ..., element-wise,
    # bit for bit, whatever the thread count (and with signed zeros kept as that sum gives them).
    grid = orchid.make_grid(23, 19, 17, split)
    rng = np.random.default_rng(sum(split))
    partials = {}
    for block in grid.blocks():
        shape = (
            len(range(*_span(grid.row_edges, block.i))),
            len(range(*_span(grid.col_edges, block.j))),
        )
        values = rng.integers(-1000, 1000, shape).astype(dtype)
        if dtype.startswith("float"):
            values = values / 7
            values[0, 0] = -0.0
        partials[block] = values
    expected = np.zeros((23, 17), dtype)
    for block in grid.blocks():
        expected[grid.rows(block.i), grid.cols(block.j)] += partials[block]
    got = assemble(grid, partials, np.dtype(dtype), threads=threads)
    assert got.dtype == np.dtype(dtype)
    assert got.tobytes() == expected.tobytes()


def _span(edges: tuple[int, ...], index: int) -> tuple[int, int]:
    return edges[index], edges[index + 1]


def test_wrong_partials_are_caught_and_digests_bind_results() -> None:
    a, b = orchid.random_operands(30, 20, 10, "int8", seed=4)
    grid = orchid.make_grid(30, 20, 10, (2, 1, 2))
    ta, tb = _tiles(a, b, grid)
    partials = compute_shard(grid.blocks(), ta, tb)
    digest = result_digest(partials)
    block = BlockProduct(1, 0, 1)
    bad = partials[block].copy()
    bad[0, 0] += 1
    assert not check_partial(block, bad, ta, tb)
    assert not check_partial(block, bad[:, :-1], ta, tb)
    assert not check_partial(block, partials[block].astype(np.int64), ta, tb)
    assert result_digest({**partials, block: bad}) != digest
    assert result_digest(dict(reversed(list(partials.items())))) == digest
    with pytest.raises(InvalidInputError, match="no accepted result"):
        assemble(grid, {k: v for k, v in partials.items() if k != block}, np.dtype(np.int32))
    with pytest.raises(InvalidInputError, match="tiles"):
        compute_shard([BlockProduct(5, 0, 0)], ta, tb)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "float64"])
def test_grouped_checks_pass_right_partials_and_name_each_wrong_one(dtype: str) -> None:
    a, b = orchid.random_operands(45, 70, 38, dtype, seed=11)
    grid = orchid.make_grid(45, 70, 38, (2, 4, 2))  # 4 blocks share each A tile
    ta, tb = _tiles(a, b, grid)
    partials = compute_shard(grid.blocks(), ta, tb)
    assert check_partials(partials, ta, tb) == []
    if dtype == "float64":
        return  # floats are checked block by block by the range check
    wrong = [BlockProduct(0, 1, 0), BlockProduct(1, 3, 1)]
    bad = dict(partials)
    for block in wrong:
        bad[block] = partials[block].copy()
        bad[block][2, 3] += 1
    assert check_partials(bad, ta, tb) == wrong
    # Errors that cancel in a plain sum of the group's blocks are still each caught.
    x, y = BlockProduct(1, 0, 0), BlockProduct(1, 2, 0)
    cancel = dict(partials)
    cancel[x] = partials[x].copy()
    cancel[y] = partials[y].copy()
    cancel[x][0, 0] += 5
    cancel[y][0, 0] -= 5
    assert check_partials(cancel, ta, tb) == [x, y]


def test_grouped_checks_refuse_bad_shapes_dtypes_and_ranges() -> None:
    a, b = orchid.random_operands(30, 20, 16, "int16", seed=12)
    grid = orchid.make_grid(30, 20, 16, (2, 2, 1))
    ta, tb = _tiles(a, b, grid)
    partials = compute_shard(grid.blocks(), ta, tb)
    blocks = sorted(partials, key=lambda x: (x.i, x.j, x.k))
    bad = dict(partials)
    bad[blocks[0]] = partials[blocks[0]][:, :-1]
    bad[blocks[1]] = partials[blocks[1]].astype(np.int32)
    huge = partials[blocks[2]].copy()
    huge[0, 0] = 1 << 62  # outside the range where mod-p sums are exact
    bad[blocks[2]] = huge
    assert check_partials(bad, ta, tb) == blocks[:3]


def test_a_group_costs_one_pass_over_its_a_tile_and_b_products_are_shared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = orchid.random_operands(40, 60, 64, "int8", seed=13)
    grid = orchid.make_grid(40, 60, 64, (2, 4, 1))
    ta, tb = _tiles(a, b, grid)
    partials = compute_shard(grid.blocks(), ta, tb)
    seen: list[int] = []
    real = _shard.weighted_rowsums

    def counting(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        seen.append(id(x))
        return real(x, w)

    monkeypatch.setattr(_shard, "weighted_rowsums", counting)
    vectors = CheckVectors()
    half = {x: v for x, v in partials.items() if x.i == 0}
    rest = {x: v for x, v in partials.items() if x.i == 1}
    assert check_partials(half, ta, tb, vectors=vectors) == []
    assert check_partials(rest, ta, tb, vectors=vectors) == []
    # Each A tile once per group, each B tile once for both calls, each partial once.
    assert sorted(seen.count(id(ta[(i, 0)])) for i in range(2)) == [1, 1]
    assert [seen.count(id(tb[(0, j)])) for j in range(4)] == [1, 1, 1, 1]
    assert len(seen) == 2 + 4 + len(partials)
