"""Settlement: honest shards assemble to A·B; a wrong partial or a diverging audit is flagged."""

from __future__ import annotations

import numpy as np

from ramnet import orchid
from ramnet.mesh import plan_shards
from ramnet.mesh.rules.settle import settle
from ramnet.mesh.rules.shard import compute_shard


def _job(nodes: int, shape: tuple[int, int, int], grid_shape: tuple[int, int, int]):  # type: ignore[no-untyped-def]
    m, k, n = shape
    a, b = orchid.random_operands(m, k, n, "int8", seed=nodes)
    grid = orchid.make_grid(m, k, n, grid_shape)
    plan = plan_shards(b"job-%d" % nodes, grid.shape, nodes)
    p, q, r = grid.shape
    ta = {(i, kk): a[grid.rows(i), grid.inner(kk)] for i in range(p) for kk in range(r)}
    tb = {(kk, j): b[grid.inner(kk), grid.cols(j)] for kk in range(r) for j in range(q)}
    reveals = {node: compute_shard(plan.assignment(node), ta, tb) for node in range(nodes)}
    return a, b, grid, plan, ta, tb, reveals


def test_honest_shards_settle_to_the_product() -> None:
    for nodes, grid_shape in ((3, (3, 3, 3)), (6, (4, 4, 2)), (9, (4, 5, 3))):
        a, b, grid, plan, ta, tb, reveals = _job(nodes, (70, 60, 50), grid_shape)
        s = settle(plan, grid, np.dtype(np.int32), reveals, ta, tb)
        assert s.ok and not s.failed and not s.disagreements
        assert s.c is not None
        np.testing.assert_array_equal(s.c, a.astype(np.int64) @ b.astype(np.int64))
        assert sum(s.computed.values()) == sum(plan.load.values())


def test_a_wrong_partial_and_a_diverging_audit_are_flagged() -> None:
    _, _, grid, plan, ta, tb, reveals = _job(3, (40, 30, 20), (3, 3, 3))
    audit = plan.audits[0][0]
    cheat = next(n for n in plan.triad_nodes(0) if plan.owner(audit) != n)
    bad = reveals[cheat][audit].copy()
    bad[0, 0] += 1
    reveals[cheat] = {**reveals[cheat], audit: bad}
    s = settle(plan, grid, np.dtype(np.int32), reveals, ta, tb)
    assert not s.ok and s.c is None
    assert (cheat, audit) in s.failed
    assert [d[0] for d in s.disagreements] == [audit]


def test_a_missing_reveal_fails_the_node() -> None:
    _, _, grid, plan, ta, tb, reveals = _job(3, (40, 30, 20), (3, 3, 3))
    del reveals[2]
    s = settle(plan, grid, np.dtype(np.int32), reveals, ta, tb)
    assert not s.ok
    assert {node for node, _ in s.failed} == {2}
