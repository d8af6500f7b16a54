"""The mesh: coordinator, workers, auditors and consumers of verifiable matrix jobs.

The mesh composes ORCHID (compute) and VALKYRIE (checks); the CLI composes the mesh. This package
exports what a user of the library needs: the client and the node roles, the coordinator's
settings and its server, the sharding plan's public functions, and the errors a caller catches.
Everything else (the state store, the ledger, the wire format, request signing, the rules) is
imported from its own module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ramnet._lazy import lazy_getattr

if TYPE_CHECKING:  # the names of _LAZY, re-exported for type checkers
    from ramnet.mesh.coordinator.server import serve as serve
    from ramnet.mesh.coordinator.service import CoordinatorConfig as CoordinatorConfig
    from ramnet.mesh.nodes.auditor import Auditor as Auditor
    from ramnet.mesh.nodes.client import MeshClient as MeshClient
    from ramnet.mesh.nodes.client import MeshError as MeshError
    from ramnet.mesh.nodes.client import MeshProtocolError as MeshProtocolError
    from ramnet.mesh.nodes.client import MeshRequestError as MeshRequestError
    from ramnet.mesh.nodes.client import MeshUnavailableError as MeshUnavailableError
    from ramnet.mesh.nodes.consumer import MeshJobFailed as MeshJobFailed
    from ramnet.mesh.nodes.consumer import ResultCheckFailed as ResultCheckFailed
    from ramnet.mesh.nodes.worker import Worker as Worker
    from ramnet.mesh.rules.plan import AXIS_OF_STYLE as AXIS_OF_STYLE
    from ramnet.mesh.rules.plan import BLOCKS_PER_NODE as BLOCKS_PER_NODE
    from ramnet.mesh.rules.plan import STYLES as STYLES
    from ramnet.mesh.rules.plan import PlanInputError as PlanInputError
    from ramnet.mesh.rules.plan import ShardPlan as ShardPlan
    from ramnet.mesh.rules.plan import Style as Style
    from ramnet.mesh.rules.plan import check_nodes as check_nodes
    from ramnet.mesh.rules.plan import grid_for as grid_for
    from ramnet.mesh.rules.plan import min_blocks as min_blocks
    from ramnet.mesh.rules.plan import plan_shards as plan_shards
    from ramnet.mesh.rules.plan import style_deal as style_deal

# Each exported name -> the module that defines it, loaded on first use: a consumer needs the
# client, not the coordinator's server stack. The one list of what the package exports.
_LAZY = {
    "MeshClient": "nodes.client",
    "MeshError": "nodes.client",
    "MeshProtocolError": "nodes.client",
    "MeshRequestError": "nodes.client",
    "MeshUnavailableError": "nodes.client",
    "Worker": "nodes.worker",
    "Auditor": "nodes.auditor",
    "MeshJobFailed": "nodes.consumer",
    "ResultCheckFailed": "nodes.consumer",
    "CoordinatorConfig": "coordinator.service",
    "serve": "coordinator.server",
    "AXIS_OF_STYLE": "rules.plan",
    "BLOCKS_PER_NODE": "rules.plan",
    "STYLES": "rules.plan",
    "PlanInputError": "rules.plan",
    "ShardPlan": "rules.plan",
    "Style": "rules.plan",
    "check_nodes": "rules.plan",
    "grid_for": "rules.plan",
    "min_blocks": "rules.plan",
    "plan_shards": "rules.plan",
    "style_deal": "rules.plan",
}

__getattr__ = lazy_getattr(__name__, _LAZY, globals())

__all__ = sorted(_LAZY)
