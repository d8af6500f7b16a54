"""Seeded simulation of the mesh's checks over many jobs: one worker corrupts one random block
product per job (off-by-one, random, zeros in turn); report the fraction caught and how often an
honest node was flagged. No network.

Usage: python bench/sim_disputes.py [--jobs 200] [--seed 0] [--json]
"""

from __future__ import annotations

import argparse
import time

from _common import emit

from ramnet.mesh.rules.simulate import simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    t0 = time.perf_counter()
    result = simulate(args.jobs, seed=args.seed)
    result["seconds"] = round(time.perf_counter() - t0, 2)
    emit(result, args.json)


if __name__ == "__main__":
    main()
