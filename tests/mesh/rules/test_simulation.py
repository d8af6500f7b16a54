"""The seeded simulation: every corrupted block product is caught, no honest node is flagged."""

from __future__ import annotations

from ramnet.mesh.rules.simulate import simulate


def test_every_corruption_is_caught_and_no_honest_node_is_flagged() -> None:
    result = simulate(30, seed=7)
    assert result["fraction_caught"] == 1.0
    assert result["honest_flagged"] == 0
    assert sum(result["by_kind"].values()) == 30
