"""The coordinator's dashboard: time to first paint, the live update's delay, and what open
dashboards cost the coordinator's CPU. Whole processes, medians of --runs.

Usage: python bench/bench_dashboard.py [--runs 5] [--n 4096] [--json]
Needs Debian's Chromium (/usr/bin/chromium, or $RAMNET_TEST_CHROMIUM), the playwright package
and psutil (the `bench` extra).

- first paint: a data folder filled through the store's and the ledger's API with 30 nodes and
  200 jobs (tests/mesh/dashboard/filled_store.py: settled jobs with their shards, two running, a
  dispute upheld with a fraud proof, one open, one failed); for each run a fresh
  `ramnet coordinator start` on a copy of it, and a fresh browser context (nothing cached) that
  opens /dashboard: Chromium's first-contentful-paint (`performance` paint entry, from the start
  of the navigation), for the coordinator's first page after it started (`fcp_first_ms`) and
  for the next one (`fcp_ms`, the usual case: templates compiled);
- live update: a coordinator and 3 workers on a store with a past (--history settled jobs and
  30 nodes, filled as for the first paint, with nothing running), the dashboard open in
  Chromium; --runs small mesh jobs (256x256x256 int8) one after another; for each, from the
  moment the job settled (its row's update time in the store) to the moment its settled row
  appeared in the open page (a MutationObserver's clock; one machine, one clock), without a
  reload;
- CPU: the same coordinator and 3 workers; --n^3 int8 mesh jobs, in turn with no dashboard
  open, with 5 open in Chromium (5 pages, each with its event stream; the browser renders on
  this machine's cores too), and with 5 dashboards' event streams read by plain HTTP clients
  that render nothing (what the coordinator serves five dashboards, without five browsers
  competing for its cores), and, as a control, with 5 Chromium pages from another server that
  redraw a table every 250 ms (the coordinator serves them nothing: what they add is rendering
  competing for the cores); the order rotated each run; each job starts --settle-s after the
  dashboards opened (past the coordinator's 5 s keep-alive timeout, which closes the idle
  connections a page load leaves). The coordinator's CPU seconds (user + system, every thread,
  to the nanosecond: Linux's per-process CPU clock) from submitting the job to --tail-s after
  its end (the pages drawing the job settled, one poll later, included): medians
  (--cpu-runs of each), the relative differences (of the medians, of the totals, the median
  of each run's paired difference, and the mean of the paired differences with its 95%
  bootstrap interval); each job's minor page faults and system seconds (a job whose buffers
  were faulted in afresh costs the kernel 0.1-0.2 s more: the job's own noise, not the
  dashboards'); the CPU the coordinator spent while 5 pages opened; what
  the 5 pages cost Chromium per job (psutil, every Chromium process); and the extra CPU per
  second of 5 dashboards open on an idle mesh;
- with --attribute, the dashboard's own code per job counted inside the coordinator
  (bench/_dashboard_probe: each thread's CPU clock around the poller's reads, the reads and
  renders of a change, each stream's batch and its writes), for each kind, and as a share of
  the coordinator's CPU per job with none open: a job's CPU varies 10-20% from run to run,
  more than the 5% the whole-process difference is asked to resolve. The probe itself changes
  how the coordinator's memory is reused: with it, most jobs fault their buffers in afresh
  (without it, a few in 50 do), so take the whole-process figures from a run without it.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from _common import ROOT, emit, paired_mean_interval, process_cpu_s, process_faults
from _procs import ME, ProcessMesh

sys.path.insert(0, str(ROOT))

from ramnet.mesh.protocol.routes import page_url
from tests.mesh.dashboard.filled_store import fill_store

TIMEOUT_MS = 60_000
SMALL = "256x256x256"

# Records, in the page, when each job's row first shows it settled (ms since the epoch).
OBSERVE = """
() => {
  window.__settledAt = {};
  const look = () => {
    for (const row of document.querySelectorAll('#jobs-table tr[data-state="settled"]')) {
      const job = row.dataset.job;
      if (!(job in window.__settledAt)) {
        window.__settledAt[job] = performance.timeOrigin + performance.now();
      }
    }
  };
  look();
  new MutationObserver(look).observe(document.body, {subtree: true, childList: true});
}
"""


def _say(message: str) -> None:
    """What the benchmark is doing now, on stderr (stdout carries the result alone)."""
    print(f"bench_dashboard: {message}", file=sys.stderr, flush=True)


def _chromium() -> str:
    for path in (os.environ.get("RAMNET_TEST_CHROMIUM", ""), "/usr/bin/chromium"):
        if path and os.access(path, os.X_OK):
            return path
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise SystemExit("bench: no Chromium (apt-get install chromium)")
    return found


def _chromium_cpu_s() -> float:
    """CPU seconds of every Chromium process this benchmark started (the browser, its
    renderers, GPU and utility processes), user and system."""
    import psutil

    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "chrom" in proc.name():
                times = proc.cpu_times()
                total += times.user + times.system
    return total


def _run_job(mesh: ProcessMesh, shape: str, seed: int) -> str:
    """Submit a mesh job and wait until it ends; returns its id."""
    out = subprocess.run(
        [
            *ME, "run", "--mode", "mesh", "--nodes", "3", "--random", shape, "--dtype", "int8",
            "--seed", str(seed), "--out", "C.npy", "--key-file", "consumer.key", "--json",
        ],
        cwd=mesh.folder, env=mesh.env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"bench: the mesh job failed: {out.stderr.strip()}")
    return _newest_settled(mesh.folder / "s" / "state.sqlite")


def _newest_settled(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        row = conn.execute(
            "SELECT job_id FROM jobs WHERE state = 'settled' ORDER BY updated_at DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    return str(row[0])


def _settled_at(path: Path, job_id: str) -> float:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        row = conn.execute("SELECT updated_at FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    finally:
        conn.close()
    return float(row[0])


def _start_coordinator(mesh: ProcessMesh) -> None:
    mesh.coordinator()  # returns once it logged its address, maybe before it listens
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(mesh.env["RAMNET_COORDINATOR"] + "/health", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("bench: the coordinator never answered /health") from None
            time.sleep(0.05)


def _wait(page: Any, expression: str, timeout_s: float = TIMEOUT_MS / 1000) -> None:
    # Polled from here: the page's Content-Security-Policy forbids the eval that Playwright's
    # wait_for_function needs. What is timed is stamped by the page itself, not by this poll.
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: the page never satisfied {expression}")
        time.sleep(0.02)


def _open_dashboard(browser: Any, url: str) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(url + page_url("dashboard"))
    _wait(page, "document.getElementById('live-status').textContent.includes('Live')")
    return context, page


def first_paint(browser: Any, folder: Path, runs: int) -> dict[str, float]:
    """Medians of the first-contentful-paint of /dashboard on 30 nodes and 200 jobs."""
    filled = folder / "filled"
    fill_store(filled, nodes=30, jobs=200)
    first: list[float] = []
    warm: list[float] = []
    for run in range(runs):
        _say(f"first paint {run + 1}/{runs}: a fresh coordinator on 30 nodes and 200 jobs")
        where = folder / f"fcp{run}"
        where.mkdir()
        shutil.copytree(filled, where / "s")
        mesh = ProcessMesh(where)
        try:
            _start_coordinator(mesh)
            for sink in (first, warm):
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                page = context.new_page()
                page.goto(mesh.env["RAMNET_COORDINATOR"] + page_url("dashboard"))
                _wait(page, "performance.getEntriesByName('first-contentful-paint').length > 0")
                fcp = page.evaluate(
                    "performance.getEntriesByName('first-contentful-paint')[0].startTime"
                )
                sink.append(float(fcp))
                context.close()
        finally:
            mesh.stop()
    return {
        "fcp_first_ms": round(statistics.median(first), 1),
        "fcp_ms": round(statistics.median(warm), 1),
        "fcp_runs_ms": [round(v, 1) for v in warm],
    }


def live_delay(browser: Any, mesh: ProcessMesh, runs: int) -> dict[str, object]:
    """Medians of the delay from a job's settling to its settled row on an open dashboard."""
    context, page = _open_dashboard(browser, mesh.env["RAMNET_COORDINATOR"])
    page.evaluate(OBSERVE)
    page.evaluate("window.__notReloaded = true")
    state = mesh.folder / "s" / "state.sqlite"
    delays = []
    try:
        for run in range(runs):
            _say(f"live update {run + 1}/{runs}: a {SMALL} mesh job, the dashboard open")
            job = _run_job(mesh, SMALL, 100 + run)
            _wait(page, f"'{job}' in window.__settledAt")
            shown_ms = float(page.evaluate(f"window.__settledAt['{job}']"))
            delays.append(shown_ms / 1000 - _settled_at(state, job))
        if not page.evaluate("window.__notReloaded === true"):
            raise SystemExit("bench: the dashboard reloaded")
    finally:
        context.close()
    return {
        "live_delay_s": round(statistics.median(delays), 3),
        "live_delay_runs_s": [round(d, 3) for d in delays],
    }


class _Streams:
    """Dashboards read by plain sockets that render nothing (each page fetched, then its event
    stream held open): what five open dashboards cost the coordinator itself, without five
    browsers rendering on the same cores."""

    def __init__(self, url: str, count: int) -> None:
        parts = urllib.parse.urlsplit(url)
        self._socks = []
        self._threads = []
        for _ in range(count):
            # As a browser does: the page first, then its stream from the page's own state.
            with urllib.request.urlopen(url + page_url("dashboard"), timeout=30) as reply:
                page = reply.read().decode()
            events = re.search(r'sse-connect="([^"]+)"', page)
            if events is None:
                raise SystemExit("bench: the dashboard names no event stream")
            request = (
                f"GET {html.unescape(events.group(1))} HTTP/1.1\r\n"
                f"Host: {parts.netloc}\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
            sock = socket.create_connection((parts.hostname, parts.port))
            sock.sendall(request)
            thread = threading.Thread(target=self._drain, args=(sock,), daemon=True)
            thread.start()
            self._socks.append(sock)
            self._threads.append(thread)

    @staticmethod
    def _drain(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while sock.recv(65536):
                pass

    def close(self) -> None:
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(5)


# The control: a page from another server that redraws a table every 250 ms, about what an open
# dashboard costs Chromium during a job (its pages measured beside it). The coordinator serves
# it nothing: what these pages add to the coordinator's CPU is their rendering competing for the
# same cores, not work the coordinator does for them.
BUSY_PAGE = b"""<!doctype html><meta charset="utf-8"><title>busy</title><table id="t"></table>
<script>
function draw() {
  var rows = [];
  for (var i = 0; i < 40; i++) {
    rows.push("<tr><td>" + i + "</td><td>" + Math.random() + "</td><td><progress max=3 value="
      + (i % 4) + "></progress></td><td>" + Date.now() + "</td></tr>");
  }
  document.getElementById("t").innerHTML = rows.join("");
}
setInterval(draw, 250);
</script>"""


class _BusyServer:
    """An HTTP server on 127.0.0.1 that serves ``BUSY_PAGE``, in a thread."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(BUSY_PAGE)))
                self.end_headers()
                self.wfile.write(BUSY_PAGE)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def open(self, browser: Any) -> tuple[Any, Any]:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(self.url)
        return context, page

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _probe() -> dict[str, list[float]]:
    """What ``_dashboard_probe`` counted so far in the coordinator (--attribute), or {}."""
    path = os.environ.get("RAMNET_BENCH_PROBE")
    if not path:
        return {}
    time.sleep(0.3)  # its next write
    with contextlib.suppress(OSError, ValueError), open(path) as found:
        return dict(json.load(found))
    return {}


def cpu_with_dashboards(
    browser: Any,
    mesh: ProcessMesh,
    n: int,
    runs: int,
    settle_s: float,
    kinds: tuple[str, ...] = ("browsers", "streams", "busy"),
    tail_s: float = 1.0,
) -> dict[str, object]:
    """The coordinator's CPU seconds per --n^3 job: no dashboard open, 5 open in Chromium (on
    the same machine), 5 dashboards' streams read without rendering, and the control (5
    Chromium pages busy drawing a page of another server); in turn, their order rotated each
    run so that a drift of the machine's load falls on all of them.

    The job starts ``settle_s`` after the dashboards opened: what is measured is dashboards
    open during a job. Opening them is measured apart (``coordinator_cpu_open_5_pages_ms``):
    each page load opens up to six connections, which the coordinator closes once they have
    been idle for its keep-alive timeout (5 s). The CPU is counted until ``tail_s`` after the
    job ended, for every kind: what the dashboards do when the job settles (its row drawn on
    each page) happens after the job's end, within the next poll."""
    pid = mesh.procs["coord"].pid
    url = mesh.env["RAMNET_COORDINATOR"]
    shape = f"{n}x{n}x{n}"
    _say(f"CPU: an untimed {shape} mesh job first (every process warm)")
    _run_job(mesh, shape, 1)  # untimed: every process warm
    unknown = set(kinds) - {"browsers", "streams", "busy"}
    if unknown:
        raise SystemExit(f"bench: no such kind of dashboard: {', '.join(sorted(unknown))}")
    cpu: dict[str, list[float]] = {kind: [] for kind in ("none", *kinds)}
    # Per job: the coordinator's minor page faults and system seconds. A job whose buffers
    # are faulted in afresh costs the kernel 0.1-0.2 s more: the job's own noise, which
    # these show apart from the dashboards'.
    faults: dict[str, list[int]] = {kind: [] for kind in cpu}
    system: dict[str, list[float]] = {kind: [] for kind in cpu}
    opening: list[float] = []
    chromium: dict[str, list[float]] = {"browsers": [], "busy": []}
    probed: dict[str, dict[str, list[float]]] = {}
    walls: list[float] = []
    order = list(cpu)
    busy = _BusyServer()
    for run in range(runs):
        _say(f"CPU {run + 1}/{runs}: one {shape} mesh job with each of {', '.join(order)}")
        for kind in order[run % len(order) :] + order[: run % len(order)]:
            before_open = process_cpu_s(pid)
            pages = [_open_dashboard(browser, url) for _ in range(5 if kind == "browsers" else 0)]
            pages += [busy.open(browser) for _ in range(5 if kind == "busy" else 0)]
            streams = _Streams(url, 5 if kind == "streams" else 0)
            time.sleep(settle_s)
            try:
                counted = _probe()
                faults_before = process_faults(pid)
                before, t0 = process_cpu_s(pid), time.perf_counter()
                browser_before = _chromium_cpu_s()
                if kind == "browsers":
                    opening.append(before - before_open)
                _run_job(mesh, shape, 10 + run)
                time.sleep(tail_s)
                cpu[kind].append(process_cpu_s(pid) - before)
                faults_after = process_faults(pid)
                faults[kind].append(faults_after[0] - faults_before[0])
                system[kind].append(faults_after[1] - faults_before[1])
                for name, (calls, seconds) in _probe().items():
                    was = counted.get(name, [0, 0.0])
                    into = probed.setdefault(kind, {}).setdefault(name, [0.0, 0.0])
                    into[0] += calls - was[0]
                    into[1] += seconds - was[1]
                if kind in chromium:
                    chromium[kind].append(_chromium_cpu_s() - browser_before)
                walls.append(time.perf_counter() - t0)
            finally:
                streams.close()
                for context, _ in pages:
                    context.close()
            time.sleep(1.0)  # the closed streams ended
    busy.close()
    base, base_total = statistics.median(cpu["none"]), sum(cpu["none"])
    out: dict[str, object] = {"n": n, "settle_s": settle_s, "tail_s": tail_s}
    out["coordinator_cpu_none_s"] = round(base, 4)
    labels = {"browsers": "5_dashboards", "streams": "5_streams", "busy": "5_busy_pages"}
    for kind, label in labels.items():
        if kind not in cpu:
            continue
        value, total = statistics.median(cpu[kind]), sum(cpu[kind])
        out[f"coordinator_cpu_{label}_s"] = round(value, 4)
        out[f"coordinator_cpu_{label}_more_pct"] = round(100 * (value - base) / base, 1)
        out[f"coordinator_cpu_{label}_total_more_pct"] = round(
            100 * (total - base_total) / base_total, 1
        )
        # Each run's three jobs ran back to back: the median of the per-run differences is
        # the least moved by the machine's load drifting between runs.
        differences = [k - b for k, b in zip(cpu[kind], cpu["none"], strict=True)]
        paired = [100 * d / b for d, b in zip(differences, cpu["none"], strict=True)]
        out[f"coordinator_cpu_{label}_paired_more_pct"] = round(statistics.median(paired), 1)
        # The mean of the paired differences, as a share of the median job with none open,
        # with its 95% bootstrap interval: what the whole process can say, and how surely.
        mean, low, high = paired_mean_interval(differences)
        out[f"coordinator_cpu_{label}_paired_mean_more_pct"] = round(100 * mean / base, 1)
        out[f"coordinator_cpu_{label}_paired_mean_more_pct_ci95"] = [
            round(100 * low / base, 1),
            round(100 * high / base, 1),
        ]
    for kind, values in cpu.items():
        out[f"coordinator_cpu_{kind}_runs_s"] = [round(v, 4) for v in values]
        out[f"coordinator_minor_faults_{kind}_runs"] = faults[kind]
        out[f"coordinator_system_{kind}_runs_s"] = [round(v, 2) for v in system[kind]]
    if opening:
        out["coordinator_cpu_open_5_pages_ms"] = round(1000 * statistics.median(opening), 1)
    for kind, label in labels.items():
        if chromium.get(kind):
            out[f"chromium_cpu_{label}_per_job_s"] = round(statistics.median(chromium[kind]), 3)
    for kind, label in labels.items():
        if kind not in probed:
            continue
        # Counted inside the coordinator (--attribute): the dashboard's own code per job, and
        # as a share of the CPU the coordinator spent on a job with no dashboard open.
        own = {name: seconds / runs for name, (_, seconds) in probed[kind].items()}
        out[f"dashboard_code_{label}_ms_per_job"] = round(1000 * sum(own.values()), 2)
        out[f"dashboard_code_{label}_pct_of_none"] = round(100 * sum(own.values()) / base, 2)
        out[f"dashboard_code_{label}_ms_per_job_by_part"] = {
            name: round(1000 * value, 3) for name, value in sorted(own.items())
        }
        out[f"dashboard_code_{label}_calls_per_job"] = {
            name: round(calls / runs, 2) for name, (calls, _) in sorted(probed[kind].items())
        }
    out["job_wall_median_s"] = round(statistics.median(walls), 2)
    out["coordinator_idle_poll_cpu_ms_per_s"] = idle_cost(browser, mesh, settle_s=settle_s)
    return out


def idle_cost(
    browser: Any, mesh: ProcessMesh, seconds: float = 10.0, settle_s: float = 6.0, runs: int = 3
) -> float:
    """The coordinator's extra CPU per second, in ms, with 5 dashboards open on an idle mesh
    (the shared poller; the workers' heartbeats and long polls subtracted): the median of
    ``runs`` alternating pairs of ``seconds`` each."""
    pid = mesh.procs["coord"].pid
    url = mesh.env["RAMNET_COORDINATOR"]
    extra = []
    for run in range(runs):
        _say(f"idle cost {run + 1}/{runs}: {seconds:g} s with no dashboard, then with 5")
        spent = {}
        for pages in (0, 5):
            opened = [_open_dashboard(browser, url) for _ in range(pages)]
            time.sleep(settle_s)
            before = process_cpu_s(pid)
            time.sleep(seconds)
            spent[pages] = process_cpu_s(pid) - before
            for context, _ in opened:
                context.close()
            time.sleep(1.0)
        extra.append(1000 * (spent[5] - spent[0]) / seconds)
    return round(statistics.median(extra), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cpu-runs", type=int, default=3)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--skip-cpu", action="store_true", help="Leave out the CPU comparison.")
    parser.add_argument(
        "--kinds",
        default="browsers,streams,busy",
        help="What the CPU comparison sets against no dashboard (browsers, streams, busy).",
    )
    parser.add_argument(
        "--history",
        type=int,
        default=200,
        help="Settled jobs (with 30 nodes) in the mesh's store before it starts (0: none).",
    )
    parser.add_argument(
        "--tail-s",
        type=float,
        default=1.0,
        help="Seconds after a job's end still counted (the dashboards drawing it settled).",
    )
    parser.add_argument(
        "--attribute",
        action="store_true",
        help="Also count, inside the coordinator, the CPU of the dashboard's own code per job "
        "(bench/_dashboard_probe).",
    )
    parser.add_argument(
        "--settle-s",
        type=float,
        default=6.0,
        help="Seconds between opening the dashboards and the job (past the keep-alive timeout).",
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    result: dict[str, object] = {"runs": args.runs}
    if args.attribute:
        probe = Path(__file__).resolve().parent / "_dashboard_probe"
        paths = [str(probe), *filter(None, [os.environ.get("PYTHONPATH")])]
        os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            folder = Path(tmp)
            result.update(first_paint(browser, folder, args.runs))
            if args.attribute:  # the mesh's coordinator only
                os.environ["RAMNET_BENCH_PROBE"] = str(folder / "probe.json")
            (folder / "mesh").mkdir()
            if args.history:
                # A coordinator with a past (what the first paint shows): every open dashboard
                # lists 50 jobs, 30 nodes and 50 movements, as a coordinator that has been
                # serving for a while does; real workers register beside its nodes.
                fill_store(folder / "mesh" / "s", nodes=30, jobs=args.history, live=False)
            mesh = ProcessMesh(folder / "mesh")
            try:
                _say("starting a coordinator and 3 workers, then an untimed small job")
                _start_coordinator(mesh)
                for w in range(3):
                    mesh.worker(f"w{w}", "--bond", "10")
                time.sleep(2)
                _run_job(mesh, SMALL, 1)  # untimed: the workers registered and warm
                result.update(live_delay(browser, mesh, args.runs))
                if not args.skip_cpu:
                    result.update(
                        cpu_with_dashboards(
                            browser,
                            mesh,
                            args.n,
                            args.cpu_runs,
                            args.settle_s,
                            tuple(k for k in args.kinds.split(",") if k),
                            args.tail_s,
                        )
                    )
            finally:
                mesh.stop()
        finally:
            browser.close()
    emit(result, args.json)


if __name__ == "__main__":
    main()
