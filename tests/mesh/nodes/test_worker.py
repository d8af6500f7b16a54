"""The worker loop against a scripted coordinator: compute, commit, reveal; hand back on stop."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ramnet import orchid
from ramnet.mesh import Worker
from ramnet.mesh.rules.shard import result_digest
from ramnet.orchid import BlockProduct


class Script:
    """A fake MeshClient: one shard of two blocks; the reveal opens after ``open_after`` polls."""

    def __init__(self, open_after: int, stop: threading.Event | None = None) -> None:
        rng = np.random.default_rng(0)
        self.a = rng.integers(-128, 128, (6, 5), dtype=np.int8)
        self.b = rng.integers(-128, 128, (5, 4), dtype=np.int8)
        self.open_after, self.stop = open_after, stop
        self.calls: list[tuple[str, Any]] = []
        self.polls = 0
        self.served = False
        self.signed: list[Any] = []  # each reveal's signed_body

    def post_json(self, path: str, obj: Any, **_: Any) -> dict[str, Any]:
        self.calls.append((path, obj))
        if path.endswith("/commit"):
            return {"state": "committed", "reveal": False}
        return {"state": "ok", "balance": 0, "bond": 0}

    def get_wire(self, path: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        if self.served:
            return {"shard_id": None}, {}
        self.served = True
        meta = {"shard_id": "7", "job_id": "j", "blocks": [[0, 0, 0], [1, 0, 0]]}
        arrays = {"a/0/0": self.a[:3], "a/1/0": self.a[3:], "b/0/0": self.b}
        return meta, arrays

    def get_json(self, path: str) -> dict[str, Any]:
        self.polls += 1
        if self.stop is not None:
            self.stop.set()
        return {"state": "committed", "reveal": self.polls > self.open_after}

    def post_wire(self, path: str, meta: Any, arrays: dict[str, np.ndarray], **kw: Any) -> Any:
        self.calls.append((path, arrays))
        self.signed.append(kw.get("signed_body"))
        return {"state": "revealed"}


def test_worker_commits_then_reveals_what_it_committed() -> None:
    script = Script(open_after=2)
    worker = Worker(script)
    for _ in range(5):  # claim and commit, then poll until the reveal opens
        worker.step(threading.Event())
    assert worker.done == 1
    commit = next(obj for path, obj in script.calls if path.endswith("/commit"))
    reveal = next(obj for path, obj in script.calls if path.endswith("/reveal"))
    partials = {BlockProduct(*map(int, name.split("/")[1:])): x for name, x in reveal.items()}
    assert commit["digest"] == result_digest(partials).hex()
    np.testing.assert_array_equal(
        partials[BlockProduct(1, 0, 0)], orchid.matmul(script.a[3:], script.b)
    )
    # The reveal is signed over that commitment, not over a second hash of its body; so is each
    # reveal again (this script never reports the result stored).
    assert script.signed and set(script.signed) == {f"commitment:{commit['digest']}"}


def test_worker_told_to_stop_hands_its_shard_back() -> None:
    stop = threading.Event()
    script = Script(open_after=10**6, stop=stop)
    assert Worker(script).run(stop) == 0
    paths = [path for path, _ in script.calls]
    assert paths[-1].endswith("/release")
    assert not any(path.endswith("/reveal") for path in paths)


class Restarting(Script):
    """The coordinator answers the reveal without having stored the result, then restarts and
    loses it: the shard awaits the reveal again, and after the second reveal it is stored."""

    def __init__(self) -> None:
        super().__init__(open_after=0)
        self.reveals = 0

    def get_json(self, path: str) -> dict[str, Any]:
        self.polls += 1
        if self.reveals == 0:
            return {"state": "committed", "reveal": True}
        if self.reveals == 1:  # restarted: the reveal is awaited again
            return {"state": "committed", "reveal": True, "stored": False}
        return {"state": "revealed", "reveal": False, "stored": True}

    def post_wire(self, path: str, meta: Any, arrays: dict[str, np.ndarray], **_: Any) -> Any:
        self.calls.append((path, arrays))
        self.reveals += 1
        return {"state": "revealed", "stored": False}


def test_a_revealed_result_is_kept_until_stored_and_revealed_again_if_lost() -> None:
    script = Restarting()
    worker = Worker(script)
    # Claim and commit; reveal; (the reply to the reveal is fresh: not asked again at once);
    # ask, and reveal again.
    for _ in range(4):
        worker.step(threading.Event())
    reveals = [arrays for path, arrays in script.calls if path.endswith("/reveal")]
    assert len(reveals) == 2  # the same result, sent again after the "restart"
    assert reveals[0].keys() == reveals[1].keys()
    assert all(np.array_equal(reveals[0][k], reveals[1][k]) for k in reveals[0])
    assert worker._unstored  # still not stored: kept
    assert list(worker._commitments) == list(worker._unstored)  # its reveals are signed over it
    for _ in range(2):
        worker.step(threading.Event())
    assert not worker._unstored  # stored now: forgotten
    assert worker.done == 1
    worker.step(threading.Event())
    assert worker._commitments == {}  # and so is its commitment


def test_a_shard_just_committed_or_revealed_is_not_asked_about_at_once() -> None:
    # The commit's and the reveal's replies tell the shard's state: the next step does not ask
    # the coordinator again before it has looked for other work (two requests fewer a shard).
    script = Restarting()
    worker = Worker(script)
    worker.step(threading.Event())  # claim, compute, commit
    assert script.polls == 0
    worker.step(threading.Event())  # looks for work first, then polls the shard: reveals it
    assert script.polls == 1 and worker._unstored
    worker.step(threading.Event())  # the reveal's reply is fresh: no poll
    assert script.polls == 1
    worker.step(threading.Event())  # now it asks
    assert script.polls == 2


class CutOff(Script):
    """The first reveal is cut off by a coordinator that dies; the restarted one awaits it."""

    def __init__(self) -> None:
        super().__init__(open_after=0)
        self.reveals = 0

    def get_json(self, path: str) -> dict[str, Any]:
        if self.reveals >= 2:
            return {"state": "revealed", "reveal": False, "stored": True}
        return {"state": "committed", "reveal": True, "stored": False}

    def post_wire(self, path: str, meta: Any, arrays: dict[str, np.ndarray], **_: Any) -> Any:
        from ramnet.mesh import MeshUnavailableError

        self.calls.append((path, arrays))
        self.reveals += 1
        if self.reveals == 1:
            raise MeshUnavailableError("cannot reach the coordinator (reset)")
        return {"state": "revealed", "stored": True}


def test_a_reveal_cut_off_is_sent_again_and_counted_once() -> None:
    script = CutOff()
    worker = Worker(script)
    worker.step(threading.Event())  # claim, compute, commit
    try:
        worker.step(threading.Event())  # the reveal opens; the request is cut off
    except Exception as exc:  # Worker.run logs this and goes on
        assert "cannot reach" in str(exc)
    assert worker.done == 0 and worker._unstored  # kept for another try
    worker.step(threading.Event())  # the coordinator awaits the reveal again: sent, stored
    assert script.reveals == 2 and worker.done == 1 and not worker._unstored


# --------------------------------------------------------------------------------------------
# A worker the coordinator bans stops; one it forgot registers again (a real coordinator)


def test_a_banned_worker_stops_with_the_refusal_and_a_forgotten_one_registers_again(
    tmp_path: Any,
) -> None:
    import pytest

    from ramnet.mesh import MeshClient, MeshRequestError
    from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
    from ramnet.valkyrie import NodeKey
    from tests.mesh_server import served

    coordinator = Coordinator(CoordinatorConfig(tmp_path / "state"))
    lines: list[str] = []
    key = NodeKey.generate()
    node = key.node_id
    with served(coordinator) as base, MeshClient(base, key) as client:
        worker = Worker(client, bond=1, poll=0.05, log=lines.append)
        worker.register()

        # Forgotten (as by a coordinator on a fresh data folder): the next request is refused
        # as unregistered, and the worker registers again instead of failing every poll.
        def forget() -> None:
            with coordinator.store.transaction() as conn:
                conn.execute("DELETE FROM nodes WHERE node_id = ?", (node,))

        stop = threading.Event()
        threading.Timer(0.5, forget).start()
        threading.Timer(4.0, stop.set).start()
        worker.run(stop)
        assert any(line.startswith("registering again:") for line in lines), lines
        assert coordinator.store.get_node(node).banned is False
        # Banned: the worker stops at once with the coordinator's one-line refusal.
        coordinator.store.set_banned(node, True)
        lines.clear()
        stop = threading.Event()
        guard = threading.Timer(20.0, stop.set)  # a worker that kept polling would end here
        guard.start()
        with pytest.raises(MeshRequestError, match="banned") as refused:
            # Its bond is still staked, so registering again stakes nothing and lifts no ban.
            worker.run(stop)
        guard.cancel()
        assert refused.value.status == 403
        assert not stop.is_set()
        assert [line for line in lines if line.startswith("stopping:")], lines
