"""The README's mesh commands work as written: its Unified and Sidecar blocks, read from README.md
and run by bash with real processes in a fresh folder (a git repository with the project's
.gitignore), with only their ports mapped to free ones and their sizes made small."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.mesh_procs import free_port

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"


def _block_after(marker: str) -> str:
    """The first ```bash block after ``marker`` in the README."""
    text = README.read_text()
    start = text.index(marker)
    found = re.compile(r"```bash\n(.*?)```", re.S).search(text, start)
    assert found is not None, f"no bash block after {marker!r}"
    return found.group(1)


def _ports(script: str) -> dict[str, str]:
    # Each port the block names gets a free one of its own, so distinct ports stay distinct.
    return {port: str(free_port()) for port in sorted(set(re.findall(r"\b(9\d{3})\b", script)))}


def _localised(script: str, ports: dict[str, str]) -> str:
    for old, new in ports.items():
        script = re.sub(rf"\b{old}\b", new, script)
    return script.replace("2048x2048x2048", "96x80x64")


def _env(folder: Path) -> dict[str, str]:
    # `ramnet` as the README calls it: this interpreter's entry point, with a config folder
    # (where a default key would go) in the fresh folder.
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "XDG_CONFIG_HOME": str(folder / "cfg"),
        "XDG_RUNTIME_DIR": str(folder / "run"),
    }


def _fresh(tmp_path: Path) -> Path:
    folder = tmp_path / "clone"
    folder.mkdir()
    shutil.copy(ROOT / ".gitignore", folder / ".gitignore")
    subprocess.run(["git", "init", "-q"], cwd=folder, check=True)
    return folder


def _untracked(folder: Path) -> list[str]:
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(line[3:] for line in out.splitlines() if line[3:] not in (".gitignore",))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # The block's background processes share its process group: SIGTERM them all.
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_the_unified_topology_block_runs_a_job_as_written(tmp_path: Path) -> None:
    script = _block_after("**Unified**")
    assert script.count("--key-file") >= 2, "each worker needs its own key"
    ports = _ports(script)
    folder = _fresh(tmp_path)
    # The block's last command lists the jobs; wait for the background processes to be stopped.
    body = "set -e\n" + _localised(script, ports) + "kill $(jobs -p)\nwait\n"
    proc = subprocess.Popen(
        ["bash", "-c", body],
        cwd=folder,
        env=_env(folder),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        _stop(proc)
        out, err = proc.communicate()
        pytest.fail(f"the README's block did not finish: {err.decode(errors='replace')[-3000:]}")
    finally:
        _stop(proc)
    text, errors = out.decode(), err.decode(errors="replace")
    assert "Traceback" not in errors, errors[-3000:]
    assert "C.npy" in text, errors[-3000:]  # the run's report names its output
    c = np.load(folder / "C.npy")
    assert c.shape == (96, 64) and c.dtype == np.int32
    assert "settled" in text  # the run's state, then `ramnet job list`'s row
    assert "jobs (1)" in text
    assert "already runs with" not in errors and "in use by another" not in errors
    # What the commands made (state, keys and their locks, C) is ignored by git.
    assert _untracked(folder) == []


def test_the_sidecar_block_starts_a_daemon_and_a_proxy_as_written(tmp_path: Path) -> None:
    script = _block_after("**Sidecar**")
    unified = _block_after("**Unified**")
    # The daemon's port is not the coordinator's: both may run on one host.
    coordinator_port = re.search(r"coordinator start --port (\d+)", unified)
    daemon_port = re.search(r"daemon start .*--port (\d+)", script)
    assert coordinator_port and daemon_port
    assert coordinator_port.group(1) != daemon_port.group(1)
    ports = _ports(unified + script)
    folder = _fresh(tmp_path)
    env = _env(folder)
    coordinator = _localised("ramnet coordinator start --port 9000 --data-dir state/\n", ports)
    body = coordinator.replace("\n", " &\n") + _localised(script, ports) + "wait\n"
    proc = subprocess.Popen(
        ["bash", "-c", body],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        proxy = f"http://127.0.0.1:{ports['9001']}/health"
        deadline = time.monotonic() + 120
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                reply = httpx.get(proxy, timeout=2)
                ready = reply.status_code == 200
            except httpx.HTTPError:
                pass
            if ready:
                break
            time.sleep(0.3)
        assert ready, f"the proxy never became ready (block exited: {proc.poll()})"
        daemon = httpx.get(f"http://127.0.0.1:{ports['9002']}/health", timeout=5)
        assert daemon.status_code == 200
        assert (folder / "sidecar" / "daemon.sock").exists()  # its folder was made
    finally:
        _stop(proc)
        _, err = proc.communicate()
    assert "Traceback" not in err.decode(errors="replace")
    assert _untracked(folder) == []
