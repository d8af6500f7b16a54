"""The sidecar topology: the proxy's checks in-process, then the whole mesh with real processes.

End to end on 127.0.0.1: a coordinator, an ORCHID daemon, a VALKYRIE proxy (its own key, the
daemon's socket), two ordinary workers and a validator; a consumer's ``ramnet run --mode mesh``
gives numpy's product, the proxy's node revealed a shard and was paid, the daemon's /traces shows
the blocks, and SIGTERM stops daemon and proxy with exit 0, the socket file gone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ramnet.orchid import BlockProduct
from ramnet.sidecar import DaemonClient as RealDaemonClient
from ramnet.sidecar import DaemonRequestError, DaemonServer, DaemonUnavailableError, Proxy
from tests.mesh_procs import Mesh, free_port, ramnet, wait_for

DEADLINE = 45.0  # seconds for one whole scenario


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to 107 bytes; pytest's tmp_path can be long.
    folder = Path(tempfile.mkdtemp(prefix="rns"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def tiles(seed: int = 1) -> tuple[list[BlockProduct], dict[Any, np.ndarray], dict[Any, np.ndarray]]:
    rng = np.random.default_rng(seed)
    a = {(0, 0): rng.integers(-128, 128, (6, 5), dtype=np.int8)}
    b = {(0, 0): rng.integers(-128, 128, (5, 4), dtype=np.int8),
         (0, 1): rng.integers(-128, 128, (5, 3), dtype=np.int8)}  # fmt: skip
    return [BlockProduct(0, 0, 0), BlockProduct(0, 1, 0)], a, b


def exact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)


class FakeDaemon:
    """A daemon client whose answers the test chooses."""

    url = "unix:///fake.sock"
    requests = shm_bytes = socket_bytes = 0

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.pings = 0

    def ping(self) -> dict[str, Any]:
        self.pings += 1
        if self.mode == "down":
            raise DaemonUnavailableError("cannot reach the daemon at unix:///fake.sock")
        return {}

    def compute(self, blocks: Any, tiles_a: Any, tiles_b: Any) -> Any:
        if self.mode == "down":
            raise DaemonUnavailableError("cannot reach the daemon at unix:///fake.sock")
        if self.mode == "refuses":
            raise DaemonRequestError("the daemon refused the work (failed): disk on fire")
        out = {b: exact(tiles_a[(b.i, b.k)], tiles_b[(b.k, b.j)]) for b in blocks}
        if self.mode == "lies":
            out[blocks[-1]][0, 0] += 1  # off by one, in one entry of one block
        if self.mode == "drops":
            del out[blocks[0]]
        if self.mode == "wrong-dtype":
            out[blocks[0]] = out[blocks[0]].astype(np.int64)
        return out, {"blocks": []}


@pytest.mark.parametrize("mode", ["lies", "drops", "wrong-dtype", "refuses", "down"])
def test_proxy_never_submits_a_wrong_partial(mode: str) -> None:
    lines: list[str] = []
    proxy = Proxy(None, FakeDaemon(mode), log=lines.append)  # type: ignore[arg-type]
    blocks, a, b = tiles()
    partials = proxy.compute(blocks, a, b)
    for block in blocks:
        got = partials[block]
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, exact(a[(0, 0)], b[(0, block.j)]))
    assert any(line.startswith("error: ") for line in lines), lines
    status = proxy.status()
    assert status["last_error"] and status["blocks_recomputed"] >= 1
    if mode in ("lies", "drops", "wrong-dtype"):
        assert "wrong partial" in status["last_error"]
        assert status["blocks_rejected"] == 1 and status["blocks_by_daemon"] == 1


def test_proxy_takes_an_honest_daemons_partials() -> None:
    lines: list[str] = []
    proxy = Proxy(None, FakeDaemon("honest"), log=lines.append)  # type: ignore[arg-type]
    blocks, a, b = tiles()
    proxy.compute(blocks, a, b)
    assert lines == []
    assert proxy.status()["blocks_by_daemon"] == 2 and proxy.status()["blocks_recomputed"] == 0


def test_proxy_claims_no_work_while_the_daemon_is_down() -> None:
    class NoCoordinator:
        key = None

        def get_wire(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("work was claimed while the daemon was down")

    lines: list[str] = []
    daemon = FakeDaemon("down")
    proxy = Proxy(NoCoordinator(), daemon, log=lines.append)  # type: ignore[arg-type]
    stop = threading.Event()
    stop.set()  # step waits on it: return at once
    assert proxy.worker.step(stop) is False
    assert proxy.worker.step(stop) is False
    assert daemon.pings == 2
    assert len([line for line in lines if "claiming no work" in line]) == 1  # said once
    assert proxy.status()["daemon_up"] is False


def test_proxy_with_a_real_daemon_checks_and_counts(short_dir: Path) -> None:
    with DaemonServer(short_dir / "d.sock", threads=1):
        proxy = Proxy(None, RealDaemonClient(short_dir / "d.sock"))  # type: ignore[arg-type]
        blocks, a, b = tiles(4)
        partials = proxy.compute(blocks, a, b)
        for block in blocks:
            np.testing.assert_array_equal(partials[block], exact(a[(0, 0)], b[(0, block.j)]))
        status = proxy.status()
        assert status["blocks_by_daemon"] == 2 and status["bytes_via_shm"] > 0
        assert 0 < status["bytes_via_socket"] < 2048


# ---- the command's failures ----


def test_proxy_command_usage_errors(tmp_path: Path, short_dir: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}

    def proxy(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ramnet("proxy", "start", "--port", str(free_port()), *args),
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=DEADLINE,
        )  # fmt: skip

    for args, code, text in (
        (("--daemon", "http://127.0.0.1:9000"), 2, "unix://"),
        (("--daemon", f"{short_dir}/d.sock"), 2, "unix://"),
        ((), 2, "--daemon"),
        # Unreachable, as an unreachable coordinator: exit 1.
        (("--daemon", f"unix://{short_dir}/none.sock"), 1, "cannot reach the daemon"),
    ):
        run = proxy(*args)
        assert run.returncode == code, (args, run.stderr)
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], lines
    assert not (tmp_path / "ramnet" / "node.key").exists()  # no key made for nothing


# ---- end to end ----


def get_json(url: str) -> tuple[int, Any]:
    import httpx

    try:
        reply = httpx.get(url, timeout=5)
        return reply.status_code, reply.json()
    except (httpx.HTTPError, ValueError):
        return 0, None


def until(what: str, check: Any, deadline: float, mesh: Mesh, *names: str) -> Any:
    """Poll ``check()`` until truthy; fail (with the logs) at the deadline or if a process died."""
    while True:
        value = check()
        if value:
            return value
        dead = [n for n in names if mesh.procs[n].poll() is not None]
        if dead or time.monotonic() > deadline:
            logs = {n: (mesh.folder / f"{n}.log").read_text(errors="replace") for n in names}
            pytest.fail(f"{what}: {'died: ' + str(dead) if dead else 'timed out'}; logs {logs}")
        time.sleep(0.05)


def test_sidecar_mesh_job(tmp_path: Path, short_dir: Path) -> None:
    deadline = time.monotonic() + DEADLINE
    mesh = Mesh(tmp_path)
    sock = short_dir / "daemon.sock"
    dport, pport = free_port(), free_port()
    daemon_url, proxy_url = f"http://127.0.0.1:{dport}", f"http://127.0.0.1:{pport}"
    try:
        mesh.start_coordinator()
        mesh.start("daemon", "daemon", "start", "--port", str(dport), "--socket", str(sock),
                   "--threads", "1")  # fmt: skip
        for w in ("w0", "w1"):
            mesh.start(w, "worker", "start", "--key-file", f"{w}.key", "--bond", "10")
        until("daemon healthy", lambda: get_json(f"{daemon_url}/health")[0] == 200, deadline,
              mesh, "daemon")  # fmt: skip
        mesh.start("proxy", "proxy", "start", "--port", str(pport), "--daemon", f"unix://{sock}",
                   "--key-file", "proxy.key", "--bond", "10",
                   "--payout-address", "acct-proxy")  # fmt: skip
        until("proxy healthy", lambda: get_json(f"{proxy_url}/health")[0] == 200, deadline,
              mesh, "proxy")  # fmt: skip
        for w in ("w0", "w1"):
            wait_for(tmp_path / f"{w}.log", "registered", deadline - time.monotonic())
        # Three computing nodes for the job's three shards: each takes one (a node takes one
        # primary shard per triad and job), so the proxy is sure to get its share. The
        # validator joins once the proxy holds its shard; otherwise four nodes would race.
        consumer = subprocess.Popen(
            ramnet(
                "run", "--mode", "mesh", "--nodes", "3", "--coordinator", mesh.url,
                "--random", "96x80x72", "--dtype", "int8", "--seed", "7", "--save-inputs", "in",
                "--out", "C.npy", "--key-file", "consumer.key", "--json",
            ),
            cwd=tmp_path, env=mesh.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        mesh.procs["consumer"] = consumer  # type: ignore[assignment]
        until("the proxy's daemon computed", lambda: (get_json(f"{daemon_url}/traces")[1] or {})
              .get("traces"), deadline, mesh, "daemon", "proxy")  # fmt: skip
        mesh.start("v", "worker", "start", "--key-file", "v.key", "--validator", "--bond", "10")
        out, err = consumer.communicate(timeout=max(1.0, deadline - time.monotonic()))
        del mesh.procs["consumer"]
        assert consumer.returncode == 0, err
        report = json.loads(out)
        assert report["state"] == "settled" and report["nodes"] == 3
        a, b = np.load(tmp_path / "in" / "A.npy"), np.load(tmp_path / "in" / "B.npy")
        c = np.load(tmp_path / "C.npy")
        assert a.shape == (96, 80) and b.shape == (80, 72)
        np.testing.assert_array_equal(c, a.astype(np.int64) @ b.astype(np.int64))

        # The proxy revealed its shard, through the daemon and shared memory.
        status = until("the proxy's reveal", lambda: (s := get_json(f"{proxy_url}/status")[1])
                       and s["shards_done"] >= 1 and s, deadline, mesh, "proxy")  # fmt: skip
        assert status["daemon"] == f"unix://{sock}"
        assert status["blocks_by_daemon"] >= 1 and status["blocks_rejected"] == 0
        assert status["bytes_via_shm"] > 0 and status["last_error"] is None
        # ... and was paid, slashing no one.
        ledger = subprocess.run(
            ramnet("ledger", "show", "--coordinator", mesh.url, "--json"),
            cwd=tmp_path, env=mesh.env, capture_output=True, text=True,
            timeout=max(1.0, deadline - time.monotonic()),
        )  # fmt: skip
        assert ledger.returncode == 0, ledger.stderr
        info = json.loads(ledger.stdout)
        accounts = {acct["node_id"]: acct for acct in info["accounts"]}
        mine = accounts[status["node_id"]]
        assert mine["bond"] == 10 and mine["balance"] > 1_000_000 - 10, mine
        assert all(acct["slashed"] == 0 for acct in accounts.values())
        assert info["totals"]["conserved"] is True

        # The daemon's traces show the executed blocks.
        traces = get_json(f"{daemon_url}/traces")[1]["traces"]
        blocks = [r for t in traces for r in t["blocks"]]
        assert all(t["ok"] for t in traces)
        assert len(blocks) == status["blocks_by_daemon"]
        assert {r["dtype"] for r in blocks} == {"int8"}
        assert {r["out_dtype"] for r in blocks} == {"int32"}
        assert all(r["code_path"] and r["seconds"] >= 0 for r in blocks)
        assert sum(t["shm"]["bytes_in"] + t["shm"]["bytes_out"] for t in traces) > 0

        # SIGTERM: the proxy, then the daemon, stop with exit 0; the socket file goes.
        wait_for(tmp_path / "v.log", "registered", max(1.0, deadline - time.monotonic()))
        for name in ("proxy", "daemon"):
            proc = mesh.procs[name]
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            assert code == 0, (mesh.folder / f"{name}.log").read_text(errors="replace")
            del mesh.procs[name]
        assert not sock.exists()
        for name in ("proxy", "daemon"):
            assert "Traceback" not in (tmp_path / f"{name}.log").read_text(errors="replace")
    finally:
        codes = mesh.stop()
    assert codes == [0] * len(codes), codes
