"""The asymmetric topology: workers that only compute, auditors that check later.

A ``--no-prove`` worker posts its partials without commit-reveal; once every shard of a job is in
and any came from such a node, the job waits in ``optimistic``. An auditor (``ramnet auditor
start``, any registered node that holds no shard of the job) pulls the whole job: every tile,
every revealed copy's partials, and the groups of copies that must agree bit for bit (audit
blocks, mirrors). It checks every partial with Freivalds, recomputes the ones that fail, and
reports a fraud proof for each (one entry and its true value), or none. The coordinator checks
each proof in O(K) and the agreement of the groups itself, then reverts and slashes, or settles.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ramnet.mesh.protocol import routes as _api
from ramnet.mesh.rules.disputes import fraud_entry
from ramnet.mesh.rules.shard import check_partial, compute_shard, tile_map
from ramnet.orchid import BlockProduct

Log = Callable[[str], None]
LONG_POLL = 1.0

Reveals = Mapping[int, Mapping[BlockProduct, np.ndarray]]


def _groups(reveals: Reveals) -> dict[BlockProduct, list[int]]:
    holders: dict[BlockProduct, list[int]] = {}
    for copy in sorted(reveals):
        for block in reveals[copy]:
            holders.setdefault(block, []).append(copy)
    return {block: copies for block, copies in holders.items() if len(copies) > 1}


def copies_agree(reveals: Reveals) -> bool:
    """Whether every block computed by more than one copy came out bit for bit the same."""
    for block, copies in _groups(reveals).items():
        first = reveals[copies[0]][block]
        for copy in copies[1:]:
            other = reveals[copy][block]
            if other.dtype != first.dtype or not np.array_equal(other, first):
                return False
    return True


def audit_package(
    job_id: str,
    tiles_a: Mapping[tuple[int, int], np.ndarray],
    tiles_b: Mapping[tuple[int, int], np.ndarray],
    reveals: Reveals,
    nodes_of: Mapping[int, str],
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """What an auditor receives: ``a/i/k`` and ``b/k/j`` tiles, ``c/copy/i/j/k`` partials, and
    in the metadata each copy's node and blocks and the groups that must agree."""
    arrays: dict[str, np.ndarray] = {}
    for (i, k), tile in tiles_a.items():
        arrays[f"a/{i}/{k}"] = tile
    for (k, j), tile in tiles_b.items():
        arrays[f"b/{k}/{j}"] = tile
    copies = []
    for copy in sorted(reveals):
        blocks = sorted(reveals[copy], key=lambda b: (b.i, b.j, b.k))
        for b in blocks:
            arrays[f"c/{copy}/{b.i}/{b.j}/{b.k}"] = reveals[copy][b]
        copies.append(
            {"copy": copy, "node": nodes_of[copy], "blocks": [[b.i, b.j, b.k] for b in blocks]}
        )
    groups = [[[b.i, b.j, b.k], c] for b, c in sorted(_groups(reveals).items())]
    return {"job_id": job_id, "copies": copies, "groups": groups}, arrays


def audit_findings(
    meta: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    *,
    backend: str = "auto",
    security_bits: int = 40,
) -> tuple[list[dict[str, Any]], int]:
    """Check an audit package: every partial by Freivalds (floats: the range check).

    Returns:
        (fraud proofs for the partials that fail, one per partial; partials checked).
    """
    tiles_a, tiles_b = tile_map(arrays, "a"), tile_map(arrays, "b")
    frauds = []
    checked = 0
    for entry in meta["copies"]:
        copy, node = int(entry["copy"]), str(entry["node"])
        for i, j, k in entry["blocks"]:
            block = BlockProduct(i, j, k)
            partial = arrays[f"c/{copy}/{i}/{j}/{k}"]
            checked += 1
            if check_partial(block, partial, tiles_a, tiles_b, security_bits=security_bits):
                continue
            correct = compute_shard([block], tiles_a, tiles_b, backend=backend)[block]
            proof = fraud_entry(node, block, partial, correct, copy=copy)
            if proof is not None:
                frauds.append(proof)
    return frauds, checked


class Auditor:
    """An auditor node: pulls optimistic jobs, checks them, reports.

    Args:
        client: A ``MeshClient`` signed with the node's key.
        bond: The bond to stake on registration (a lying auditor loses it).
        payout_address: Where payments go.
        backend: ORCHID backend for recomputing failed blocks.
        log: Receives one line per event.
    """

    def __init__(
        self,
        client: Any,
        *,
        bond: int = 0,
        payout_address: str | None = None,
        backend: str = "auto",
        log: Log | None = None,
    ) -> None:
        self.client = client
        self.bond = bond
        self.payout_address = payout_address
        self.backend = backend
        self.log: Log = log or (lambda line: None)
        self.done = 0

    def register(self) -> dict[str, Any]:
        """Register with the coordinator (idempotent) and stake the bond."""
        # Idempotent (the bond is topped up to its target), so it is retried like a GET when
        # the connection breaks mid-request, as when the coordinator is restarting.
        reply: dict[str, Any] = self.client.post_json(
            _api.NODES,
            {"bond": self.bond, "payout_address": self.payout_address},
            idempotent=True,
        )
        self.log(f"registered: balance {reply.get('balance')}, bond {reply.get('bond')}")
        return reply

    def step(self) -> bool:
        """Audit one optimistic job. Returns False when there was none."""
        meta, arrays = self.client.get_wire(f"{_api.AUDITS}?wait={LONG_POLL:g}")
        job_id = meta.get("job_id")
        if job_id is None:
            return False
        started = time.perf_counter()
        frauds, checked = audit_findings(meta, arrays, backend=self.backend)
        reply = self.client.post_json(_api.audit_report(str(job_id)), {"frauds": frauds})
        self.done += 1
        self.log(
            f"job {job_id}: {reply.get('outcome')} ({checked} partials checked, {len(frauds)}"
            f" wrong, {time.perf_counter() - started:.3f} s)"
        )
        return True

    def run(self, stop: threading.Event) -> int:
        """Audit until ``stop`` is set. Returns the jobs audited."""
        self.register()
        while not stop.is_set():
            try:
                worked = self.step()
            except Exception as exc:  # the coordinator may be restarting: back off, go on
                self.log(f"error: {exc}")
                worked = False
                stop.wait(1.0)
            if not worked and stop.wait(0.01):
                break
        return self.done
