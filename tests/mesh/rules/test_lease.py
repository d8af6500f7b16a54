"""The lease rule with plain values: a shard's work, the measured rate, the lease and the reveal
time, and when a shard is a straggler."""

from __future__ import annotations

import pytest

from ramnet.mesh.rules.lease import (
    LeasePolicy,
    Work,
    conservative_rate,
    is_straggler,
    lease_seconds,
    reveal_seconds,
    shard_work,
)

EDGES = ((0, 100, 150), (0, 80), (0, 60, 120))  # rows 100+50, one column block of 80, k 60+60


def test_a_shards_work_counts_each_block_and_each_tile_once() -> None:
    work = shard_work([(0, 0, 0), (0, 0, 1), (1, 0, 1)], EDGES, in_itemsize=1, out_itemsize=4)
    assert work.ops == 2 * (100 * 80 * 60 + 100 * 80 * 60 + 50 * 80 * 60)
    assert work.bytes_out == 4 * (100 * 80 + 100 * 80 + 50 * 80)
    # A tiles (0,0), (0,1), (1,1); B tiles (0,0) and (1,0): each downloaded once.
    assert work.bytes_in == (100 * 60 + 100 * 60 + 50 * 60) + (60 * 80 + 60 * 80)


def test_a_block_outside_the_grid_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        shard_work([(2, 0, 0)], EDGES, 1, 4)
    with pytest.raises(ValueError, match="row, column and inner"):
        shard_work([(0, 0, 0)], EDGES[:2], 1, 4)


def test_the_lease_grows_with_the_work_and_never_falls_under_the_floor() -> None:
    policy = LeasePolicy(floor_s=10, safety=4, bandwidth=1e6)
    tiny = Work(ops=1000, bytes_in=100, bytes_out=100)
    assert lease_seconds(tiny, 1e9, policy) == 10
    big = Work(ops=10**11, bytes_in=10**6, bytes_out=10**6)
    assert lease_seconds(big, 1e9, policy) == pytest.approx(4 * (100 + 2))
    # Twice the rate: the compute half of the lease halves.
    assert lease_seconds(big, 2e9, policy) == pytest.approx(4 * (50 + 2))
    with pytest.raises(ValueError, match="positive"):
        lease_seconds(big, 0.0, policy)


def test_the_reveal_time_is_the_partials_upload_with_the_same_floor() -> None:
    policy = LeasePolicy(floor_s=10, safety=4, bandwidth=1e6)
    assert reveal_seconds(1000, policy) == 10
    assert reveal_seconds(10**7, policy) == pytest.approx(40)


def test_the_rate_is_a_slow_quantile_of_the_measured_commits() -> None:
    policy = LeasePolicy(default_rate=5e8, quantile=0.25)
    assert conservative_rate([], policy) == 5e8
    assert conservative_rate([(0, 1.0), (1e9, 0.0)], policy) == 5e8  # nothing usable
    # Rates 1, 2, 3, 4 and 100 GOP/s: one fast node (or one that committed junk at once) does
    # not shorten everyone's leases.
    samples = [(1e9, 1.0), (2e9, 1.0), (3e9, 1.0), (4e9, 1.0), (100e9, 1.0)]
    assert conservative_rate(samples, policy) == 2e9
    assert conservative_rate(samples[:1], policy) == 1e9


def test_a_straggler_is_far_slower_than_its_jobs_commits_and_held_a_while() -> None:
    policy = LeasePolicy(straggler_factor=3.0, straggler_min_s=5.0)
    assert not is_straggler(100.0, [], policy)  # nothing to compare with
    assert not is_straggler(4.0, [0.1, 0.2, 0.3], policy)  # under the minimum
    assert is_straggler(5.5, [0.1, 0.2, 0.3], policy)
    assert not is_straggler(25.0, [8.0, 9.0, 10.0], policy)  # under 3 x the median (27)
    assert is_straggler(28.0, [8.0, 9.0, 10.0], policy)
