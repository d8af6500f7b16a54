"""Long polls wait on the event loop, not in a thread each: more polls than the server has
threads leave its other requests answered at once; one node's open polls are capped (429 with
Retry-After), and the client waits that long and tries again."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ramnet.mesh.coordinator.admission import Admission
from ramnet.mesh.coordinator.app import create_app, http_protocol
from ramnet.mesh.coordinator.polls import MAX_POLLS_PER_NODE, PollLimitError, Polls
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.nodes.client import MeshClient
from ramnet.mesh.protocol.auth import sign_request
from ramnet.mesh.protocol.routes import url
from ramnet.valkyrie import NodeKey
from tests.mesh_server import serve_app
from tests.scripted_http import Script, read_request, scripted_servers


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[tuple[str, Coordinator]]:
    coord = Coordinator(CoordinatorConfig(data_dir=tmp_path / "state"))
    protocol = http_protocol(coord.config.max_body, Admission(coord.store, coord.config.max_body))
    try:
        with serve_app(create_app(coord), protocol) as port:
            yield f"http://127.0.0.1:{port}", coord
    finally:
        coord.close()


def _register(base: str, count: int) -> list[NodeKey]:
    keys = [NodeKey.generate() for _ in range(count)]
    for key in keys:
        with MeshClient(base, key) as client:
            client.post_json(url("register"), {"bond": 0}, idempotent=True)
    return keys


def _poll(base: str, key: NodeKey, replies: list[httpx.Response]) -> None:
    target = url("next_audit", {"wait": 5})
    replies.append(httpx.get(base + target, headers=sign_request(key, "GET", target), timeout=60))


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_more_polls_than_threads_leave_other_requests_answered(
    coordinator: tuple[str, Coordinator],
) -> None:
    base, coord = coordinator
    # Starlette's thread pool has 40 threads: a poll that held one each would take them all.
    keys = _register(base, 60)
    replies: list[httpx.Response] = []
    threads = [threading.Thread(target=_poll, args=(base, key, replies)) for key in keys]
    for thread in threads:
        thread.start()
    _until(lambda: coord.polls.open_polls() == 60, "the 60 polls never were all open")
    # Answered while every poll is still held.
    target = url("job_status", job_id="0" * 32)
    answer = httpx.get(base + target, headers=sign_request(keys[0], "GET", target), timeout=60)
    assert answer.status_code == 404
    assert coord.polls.open_polls() == 60 and replies == []
    for thread in threads:
        thread.join()
    assert [r.status_code for r in replies] == [200] * 60


def test_a_held_poll_answers_as_soon_as_the_state_changes(
    coordinator: tuple[str, Coordinator],
) -> None:
    base, coord = coordinator
    (key,) = _register(base, 1)
    replies: list[httpx.Response] = []
    thread = threading.Thread(target=_poll, args=(base, key, replies))
    thread.start()
    _until(lambda: coord.polls.open_polls() == 1, "the poll never was open")
    coord.polls.notify()  # nothing new for it: it stays held
    time.sleep(0.2)
    assert replies == [] and coord.polls.open_polls() == 1
    thread.join()
    assert replies[0].status_code == 200


def test_one_node_s_open_polls_are_capped(coordinator: tuple[str, Coordinator]) -> None:
    base, coord = coordinator
    (key,) = _register(base, 1)
    replies: list[httpx.Response] = []
    threads = [
        threading.Thread(target=_poll, args=(base, key, replies)) for _ in range(MAX_POLLS_PER_NODE)
    ]
    for thread in threads:
        thread.start()
    _until(lambda: coord.polls.open_polls() == MAX_POLLS_PER_NODE, "the polls never were open")
    target = url("next_audit", {"wait": 5})
    refused = httpx.get(base + target, headers=sign_request(key, "GET", target), timeout=60)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert f"already holds {MAX_POLLS_PER_NODE} long polls" in refused.json()["error"]
    # Another node is not held back by it, and a request that does not wait is not capped.
    (other,) = _register(base, 1)
    extra: list[httpx.Response] = []
    _poll(base, other, extra)
    status = url("job_status", job_id="0" * 32)
    assert httpx.get(base + status, headers=sign_request(key, "GET", status)).status_code == 404
    for thread in threads:
        thread.join()
    assert [r.status_code for r in replies + extra] == [200] * (MAX_POLLS_PER_NODE + 1)
    assert coord.polls.open_polls() == 0


def test_the_total_of_open_polls_is_capped() -> None:
    polls = Polls(per_node=2, total=3)
    with polls.slot("a"), polls.slot("a"), polls.slot("b"):
        with pytest.raises(PollLimitError, match="at most 3"), polls.slot("c"):
            pass
        with pytest.raises(PollLimitError, match="at most 2"), polls.slot("a"):
            pass
    assert polls.open_polls() == 0
    with polls.slot("c"):
        assert polls.open_polls() == 1


@pytest.fixture
def scripted() -> Iterator[Callable[[Script], tuple[str, list[int]]]]:
    yield from scripted_servers()


def test_the_client_waits_the_retry_after_of_a_429_and_tries_again(scripted) -> None:  # type: ignore[no-untyped-def]
    arrived: list[float] = []

    def busy_then_ok(conn: socket.socket, n: int) -> None:
        while True:
            head, _ = read_request(conn)
            if not head:
                return
            arrived.append(time.monotonic())
            if len(arrived) == 1:
                body = b'{"error": "too many long polls"}'
                conn.sendall(
                    b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n"
                    b"Content-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            else:
                body = b'{"status": "ok"}'
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    base, _ = scripted(busy_then_ok)
    with MeshClient(base, NodeKey.generate(), backoff=0.01) as client:
        assert client.get_json("/health") == {"status": "ok"}
    assert len(arrived) == 2
    assert arrived[1] - arrived[0] >= 0.9  # the server's Retry-After, not the 10 ms backoff


def test_only_a_few_polls_wait_in_threads() -> None:
    polls = Polls(in_threads=2)
    with polls.slot("a") as first, polls.slot("b") as second, polls.slot("c") as third:
        assert (first, second, third) == (True, True, False)
    with polls.slot("d") as again:
        assert again  # the thread slots came back


def test_a_poll_on_the_event_loop_answers_after_a_notification() -> None:
    import asyncio

    polls = Polls()
    ready: list[str] = []
    checks: list[int] = []

    def request() -> list[str]:
        checks.append(1)
        return polls.wait_for(lambda: ready[:1], 5)

    async def main() -> list[str]:
        async def in_thread(fn: Callable[..., list[str]], *args: object) -> list[str]:
            return await asyncio.to_thread(fn, *args)

        task = asyncio.ensure_future(polls.hold(request, 5, in_thread))
        await asyncio.sleep(0.3)
        assert not task.done()
        ready.append("work")
        polls.notify()
        return await asyncio.wait_for(task, 30)

    assert asyncio.run(main()) == ["work"]
    assert len(checks) >= 2  # checked, waited off the thread, checked again
