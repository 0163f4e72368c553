"""A lab host that loses power, seen by the manager, and brought back."""

from __future__ import annotations

import time

import pytest

from tests.conftest import Api, wait_for
from tests.functional.test_lifecycle import lab_vm, wait_heartbeat
from whimbrel.lab.lab import Lab

pytestmark = pytest.mark.lab


def test_killed_host_is_seen_silent_and_comes_back(lab: Lab, lab_api: Api) -> None:
    api = lab_api
    api.ok("POST", "/vms", lab_vm("victim", "h4", "local"))
    wait_heartbeat(api, "victim")
    t0 = time.monotonic()
    assert lab.kill_host("h4"), "the host had processes to kill"
    host = wait_for(
        lambda: (h := api.call("GET", "/hosts/h4").json())["state"] != "connected" and h
    )
    noticed = time.monotonic() - t0
    assert host["state"] == "not responding" and host["state_reason"], "the reason is kept"
    assert api.call("GET", "/vms/victim").json()["state"] == "unknown"
    assert noticed < 10, f"took {noticed:.1f} s to notice"
    # Other hosts are unaffected.
    assert api.call("GET", "/hosts/h3").json()["state"] == "connected"

    lab.start_host("h4")
    wait_for(lambda: api.call("GET", "/hosts/h4").json()["state"] == "connected")
    # Its QEMU died with it: the VM is defined but off, and starts again from its disk.
    wait_for(lambda: api.call("GET", "/vms/victim").json()["state"] == "stopped")
    api.ok("POST", "/vms/victim/start")
    assert wait_heartbeat(api, "victim")["counter"] >= 1
