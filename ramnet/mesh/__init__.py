"""The mesh: sharding plan (coordinator, workers, validators and ledger build on it)."""

from __future__ import annotations

from ramnet.mesh._plan import (
    AXIS_OF_STYLE,
    BLOCKS_PER_NODE,
    STYLES,
    PlanInputError,
    ShardPlan,
    Style,
    grid_for,
    min_blocks,
    plan_shards,
    style_deal,
)

__all__ = [
    "AXIS_OF_STYLE",
    "BLOCKS_PER_NODE",
    "STYLES",
    "PlanInputError",
    "ShardPlan",
    "Style",
    "grid_for",
    "min_blocks",
    "plan_shards",
    "style_deal",
]
