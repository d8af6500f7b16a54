"""Make the screenshots in docs/img (README.md and docs/ui.md show them), 1280 px wide.

    python docs/img/make_screenshots.py [dashboard|ui]

Needs the test extra (Playwright) and Debian's chromium, as the browser tests do. Everything runs
on 127.0.0.1; no page may log a JavaScript error or ask another host for anything (the same
guarded pages as the tests: a page that does is an error here too).

- ``ramnet ui``'s pages, whole (ui-run.png, ui-run-mesh.png, ui-verify.png, ui-identity.png,
  ui-lend.png): its browser tests, run with ``RAMNET_DOCS_IMG`` set to this folder, save them.
- The coordinator's ``/dashboard`` (dashboard.png, dashboard-nodes.png, dashboard-job.png): a
  mesh on 127.0.0.1 (a coordinator, a worker cheating off-by-one, two honest workers and a
  validator) runs three jobs; the first is audited, the cheater slashed and banned.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from tests.browser_support import chromium_path, open_guarded_page  # noqa: E402
from tests.mesh_procs import Mesh, wait_for  # noqa: E402


def ui_pages() -> None:
    """``ramnet ui``'s pages, from its browser tests."""
    env = {**os.environ, "RAMNET_DOCS_IMG": str(HERE)}
    test = REPO / "tests" / "ui" / "test_ui_browser.py"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
                   cwd=REPO, env=env, check=True)  # fmt: skip


def _mesh_with_history(folder: Path) -> tuple[Mesh, str]:
    """A mesh whose cheater was caught, and three settled jobs; returns it and the first job."""
    mesh = Mesh(folder)
    mesh.start_coordinator()
    mesh.start("cheat", "worker", "start", "--key-file", "cheat.key", "--bond", "50",
               "--misbehave", "off-by-one")  # fmt: skip
    for w in range(2):
        mesh.start(f"w{w}", "worker", "start", "--key-file", f"w{w}.key", "--bond", "50")
    mesh.start("val", "worker", "start", "--key-file", "val.key", "--bond", "50", "--validator")
    for name in ("cheat", "w0", "w1", "val"):
        wait_for(folder / f"{name}.log", "registered", 90)
    jobs = []
    # After the first job the cheater is banned: a fourth honest worker keeps three computing.
    for seed, shape in ((1, "96x80x64"), (2, "256x256x256"), (3, "384x320x256")):
        if seed == 2:
            mesh.start("w2", "worker", "start", "--key-file", "w2.key", "--bond", "50")
            wait_for(folder / "w2.log", "registered", 90)
        consumer = mesh.popen(
            "run", "--mode", "mesh", "--nodes", "3", "--random", shape, "--dtype", "int8",
            "--seed", str(seed), "--out", f"C{seed}.npy", "--key-file", "c.key", "--json",
        )  # fmt: skip
        out, err = consumer.communicate(timeout=300)
        if consumer.returncode != 0:
            raise SystemExit(f"the mesh job failed: {err.decode()}")
        jobs.append(json.loads(out)["job_id"])
    return mesh, jobs[0]


def dashboard_pages() -> None:
    """The coordinator's dashboard and the audited job's page."""
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        mesh, job = _mesh_with_history(Path(tmp))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
                with open_guarded_page(browser, Path(tmp)) as guarded:
                    page = guarded.page
                    page.goto(f"{mesh.url}/dashboard")
                    expect(page.locator("#live-status")).to_contain_text("Live:")
                    page.wait_for_timeout(1000)  # uPlot draws after the page loads
                    page.screenshot(path=str(HERE / "dashboard.png"))
                    page.evaluate("document.getElementById('nodes-h').scrollIntoView()")
                    page.screenshot(path=str(HERE / "dashboard-nodes.png"))
                    page.locator(f'#jobs-table tr[data-job="{job}"] a').click()
                    expect(page.locator("#job-state")).to_have_text("settled")
                    page.screenshot(path=str(HERE / "dashboard-job.png"))
                    guarded.check()
                browser.close()
        finally:
            mesh.stop()


def main() -> None:
    """Make every screenshot (``dashboard`` or ``ui`` as the argument: only those)."""
    if chromium_path() is None:
        raise SystemExit("no Chromium: install Debian's chromium (apt-get install chromium)")
    only = sys.argv[1] if len(sys.argv) > 1 else None
    if only not in (None, "dashboard", "ui"):
        raise SystemExit("usage: make_screenshots.py [dashboard|ui]")
    if only in (None, "dashboard"):
        dashboard_pages()
    if only in (None, "ui"):
        ui_pages()
    for png in sorted(HERE.glob("*.png")):
        print(f"{png.relative_to(REPO)}  {png.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
