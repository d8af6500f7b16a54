"""Heartbeats: a node's signs of life while it computes and so sends nothing else.

The coordinator counts a node silent for its ``node_timeout`` (about 15 s) as gone and hands its
shards to others (``coordinator.liveness``). Every signed request is a sign of life; a worker
computing a long shard sends none, so a thread beats (``POST`` the ``heartbeat`` route) every
quarter of the coordinator's timeout while the computation runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ramnet.mesh.protocol.routes import url

__all__ = ["FIRST_BEAT", "MAX_BEAT", "Heartbeat"]

#: Seconds from the start of a computation to its first heartbeat (then a quarter of the
#: coordinator's ``node_timeout``, which each reply states).
FIRST_BEAT = 1.0

#: The longest time between beats, however long the coordinator waits.
MAX_BEAT = 5.0

Log = Callable[[str], None]


class Heartbeat:
    """Beats for one node while ``beating`` blocks are open.

    Args:
        client: The node's ``MeshClient`` (its connections are per thread, so the beating
            thread shares it safely).
        log: Receives one line when a beat fails (once until one succeeds again) and when a
            shard the node computes was handed to another node meanwhile.
        first: Seconds to the first beat.
    """

    def __init__(self, client: Any, log: Log, *, first: float = FIRST_BEAT) -> None:
        self.client = client
        self.log = log
        self.interval = first
        self.beats = 0
        self._failing = False

    def beat(self) -> dict[str, Any] | None:
        """Send one heartbeat; returns the reply (None: it failed, and was logged)."""
        try:
            reply: dict[str, Any] = self.client.post_json(url("heartbeat"), {}, idempotent=True)
        except Exception as exc:  # a beat is best effort: the next one may get through
            if not self._failing:
                self.log(f"heartbeat failed: {exc}")
            self._failing = True
            return None
        self._failing = False
        self.beats += 1
        timeout = reply.get("node_timeout")
        if isinstance(timeout, (int, float)) and timeout > 0:
            self.interval = min(MAX_BEAT, max(0.25, float(timeout) / 4))
        return reply

    @contextmanager
    def beating(self, shard_id: str | None = None) -> Iterator[None]:
        """Beat from a thread while the block runs.

        Args:
            shard_id: The shard being computed: if a reply no longer lists it, one line says it
                went to another node (its commit will be refused).
        """
        done = threading.Event()

        def run() -> None:
            warned = False
            while not done.wait(self.interval):
                reply = self.beat()
                held = None if reply is None else reply.get("shards")
                if shard_id is not None and isinstance(held, list) and shard_id not in held:
                    if not warned:
                        self.log(f"shard {shard_id}: went to another node meanwhile")
                    warned = True

        thread = threading.Thread(target=run, name="ramnet-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            # Not joined: a beat in flight ends on its own, and the thread with it.
            done.set()
