"""The mesh over TLS with real processes on 127.0.0.1: a coordinator started with --tls-cert and
--tls-key, workers and a consumer that trust its private CA (--ca-file, or RAMNET_CA_FILE); C is
numpy's. A client that does not trust the CA is refused in one line; the flags are checked before
anything starts. Certificates are made in the test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.mesh_procs import Mesh, free_port, ramnet, wait_for
from tests.tls_files import TlsFiles, make_tls_files

DEADLINE = 120.0  # seconds for a command; CI must never hang on it


def _wait_https(procs: Mesh, ca: Path, timeout: float) -> None:
    from ramnet.mesh import MeshClient
    from ramnet.mesh.nodes.client import MeshError

    deadline = time.monotonic() + timeout
    client = MeshClient(procs.url, None, ca_file=ca, retries=0)
    try:
        while True:
            try:
                if client.get_json("/health") == {"status": "ok"}:
                    return
            except MeshError:
                pass
            coord = procs.procs["coord"]
            if time.monotonic() > deadline or coord.poll() is not None:
                log = (procs.folder / "coord.log").read_text(errors="replace")
                pytest.fail(f"the coordinator did not start over TLS: {log}")
            time.sleep(0.1)
    finally:
        client.close()


@pytest.fixture
def tls_mesh(tmp_path: Path) -> Iterator[tuple[Mesh, TlsFiles]]:
    files = make_tls_files(tmp_path / "pki")
    procs = Mesh(tmp_path)
    procs.url = f"https://127.0.0.1:{procs.port}"
    procs.env["RAMNET_COORDINATOR"] = procs.url
    try:
        procs.start(
            "coord", "coordinator", "start", "--port", str(procs.port), "--data-dir", "s",
            "--tls-cert", str(files.cert), "--tls-key", str(files.key),
        )  # fmt: skip
        _wait_https(procs, files.ca, 60)  # generous: CI machines may be loaded
        for w in range(2):
            procs.start(
                f"w{w}", "worker", "start", "--key-file", f"w{w}.key", "--bond", "10",
                "--ca-file", str(files.ca),
            )  # fmt: skip
        # A worker that trusts the CA from its environment alone, as in a container.
        procs.start(
            "w2", "worker", "start", "--key-file", "w2.key", "--bond", "10",
            env={**procs.env, "RAMNET_CA_FILE": str(files.ca)},
        )  # fmt: skip
        yield procs, files
    finally:
        codes = procs.stop()
        assert codes == [0] * len(codes), codes


def test_a_mesh_job_over_tls_matches_numpy(tls_mesh: tuple[Mesh, TlsFiles]) -> None:
    procs, files = tls_mesh
    tmp = procs.folder
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp / "cfg")}
    run = subprocess.run(
        ramnet(
            "run", "--mode", "mesh", "--nodes", "3", "--coordinator", procs.url,
            "--ca-file", str(files.ca), "--random", "150x130x110", "--dtype", "int8",
            "--seed", "3", "--save-inputs", "in", "--out", "C.npy", "--key-file", "consumer.key",
            "--json",
        ),
        cwd=tmp, env=env, capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["state"] == "settled" and report["coordinator"] == procs.url
    a, b = np.load(tmp / "in" / "A.npy"), np.load(tmp / "in" / "B.npy")
    np.testing.assert_array_equal(np.load(tmp / "C.npy"), a.astype(np.int64) @ b.astype(np.int64))
    # The ledger over TLS, the CA from the environment.
    ledger = subprocess.run(
        ramnet("ledger", "show", "--coordinator", procs.url, "--json"),
        cwd=tmp, env={**env, "RAMNET_CA_FILE": str(files.ca)},
        capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert ledger.returncode == 0, ledger.stderr
    assert json.loads(ledger.stdout)["totals"]["conserved"] is True
    # Every worker talked to the coordinator over TLS and computed (none was refused).
    for w in range(3):
        log = (tmp / f"w{w}.log").read_text(errors="replace")
        assert "TLS" not in log and "Traceback" not in log, log


def test_a_client_that_does_not_trust_the_ca_is_refused_in_one_line(
    tls_mesh: tuple[Mesh, TlsFiles],
) -> None:
    procs, files = tls_mesh
    env = {**os.environ, "XDG_CONFIG_HOME": str(procs.folder / "cfg")}
    for extra in ([], ["--ca-file", str(files.other_ca)]):
        shown = subprocess.run(
            ramnet("ledger", "show", "--coordinator", procs.url, *extra),
            cwd=procs.folder, env=env, capture_output=True, text=True, timeout=DEADLINE,
        )  # fmt: skip
        assert shown.returncode == 1  # as for an unreachable coordinator
        lines = shown.stderr.strip().splitlines()
        assert len(lines) == 1, shown.stderr
        assert lines[0].startswith("error: TLS: certificate verify failed: ")
        assert f"({procs.url})" in lines[0]
    # Every client role says the same, at once: the job commands, a consumer's run, an auditor.
    for command in (
        ("job", "status", "ab" * 32, "--coordinator", procs.url, "--key-file", "c.key"),
        ("run", "--mode", "mesh", "--nodes", "3", "--coordinator", procs.url,
         "--random", "8x8x8", "--dtype", "int8", "--out", "C.npy", "--key-file", "c.key"),
        ("auditor", "start", "--coordinator", procs.url, "--key-file", "a.key"),
    ):  # fmt: skip
        done = subprocess.run(
            ramnet(*command), cwd=procs.folder, env=env, capture_output=True, text=True,
            timeout=DEADLINE,
        )  # fmt: skip
        assert done.returncode == 1, (command, done.stderr)
        assert "error: TLS: certificate verify failed: " in done.stderr, (command, done.stderr)
        assert "Traceback" not in done.stderr
    # A worker that does not trust it says so and stops instead of retrying.
    worker = subprocess.run(
        ramnet("worker", "start", "--key-file", "stranger.key", "--coordinator", procs.url),
        cwd=procs.folder, env=env, capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert worker.returncode != 0
    assert "TLS: certificate verify failed: " in worker.stderr
    assert "Traceback" not in worker.stderr


def test_coordinator_tls_flags_are_checked_before_it_starts(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path / "pki")
    other = make_tls_files(tmp_path / "other")
    start = ["coordinator", "start", "--port", "1", "--data-dir", str(tmp_path / "s")]
    cases = [
        (["--tls-cert", str(files.cert)], "--tls-cert and --tls-key go together"),
        (["--tls-key", str(files.key)], "--tls-cert and --tls-key go together"),
        (
            ["--tls-cert", str(files.cert), "--tls-key", str(tmp_path / "nope.pem")],
            f"TLS key {tmp_path / 'nope.pem'}: cannot read it",
        ),
        (
            ["--tls-cert", str(files.cert), "--tls-key", str(other.key)],
            f"TLS key {other.key} does not match the certificate {files.cert}",
        ),
        (
            ["--tls-cert", str(files.key), "--tls-key", str(files.key)],
            f"TLS certificate {files.key}: no PEM certificate in it",
        ),
    ]
    for flags, expected in cases:
        done = subprocess.run(
            ramnet(*start, *flags), cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, (flags, done.stderr)
        assert done.stderr.strip() == f"error: {expected}" or (
            done.stderr.startswith(f"error: {expected}") and done.stderr.count("\n") == 1
        ), (flags, done.stderr)
        assert not (tmp_path / "s").exists()  # refused before any state was made


def test_a_sidecar_proxy_works_for_a_tls_coordinator(tls_mesh: tuple[Mesh, TlsFiles]) -> None:
    procs, files = tls_mesh
    short = Path(tempfile.mkdtemp(prefix="rnt"))  # a Unix socket's path has at most 107 bytes
    try:
        sock = short / "d.sock"
        procs.start(
            "daemon", "daemon", "start", "--port", str(free_port()), "--socket", str(sock),
            "--threads", "1",
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not sock.exists():
            assert time.monotonic() < deadline and procs.procs["daemon"].poll() is None
            time.sleep(0.05)
        procs.start(
            "proxy", "proxy", "start", "--port", str(free_port()), "--daemon", f"unix://{sock}",
            "--key-file", "proxy.key", "--bond", "10", "--ca-file", str(files.ca),
        )  # fmt: skip
        wait_for(procs.folder / "proxy.log", "registered", 90)
        assert procs.procs["proxy"].poll() is None
    finally:
        procs.stop()  # the fixture checks every exit code
        shutil.rmtree(short, ignore_errors=True)


@pytest.mark.parametrize(
    "command",
    [
        ("worker", "start"),
        ("auditor", "start"),
        ("proxy", "start"),
        ("run",),
        ("job", "status"),
        ("job", "result"),
        ("ledger", "show"),
    ],
)
def test_every_client_role_takes_a_ca_file(command: tuple[str, ...]) -> None:
    from typer.testing import CliRunner

    from ramnet.cli import app

    shown = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "--ca-file" in shown.output


def test_the_ca_file_setting_comes_from_the_environment_the_file_or_a_flag(tmp_path: Path) -> None:
    from ramnet.config import load_settings

    home = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}  # no user config file
    env = {**home, "RAMNET_CA_FILE": "/pki/ca.pem"}
    assert load_settings(None, env=home).ca_file is None
    assert load_settings(None, env=env).ca_file == "/pki/ca.pem"
    toml = tmp_path / "config.toml"
    toml.write_text('ca_file = "/etc/ramnet/ca.pem"\n')
    assert load_settings(toml, env=home).ca_file == "/etc/ramnet/ca.pem"
    assert load_settings(toml, {"ca_file": "mine.pem"}, env=env).ca_file == "mine.pem"
