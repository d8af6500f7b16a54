"""A mesh of real ``ramnet`` processes on 127.0.0.1 for the benchmarks that time recovery
(``bench_recovery.py``, ``bench_dispute_end.py``): a coordinator, workers each on its own key,
their logs in one folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ME = [sys.executable, "-m", "ramnet.cli"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_log(path: Path, text: str, timeout: float) -> None:
    """Wait until the log at ``path`` holds ``text``; end the benchmark with the log if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.02)
    raise SystemExit(f"{path.name} never said {text!r}: {path.read_text(errors='replace')}")


class ProcessMesh:
    """Processes of one mesh, started in ``folder`` (their keys and ``NAME.log`` there), all
    pointed at one coordinator port by ``RAMNET_COORDINATOR``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.env = {
            **os.environ,
            "RAMNET_COORDINATOR": f"http://127.0.0.1:{self.port}",
            "XDG_CONFIG_HOME": str(folder / "cfg"),
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> None:
        """Start ``ramnet ARGS`` as ``name``, its output to ``NAME.log``."""
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            [*ME, *args], cwd=self.folder, env=self.env, stdout=log, stderr=log
        )

    def coordinator(self) -> None:
        """Start the coordinator (state in ``s/``) on ``port`` and wait until it serves."""
        self.start("coord", "coordinator", "start", "--port", str(self.port), "--data-dir", "s")
        wait_log(self.folder / "coord.log", "coordinator on", 60)

    def worker(self, name: str, *extra: str) -> None:
        """Start a worker on the key file ``NAME.key``."""
        self.start(name, "worker", "start", "--key-file", f"{name}.key", *extra)

    def node_id(self, name: str) -> str:
        """The node id of the key file ``NAME.key``."""
        out = subprocess.run(
            [*ME, "keys", "show", "--key-file", f"{name}.key"],
            cwd=self.folder, env=self.env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return out.stdout.strip()

    def stop(self) -> None:
        """SIGTERM the nodes, then the coordinator (which still answers their last requests);
        kill what has not ended after 20 s."""
        for name, proc in self.procs.items():
            if name != "coord" and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        if "coord" in self.procs:
            self.procs["coord"].send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
