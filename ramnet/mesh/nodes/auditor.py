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

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from ramnet.mesh.protocol.routes import url
from ramnet.mesh.rules.audits import audit_findings

Log = Callable[[str], None]
LONG_POLL = 1.0


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
        #: This process's name at the coordinator (one key, one process).
        self.instance = secrets.token_hex(8)

    def register(self) -> dict[str, Any]:
        """Register with the coordinator (idempotent) and stake the bond."""
        # Idempotent (the bond is topped up to its target), so it is retried like a GET when
        # the connection breaks mid-request, as when the coordinator is restarting.
        reply: dict[str, Any] = self.client.post_json(
            url("register"),
            # One key, one process: refused while another live process uses this key.
            {"bond": self.bond, "payout_address": self.payout_address, "instance": self.instance},
            idempotent=True,
        )
        self.log(f"registered: balance {reply.get('balance')}, bond {reply.get('bond')}")
        return reply

    def step(self) -> bool:
        """Audit one optimistic job. Returns False when there was none."""
        meta, arrays = self.client.get_wire(url("next_audit", {"wait": LONG_POLL}))
        job_id = meta.get("job_id")
        if job_id is None:
            return False
        started = time.perf_counter()
        frauds, checked = audit_findings(meta, arrays, backend=self.backend)
        reply = self.client.post_json(url("audit_report", job_id=str(job_id)), {"frauds": frauds})
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
