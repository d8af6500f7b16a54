"""The validator role: settle a dispute this node was drawn for, with fraud proofs.

A worker started with ``--validator`` takes this role between shards (``Worker.step``). The
judgement itself is a rule (``rules.disputes.judge``); this module fetches the package, asks the
rule, and posts the verdict.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ramnet.mesh.protocol.routes import url
from ramnet.mesh.rules.disputes import claim_opens, judge

Log = Callable[[str], None]


def validate_one(client: Any, *, backend: str, log: Log, lie: bool = False) -> bool:
    """Settle one dispute this validator was drawn for.

    Args:
        client: The node's ``MeshClient``.
        backend: ORCHID backend for recomputing the contested blocks.
        log: Receives one line per event.
        lie: A testing aid (``--misbehave lie``): clear the cheaters and accuse an honest node.

    Returns:
        False when there was no dispute to settle.

    Raises:
        MeshError: The coordinator refused or could not be reached.
    """
    meta, arrays = client.get_wire(url("next_validation", {"wait": 0}))
    dispute_id = meta.get("dispute_id")
    if dispute_id is None:
        return False
    started = time.perf_counter()
    frauds, notes = judge(meta, arrays, backend=backend)
    for note in notes:
        log(f"dispute {dispute_id}: {note}")
    if frauds is None:
        return True
    if lie:
        guilty = {f["node"] for f in frauds}
        opened = [c for c in meta["claims"] if claim_opens(c, arrays[c["name"]])]
        honest = [c for c in opened if c["node"] not in guilty]
        frauds = [
            {"node": c["node"], "copy": c["copy"], "block": c["block"], "row": 0, "col": 0}
            for c in honest[:1]
        ]
    reply = client.post_json(url("verdict", dispute_id=int(dispute_id)), {"frauds": frauds})
    log(
        f"dispute {dispute_id}: {reply.get('outcome')} ({len(meta['blocks'])} block products"
        f" recomputed, {time.perf_counter() - started:.3f} s)"
    )
    return True
