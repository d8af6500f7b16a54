"""A node's heartbeats on their own (``nodes.heartbeat``), against a scripted client: they beat
while a block runs and stop after it, pace themselves by the coordinator's timeout, report a
shard that went elsewhere once, and a failing beat is logged once and never raised."""

from __future__ import annotations

import threading
import time
from typing import Any

from ramnet.mesh.nodes.heartbeat import MAX_BEAT, Heartbeat
from ramnet.mesh.protocol.routes import url


class Scripted:
    """Answers each heartbeat with the next reply (an exception is raised)."""

    def __init__(self, *replies: Any) -> None:
        self.replies = list(replies)
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def post_json(self, path: str, obj: Any, *, idempotent: bool = False) -> Any:
        with self.lock:
            self.calls.append(path)
            reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply


def _until(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_beats_while_the_block_runs_and_paces_by_the_timeout() -> None:
    client = Scripted({"node_timeout": 1.0, "shards": ["7"]})
    logs: list[str] = []
    beat = Heartbeat(client, logs.append, first=0.05)
    with beat.beating("7"):
        _until(lambda: beat.beats >= 3)
    assert beat.interval == 0.25  # a quarter of the coordinator's 1 s
    assert set(client.calls) == {url("heartbeat")}
    after = len(client.calls)
    time.sleep(0.6)  # stopped: at most the beat in flight lands
    assert len(client.calls) <= after + 1
    assert logs == []
    assert Heartbeat(Scripted({"node_timeout": 600.0, "shards": []}), logs.append).beat()
    slow = Heartbeat(Scripted({"node_timeout": 600.0, "shards": []}), logs.append)
    slow.beat()
    assert slow.interval == MAX_BEAT


def test_a_shard_gone_elsewhere_is_said_once_and_failures_are_logged_once() -> None:
    client = Scripted(
        ConnectionError("refused"), ConnectionError("refused"), {"node_timeout": 2.0, "shards": []}
    )
    logs: list[str] = []
    beat = Heartbeat(client, logs.append, first=0.02)
    with beat.beating("9"):
        _until(lambda: beat.beats >= 3)
    assert logs[0] == "heartbeat failed: refused" and len(logs) == 2, logs
    assert logs[1] == "shard 9: went to another node meanwhile"
