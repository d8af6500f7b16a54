"""The coordinator under attack: memory held by declared bodies, and an honest job among long polls.

Usage: python bench/bench_hardening.py [--runs 5] [--polls 200] [--bodies 20] [--json]
                                       [--pythonpath DIR] [--skip-job]

A real coordinator process on 127.0.0.1 (``ramnet coordinator start``), from this checkout or,
with ``--pythonpath``, from another tree (an export of an older commit built in place), so the
same script measures before and after:

- ``bodies``: ``--bodies`` connections each send the headers of a 1 GiB request, signed by a
  registered node, and then nothing, once on a wire route (``POST /v1/jobs``), once on a JSON
  route (``POST /v1/nodes``), and once on the wire route from a key that never registered; the
  coordinator's peak RSS above its idle RSS while they are open (sampled every 20 ms for 3 s),
  how many it refused at once, and whether it still answers ``/health``.
- ``job``: 3 workers; the wall time of an honest 1024 int8 job (the consumer's library calls:
  submit, fetch and check C, wait until settled), median of ``--runs``, against an idle
  coordinator and while ``--polls`` long polls (``next_validation`` and ``next_audit``, wait 5 s,
  renewed at once) from as many registered throwaway keys are open. The goal: within 2x.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import emit

from ramnet import orchid
from ramnet.mesh.nodes.client import MeshClient
from ramnet.mesh.protocol.auth import sign_request
from ramnet.mesh.protocol.routes import url
from ramnet.mesh.protocol.wire import WIRE_CONTENT_TYPE
from ramnet.valkyrie import NodeKey

ME = [sys.executable, "-m", "ramnet.cli"]
GIB = 1 << 30


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _healthy(port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def start_coordinator(folder: Path, env: dict[str, str]) -> tuple[int, subprocess.Popen[bytes]]:
    port = _port()
    command = [*ME, "coordinator", "start", "--port", str(port), "--data-dir", "state"]
    proc = subprocess.Popen(command, cwd=folder, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not _healthy(port, 0.5):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("bench: the coordinator did not start")
        time.sleep(0.1)
    return port, proc


def register(base: str, key: NodeKey, **extra: Any) -> None:
    with MeshClient(base, key) as client:
        client.post_json(url("register"), {"bond": 0, **extra}, idempotent=True)


def declared_bodies(
    port: int, pid: int, key: NodeKey, path: str, content_type: str, count: int
) -> dict[str, Any]:
    """``count`` connections declare a 1 GiB body on ``path`` and send none of it: the peak RSS
    above idle while they are open, how many the coordinator answered or closed, and whether it
    still answers /health."""
    idle = _rss(pid)
    conns = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        # Signed as a node would (over some body's hash): the signature is checked after the body.
        signed = sign_request(key, "POST", path, body_hash="0" * 64)
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        head += f"Content-Length: {GIB}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in signed.items()) + "\r\n"
        s.sendall(head.encode())
        s.settimeout(0.02)
        conns.append(s)
    peak, answered = idle, 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        peak = max(peak, _rss(pid))
        time.sleep(0.02)
    for s in conns:
        with contextlib.suppress(OSError):
            if s.recv(64).startswith(b"HTTP/1.1 4"):
                answered += 1
    health = _healthy(port)
    for s in conns:
        s.close()
    return {
        "idle_rss_mib": round(idle / 2**20, 1),
        "peak_above_idle_mib": round((peak - idle) / 2**20, 1),
        "refused": answered,
        "healthy_after": health,
    }


class PollLoad:
    """Long polls from throwaway registered keys, each renewed as soon as it is answered, on one
    asyncio loop in a thread (cheap for this process, which also times the job)."""

    def __init__(self, base: str, port: int, count: int) -> None:
        self.port = port
        self.keys = [NodeKey.generate() for _ in range(count)]
        for key in self.keys:
            register(base, key)
        self.answered: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _poll(self, key: NodeKey, route: str) -> None:
        target = url(route, {"wait": 5})
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            while not self._stop.is_set():
                signed = sign_request(key, "GET", target)
                head = f"GET {target} HTTP/1.1\r\nHost: x\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in signed.items()) + "\r\n"
                writer.write(head.encode())
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                self.answered[status] = self.answered.get(status, 0) + 1
                if status == 429:
                    await asyncio.sleep(1)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            pass
        finally:
            writer.close()

    async def _main(self) -> None:
        routes = ("next_validation", "next_audit")
        await asyncio.gather(
            *(self._poll(key, routes[i % 2]) for i, key in enumerate(self.keys)),
            return_exceptions=True,
        )

    def __enter__(self) -> PollLoad:
        self._thread.start()
        time.sleep(2)  # every poll open
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def honest_jobs(base: str, runs: int, timeout: float) -> list[float]:
    from ramnet.mesh.nodes import consumer

    a, b = orchid.random_operands(1024, 1024, 1024, "int8", seed=3)
    key = NodeKey.generate()
    times = []
    with MeshClient(base, key, timeout=timeout, retry_for=timeout) as client:
        for _ in range(runs):
            t0 = time.perf_counter()
            job_id = consumer.submit(client, a, b, 3)
            consumer.fetch_checked(client, job_id, a, b, timeout=timeout)
            consumer.wait(client, job_id, timeout=timeout)
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--polls", type=int, default=200)
    parser.add_argument("--bodies", type=int, default=20)
    parser.add_argument("--pythonpath", help="run the coordinator and workers from this tree")
    parser.add_argument("--skip-job", action="store_true", help="only the declared bodies")
    parser.add_argument("--skip-bodies", action="store_true", help="only the honest job")
    parser.add_argument("--job-timeout", type=float, default=120.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp / "cfg")}
    if args.pythonpath:
        env["PYTHONPATH"] = str(Path(args.pythonpath).resolve())
    result: dict[str, Any] = {"tree": args.pythonpath or "this checkout"}
    port, coord = start_coordinator(tmp, env)
    base = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        attacker = NodeKey.generate()
        register(base, attacker)
        attacks = (
            ("wire", url("submit_job"), WIRE_CONTENT_TYPE, attacker),
            ("json", url("register"), "application/json", attacker),
            ("wire_unregistered", url("submit_job"), WIRE_CONTENT_TYPE, NodeKey.generate()),
        )
        for name, path, kind, key in () if args.skip_bodies else attacks:
            found = declared_bodies(port, coord.pid, key, path, kind, args.bodies)
            result[f"bodies_{name}"] = found
            time.sleep(1)
        if not args.skip_job:
            for w in range(3):
                command = [*ME, "worker", "start", "--key-file", f"w{w}.key"]
                command += ["--coordinator", base]
                procs.append(subprocess.Popen(command, cwd=tmp, env=env, stderr=subprocess.DEVNULL))
            time.sleep(3)
            honest_jobs(base, 1, args.job_timeout)  # warm-up
            idle = honest_jobs(base, args.runs, args.job_timeout)
            with PollLoad(base, port, args.polls) as load:
                try:
                    loaded = honest_jobs(base, args.runs, args.job_timeout)
                except Exception as exc:
                    loaded = []
                    result["job_loaded_error"] = f"{type(exc).__name__}: {exc}"[:300]
            result["job_idle_s"] = round(statistics.median(idle), 3)
            result["job_idle_runs_s"] = [round(t, 3) for t in idle]
            if loaded:
                result["job_polls_s"] = round(statistics.median(loaded), 3)
                result["job_polls_runs_s"] = [round(t, 3) for t in loaded]
                result["job_polls_ratio"] = round(result["job_polls_s"] / result["job_idle_s"], 2)
            result["poll_replies"] = {str(k): v for k, v in sorted(load.answered.items())}
    finally:
        for proc in [*procs, coord]:
            proc.terminate()
        for proc in [*procs, coord]:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    emit(result, args.json)


if __name__ == "__main__":
    main()
