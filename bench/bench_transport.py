"""What moving bytes through the mesh's HTTP stack costs, and the floor it sets for a mesh job.

Usage: python bench/bench_transport.py [--n 4096] [--mib 64] [--runs 5] [--json]

A server process runs the coordinator's stack (uvicorn with httptools and the coordinator's
protocol that reads wire bodies straight into their buffers, Starlette, freed memory kept for
reuse as nodes keep it) with two endpoints: one answers a GET with a --mib body streamed as the
coordinator streams wire replies, one reads a POSTed body whole into one buffer, as the
coordinator does. This process is the client, through MeshClient's own HTTP exchange
(`ramnet.mesh.transport.client`, without the signing), keeping freed memory too (as a worker does).
Measured: CPU milliseconds per MiB on each side (medians of --runs), for uploads (POST) and
downloads (GET).

Then the floor for one n x n x n int8 job on 3 nodes: the bytes its plan must move (A and B up;
each node's tiles down; every block product's int32 partial up, audits included; C down), times
the measured per-MiB costs. With the sovereign run's CPU seconds measured in the same run, the
bench prints how much of the issue's budget (1.5 x the sovereign CPU) the transport alone takes,
before any GEMM, hashing or checking.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from _common import emit
from bench_mesh import ME, _port, _timed

from ramnet import orchid
from ramnet.mesh import grid_for, plan_shards
from ramnet.mesh.protocol.wire import WIRE_CONTENT_TYPE
from ramnet.mesh.transport.client import HttpConnectionPool, TransportError

_SERVER = textwrap.dedent(
    """
    import resource, sys
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route
    from ramnet.mesh.coordinator.app import body_buffer, http_protocol, wire_response
    from ramnet.mesh.transport.server import raise_read_buffer, read_body
    from ramnet.orchid._memory import keep_freed_memory

    raise_read_buffer()
    keep_freed_memory()
    body = bytes(int(sys.argv[2]) << 20)

    async def get(request):  # as the coordinator sends wire replies: 1 MiB pieces, no copy
        return wire_response([body])

    async def post(request):  # the coordinator's own body reader
        return Response(str(len(await read_body(request, 1 << 40, body_buffer))))

    async def cpu(request):
        r = resource.getrusage(resource.RUSAGE_SELF)
        return Response(repr(r.ru_utime + r.ru_stime))

    routes = [Route("/get", get), Route("/post", post, methods=["POST"]), Route("/cpu", cpu)]
    uvicorn.run(Starlette(routes=routes), host="127.0.0.1", port=int(sys.argv[1]),
                log_level="error", access_log=False, http=http_protocol(1 << 40))
    """
)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def transport_costs(mib: int, runs: int) -> dict[str, float]:
    """CPU ms per MiB, client and server, for uploads and downloads of ``mib`` MiB bodies."""
    from ramnet.orchid._memory import keep_freed_memory

    keep_freed_memory()
    port = _port()
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(port), str(mib)])
    try:
        http = HttpConnectionPool(f"http://127.0.0.1:{port}", timeout=60)

        def get(path: str) -> bytes | bytearray | memoryview:
            return http.send("GET", path, b"", {}, 1 << 40).content

        deadline = time.monotonic() + 30
        while True:
            try:
                get("/cpu")
                break
            except TransportError:
                if time.monotonic() > deadline:
                    raise SystemExit("bench: the server did not start") from None
                time.sleep(0.05)
        body = bytes(mib << 20)

        def upload() -> None:
            # Labelled as the mesh labels its arrays (read into an unzeroed buffer).
            wire = {"Content-Type": WIRE_CONTENT_TYPE}
            reply = http.send("POST", "/post", body, wire, 1 << 20).content
            assert bytes(reply) == str(len(body)).encode()

        def download() -> None:
            assert len(get("/get")) == len(body)

        out: dict[str, float] = {}
        for name, fn in (("upload", upload), ("download", download)):
            fn()  # warm
            client, server_ms = [], []
            for _ in range(runs):
                s0, c0 = float(get("/cpu")), _cpu()
                fn()
                client.append((_cpu() - c0) * 1e3 / mib)
                server_ms.append((float(get("/cpu")) - s0) * 1e3 / mib)
            out[f"{name}_client_ms_per_mib"] = round(statistics.median(client), 3)
            out[f"{name}_server_ms_per_mib"] = round(statistics.median(server_ms), 3)
        return out
    finally:
        server.terminate()
        server.wait(30)


def job_bytes(n: int) -> dict[str, float]:
    """MiB an n x n x n int8 job on 3 nodes moves, by leg, from its sharding plan."""
    grid = orchid.make_grid(n, n, n, grid_for(n, n, n, 3, dtype="int8"))
    plan = plan_shards(b"bench-transport", grid.shape, 3)
    mib = float(1 << 20)
    ab = 2 * n * n / mib
    tiles = sum(
        (plan.a_fraction(node, grid) + plan.b_fraction(node, grid)) * n * n
        for node in range(plan.nodes)
    )
    partials = 0
    for node in range(plan.nodes):
        for block in plan.assignment(node):
            partials += len(range(*grid.rows(block.i).indices(n))) * len(
                range(*grid.cols(block.j).indices(n))
            )
    return {
        "a_b_up": round(ab, 1),
        "tiles_down": round(tiles / mib, 1),
        "partials_up": round(4 * partials / mib, 1),
        "c_down": round(4 * n * n / mib, 1),
    }


def sovereign_cpu(n: int, runs: int) -> float:
    """CPU seconds of ``ramnet run --mode sovereign`` on n x n int8 .npy files (median)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        a, b = orchid.random_operands(n, n, n, "int8", seed=9)
        np.save(folder / "A.npy", a)
        np.save(folder / "B.npy", b)
        cmd = [*ME, "run", "--a", "A.npy", "--b", "B.npy", "--out", "C.npy"]
        env = {**os.environ, "XDG_CONFIG_HOME": str(folder / "cfg")}
        times = [_timed(cmd, folder, env)[1] for _ in range(runs + 1)]
        return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    costs = transport_costs(args.mib, args.runs)
    legs = job_bytes(args.n)
    up = costs["upload_client_ms_per_mib"] + costs["upload_server_ms_per_mib"]
    down = costs["download_client_ms_per_mib"] + costs["download_server_ms_per_mib"]
    floor = (
        (legs["a_b_up"] + legs["partials_up"]) * up + (legs["tiles_down"] + legs["c_down"]) * down
    ) / 1e3
    sovereign = sovereign_cpu(args.n, max(1, args.runs // 2))
    budget = 1.5 * sovereign
    emit(
        {
            "n": args.n,
            "per_mib": costs,
            "job_mib": legs,
            "transport_cpu_s": round(floor, 3),
            "sovereign_cpu_s": round(sovereign, 3),
            "budget_cpu_s": round(budget, 3),
            "transport_over_budget": round(floor / budget, 2),
        },
        args.json,
    )


if __name__ == "__main__":
    main()
