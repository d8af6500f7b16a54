"""The coordinator's /dashboard in a real browser, over a real mesh on 127.0.0.1 (issue 19,
item 5): a coordinator, a worker cheating with ``--misbehave off-by-one``, two honest workers and
a validator; the consumer's job is audited, the validator proves the fraud, and the dashboard,
open before the job, shows live the job settled, the dispute upheld, and the cheater slashed
and banned, without a JavaScript error or a request to another host."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import GuardedPage
from tests.mesh_procs import Mesh, ramnet, wait_for

# Generous: two cores shared by many processes; a settled job takes seconds, not minutes.
JOB_TIMEOUT_S = 240
LIVE_TIMEOUT_MS = 120_000


@dataclass
class CheatedMesh:
    mesh: Mesh
    cheat: str
    honest: list[str]
    validator: str


def _node_id(mesh: Mesh, name: str) -> str:
    out = subprocess.run(
        ramnet("keys", "show", "--key-file", f"{name}.key"),
        cwd=mesh.folder, env=mesh.env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


@pytest.fixture(scope="module")
def cheated_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CheatedMesh]:
    """A coordinator (dashboard on by default), one cheater, two honest workers and a validator,
    every one registered; no job yet."""
    folder = tmp_path_factory.mktemp("mesh")
    mesh = Mesh(folder)
    try:
        mesh.start_coordinator()
        mesh.start("cheat", "worker", "start", "--key-file", "cheat.key", "--bond", "50",
                   "--misbehave", "off-by-one")  # fmt: skip
        for w in range(2):
            mesh.start(f"w{w}", "worker", "start", "--key-file", f"w{w}.key", "--bond", "50")
        mesh.start("val", "worker", "start", "--key-file", "val.key", "--bond", "50",
                   "--validator")  # fmt: skip
        for name in ("cheat", "w0", "w1", "val"):
            wait_for(folder / f"{name}.log", "registered", 90)
        yield CheatedMesh(
            mesh,
            cheat=_node_id(mesh, "cheat"),
            honest=[_node_id(mesh, "w0"), _node_id(mesh, "w1")],
            validator=_node_id(mesh, "val"),
        )
    finally:
        mesh.stop()


def _node_row(page: Any, node_id: str) -> Any:
    """The dashboard's table row of one node."""
    return page.locator(f'#nodes-table tr[data-node="{node_id}"]')


def test_the_dashboard_shows_the_cheater_slashed_and_the_job_settled(
    cheated_mesh: CheatedMesh, page: GuardedPage
) -> None:
    from playwright.sync_api import expect

    mesh, cheat = cheated_mesh.mesh, cheated_mesh.cheat
    p = page.page
    p.goto(f"{mesh.url}/dashboard")
    expect(p.get_by_role("heading", level=1)).to_have_text("RAMNET coordinator")
    expect(p.locator("#live-status")).to_contain_text("Live:")
    # Every node is listed before any job, none banned.
    for node in [cheat, *cheated_mesh.honest, cheated_mesh.validator]:
        expect(_node_row(p, node)).to_have_count(1)
        expect(_node_row(p, node).locator("td").nth(4)).to_have_text("no")
    expect(_node_row(p, cheated_mesh.validator).locator("td").first).to_have_text("yes")

    consumer = mesh.popen(
        "run", "--mode", "mesh", "--nodes", "3", "--random", "96x80x64", "--dtype", "int8",
        "--seed", "1", "--out", "C.npy", "--key-file", "c.key", "--json",
    )  # fmt: skip
    out, err = consumer.communicate(timeout=JOB_TIMEOUT_S)
    assert consumer.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["state"] == "settled"
    job = str(report["job_id"])

    # Live, without reloading: the job settled, the dispute upheld by the validator drawn, the
    # cheater slashed and banned, the honest nodes not.
    job_row = p.locator(f'#jobs-table tr[data-job="{job}"]')
    expect(job_row).to_have_attribute("data-state", "settled", timeout=LIVE_TIMEOUT_MS)
    cheat_row = _node_row(p, cheat)
    expect(cheat_row.locator("td").nth(4)).to_have_text("banned", timeout=LIVE_TIMEOUT_MS)
    expect(cheat_row.locator("td").nth(3)).to_have_text("50")  # its whole bond slashed
    for node in cheated_mesh.honest:
        expect(_node_row(p, node).locator("td").nth(4)).to_have_text("no")
    disputes = p.get_by_role("region", name="Disputes", exact=True)
    dispute = disputes.locator("tr[data-dispute]").filter(has_text=job[:12])
    expect(dispute).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
    expect(dispute).to_contain_text(f"upheld: slashed {cheat[:12]}", timeout=LIVE_TIMEOUT_MS)
    expect(dispute.locator(f'[title="{cheated_mesh.validator}"]')).to_have_count(1)
    expect(p.locator("#summary")).to_contain_text("conserved")
    assert page.phone_overflow() == 0, "the dashboard is wider than a phone's 375 px"
    page.screenshot("dashboard-live", phone=True)

    # The fraud proof's entries: the cheater's wrong entry, with the correct value.
    proofs = dispute.locator("details")
    expect(proofs.locator("summary")).to_contain_text("Judged by the validator")
    if not proofs.evaluate("details => details.open"):  # a long list starts closed
        proofs.locator("summary").focus()
        p.keyboard.press("Enter")
    entry = proofs.get_by_role("listitem").filter(has_text=f"node {cheat[:12]}")
    expect(entry.first).to_be_visible()
    expect(entry.first).to_contain_text("correct")

    # The job's own page, reached by keyboard from its row: shards and the same dispute.
    job_row.get_by_role("link").focus()
    p.keyboard.press("Enter")
    expect(p.locator("#job-state")).to_have_text("settled")
    expect(p.locator("#shards-table tbody tr").first).to_be_visible()
    expect(p.get_by_role("region", name="Disputes", exact=True)).to_contain_text("upheld")
    assert page.phone_overflow() == 0, "the job's page is wider than a phone's 375 px"
    page.screenshot("dashboard-job", phone=True)

    # A fresh load of the dashboard shows the same.
    p.goto(f"{mesh.url}/dashboard")
    expect(_node_row(p, cheat).locator("td").nth(4)).to_have_text("banned")
    expect(p.locator(f'#jobs-table tr[data-job="{job}"]')).to_have_attribute(
        "data-state", "settled"
    )
    page.screenshot("dashboard", phone=True)
    assert all(Path(page.folder, n).exists() for n in ("dashboard.png", "dashboard-375.png"))
