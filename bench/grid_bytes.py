"""Bytes a mesh job moves for a grid: tiles sent to the nodes plus partials sent back.

Usage: python bench/grid_bytes.py [--n 4096] [--nodes 3] [--dtype int8] [--ids 24] [GRID ...]

For each grid (``PxQxR``; by default the cubic ``grid_for`` grid and the one ``grid_for`` picks for
the dtype) prints the MiB of A and B tiles the plan sends to all nodes (by element count) and the
MiB of partial results they upload, averaged over ``--ids`` job ids (the style deal depends on the
job id). No timing: this is arithmetic on the sharding plan.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from _common import emit

from ramnet import orchid
from ramnet.mesh import grid_for, plan_shards


def moved(
    n: int, nodes: int, dtype: str, shape: tuple[int, int, int], ids: int
) -> dict[str, float]:
    """Mean MiB of tiles and of partials for an n³ job on ``nodes`` nodes with grid ``shape``."""
    grid = orchid.make_grid(n, n, n, shape)
    size_in = np.dtype(dtype).itemsize
    size_out = orchid.result_dtype(np.dtype(dtype), n).itemsize
    tiles, partials = [], []
    for job in range(ids):
        plan = plan_shards(f"grid-bytes-{job}".encode(), grid.shape, nodes)
        t = p = 0.0
        for node in range(nodes):
            t += (plan.a_fraction(node, grid) + plan.b_fraction(node, grid)) * n * n * size_in
            for x in plan.assignment(node):
                p += len(range(n)[grid.rows(x.i)]) * len(range(n)[grid.cols(x.j)]) * size_out
        tiles.append(t / 2**20)
        partials.append(p / 2**20)
    return {
        "tiles_mib": round(statistics.mean(tiles), 1),
        "partials_mib": round(statistics.mean(partials), 1),
        "total_mib": round(statistics.mean(tiles) + statistics.mean(partials), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--dtype", default="int8")
    parser.add_argument("--ids", type=int, default=24)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("grids", nargs="*")
    args = parser.parse_args()
    n, nodes = args.n, args.nodes
    shapes = [tuple(int(v) for v in g.split("x")) for g in args.grids] or [
        grid_for(n, n, n, nodes),
        grid_for(n, n, n, nodes, dtype=args.dtype),
    ]
    result = {
        "n": n,
        "nodes": nodes,
        "dtype": args.dtype,
        "grids": {
            "x".join(map(str, s)): moved(n, nodes, args.dtype, s, args.ids)  # type: ignore[arg-type]
            for s in shapes
        },
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
