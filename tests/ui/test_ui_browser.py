"""``ramnet ui`` in a real Chromium (issue 19, item 5): the real ``ramnet ui --no-browser``
process on 127.0.0.1; a sovereign job with a trace and a proof run from the page ends with
VALKYRIE's VALID verdict; a tampered trace is refused; a wallet injected as ``window.ethereum``
(signing with an eth-account test key) binds a payout address, saved and valid; the lend page
starts, shows and stops a worker against a coordinator. No page may log a JavaScript error or
ask another host for anything (the ``page`` fixture fails the test). Screenshots of each page go
under the test's folder (and to ``$RAMNET_DOCS_IMG`` when set: docs/img/ui-*.png)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser_support import DESKTOP, PHONE, GuardedPage

# Generous: two cores shared by many processes.
JOB_TIMEOUT_MS = 180_000
WALLET_KEY = "0x" + "4c" * 32
# The switch's buttons, as a screen reader names them.
SOVEREIGN = "Sovereign (on this machine)"
MESH = "Mesh (on a coordinator's workers)"


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A ``ramnet ui --no-browser --port 0`` process; yields its URL and its folder."""
    folder = tmp_path_factory.mktemp("ui")
    env = {**os.environ, "RAMNET_THREADS": "2"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ramnet.cli", "ui", "--no-browser", "--port", "0",
         "--work-dir", str(folder / "work"), "--key-file", str(folder / "node.key")],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        assert found, f"ramnet ui printed {line!r}"
        yield found.group(1), folder
    finally:
        process.terminate()
        process.wait(30)


def _shoot(page: GuardedPage, name: str) -> None:
    """Screenshots at 1280x800 and 375 px, after checking the page fits a phone's width."""
    page.page.set_viewport_size(PHONE)
    wide = page.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    page.page.set_viewport_size(DESKTOP)
    assert wide <= 0, f"{name}: {wide} px of sideways scroll at 375 px"
    page.screenshot(name, phone=True)
    docs = os.environ.get("RAMNET_DOCS_IMG")
    if docs:  # the whole page at 1280 px wide, for docs/ui.md
        page.page.screenshot(path=str(Path(docs) / f"{name}.png"), full_page=True)


def test_a_sovereign_job_with_a_trace_ends_with_valkyries_verdict(
    ui: tuple[str, Path], page: GuardedPage
) -> None:
    from playwright.sync_api import expect

    base, _ = ui
    p = page.page
    p.goto(f"{base}/run")
    expect(p.get_by_role("button", name=SOVEREIGN)).to_have_attribute("aria-pressed", "true")
    p.get_by_label("Shape (M×K×N)").fill("192x160x128")
    p.get_by_label("Dtype", exact=True).select_option("int8")
    p.get_by_label("Add a sum-check proof to the trace").check()
    p.get_by_role("button", name="Run sovereign job").click()
    verdict = p.locator(".verdict")
    expect(verdict.locator("caption")).to_have_text("VALID", timeout=JOB_TIMEOUT_MS)
    for check in ("signature", "proof", "commitment of C", "Freivalds"):
        expect(verdict.get_by_role("cell", name=check, exact=False).first).to_be_visible()
    expect(verdict).not_to_contain_text("FAILED")
    expect(p.get_by_role("link", name="Download C (.npy)")).to_be_visible()
    expect(p.get_by_role("link", name="Download the trace")).to_be_visible()
    expect(p.locator(".progress-box")).to_contain_text("Finished.")
    verdict.scroll_into_view_if_needed()
    _shoot(page, "ui-run")
    # A mistake is one sentence next to its field, the page still usable.
    p.get_by_label("Shape (M×K×N)").fill("12x")
    p.get_by_role("button", name="Run sovereign job").click()
    expect(p.locator("#shape-error")).to_contain_text("The shape must be MxKxN")
    # The switch: Mesh shows the mesh's options.
    p.get_by_role("button", name=MESH).click()
    expect(p.get_by_label("Coordinator URL")).to_be_visible()
    expect(p.get_by_role("button", name=MESH)).to_have_attribute("aria-pressed", "true")
    _shoot(page, "ui-run-mesh")
    p.get_by_role("button", name=SOVEREIGN).click()
    expect(p.get_by_label("Add a sum-check proof to the trace")).to_be_visible()


def test_a_tampered_trace_is_refused(
    ui: tuple[str, Path], page: GuardedPage, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    base, folder = ui
    traces = sorted((folder / "work" / "jobs").glob("*/trace.bin"))
    assert traces, "the sovereign job's test runs first and leaves its trace"
    data = bytearray(traces[-1].read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered = tmp_path / "trace.bin"
    tampered.write_bytes(bytes(data))
    p = page.page
    p.goto(f"{base}/verify")
    p.get_by_label("Trace (trace.bin)").set_input_files(str(tampered))
    p.get_by_role("button", name="Verify").click()
    verdict = p.locator(".verdict")
    expect(verdict.locator("caption")).to_have_text("INVALID", timeout=JOB_TIMEOUT_MS)
    expect(verdict).to_contain_text("FAILED")
    expect(verdict).to_contain_text("invalid: ")
    verdict.scroll_into_view_if_needed()
    _shoot(page, "ui-verify")
    # The untouched trace with its C is valid.
    p.goto(f"{base}/verify")
    p.get_by_label("Trace (trace.bin)").set_input_files(str(traces[-1]))
    p.get_by_label("C (.npy, optional)").set_input_files(str(traces[-1].with_name("C.npy")))
    p.get_by_role("button", name="Verify").click()
    expect(p.locator(".verdict caption")).to_have_text("VALID", timeout=JOB_TIMEOUT_MS)


def _wallet_script(address: str) -> str:
    # An EIP-1193 provider whose signatures come from the test (page.expose_function).
    return f"""
    window.ethereum = {{
      isTestWallet: true,
      request: async function (args) {{
        if (args.method === "eth_requestAccounts") {{ return ["{address.lower()}"]; }}
        if (args.method === "eth_signTypedData_v4") {{
          return await window.ramnetTestSign(args.params[0], args.params[1]);
        }}
        const error = new Error("unsupported method " + args.method);
        error.code = 4200;
        throw error;
      }},
    }};
    """


def test_a_browser_wallet_binds_the_payout_address(ui: tuple[str, Path], page: GuardedPage) -> None:
    from playwright.sync_api import expect

    from ramnet.valkyrie._binding712 import check_binding, read_binding
    from tests.eth_wallet import address_of
    from tests.eth_wallet import sign as wallet_sign

    base, folder = ui
    wallet_address = address_of(WALLET_KEY)
    asked: list[str] = []

    def sign(account: str, typed_json: str) -> str:
        asked.append(account)
        return wallet_sign(json.loads(typed_json), WALLET_KEY)

    p = page.page
    p.expose_function("ramnetTestSign", sign)
    p.add_init_script(_wallet_script(wallet_address))
    p.goto(f"{base}/identity")
    if p.get_by_role("button", name="Create the node key").count():
        p.get_by_role("button", name="Create the node key").click()
    expect(p.locator("#node-id")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    # A bad checksum first: one sentence next to the address.
    bad = (
        wallet_address[:-1] + wallet_address[-1].swapcase()
        if wallet_address[-1].isalpha()
        else "0x12"
    )
    p.get_by_label("Payout address").fill(bad)
    p.get_by_role("button", name="Prepare the statement").click()
    expect(p.locator("#payout_address-error")).to_be_visible()
    p.get_by_label("Payout address").fill(wallet_address)
    p.get_by_role("button", name="Prepare the statement").click()
    expect(p.locator("#typed-data-view")).to_contain_text("RamnetNodeBinding")
    p.get_by_role("button", name="Sign with the browser wallet").click()
    binding = p.locator("#binding")
    expect(binding).to_have_attribute("data-valid", "true")
    expect(binding).to_contain_text("Saved.")
    expect(binding).to_contain_text(wallet_address)
    assert asked == [wallet_address.lower()]
    saved = folder / "node.binding.json"
    check = check_binding(read_binding(saved.read_text()))
    assert check.valid and check.payout_address == wallet_address
    p.reload()
    expect(p.locator("#binding")).to_contain_text(wallet_address)
    _shoot(page, "ui-identity")


def test_the_lend_page_starts_shows_and_stops_a_worker(
    ui: tuple[str, Path], page: GuardedPage, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
    from tests.mesh_server import served

    base, _ = ui
    with served(Coordinator(CoordinatorConfig(tmp_path / "state"))) as coordinator:
        p = page.page
        p.goto(f"{base}/lend")
        expect(p.locator("#lend-status")).to_contain_text("No worker started yet.")
        p.get_by_label("Coordinator URL", exact=True).fill(coordinator)
        p.get_by_label("Bond", exact=True).fill("40")
        p.get_by_label("Also serve as a validator").check()
        p.get_by_role("button", name="Start the worker").click()
        status = p.locator("#lend-status")
        expect(status).to_contain_text("registered", timeout=JOB_TIMEOUT_MS)
        expect(status.locator(".card").filter(has_text="bond")).to_contain_text("40")
        expect(status.locator(".card").filter(has_text="process")).to_contain_text("running")
        _shoot(page, "ui-lend")
        p.get_by_role("button", name="Stop the worker").click()
        expect(p.get_by_role("button", name="Start the worker")).to_be_visible()
        expect(status.locator(".card").filter(has_text="process")).to_contain_text(
            "stopped", timeout=JOB_TIMEOUT_MS
        )


def test_a_job_can_be_run_by_keyboard_alone(ui: tuple[str, Path], page: GuardedPage) -> None:
    from playwright.sync_api import expect

    base, _ = ui
    p = page.page
    p.goto(f"{base}/run")
    p.keyboard.press("Tab")
    expect(p.get_by_role("link", name="Skip to content")).to_be_focused()
    p.keyboard.press("Enter")
    shape = p.get_by_label("Shape (M×K×N)")
    for _ in range(40):  # Tab through the page's controls in order until the shape field
        p.keyboard.press("Tab")
        if shape.evaluate("element => element === document.activeElement"):
            break
    expect(shape).to_be_focused()
    p.keyboard.press("Control+A")
    p.keyboard.type("40x48x56")
    p.keyboard.press("Enter")  # submits the form, as a button would
    expect(p.locator(".verdict caption")).to_have_text("VALID", timeout=JOB_TIMEOUT_MS)
    # The choice of operand source is keyboard-usable too: arrows move between the radios.
    p.get_by_role("radio", name="Random (shape, dtype, seed)").focus()
    p.keyboard.press("ArrowRight")
    expect(p.get_by_label("A (.npy path)")).to_be_visible()
    expect(shape).to_be_hidden()
