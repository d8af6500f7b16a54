"""``ramnet ui``: RAMNET's local web app, served by RAMNET itself.

Run a job (sovereign or mesh) with live progress and VALKYRIE's verdict, verify a trace, show the
node's identity and bind a payout address with a browser wallet (EIP-712), and lend this machine
as a mesh worker. Server-rendered pages (Jinja2), htmx and server-sent events, with the vendored
front-end files of ``ramnet._static``: the pages ask no other host for anything.

A layer beside ``sidecar`` and ``spark``: it uses the mesh, VALKYRIE and ORCHID; the runners of
``ramnet run`` come in through ``runners.Runners`` (``ramnet/commands/ui.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ramnet._lazy import lazy_getattr

if TYPE_CHECKING:
    from ramnet.ui.app import UiConfig, create_app
    from ramnet.ui.runners import MeshRequest, Operands, Runners, SovereignRequest

_LAZY = {
    "UiConfig": "app",
    "create_app": "app",
    "MeshRequest": "runners",
    "Operands": "runners",
    "Runners": "runners",
    "SovereignRequest": "runners",
}
__getattr__ = lazy_getattr(__name__, _LAZY, globals())

__all__ = ["MeshRequest", "Operands", "Runners", "SovereignRequest", "UiConfig", "create_app"]
