"""The long chaos run: a real mesh on 127.0.0.1 under seeded faults, and each fault's recovery time.

Usage: python bench/chaos.py [--seed 1] [--jobs 60] [--window 120] [--runs 1] [--json]
       [--kills 6] [--stalls 6] [--restarts 2] [--cheaters 2] [--workers 9] [--validators 2]
       [--stall-s 5 30] [--down-s 0.5 3]
       [--coordinator-arg=--lease --coordinator-arg=5] [--keep DIR]

One coordinator, 9 workers (2 of them cheating) and 2 validators as ``ramnet`` processes; jobs
submitted in bursts over the window from a consumer key each; workers killed and restarted on
their keys, stalled (SIGSTOP) and resumed, the coordinator killed and restarted on its data folder
(``tests/chaos_harness.py``, which the CI test runs short). The coordinator runs at its default
settings unless ``--coordinator-arg`` says otherwise.

Reports, per fault: its kind, the node hit, when, how many jobs it caught in flight, and its
recovery time: from the fault's injection to the last affected job's C checked at its consumer.
Then per kind the median and worst recovery, the jobs' outcomes and median time, and the checks
(every job exact or refused with a reason, no honest node slashed, ledger conserved, nothing paid
twice, no traceback). With ``--runs`` > 1, seeds ``seed .. seed + runs - 1``, medians over all
faults of a kind. Exits 1 if a check failed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import ROOT

sys.path.insert(0, str(ROOT))

from tests.chaos_harness import FAULT_KINDS, ChaosConfig, ChaosRun


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runs", type=int, default=1, help="runs, seeds seed .. seed + runs - 1")
    p.add_argument("--jobs", type=int, default=60)
    p.add_argument("--window", type=float, default=120.0, help="seconds of submissions")
    p.add_argument("--burst", type=int, default=4, help="jobs submitted at once")
    p.add_argument("--workers", type=int, default=9)
    p.add_argument("--validators", type=int, default=2)
    p.add_argument("--cheaters", type=int, default=2)
    p.add_argument("--kills", type=int, default=6)
    p.add_argument("--stalls", type=int, default=6)
    p.add_argument("--restarts", type=int, default=2, help="coordinator kills and restarts")
    p.add_argument("--min-size", type=int, default=64)
    p.add_argument("--max-size", type=int, default=256)
    p.add_argument("--stall-s", type=float, nargs=2, default=(5.0, 30.0), metavar=("LO", "HI"))
    p.add_argument(
        "--down-s",
        type=float,
        nargs=2,
        default=(0.5, 3.0),
        metavar=("LO", "HI"),
        help="seconds a killed process stays down",
    )
    p.add_argument("--job-timeout", type=float, default=300.0)
    p.add_argument(
        "--coordinator-arg",
        action="append",
        default=[],
        help="an extra `coordinator start` argument (repeat; default settings otherwise)",
    )
    p.add_argument("--keep", type=Path, help="run in this folder and keep its logs")
    p.add_argument("--json", action="store_true")
    return p.parse_args()


def _one(args: argparse.Namespace, seed: int, folder: Path) -> dict[str, Any]:
    config = ChaosConfig(
        seed=seed,
        jobs=args.jobs,
        workers=args.workers,
        validators=args.validators,
        cheaters=args.cheaters,
        kills=args.kills,
        stalls=args.stalls,
        coordinator_restarts=args.restarts,
        window=args.window,
        burst=args.burst,
        sizes=(args.min_size, args.max_size),
        stall_s=tuple(args.stall_s),
        down_s=tuple(args.down_s),
        job_timeout=args.job_timeout,
        coordinator_args=tuple(args.coordinator_arg),
    )
    say = (lambda line: None) if args.json else (lambda line: print(line, flush=True))
    return ChaosRun(config, folder, log=say).run().summary()


def main() -> int:
    args = _parse()
    runs = []
    for seed in range(args.seed, args.seed + args.runs):
        if args.keep:
            folder = args.keep / f"seed{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            runs.append(_one(args, seed, folder))
        else:
            with tempfile.TemporaryDirectory(prefix="ramnet-chaos-") as tmp:
                runs.append(_one(args, seed, Path(tmp)))
    faults = [f for run in runs for f in run["faults"]]
    by_kind = {}
    for kind in FAULT_KINDS:
        times = [f["recovery_s"] for f in faults if f["kind"] == kind and f["recovery_s"]]
        hit = [f for f in faults if f["kind"] == kind]
        by_kind[kind] = {
            "faults": len(hit),
            "caught_jobs": sum(1 for f in hit if f["affected_jobs"]),
            "recovery_median_s": round(statistics.median(times), 2) if times else None,
            "recovery_max_s": round(max(times), 2) if times else None,
        }
    durations = [run["job_s_median"] for run in runs if run["job_s_median"] is not None]
    outcomes: dict[str, int] = {}
    for run in runs:
        for name, count in run["outcomes"].items():
            outcomes[name] = outcomes.get(name, 0) + count
    problems = [p for run in runs for p in run["problems"]]
    result = {
        "seeds": [run["seed"] for run in runs],
        "jobs": sum(run["jobs"] for run in runs),
        "outcomes": outcomes,
        "job_s_median": round(statistics.median(durations), 3) if durations else None,
        "recovery": by_kind,
        "slashed": [run["slashed"] for run in runs],
        "cheaters": [run["cheaters"] for run in runs],
        "problems": problems,
        "wall_s": [run["wall_s"] for run in runs],
        "coordinator_args": args.coordinator_arg,
    }
    if args.json:
        print(json.dumps({**result, "faults": faults}))
    else:
        print("\nfault          node   at (s)  jobs caught  recovery (s)  note")
        for f in faults:
            rec = "-" if f["recovery_s"] is None else f"{f['recovery_s']:.2f}"
            at = "-" if f["at_s"] is None else f"{f['at_s']:.1f}"
            print(
                f"{f['kind']:<14} {f['target'] or '-':<6} {at:>6}  "
                f"{f['affected_jobs']:>11}  {rec:>12}  {f['note']}"
            )
        print()
        for key, value in result.items():
            print(f"{key:>18}: {value}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
