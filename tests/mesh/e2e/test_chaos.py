"""A seeded chaos run with real processes on 127.0.0.1 (tests/chaos_harness.py): 9 workers (2 of
them cheating) and 2 validators, 20 jobs, workers killed and restarted, stalled and resumed, the
coordinator killed and restarted twice on its data folder. Every job ends exactly or is refused
with a reason, no honest node is slashed, the ledger is conserved and nothing is paid twice.

The short version for CI; ``python bench/chaos.py`` runs the long one and reports each fault's
recovery time.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.chaos_harness import ChaosConfig, ChaosRun

# Short leases so that a lost shard moves on within the run (the default sizes them by the work).
SHORT = ChaosConfig(
    seed=17,
    jobs=20,
    workers=9,
    validators=2,
    cheaters=2,
    kills=2,
    stalls=2,
    coordinator_restarts=2,
    window=30.0,
    job_timeout=80.0,
    coordinator_args=("--lease", "5"),
)


def test_a_seeded_chaos_run_ends_every_job_and_keeps_the_books(tmp_path: Path) -> None:
    report = ChaosRun(SHORT, tmp_path).run()
    summary = report.summary()
    assert report.problems == [], json.dumps(summary, indent=1)
    assert summary["outcomes"].get("exact", 0) + summary["outcomes"].get("refused", 0) == 20
    injected = [f for f in report.faults if f.injected is not None]
    assert len(injected) == 6, json.dumps(summary, indent=1)
    # The cheaters that took a shard were caught: every slashed node is a cheater.
    assert set(report.slashed) <= set(report.cheaters)
