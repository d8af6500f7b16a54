"""The honest path over TLS against plain HTTP: the same jobs on two meshes side by side.

Usage: python bench/bench_tls.py [--n 2048] [--runs 5] [--json]
Needs `trustme` (the `test` extra) for the certificates and `psutil` (the `bench` extra).

Two meshes on this machine's loopback, each a coordinator and 3 workers already running: one on
http://, one started with --tls-cert/--tls-key, its workers and consumer trusting the private CA
(--ca-file). For each run, alternately on both (so that the machine's drift hits both alike), a
square int8 job:
- as a process: `ramnet run --mode mesh --nodes 3` from `.npy` files (wall of the process, which
  pays for loading the CA and the handshakes, and the coordinator's CPU during it);
- in process: a consumer's library calls (submit, wait, fetch and check C, wait until settled)
  from A and B in memory, over one kept-alive connection (wall).
C is checked against the exact product each time. Medians over --runs (one untimed round first),
and the ratios TLS / plain.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import emit
from bench_mesh import ME, _cpu, _port, _timed, mesh_in_process

import ramnet
from ramnet import orchid


def start_mesh(folder: Path, env: dict[str, str], pki: Path | None) -> tuple[str, list[Any]]:
    """A coordinator (HTTPS with the certificate in ``pki``, else HTTP) and 3 workers started in
    ``folder``; returns its URL and the processes, the coordinator first."""
    port = _port()
    scheme = "https" if pki is not None else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    tls = (
        []
        if pki is None
        else ["--tls-cert", str(pki / "cert.pem"), "--tls-key", str(pki / "key.pem")]
    )
    trust = [] if pki is None else ["--ca-file", str(pki / "ca.pem")]
    coordinator = [*ME, "coordinator", "start", "--port", str(port), "--data-dir", "state", *tls]
    procs = [subprocess.Popen(coordinator, cwd=folder, env=env, stderr=subprocess.DEVNULL)]
    deadline = time.monotonic() + 30
    while not (folder / "state" / "state.sqlite").exists():
        if time.monotonic() > deadline or procs[0].poll() is not None:
            raise SystemExit(f"bench: the {scheme} coordinator did not start")
        time.sleep(0.05)
    for w in range(3):
        worker = [*ME, "worker", "start", "--key-file", f"w{w}.key", "--coordinator", url, *trust]
        procs.append(subprocess.Popen(worker, cwd=folder, env=env, stderr=subprocess.DEVNULL))
    time.sleep(2)
    return url, procs


def _certificates(folder: Path) -> Path:
    try:
        import trustme
    except ImportError:
        raise SystemExit("bench: needs trustme (pip install -e '.[test]')") from None
    folder.mkdir()
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    server.private_key_pem.write_to_path(str(folder / "key.pem"))
    (folder / "cert.pem").write_bytes(b"".join(pem.bytes() for pem in server.cert_chain_pems))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n = args.n
    # As bench_mesh: an installed ramnet carries its bytecode.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(ramnet.__file__).parent)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    tmp = Path(tempfile.mkdtemp())
    pki = _certificates(tmp / "pki")
    a, b = orchid.random_operands(n, n, n, "int8", seed=9)
    np.save(tmp / "A.npy", a)
    np.save(tmp / "B.npy", b)
    exact = ramnet.matmul(a, b)
    from ramnet.mesh import MeshClient
    from ramnet.valkyrie import NodeKey

    meshes: dict[str, tuple[str, list[Any], list[str], Any]] = {}
    try:
        for name, certs in (("plain", None), ("tls", pki)):
            folder = tmp / name
            folder.mkdir()
            env = {**os.environ, "XDG_CONFIG_HOME": str(folder / "cfg")}
            url, procs = start_mesh(folder, env, certs)
            trust = [] if certs is None else ["--ca-file", str(pki / "ca.pem")]
            command = [*ME, "run", "--mode", "mesh", "--nodes", "3", "--coordinator", url]
            command += ["--a", str(tmp / "A.npy"), "--b", str(tmp / "B.npy"), "--out", "C.npy"]
            command += ["--key-file", "consumer.key", *trust]
            ca_file = None if certs is None else pki / "ca.pem"
            client = MeshClient(url, NodeKey.generate(), ca_file=ca_file)
            meshes[name] = (url, procs, command, client)
        rows: dict[str, list[float]] = {}
        for round_ in range(args.runs + 1):
            for name, (_, procs, command, client) in meshes.items():
                folder = tmp / name
                env = {**os.environ, "XDG_CONFIG_HOME": str(folder / "cfg")}
                before = _cpu([procs[0].pid])
                wall, _ = _timed(command, folder, env)
                coordinator_cpu = _cpu([procs[0].pid]) - before
                assert np.array_equal(np.load(folder / "C.npy"), exact)
                t0 = time.perf_counter()
                c = mesh_in_process(client, a, b)
                inproc = time.perf_counter() - t0
                assert np.array_equal(c, exact)
                if round_ == 0:
                    continue  # untimed: each node's first job grows its heap
                rows.setdefault(f"{name}_process_wall_s", []).append(wall)
                rows.setdefault(f"{name}_coordinator_cpu_s", []).append(coordinator_cpu)
                rows.setdefault(f"{name}_inproc_wall_s", []).append(inproc)
    finally:
        for _, procs, _, client in meshes.values():
            client.close()
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
        for _, procs, _, _ in meshes.values():
            for proc in procs:
                proc.wait(timeout=30)
    med = {key: round(statistics.median(v), 4) for key, v in rows.items()}
    result: dict[str, object] = {"n": n, "runs": args.runs, "median": med}
    for what in ("process_wall_s", "inproc_wall_s", "coordinator_cpu_s"):
        plain = med[f"plain_{what}"]
        result[f"tls_over_plain_{what.removesuffix('_s')}"] = (
            round(med[f"tls_{what}"] / plain, 2) if plain else None
        )
    emit(result, args.json)


if __name__ == "__main__":
    main()
