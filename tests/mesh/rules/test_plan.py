"""The 3-way dimensional sharding plan: coverage, audits, tiles, balance, determinism, errors."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ramnet import InvalidInputError
from ramnet.mesh import (
    AXIS_OF_STYLE,
    STYLES,
    PlanInputError,
    ShardPlan,
    grid_for,
    min_blocks,
    plan_shards,
    style_deal,
)
from ramnet.orchid import BlockProduct, make_grid, result_dtype
from ramnet.orchid._backends import resolve as resolve_backend
from ramnet.orchid._scheduler import execute_blocks

NODE_COUNTS = range(3, 31, 3)
GRIDS = [
    (1, 1, 3),
    (1, 1, 30),
    (1, 5, 7),
    (1, 30, 1),
    (30, 1, 1),
    (2, 2, 2),
    (2, 3, 7),
    (3, 3, 3),
    (4, 5, 6),
    (6, 4, 5),
    (5, 1, 9),
    (7, 7, 1),
    (8, 8, 8),
    (3, 10, 2),
    (12, 3, 4),
    (9, 9, 9),
]
# Sort keys of a cut along an axis (docs/sharding.md): the axis first, then the axis the partial
# layer shares tiles along.
ORDER = {0: (0, 2, 1), 1: (1, 2, 0), 2: (2, 0, 1)}


def key(x: BlockProduct) -> tuple[int, int, int]:
    return (x.i, x.j, x.k)


def along(blocks: list[BlockProduct], axis: int) -> list[BlockProduct]:
    a, b, c = ORDER[axis]
    return sorted(blocks, key=lambda x: (key(x)[a], key(x)[b], key(x)[c]))


def check_plan(plan: ShardPlan) -> None:
    """Every property the plan promises."""
    p, q, r = plan.grid_shape
    total = p * q * r
    everything = {BlockProduct(i, j, k) for i in range(p) for j in range(q) for k in range(r)}
    nodes, triads = plan.nodes, plan.nodes // 3
    a = plan.audit_per_triad
    primary, assignments, audits = plan.primary, plan.assignments, plan.audits
    assert sorted(primary) == list(range(nodes)) == sorted(assignments)
    assert sorted(audits) == list(range(triads))

    # Exactly-once primary coverage, and owner() agrees.
    flat = [x for n in range(nodes) for x in primary[n]]
    assert len(flat) == total and set(flat) == everything
    for n in range(nodes):
        assert primary[n] == sorted(primary[n], key=key)
        for x in primary[n]:
            assert plan.owner(x) == n

    # Audits: a distinct blocks per triad, primary work of one of its nodes, computed by all three
    # and by nobody else; every other block is computed exactly once.
    audit_set: set[BlockProduct] = set()
    for t in range(triads):
        members = plan.triad_nodes(t)
        assert len(audits[t]) == len(set(audits[t])) == a
        assert audits[t] == sorted(audits[t], key=key)
        for x in audits[t]:
            assert plan.owner(x) in members
            assert plan.is_audit(x)
            assert all(x in assignments[n] for n in members)
        audit_set |= set(audits[t])
    copies = Counter(x for n in range(nodes) for x in assignments[n])
    assert set(copies) == everything
    for x, count in copies.items():
        assert count == (3 if x in audit_set else 1), x
    assert plan.audit_blocks == len(audit_set) == a * triads
    assert plan.audit_volume == pytest.approx(a * triads / total)
    assert plan.overhead == pytest.approx(2 * plan.audit_volume)

    # What a worker gets: sorted, unique, plain BlockProducts (no flag), primary plus audits.
    for n in range(nodes):
        work = assignments[n]
        assert all(type(x) is BlockProduct for x in work)
        assert work == sorted(work, key=key) and len(set(work)) == len(work)
        assert set(work) == set(primary[n]) | set(audits[n // 3])
        assert plan.tiles_a(n) == {(x.i, x.k) for x in work}
        assert plan.tiles_b(n) == {(x.k, x.j) for x in work}
        assert plan.a_fraction(n) == pytest.approx(len(plan.tiles_a(n)) / (p * r))
        assert plan.b_fraction(n) == pytest.approx(len(plan.tiles_b(n)) / (r * q))
        assert plan.load[n] == len(work)

    # Balance: primary loads differ by at most one block, total loads by at most two.
    loads = list(plan.primary_load.values())
    assert max(loads) - min(loads) <= 1
    assert min(loads) >= max(1, math.ceil(a / 3))
    totals = list(plan.load.values())
    assert max(totals) - min(totals) <= 2
    balance = plan.balance()
    assert balance["primary_ratio"] <= (total // nodes + 1) / (total // nodes)

    # Styles: a seeded permutation per triad, and the two guillotine cuts they name.
    for t in range(triads):
        members = plan.triad_nodes(t)
        deal = tuple(plan.styles[n] for n in members)
        assert sorted(deal) == sorted(STYLES)
        assert deal == style_deal(plan.job_id, t)
        region = [x for n in members for x in primary[n]]
        first = along(region, AXIS_OF_STYLE[deal[0]])
        cut1 = len(primary[members[0]])
        assert set(first[:cut1]) == set(primary[members[0]])
        rest = along(first[cut1:], AXIS_OF_STYLE[deal[1]])
        cut2 = len(primary[members[1]])
        assert set(rest[:cut2]) == set(primary[members[1]])
        assert set(rest[cut2:]) == set(primary[members[2]])

    # JSON-ready report.
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["grid"] == [p, q, r] and data["nodes"] == nodes
    assert len(data["per_node"]) == nodes and len(data["triads"]) == triads
    assert data["per_node"][0]["assignment"] == [[x.i, x.j, x.k] for x in assignments[0]]


@pytest.mark.parametrize("nodes", NODE_COUNTS)
def test_every_node_count_on_many_grids(nodes: int) -> None:
    for grid in GRIDS:
        for audit in (1, 2, 3, 4):
            if math.prod(grid) < min_blocks(nodes, audit):
                with pytest.raises(PlanInputError, match="at least"):
                    plan_shards(b"job", grid, nodes, audit_per_triad=audit)
                continue
            check_plan(
                plan_shards(f"job-{nodes}-{grid}".encode(), grid, nodes, audit_per_triad=audit)
            )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    job_id=st.binary(min_size=1, max_size=40),
    grid=st.tuples(*[st.integers(1, 9)] * 3),
    nodes=st.sampled_from(list(NODE_COUNTS)),
    audit=st.integers(1, 5),
    salt=st.binary(max_size=8),
)
def test_plan_properties(
    job_id: bytes, grid: tuple[int, int, int], nodes: int, audit: int, salt: bytes
) -> None:
    if math.prod(grid) < min_blocks(nodes, audit):
        with pytest.raises(InvalidInputError):
            plan_shards(job_id, grid, nodes, audit_per_triad=audit, audit_salt=salt)
        return
    plan = plan_shards(job_id, grid, nodes, audit_per_triad=audit, audit_salt=salt)
    check_plan(plan)
    assert plan == plan_shards(job_id, grid, nodes, audit_per_triad=audit, audit_salt=salt)


def test_exactly_enough_blocks() -> None:
    for nodes in NODE_COUNTS:
        plan = plan_shards(b"tight", (1, 1, nodes), nodes)
        check_plan(plan)
        assert set(plan.primary_load.values()) == {1}


def test_same_id_same_plan() -> None:
    one = plan_shards(b"job-42", (8, 8, 8), 12, audit_per_triad=2)
    two = plan_shards(b"job-" + b"42", (8, 8, 8), 12, audit_per_triad=2)
    assert one == two
    assert one.to_dict() == two.to_dict()
    assert one.assignments == two.assignments


def test_different_ids_deal_differently() -> None:
    deals = {tuple(plan_shards(b"id-%d" % t, (8, 8, 8), 30).style_list) for t in range(40)}
    assert len(deals) == 40  # 6^10 possible deals: collisions would be a bug
    small = Counter(style_deal(b"id-%d" % t, 0) for t in range(300))
    assert len(small) == 6  # every deal of a triad occurs
    assert min(small.values()) > 20  # and none is rare (300/6 = 50 expected)
    # Triads of the same job are dealt independently.
    assert len({style_deal(b"one job", t) for t in range(30)}) > 1


def test_style_deal_is_recomputable() -> None:
    # The documented procedure, written out independently of the implementation.
    import hashlib

    def deal(job_id: bytes, triad: int) -> tuple[str, ...]:
        parts = [b"ramnet.mesh.styles.v1\x00", triad.to_bytes(4, "big"), job_id]
        h = hashlib.blake2b(digest_size=32)
        for part in parts:
            h.update(len(part).to_bytes(8, "big") + part)
        x = int.from_bytes(h.digest()[:8], "big")
        return list(itertools.permutations(("rows", "cols", "reduce")))[x % 6]

    for job in (b"a", b"job-1", bytes(range(32))):
        plan = plan_shards(job, (6, 6, 6), 9)
        for t in range(3):
            assert deal(job, t) == style_deal(job, t) == tuple(plan.style_list[3 * t : 3 * t + 3])


def test_salt_moves_audits_not_styles() -> None:
    plans = [plan_shards(b"job", (8, 8, 8), 9, audit_salt=b"s%d" % t) for t in range(20)]
    assert len({p.style_list for p in plans}) == 1
    assert len({p.primary_list for p in plans}) == 1
    assert len({p.audit_list for p in plans}) > 10


def test_owners_of_audits_rotate() -> None:
    # With 3 audits per triad every node owns one: equal extra work within the triad.
    plan = plan_shards(b"job", (6, 6, 6), 9, audit_per_triad=3)
    for t in range(3):
        assert sorted(plan.owner(x) for x in plan.audits[t]) == list(plan.triad_nodes(t))
    assert len(set(plan.load.values())) == 1


@pytest.mark.parametrize("nodes", [0, -3, -1, 1, 2, 4, 5, 7, 29, 31, True, 3.0, "3", None])
def test_bad_node_counts(nodes: object) -> None:
    with pytest.raises(InvalidInputError, match="multiple of 3"):
        plan_shards(b"job", (4, 4, 4), nodes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("grid", "nodes", "audit"),
    [
        ((1, 1, 2), 3, 1),
        ((2, 2, 1), 6, 1),
        ((3, 3, 3), 30, 1),
        ((1, 1, 5), 3, 4),
        ((2, 2, 2), 6, 4),
    ],
)
def test_too_small_grids(grid: tuple[int, int, int], nodes: int, audit: int) -> None:
    with pytest.raises(InvalidInputError, match=f"at least {min_blocks(nodes, audit)}") as info:
        plan_shards(b"job", grid, nodes, audit_per_triad=audit)
    # The grid the message suggests works.
    suggested = str(info.value).split("for example a ")[1].split(" grid")[0]
    shape = tuple(int(x) for x in suggested.split("x"))
    check_plan(plan_shards(b"job", shape, nodes, audit_per_triad=audit))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grid_shape": (0, 3, 3)}, "grid count"),
        ({"grid_shape": (3, -1, 3)}, "grid count"),
        ({"grid_shape": (3, 3)}, "grid_shape"),
        ({"grid_shape": (3, 3, 2.0)}, "grid count"),
        ({"audit_per_triad": 1.5}, "audit_per_triad"),
        ({"audit_per_triad": -1}, "audit_per_triad"),
        ({"job_id": b""}, "job_id"),
        ({"job_id": "text"}, "job_id"),
        ({"audit_salt": "text"}, "audit_salt"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"job_id": b"job", "grid_shape": (3, 3, 3), "nodes": 3}
    args.update(kwargs)
    with pytest.raises(InvalidInputError, match=message):
        plan_shards(**args)  # type: ignore[arg-type]


def test_bad_nodes_and_blocks_in_queries() -> None:
    plan = plan_shards(b"job", (3, 3, 3), 3)
    with pytest.raises(InvalidInputError):
        plan.assignment(3)
    with pytest.raises(InvalidInputError):
        plan.tiles_a(-1)
    with pytest.raises(InvalidInputError):
        plan.owner(BlockProduct(3, 0, 0))
    with pytest.raises(InvalidInputError):
        plan.a_fraction(0, make_grid(10, 10, 10, (2, 2, 2)))


@pytest.mark.parametrize(
    ("m", "k", "n"),
    [
        (4096, 4096, 4096),
        (1000, 37, 5000),
        (1, 100_000, 1),
        (64, 64, 64),
        (300, 200, 130),
        (5, 5, 5),
    ],
)
@pytest.mark.parametrize("nodes", [3, 6, 12, 30])
def test_grid_for(m: int, k: int, n: int, nodes: int) -> None:
    if m * k * n < nodes:
        with pytest.raises(InvalidInputError, match="fewer nodes"):
            grid_for(m, k, n, nodes)
        return
    shape = grid_for(m, k, n, nodes)
    assert make_grid(m, k, n, shape).shape == shape
    assert math.prod(shape) >= min_blocks(nodes)
    if m * k * n >= 8 * nodes * 64**3:  # big enough to reach the aim with aligned blocks
        assert math.prod(shape) >= 8 * nodes
        assert plan_shards(b"job", shape, nodes).balance()["primary_ratio"] <= 9 / 8
    check_plan(plan_shards(b"job", shape, nodes))


def _bytes_moved(m: int, k: int, n: int, shape: tuple[int, int, int], dtype: str) -> float:
    """Tile bytes sent to the nodes plus partial bytes sent back, averaged over style deals."""
    grid = make_grid(m, k, n, shape)
    size_in = np.dtype(dtype).itemsize
    size_out = result_dtype(np.dtype(dtype), k).itemsize
    total = 0.0
    ids = [f"job-{x}".encode() for x in range(12)]
    for job in ids:
        plan = plan_shards(job, grid.shape, 3)
        for node in range(3):
            total += (plan.a_fraction(node, grid) * m * k + plan.b_fraction(node, grid) * k * n) * (
                size_in
            )
            total += size_out * sum(
                len(range(m)[grid.rows(x.i)]) * len(range(n)[grid.cols(x.j)])
                for x in plan.assignment(node)
            )
    return total / len(ids)


@pytest.mark.parametrize("dtype", [None, "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize(("m", "k", "n"), [(4096, 4096, 4096), (1000, 37, 5000), (64, 64, 64)])
@pytest.mark.parametrize("nodes", [3, 12])
def test_grid_for_any_dtype(m: int, k: int, n: int, nodes: int, dtype: str | None) -> None:
    shape = grid_for(m, k, n, nodes, dtype=dtype)
    assert make_grid(m, k, n, shape).shape == shape
    assert math.prod(shape) >= 8 * nodes
    check_plan(plan_shards(b"job", shape, nodes))


def test_grid_for_weighs_k_by_bytes() -> None:
    # Same bytes in as out: cubic blocks, as with no dtype.
    for dtype in (None, "float32", "float64", np.float64):
        assert grid_for(4096, 4096, 4096, 3, dtype=dtype) == (3, 3, 3)
    # int8 in, int32 out: a cut along k costs a copy of C in uploads, so k stays whole.
    assert grid_for(4096, 4096, 4096, 3, dtype="int8") == (5, 5, 1)
    assert grid_for(4096, 4096, 4096, 3, dtype="int32") == (4, 3, 2)
    # A long reduction is still cut along k.
    assert grid_for(1000, 100_000, 1000, 6, dtype="int8")[2] > 1


@pytest.mark.parametrize(
    ("m", "k", "n"), [(4096, 4096, 4096), (2048, 8192, 2048), (3000, 1000, 2000)]
)
@pytest.mark.parametrize("dtype", ["int8", "int16", "int32"])
def test_grid_for_moves_fewer_bytes(m: int, k: int, n: int, dtype: str) -> None:
    weighed = grid_for(m, k, n, 3, dtype=dtype)
    cubic = grid_for(m, k, n, 3)
    assert _bytes_moved(m, k, n, weighed, dtype) <= _bytes_moved(m, k, n, cubic, dtype)


def test_grid_for_refuses_dtypes() -> None:
    for bad in ("uint8", "int64", "complex64", "no-such-type", object()):
        with pytest.raises(InvalidInputError, match="dtype"):
            grid_for(100, 100, 100, 3, dtype=bad)  # type: ignore[arg-type]


def test_grid_for_refuses() -> None:
    with pytest.raises(InvalidInputError, match="fewer nodes"):
        grid_for(1, 2, 2, 6)
    with pytest.raises(InvalidInputError, match="multiple of 3"):
        grid_for(100, 100, 100, 4)
    with pytest.raises(InvalidInputError):
        grid_for(0, 100, 100, 3)


def test_fractions_by_elements() -> None:
    grid = make_grid(100, 70, 50, (4, 3, 5))
    plan = plan_shards(b"job", grid.shape, 6)
    for node in range(6):
        a_seen = sum(
            (grid.row_edges[i + 1] - grid.row_edges[i]) * (grid.k_edges[k + 1] - grid.k_edges[k])
            for i, k in plan.tiles_a(node)
        )
        b_seen = sum(
            (grid.k_edges[k + 1] - grid.k_edges[k]) * (grid.col_edges[j + 1] - grid.col_edges[j])
            for k, j in plan.tiles_b(node)
        )
        assert plan.a_fraction(node, grid) == pytest.approx(a_seen / (100 * 70))
        assert plan.b_fraction(node, grid) == pytest.approx(b_seen / (70 * 50))


@pytest.mark.parametrize(
    ("shape", "parts", "nodes", "audit"),
    [
        ((40, 33, 29), (3, 3, 3), 3, 1),
        ((40, 33, 29), (4, 5, 6), 6, 2),
        ((17, 50, 23), (2, 3, 7), 12, 1),
        ((64, 64, 64), (8, 8, 8), 30, 3),
        ((9, 36, 5), (1, 1, 9), 9, 1),
    ],
)
def test_end_to_end_numeric(
    shape: tuple[int, int, int], parts: tuple[int, int, int], nodes: int, audit: int
) -> None:
    m, k, n = shape
    rng = np.random.default_rng(1234)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    grid = make_grid(m, k, n, parts)
    plan = plan_shards(b"numeric", grid.shape, nodes, audit_per_triad=audit, audit_salt=b"secret")
    check_plan(plan)
    backend = resolve_backend("auto", np.dtype(np.int8))
    results = {
        node: execute_blocks(a, b, grid, plan.assignment(node), backend, threads=1)
        for node in range(nodes)
    }
    c = np.zeros((m, n), np.int64)
    for node, partials in results.items():
        assert set(partials) == set(plan.assignment(node))
        for x in plan.primary[node]:
            c[grid.rows(x.i), grid.cols(x.j)] += partials[x]
    assert np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
    for t, blocks in plan.audits.items():
        for x in blocks:
            copies = [results[node][x] for node in plan.triad_nodes(t)]
            assert all(y.dtype == copies[0].dtype for y in copies)
            assert len({y.tobytes() for y in copies}) == 1


def test_no_audits_is_only_a_plain_split() -> None:
    # audit_per_triad=0 exists for benchmarks measuring what audits cost.
    plan = plan_shards(b"job", (3, 3, 3), 3, audit_per_triad=0)
    assert plan.audit_blocks == 0 and plan.overhead == 0
    blocks = [(b.i, b.j, b.k) for node in range(3) for b in plan.assignment(node)]
    assert len(blocks) == 27 and len(set(blocks)) == 27
