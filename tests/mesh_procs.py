"""Real mesh processes on 127.0.0.1 for the end-to-end tests: start, wait, stop workers first."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ramnet(*args: str) -> list[str]:
    return [sys.executable, "-m", "ramnet.cli", *args]


def wait_for(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    pytest.fail(f"{path.name} never said {text!r}: {path.read_text(errors='replace')}")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Mesh:
    """A coordinator and its workers, each logging to ``<name>.log`` in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "RAMNET_COORDINATOR": self.url,
            "XDG_CONFIG_HOME": str(folder / "cfg"),
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            ramnet(*args), cwd=self.folder, env=env or self.env, stdout=log, stderr=log
        )

    def start_coordinator(self, *extra: str) -> None:
        self.start("coord", "coordinator", "start", "--port", str(self.port), "--data-dir", "s",
                   *extra)  # fmt: skip
        self.wait_healthy(30)

    def wait_healthy(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            coord = self.procs.get("coord")
            if time.monotonic() > deadline or (coord is not None and coord.poll() is not None):
                log = (self.folder / "coord.log").read_text(errors="replace")
                pytest.fail(f"the coordinator did not start: {log}")
            time.sleep(0.1)

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        # Ctrl-C as a terminal gives it, however the tests were started: a shell that starts
        # them in the background (``nohup … &``) ignores SIGINT in them, and a child that
        # inherits that never raises KeyboardInterrupt.
        return subprocess.Popen(
            ramnet(*args), cwd=self.folder, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=_default_sigint,
        )  # fmt: skip

    def stop(self) -> list[int | None]:
        """SIGTERM every process, workers first while the coordinator still answers their long
        polls; returns the exit codes (None: killed after 15 s)."""
        ordered = [p for name, p in self.procs.items() if name != "coord"]
        if "coord" in self.procs:
            ordered.append(self.procs["coord"])
        for proc in ordered:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for proc in ordered:
            try:
                codes.append(proc.wait(timeout=15))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                codes.append(None)
        return codes
