"""One key, one process: a key in use by another live process is refused at registration (in the
service, over HTTP, and on the worker's machine by a lock beside the key)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.nodes.client import MeshClient, MeshRequestError
from ramnet.mesh.protocol.messages import RegisterRequest
from ramnet.mesh.state.errors import KeyInUseError
from ramnet.valkyrie import NodeKey
from tests.mesh_procs import Mesh, wait_for
from tests.mesh_server import served


@pytest.fixture
def coord(tmp_path: Path) -> Coordinator:
    coordinator = Coordinator(CoordinatorConfig(data_dir=tmp_path, node_timeout=15.0))
    yield coordinator  # type: ignore[misc]
    coordinator.close()


def test_a_second_live_process_on_a_key_is_refused(coord: Coordinator) -> None:
    node = NodeKey.generate().node_id
    coord.register(node, RegisterRequest(bond=5, instance="first"))
    with pytest.raises(KeyInUseError, match="in use by another running process") as caught:
        coord.register(node, RegisterRequest(bond=5, instance="second"))
    assert caught.value.http_status == 409
    assert "give each process its own --key-file" in str(caught.value)
    # The same process registering again, and a consumer on the key (no instance), are fine.
    coord.register(node, RegisterRequest(bond=5, instance="first"))
    coord.register(node, RegisterRequest())
    assert coord.store.get_node(node).instance == "first"


def test_a_key_whose_process_went_silent_may_register_again(coord: Coordinator) -> None:
    node = NodeKey.generate().node_id
    coord.register(node, RegisterRequest(instance="crashed"))
    with coord.store.transaction() as conn:  # its last request was 16 s ago
        conn.execute("UPDATE nodes SET last_seen = last_seen - 16, updated_at = updated_at - 16")
    coord.register(node, RegisterRequest(instance="restarted"))
    assert coord.store.get_node(node).instance == "restarted"


def test_the_refusal_is_one_line_over_http(tmp_path: Path) -> None:
    coordinator = Coordinator(CoordinatorConfig(data_dir=tmp_path))
    key = NodeKey.generate()
    with served(coordinator) as url:
        first, second = MeshClient(url, key, retry_for=5), MeshClient(url, key, retry_for=5)
        first.post_json("/v1/nodes", {"bond": 0, "instance": "aaaa"})
        with pytest.raises(MeshRequestError) as caught:
            second.post_json("/v1/nodes", {"bond": 0, "instance": "bbbb"})
        assert caught.value.status == 409
        assert "\n" not in str(caught.value)
        assert "own --key-file" in str(caught.value)
        with pytest.raises(MeshRequestError, match="400"):  # an instance is a short name
            second.post_json("/v1/nodes", {"bond": 0, "instance": "no spaces"})


def test_a_refused_process_trying_again_does_not_keep_the_other_alive(tmp_path: Path) -> None:
    # The first process goes silent (killed); the second, refused, tries again every 0.2 s: its
    # own registrations are no sign of life, so it gets the key once the first has been silent
    # for node_timeout. While the first one still makes requests, the second stays refused.
    coordinator = Coordinator(CoordinatorConfig(data_dir=tmp_path, node_timeout=1.5))
    key = NodeKey.generate()
    with served(coordinator) as url:
        first, second = MeshClient(url, key, retry_for=5), MeshClient(url, key, retry_for=5)
        first.post_json("/v1/nodes", {"bond": 0, "instance": "first"})
        alive_until = time.monotonic() + 3.0
        refusals = 0
        while True:
            if time.monotonic() < alive_until:
                first.get_json("/v1/jobs")  # a signed request: the first process lives
            try:
                second.post_json("/v1/nodes", {"bond": 0, "instance": "second"})
                break
            except MeshRequestError as exc:
                assert exc.status == 409
                assert time.monotonic() < alive_until + 30, "never got the key"
                refusals += 1
                time.sleep(0.2)
        assert time.monotonic() >= alive_until + 1.0  # not while the first one was alive
        assert refusals > 5
        assert coordinator.store.get_node(key.node_id).instance == "second"


def test_a_second_worker_on_the_same_key_file_says_so_in_one_line(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path)
    try:
        mesh.start_coordinator()
        mesh.start("w1", "worker", "start", "--key-file", "w.key", "--bond", "10")
        wait_for(tmp_path / "w1.log", "registered", 60)
        second = mesh.popen("worker", "start", "--key-file", "w.key", "--bond", "10")
        _, err = second.communicate(timeout=60)
        assert second.returncode == 2
        lines = err.decode().strip().splitlines()
        assert len(lines) == 1, lines
        assert "another ramnet process on this machine already runs with the key" in lines[0]
        assert "give each worker its own --key-file" in lines[0]
        assert mesh.procs["w1"].poll() is None  # the first worker runs on
    finally:
        mesh.stop()


def test_workers_without_a_key_file_on_one_machine_are_told_apart(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path)
    try:
        mesh.start_coordinator()
        mesh.start("w1", "worker", "start", "--bond", "10")
        wait_for(tmp_path / "w1.log", "registered", 60)
        second = mesh.popen("worker", "start", "--bond", "10")
        try:
            _, err = second.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            second.kill()
            raise
        assert second.returncode == 2
        assert "already runs with the default key" in err.decode()
    finally:
        mesh.stop()
