"""A seeded simulation of the mesh's checks, no network: plans, honest shards, one corrupted block
product per job, and what settlement catches. Used by ``bench/sim_disputes.py`` and the tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from ramnet import orchid
from ramnet.mesh.rules.plan import grid_for, plan_shards
from ramnet.mesh.rules.settle import settle
from ramnet.mesh.rules.shard import compute_shard


def simulate(
    jobs: int, *, seed: int = 0, nodes_choices: tuple[int, ...] = (3, 6, 9)
) -> dict[str, Any]:
    """Run ``jobs`` seeded jobs with one worker corrupting one random block product in each.

    Returns:
        ``{"jobs", "caught", "fraction_caught", "honest_flagged", "by_kind"}``: a job is caught
        when settlement flags exactly the corrupting node (its partial fails its check, or its
        audit copy diverges); ``honest_flagged`` counts honest nodes ever flagged.
    """
    rng = np.random.default_rng(seed)
    caught = honest_flagged = 0
    kinds = {"off-by-one": 0, "random": 0, "zeros": 0}
    for job in range(jobs):
        nodes = int(rng.choice(nodes_choices))
        m, k, n = (int(x) for x in rng.integers(24, 80, 3))
        a, b = orchid.random_operands(m, k, n, "int8", seed=int(rng.integers(1 << 30)))
        grid = orchid.make_grid(m, k, n, grid_for(m, k, n, nodes, dtype=a.dtype))
        plan = plan_shards(f"sim-{seed}-{job}".encode(), grid.shape, nodes)
        p, q, r = grid.shape
        ta = {(i, kk): a[grid.rows(i), grid.inner(kk)] for i in range(p) for kk in range(r)}
        tb = {(kk, j): b[grid.inner(kk), grid.cols(j)] for kk in range(r) for j in range(q)}
        reveals = {x: compute_shard(plan.assignment(x), ta, tb) for x in range(nodes)}
        cheater = int(rng.integers(nodes))
        blocks = plan.assignment(cheater)
        block = blocks[int(rng.integers(len(blocks)))]
        kind = ("off-by-one", "random", "zeros")[job % 3]
        kinds[kind] += 1
        bad = reveals[cheater][block].copy()
        if kind == "off-by-one":
            bad.flat[int(rng.integers(bad.size))] += 1
        elif kind == "random":
            bad = rng.integers(-(2**20), 2**20, bad.shape, dtype=bad.dtype)
        else:
            bad[...] = 0
        if np.array_equal(bad, reveals[cheater][block]):  # a zero block stays zero: no fraud
            caught += 1
            continue
        reveals[cheater] = {**reveals[cheater], block: bad}
        outcome = settle(plan, grid, np.dtype(np.int32), reveals, ta, tb)
        flagged = {node for node, _ in outcome.failed}
        caught += int(cheater in flagged)
        honest_flagged += len(flagged - {cheater})
    return {
        "jobs": jobs,
        "caught": caught,
        "fraction_caught": caught / jobs if jobs else 1.0,
        "honest_flagged": honest_flagged,
        "by_kind": kinds,
    }
