"""The web console in Debian's Chromium (Playwright, headless) against a real manager over
the lab: sign in, a refused move and its finding, a live migration seen arriving, a
maintenance drain watched to its end, a VM's move history, and a failover after a host
is killed, all followed through the event stream.  Each step leaves a screenshot in
test-artefacts/console/."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import wait_for
from tests.functional.served import WHIMBREL, Served, active
from tests.functional.test_lifecycle import lab_vm
from whimbrel.lab.lab import Lab

pytestmark = pytest.mark.lab
PORT = 8478
PASSWORD = "console pass phrase"
SHOTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "console"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SLOW = 180_000  # ms: a TCG guest's move, a drain or a failover in the lab
LIVE = 30_000  # ms: a change in the store reaching the page through the stream


@pytest.fixture
def page() -> Iterator[Page]:
    """Debian's Chromium, not a downloaded one (root runs it without its sandbox), for this
    test alone: closed when it ends, so no browser or event loop outlives it."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()


@pytest.fixture
def served(lab: Lab, tmp_path: Path) -> Iterator[Served]:
    s = Served(lab, tmp_path / "home", PORT)
    s.start()
    s.cli("lab", "enroll")
    pw = {"input": PASSWORD + "\n", "env": s.env, "capture_output": True, "text": True}
    subprocess.run([*WHIMBREL, "user", "add", "ada", "--password-file", "-"], check=True, **pw)  # type: ignore[call-overload]
    s.cli("role", "grant", "ada", "administrator")
    yield s
    subprocess.run([*WHIMBREL, "serve", "--stop"], env=s.env, capture_output=True)


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def vm_row(page: Page, name: str) -> Any:
    return page.locator(f'#vms tr[data-name="{name}"]')


def host_row(page: Page, name: str) -> Any:
    return page.locator(f'#hosts tr[data-name="{name}"]')


def job_row(page: Page, kind: str, subject: str) -> Any:
    return page.locator("#jobs tr", has_text=kind).filter(has_text=subject).first


def test_the_console_moves_refuses_drains_and_shows_a_failover(
    lab: Lab, served: Served, page: Page
) -> None:
    served.done(served.submit("/vms", lab_vm("con-a", "h1", "csv-alpha")))
    served.done(served.submit("/vms", lab_vm("con-ha", "h2", "csv-alpha")))
    served.done(served.submit("/vms/con-ha/ha", {"enabled": True, "priority": 3}))

    # Sign in with a password; the fleet shows, and the stream is live.
    page.goto(f"http://127.0.0.1:{PORT}/")
    page.fill("#user", "ada")
    page.fill("#password", PASSWORD)
    page.click("#signin button")
    expect(page.locator("#who")).to_contain_text("ada (administrator on the fleet)")
    expect(page.locator("#live")).to_have_class("live")
    expect(vm_row(page, "con-a")).to_contain_text("h1")
    expect(page.locator('#clusters tr[data-name="alpha"]')).to_contain_text("holds")
    shot(page, "01-fleet")

    # A move the preflight refuses: the finding with its cause and fix, no Migrate button.
    vm_row(page, "con-a").locator('button[data-act="migrate"]').click()
    page.check('#dialog input[name="to"][value="h3"]')
    page.click("#check")
    expect(page.locator("#findings")).to_contain_text("E_DISK_NOT_SHARED")
    expect(page.locator("#findings .finding.error .fix")).not_to_be_empty()
    expect(page.locator("#go")).to_be_disabled()
    shot(page, "02-refused-move")

    # The best-rated host, checked, then moved to: the row changes when the VM arrives.
    page.check('#dialog input[name="to"][value="h2"]')
    page.click("#check")
    expect(page.locator("#findings")).to_contain_text("live")
    expect(page.locator("#go")).to_be_enabled()
    page.click("#go")
    expect(vm_row(page, "con-a").locator("td").nth(1)).to_have_text("h2", timeout=SLOW)
    move = job_row(page, "vm.migrate", "con-a")
    expect(move).to_contain_text("Completed", timeout=SLOW)
    expect(move).to_contain_text("downtime", timeout=LIVE)
    assert [h for h in ("h1", "h2") if active(lab, h, "con-a")] == ["h2"]
    shot(page, "03-moved")

    # A maintenance drain: its plan first, then one bar per VM until it ends.
    host_row(page, "h2").locator('button[data-act="maintenance-start"]').click()
    expect(page.locator("#plan")).to_contain_text("con-ha")
    expect(page.locator('#plan tr:has-text("con-ha")')).to_contain_text("live-migrate")
    expect(page.locator('#plan tr:has-text("con-a")')).to_contain_text("save")  # not HA
    shot(page, "04-drain-plan")
    page.click("#go")
    drain = job_row(page, "host.maintenance-start", "h2")
    expect(drain.locator(".children")).to_contain_text("con-ha", timeout=60_000)
    shot(page, "05-drain-running")
    expect(drain).to_contain_text("Completed", timeout=SLOW)
    expect(host_row(page, "h2")).to_contain_text("maintenance", timeout=LIVE)
    expect(vm_row(page, "con-ha").locator("td").nth(1)).to_have_text("h1", timeout=LIVE)
    expect(vm_row(page, "con-a")).to_contain_text("saved", timeout=LIVE)
    shot(page, "06-drained")
    host_row(page, "h2").locator('button[data-act="maintenance-stop"]').click()
    page.uncheck("#back")
    page.check("#restart")  # con-a comes back from its saved state, on h2
    page.click("#go")
    expect(host_row(page, "h2").locator('button[data-act="maintenance-start"]')).to_be_visible(
        timeout=60_000
    )

    expect(vm_row(page, "con-a")).to_contain_text("running", timeout=SLOW)

    # The VM's page: its moves in its history, as a chart.
    page.goto(f"http://127.0.0.1:{PORT}/#/vm/con-ha")
    expect(page.locator("svg.history rect")).to_have_count(1)
    expect(page.locator("#vm-host")).to_have_text("h1")
    shot(page, "07-vm-history")
    page.goto(f"http://127.0.0.1:{PORT}/#/")

    # A host killed: the console shows it silent, the failover, and the HA VM elsewhere.
    try:
        assert lab.kill_host("h1")
        expect(host_row(page, "h1")).not_to_contain_text("connected", timeout=60_000)
        shot(page, "08-host-silent")
        failover = job_row(page, "host.failover", "h1")
        expect(failover).to_contain_text("Completed", timeout=SLOW)
        expect(vm_row(page, "con-ha").locator("td").nth(1)).to_have_text("h2", timeout=60_000)
        expect(vm_row(page, "con-ha")).to_contain_text("running", timeout=LIVE)
        assert active(lab, "h2", "con-ha")
        shot(page, "09-failed-over")
        failover.locator("a").first.click()
        expect(page.locator("#page")).to_contain_text("Evidence")
        expect(page.locator("#page")).to_contain_text("lab agent: SIGKILLed")  # the proof
        shot(page, "10-failover-job")
    finally:
        lab.start_host("h1")
    wait_for(lambda: served.get("/hosts/h1")["state"] == "connected", timeout=120)
    for vm in ("con-a", "con-ha"):
        served.done(served.http.delete(f"/vms/{vm}", params={"force": True}).json()["id"])
