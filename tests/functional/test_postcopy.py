"""A post-copy whose migration link is cut: the VM, already running on the destination,
waits for its pages; Whimbrel pauses the stalled post-copy and resumes it once the link is
back, and the guest goes on counting, on the destination only."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.conftest import Api, wait_for
from tests.functional.test_lifecycle import lab_vm, wait_heartbeat
from tests.functional.test_migration import assert_healthy, migrate, on_host
from whimbrel.lab import netns
from whimbrel.lab.lab import Lab

pytestmark = pytest.mark.lab

CUT_S = 9.0  # longer than the loop's stall limit (5 s): the post-copy is paused, not slow


def _phase(api: Api, name: str) -> str:
    for j in api.call("GET", "/jobs").json():
        if j["subject"] == name and j["kind"] == "vm.migrate" and j["state"] == "Running":
            return str(j["phase"])
    return ""


def test_a_cut_link_in_post_copy_is_paused_then_resumed(lab: Lab, lab_api: Api) -> None:
    # The guest dirties 8 MiB/s, the move may use 2: pre-copy cannot end, post-copy must.
    cmdline = "console=ttyS0 quiet panic=-1 workload_mib=32 workload_rate=8"
    lab_api.ok("POST", "/vms", lab_vm("pc-cut", "h1", "csv-alpha", cmdline=cmdline))
    before = wait_heartbeat(lab_api, "pc-cut", above=5)
    link = lab.spec.host("h2").veth("g")
    cut: dict[str, Any] = {}

    def cut_in_post_copy() -> None:
        wait_for(lambda: _phase(lab_api, "pc-cut") == "post-copy", timeout=180, period=0.1)
        # Once the guest runs on the destination: a cut before it has loaded the switch-over
        # package ends its QEMU (the job then says E_MIGRATION_POSTCOPY_LOST).
        wait_for(lambda: _running(lab, "h2", "pc-cut"), timeout=60, period=0.05)
        netns.ip("link", "set", link, "down")
        cut["at"] = time.monotonic()
        time.sleep(CUT_S)
        netns.ip("link", "set", link, "up")

    t = threading.Thread(target=cut_in_post_copy)
    t.start()
    try:
        # The first pass outlasts the completion timeout at 2 MiB/s: 'force' then switches.
        job = migrate(
            lab_api, "pc-cut", to="h2", postcopy=True, bandwidth_mib_s=2, on_timeout="force"
        )
    finally:
        t.join()
        netns.ip("link", "set", link, "up")
    assert job["state"] == "Completed", (job["error"], job["manual_fix"], job["steps"])
    result = _move_result(job)
    assert "at" in cut, ("the move never reached post-copy", result)
    assert any(s.startswith("post-copy broke; resumed after") for s in result["strategy"]), result
    assert on_host(lab, "h2", "pc-cut") and not on_host(lab, "h1", "pc-cut")
    assert lab_api.call("GET", "/vms/pc-cut").json()["host"] == "h2"
    assert_healthy(lab, lab_api, "pc-cut", before, "h2")


def _running(lab: Lab, host: str, name: str) -> bool:
    import libvirt

    conn = libvirt.open(lab.spec.host(host).local_uri)
    try:
        return bool(conn.lookupByName(name).state()[0] == libvirt.VIR_DOMAIN_RUNNING)
    except libvirt.libvirtError:
        return False
    finally:
        conn.close()


def _move_result(job: dict[str, Any]) -> dict[str, Any]:
    step = next(s for s in job["steps"] if s["name"] == "migrate")
    return dict(step["result"]["result"])
