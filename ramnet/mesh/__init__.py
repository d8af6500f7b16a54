"""The mesh: coordinator, workers, sharding plan, settlement, ledger and state store.

The mesh composes ORCHID (compute) and VALKYRIE (checks); the CLI composes the mesh.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ramnet._lazy import lazy_getattr

if TYPE_CHECKING:
    from ramnet.mesh.coordinator.app import create_app
    from ramnet.mesh.coordinator.server import serve
    from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
    from ramnet.mesh.nodes.auditor import Auditor
    from ramnet.mesh.nodes.client import (
        MeshClient,
        MeshError,
        MeshRequestError,
        MeshUnavailableError,
    )
    from ramnet.mesh.nodes.consumer import MeshJobFailed, ResultCheckFailed
    from ramnet.mesh.nodes.worker import Worker
    from ramnet.mesh.protocol.auth import AuthError, sign_request, verify_request
    from ramnet.mesh.protocol.wire import WireFormatError, pack, unpack
    from ramnet.mesh.rules.plan import (
        AXIS_OF_STYLE,
        BLOCKS_PER_NODE,
        STYLES,
        PlanInputError,
        ShardPlan,
        Style,
        check_nodes,
        grid_for,
        min_blocks,
        plan_shards,
        style_deal,
    )
    from ramnet.mesh.rules.settle import Settlement, settle
    from ramnet.mesh.state.blobs import BlobStore
    from ramnet.mesh.state.ledger import Ledger
    from ramnet.mesh.state.store import Store

# Loaded on first use: a consumer needs the client, not the coordinator's server stack.
_LAZY = {
    "Auditor": "nodes.auditor",
    "AuthError": "protocol.auth",
    "sign_request": "protocol.auth",
    "verify_request": "protocol.auth",
    "BlobStore": "state.blobs",
    "MeshClient": "nodes.client",
    "MeshError": "nodes.client",
    "MeshRequestError": "nodes.client",
    "MeshUnavailableError": "nodes.client",
    "MeshJobFailed": "nodes.consumer",
    "ResultCheckFailed": "nodes.consumer",
    "check_nodes": "rules.plan",
    "Coordinator": "coordinator.service",
    "CoordinatorConfig": "coordinator.service",
    "create_app": "coordinator.app",
    "serve": "coordinator.server",
    "Ledger": "state.ledger",
    "AXIS_OF_STYLE": "rules.plan",
    "BLOCKS_PER_NODE": "rules.plan",
    "STYLES": "rules.plan",
    "PlanInputError": "rules.plan",
    "ShardPlan": "rules.plan",
    "Style": "rules.plan",
    "grid_for": "rules.plan",
    "min_blocks": "rules.plan",
    "plan_shards": "rules.plan",
    "style_deal": "rules.plan",
    "Settlement": "rules.settle",
    "settle": "rules.settle",
    "Store": "state.store",
    "WireFormatError": "protocol.wire",
    "pack": "protocol.wire",
    "unpack": "protocol.wire",
    "Worker": "nodes.worker",
}

__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "AXIS_OF_STYLE",
    "BLOCKS_PER_NODE",
    "STYLES",
    "Auditor",
    "AuthError",
    "BlobStore",
    "Coordinator",
    "CoordinatorConfig",
    "Ledger",
    "MeshClient",
    "MeshError",
    "MeshJobFailed",
    "MeshRequestError",
    "MeshUnavailableError",
    "PlanInputError",
    "ResultCheckFailed",
    "Settlement",
    "ShardPlan",
    "Store",
    "Style",
    "WireFormatError",
    "Worker",
    "check_nodes",
    "create_app",
    "grid_for",
    "min_blocks",
    "pack",
    "plan_shards",
    "serve",
    "settle",
    "sign_request",
    "style_deal",
    "unpack",
    "verify_request",
]
