"""The sidecar's ORCHID daemon: in-process for the compute, as a real process for the command.

Partials must equal numpy's products (and be bit for bit what the unified worker computes), no
shared-memory segment may outlive a request, and the socket carries only small control frames.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ramnet._errors import InvalidInputError
from ramnet.mesh.transport.server import listen_tcp, run_http
from ramnet.orchid import BlockProduct, matmul
from ramnet.sidecar import (
    DaemonClient,
    DaemonRequestError,
    DaemonServer,
    DaemonUnavailableError,
    SidecarError,
    default_socket_path,
)
from ramnet.sidecar.daemon import create_daemon_app
from ramnet.sidecar.frames import MAX_FRAME, encode_frame
from tests.conftest import assert_product, random_matrix
from tests.mesh_procs import free_port, ramnet

DEADLINE = 30.0


def own_segments() -> set[str]:
    """This process's shared-memory segments (the client creates them)."""
    try:
        return {n for n in os.listdir("/dev/shm") if n.startswith(f"ramnet_{os.getpid()}_")}
    except FileNotFoundError:  # not Linux: nothing to look at
        return set()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to 107 bytes; pytest's tmp_path can be long.
    folder = Path(tempfile.mkdtemp(prefix="rnd"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def daemon(short_dir: Path) -> Iterator[DaemonServer]:
    server = DaemonServer(short_dir / "d.sock", threads=2)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def shard(
    rng: np.random.Generator, rows: list[int], inner: list[int], cols: list[int], dtype: str
) -> tuple[
    list[BlockProduct], dict[tuple[int, int], np.ndarray], dict[tuple[int, int], np.ndarray]
]:
    """Every block product of a grid with the given (awkward) block sizes, and its tiles."""
    tiles_a = {
        (i, k): random_matrix(rng, (m, kk), dtype, kk)
        for i, m in enumerate(rows)
        for k, kk in enumerate(inner)
    }
    tiles_b = {
        (k, j): random_matrix(rng, (kk, n), dtype, kk)
        for k, kk in enumerate(inner)
        for j, n in enumerate(cols)
    }
    blocks = [
        BlockProduct(i, j, k)
        for i in range(len(rows))
        for j in range(len(cols))
        for k in range(len(inner))
    ]
    return blocks, tiles_a, tiles_b


# ---- compute ----


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "float32", "float64"])
def test_partials_match_numpy(daemon: DaemonServer, dtype: str) -> None:
    rng = np.random.default_rng(11)
    blocks, tiles_a, tiles_b = shard(rng, [1, 17, 64], [3, 65], [1, 31], dtype)
    before = own_segments()
    client = DaemonClient(daemon.socket_path)
    partials, trace = client.compute(blocks, tiles_a, tiles_b)
    assert own_segments() == before  # no segment outlives the request
    assert set(partials) == set(blocks)
    for block, got in partials.items():
        a, b = tiles_a[(block.i, block.k)], tiles_b[(block.k, block.j)]
        # Exactly what the unified worker computes (audit copies agree bit for bit) ...
        np.testing.assert_array_equal(got, matmul(a, b, threads=1))
        # ... and numpy's product.
        assert_product(got, a, b)
        expected = {"int8": np.int32, "float32": np.float32, "float64": np.float64}
        assert got.dtype == expected.get(dtype, np.int64)
        assert got.flags.owndata  # a copy: the segment is gone
    assert trace["ok"] is True and trace["dtype"] == dtype
    assert len(trace["blocks"]) == len(blocks)
    assert {tuple(r["block"]) for r in trace["blocks"]} == {(b.i, b.j, b.k) for b in blocks}
    for record in trace["blocks"]:
        assert record["seconds"] >= 0 and record["code_path"] and record["backend"]
    assert trace["shm"]["bytes_in"] > 0 and trace["shm"]["bytes_out"] > 0


@pytest.mark.parametrize("dtype", ["int8", "int16", "float32"])
@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.data(),
    rows=st.lists(st.integers(1, 40), min_size=1, max_size=3),
    inner=st.lists(st.integers(1, 70), min_size=1, max_size=2),
    cols=st.lists(st.integers(1, 40), min_size=1, max_size=3),
)
def test_random_awkward_shapes(
    daemon: DaemonServer,
    dtype: str,
    data: st.DataObject,
    rows: list[int],
    inner: list[int],
    cols: list[int],
) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    blocks, tiles_a, tiles_b = shard(rng, rows, inner, cols, dtype)
    subset = data.draw(st.lists(st.sampled_from(blocks), min_size=1, unique=True))
    partials, _ = DaemonClient(daemon.socket_path).compute(subset, tiles_a, tiles_b)
    for block in subset:
        a, b = tiles_a[(block.i, block.k)], tiles_b[(block.k, block.j)]
        np.testing.assert_array_equal(partials[block], matmul(a, b, threads=1))


def test_socket_carries_only_small_frames(daemon: DaemonServer) -> None:
    rng = np.random.default_rng(2)
    # 1.5 MiB of int8 tiles in, 2 MiB of int32 partials back.
    blocks, tiles_a, tiles_b = shard(rng, [512, 512], [1024], [512], "int8")
    client = DaemonClient(daemon.socket_path)
    before = own_segments()
    partials, _ = client.compute(blocks, tiles_a, tiles_b)
    assert own_segments() == before
    assert client.shm_bytes > 3.5 * 2**20
    assert client.socket_bytes < 2048, client.socket_bytes
    block = blocks[1]
    np.testing.assert_array_equal(
        partials[block],
        tiles_a[(1, 0)].astype(np.int64) @ tiles_b[(0, 0)].astype(np.int64),
    )
    info = daemon.info()
    assert info["socket_bytes"] < 2048 and info["shm_bytes"] >= client.shm_bytes - 4096


def test_parallel_clients(daemon: DaemonServer) -> None:
    rng = np.random.default_rng(3)
    jobs = [shard(rng, [33], [47, 5], [29, 2], "int16") for _ in range(6)]
    results: list[object] = [None] * len(jobs)

    def run(n: int) -> None:
        blocks, a, b = jobs[n]
        results[n] = DaemonClient(daemon.socket_path).compute(blocks, a, b)[0]

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    for (blocks, a, b), partials in zip(jobs, results, strict=True):
        assert isinstance(partials, dict)
        for block in blocks:
            expected = a[(block.i, block.k)].astype(np.int64) @ b[(block.k, block.j)]
            np.testing.assert_array_equal(partials[block], expected)


# ---- errors: a clear error, no leak, the daemon keeps serving ----


def test_bad_operands_are_refused_and_cleaned_up(daemon: DaemonServer) -> None:
    client = DaemonClient(daemon.socket_path)
    a = {(0, 0): np.array([[np.nan, 1.0]], np.float32)}
    b = {(0, 0): np.ones((2, 2), np.float32)}
    before = own_segments()
    with pytest.raises(DaemonRequestError, match=r"NaN|finite") as caught:
        client.compute([BlockProduct(0, 0, 0)], a, b)
    assert caught.value.kind == "invalid"
    assert own_segments() == before
    assert daemon.traces()[-1]["ok"] is False
    # The daemon goes on serving.
    a = {(0, 0): np.ones((1, 2), np.float32)}
    partials, _ = client.compute([BlockProduct(0, 0, 0)], a, b)
    np.testing.assert_array_equal(partials[BlockProduct(0, 0, 0)], [[2.0, 2.0]])


def test_client_refuses_bad_tiles_before_sending(daemon: DaemonServer) -> None:
    client = DaemonClient(daemon.socket_path)
    block = BlockProduct(0, 0, 0)
    with pytest.raises(InvalidInputError, match="not provided"):
        client.compute([block], {}, {(0, 0): np.ones((2, 2), np.int8)})
    with pytest.raises(InvalidInputError, match="fit"):
        client.compute(
            [block], {(0, 0): np.ones((2, 3), np.int8)}, {(0, 0): np.ones((2, 2), np.int8)}
        )
    with pytest.raises(InvalidInputError, match="share"):
        client.compute(
            [block], {(0, 0): np.ones((2, 2), np.int8)}, {(0, 0): np.ones((2, 2), np.int16)}
        )
    with pytest.raises(InvalidInputError, match="share"):
        client.compute(
            [block], {(0, 0): np.ones((2, 2), np.uint8)}, {(0, 0): np.ones((2, 2), np.uint8)}
        )
    assert client.compute([], {}, {})[0] == {}
    assert client.socket_bytes == 0


def test_unreachable_daemon(short_dir: Path) -> None:
    client = DaemonClient(short_dir / "none.sock")
    with pytest.raises(DaemonUnavailableError, match="cannot reach the daemon"):
        client.ping()
    before = own_segments()
    with pytest.raises(DaemonUnavailableError):
        client.compute([BlockProduct(0, 0, 0)], {(0, 0): np.ones((2, 2), np.int8)},
                       {(0, 0): np.ones((2, 2), np.int8)})  # fmt: skip
    assert own_segments() == before


def _fake_daemon(path: Path, answer: bytes | None) -> threading.Thread:
    # A "daemon" that reads one request, then answers ``answer`` (None: hangs up).
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                (n,) = struct.unpack(">I", conn.recv(4))
                while n > 0:
                    n -= len(conn.recv(n))
                if answer is not None:
                    conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    "answer",
    [None, b"\x00\x00\x01", struct.pack(">I", MAX_FRAME + 1), encode_frame({"v": 1, "op": "x"})],
    ids=["hangs up", "truncated", "oversized", "nonsense"],
)
def test_misbehaving_daemon_gives_errors_and_no_leak(short_dir: Path, answer: bytes | None) -> None:
    thread = _fake_daemon(short_dir / "fake.sock", answer)
    before = own_segments()
    client = DaemonClient(short_dir / "fake.sock", timeout=DEADLINE)
    with pytest.raises(SidecarError):
        client.compute([BlockProduct(0, 0, 0)], {(0, 0): np.ones((2, 2), np.int8)},
                       {(0, 0): np.ones((2, 2), np.int8)})  # fmt: skip
    thread.join(DEADLINE)
    assert own_segments() == before


def test_garbage_on_the_socket_gets_a_protocol_error(daemon: DaemonServer) -> None:
    for junk in (b"GET / HTTP/1.1\r\n\r\n", struct.pack(">I", 5) + b"\xff\xff\xff\xff\xff"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(DEADLINE)
            s.connect(str(daemon.socket_path))
            s.sendall(junk)
            data = b""
            while chunk := s.recv(4096):  # the daemon answers, then hangs up
                data += chunk
        (n,) = struct.unpack(">I", data[:4])
        reply = json.loads(data[4 : 4 + n])
        assert reply["op"] == "error" and reply["kind"] == "protocol"
    assert DaemonClient(daemon.socket_path).ping()["pid"] == os.getpid()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.dictionaries(
        st.sampled_from(["v", "op", "id", "shm", "size", "dtype", "a", "b", "blocks", "trace"]),
        st.none() | st.integers() | st.text(max_size=30) | st.lists(st.integers(), max_size=5),
    )
)
def test_handle_never_raises(daemon: DaemonServer, message: dict[str, object]) -> None:
    reply = daemon.handle(dict(message))
    assert reply["op"] in ("error", "pong")


def test_socket_file_mode_and_replacing(short_dir: Path) -> None:
    path = short_dir / "d.sock"
    with DaemonServer(path, threads=1):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        # A second daemon on the same socket is refused; the first one keeps it.
        with pytest.raises(SidecarError, match="already listening"):
            DaemonServer(path).start()
        assert path.exists()
    assert not path.exists()  # removed on stop
    # A socket left by a dead daemon is replaced; a regular file is never touched.
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()
    with DaemonServer(path, threads=1):
        assert DaemonClient(path).ping()
    regular = short_dir / "file"
    regular.write_text("keep me")
    with pytest.raises(InvalidInputError, match="not a socket"):
        DaemonServer(regular).start()
    assert regular.read_text() == "keep me"


def test_default_socket_path(short_dir: Path) -> None:
    assert default_socket_path(short_dir) == short_dir / "ramnet" / "daemon.sock"
    fallback = default_socket_path(None)
    assert fallback.name == "daemon.sock" and fallback.parent.name == f"ramnet-{os.getuid()}"
    server = DaemonServer(runtime_dir=short_dir, threads=1)
    with server:
        folder = short_dir / "ramnet"
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(folder / "daemon.sock").st_mode) == 0o600
    assert not (short_dir / "ramnet" / "daemon.sock").exists()
    (short_dir / "ramnet").rmdir()


# ---- HTTP ----


def test_health_and_traces(daemon: DaemonServer) -> None:
    import httpx

    blocks, a, b = shard(np.random.default_rng(5), [9], [13], [7, 3], "int8")
    DaemonClient(daemon.socket_path).compute(blocks, a, b)
    sock = listen_tcp("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop = threading.Event()
    server = threading.Thread(target=run_http, args=(create_daemon_app(daemon), sock, stop))
    server.start()
    try:
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                health = httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the HTTP API did not come up"
                time.sleep(0.05)
        assert health.status_code == 200
        assert health.json()["status"] == "ok" and health.json()["pid"] == os.getpid()
        traces = httpx.get(f"{url}/traces", timeout=5).json()["traces"]
        assert len(traces) == 1
        trace = traces[0]
        assert trace["ok"] and trace["dtype"] == "int8"
        assert [r["block"] for r in trace["blocks"]] == [[0, 0, 0], [0, 1, 0]]
        assert trace["blocks"][1]["a"] == [9, 13] and trace["blocks"][1]["out"] == [9, 3]
        assert trace["blocks"][0]["out_dtype"] == "int32"
        assert trace["shm"]["bytes_in"] == 9 * 13 + 13 * 7 + 13 * 3
        assert trace["shm"]["bytes_out"] == 4 * (9 * 7 + 9 * 3)
        assert httpx.get(f"{url}/traces?limit=0", timeout=5).status_code == 400
        assert httpx.get(f"{url}/traces?limit=x", timeout=5).status_code == 400
        assert httpx.post(f"{url}/health", timeout=5).status_code == 405
    finally:
        stop.set()
        server.join(DEADLINE)
    assert not server.is_alive()


# ---- the command, as a real process ----


def test_daemon_command_serves_and_stops_cleanly(tmp_path: Path, short_dir: Path) -> None:
    import httpx

    port = free_port()
    env = {**os.environ, "XDG_RUNTIME_DIR": str(short_dir), "XDG_CONFIG_HOME": str(tmp_path)}
    log = open(tmp_path / "daemon.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        ramnet("daemon", "start", "--port", str(port), "--threads", "1"),
        cwd=tmp_path, env=env, stdout=log, stderr=log,
    )  # fmt: skip
    sock = short_dir / "ramnet" / "daemon.sock"
    try:
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
            assert time.monotonic() < deadline, "the daemon did not come up"
            time.sleep(0.05)
        assert health.json()["socket"] == str(sock)
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
        blocks, a, b = shard(np.random.default_rng(8), [20, 3], [50], [11], "int16")
        before = own_segments()
        partials, trace = DaemonClient(sock).compute(blocks, a, b)
        assert own_segments() == before
        for block in blocks:
            np.testing.assert_array_equal(
                partials[block], a[(block.i, 0)].astype(np.int64) @ b[(0, block.j)]
            )
        traces = httpx.get(f"http://127.0.0.1:{port}/traces", timeout=5).json()["traces"]
        assert [t["id"] for t in traces] == [trace["id"]]
        assert len(traces[0]["blocks"]) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE) == 0, (tmp_path / "daemon.log").read_text()
        assert not sock.exists()
        text = (tmp_path / "daemon.log").read_text()
        assert "Traceback" not in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_daemon_command_bad_usage(tmp_path: Path, short_dir: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    (short_dir / "plain").write_text("")
    run = subprocess.run(
        ramnet("daemon", "start", "--port", str(free_port()), "--socket", str(short_dir / "plain")),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "not a socket" in lines[0]
