"""The mesh: coordinator, workers, sharding plan, settlement, ledger and state store.

The mesh composes ORCHID (compute) and VALKYRIE (checks); the CLI composes the mesh.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ramnet._lazy import lazy_getattr

if TYPE_CHECKING:
    from ramnet.mesh._audits import Auditor
    from ramnet.mesh._auth import AuthError, sign_request, verify_request
    from ramnet.mesh._blobs import BlobStore
    from ramnet.mesh._client import MeshClient, MeshError, MeshRequestError, MeshUnavailableError
    from ramnet.mesh._consumer import MeshJobFailed, ResultCheckFailed, check_nodes
    from ramnet.mesh._coordinator import Coordinator, CoordinatorConfig, create_app, serve
    from ramnet.mesh._ledger import Ledger
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
    from ramnet.mesh._proxy import Proxy, serve_proxy
    from ramnet.mesh._settle import Settlement, settle
    from ramnet.mesh._store import Store
    from ramnet.mesh._wire import WireFormatError, pack, unpack
    from ramnet.mesh._worker import Worker

# Loaded on first use: a consumer needs the client, not the coordinator's server stack.
_LAZY = {
    "Auditor": "_audits",
    "AuthError": "_auth",
    "sign_request": "_auth",
    "verify_request": "_auth",
    "BlobStore": "_blobs",
    "MeshClient": "_client",
    "MeshError": "_client",
    "MeshRequestError": "_client",
    "MeshUnavailableError": "_client",
    "MeshJobFailed": "_consumer",
    "ResultCheckFailed": "_consumer",
    "check_nodes": "_consumer",
    "Coordinator": "_coordinator",
    "CoordinatorConfig": "_coordinator",
    "create_app": "_coordinator",
    "serve": "_coordinator",
    "Ledger": "_ledger",
    "AXIS_OF_STYLE": "_plan",
    "BLOCKS_PER_NODE": "_plan",
    "STYLES": "_plan",
    "PlanInputError": "_plan",
    "ShardPlan": "_plan",
    "Style": "_plan",
    "grid_for": "_plan",
    "min_blocks": "_plan",
    "plan_shards": "_plan",
    "style_deal": "_plan",
    "Proxy": "_proxy",
    "serve_proxy": "_proxy",
    "Settlement": "_settle",
    "settle": "_settle",
    "Store": "_store",
    "WireFormatError": "_wire",
    "pack": "_wire",
    "unpack": "_wire",
    "Worker": "_worker",
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
    "Proxy",
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
    "serve_proxy",
    "settle",
    "sign_request",
    "style_deal",
    "unpack",
    "verify_request",
]
