"""HA in the lab: maintenance mode, a host killed, a host cut off; real guests, real leases."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import Api, wait_for
from tests.functional.test_lifecycle import lab_vm, wait_heartbeat
from whimbrel.lab.lab import Lab

pytestmark = pytest.mark.lab


def ha_vm(api: Api, name: str, host: str, priority: int = 2) -> None:
    api.ok("POST", "/vms", lab_vm(name, host, "csv-alpha", ha=True))
    api.ok("POST", f"/vms/{name}/ha", {"enabled": True, "priority": priority})


def where(api: Api, vm: str) -> tuple[str, str]:
    v = api.call("GET", f"/vms/{vm}").json()
    return v["host"], v["state"]


def test_maintenance_drains_readmits_and_survives_a_failure_midway(lab: Lab, lab_api: Api) -> None:
    api = lab_api
    ha_vm(api, "m-ha1", "h1", 3)
    ha_vm(api, "m-ha2", "h1", 1)
    api.ok("POST", "/vms", lab_vm("m-plain", "h1", "local"))
    before = {v: wait_heartbeat(api, v) for v in ("m-ha1", "m-ha2", "m-plain")}
    plan = api.call("GET", "/hosts/h1/maintenance/plan").json()
    assert [(e["vm"], e["action"], e["to"]) for e in plan["entries"]] == [
        ("m-ha1", "live-migrate", "h2"),
        ("m-ha2", "live-migrate", "h2"),
        ("m-plain", "save", ""),
    ]
    assert all(e["findings"] == [] for e in plan["entries"]), plan

    # A failure midway: one live migration at a time, the second cancelled while it waits.
    api.ok("POST", "/hosts/h1/migration", {"max_live_migrations": 1})
    job_id = api.call("POST", "/hosts/h1/maintenance/start").json()["id"]

    def second_queued() -> int | None:
        kids = api.call("GET", f"/jobs/{job_id}").json()["progress"].get("children", [])
        return next((k["job"] for k in kids if k["vm"] == "m-ha2" and k["state"] == "New"), None)

    api.call("POST", f"/jobs/{wait_for(second_queued, timeout=60)}/cancel")
    api.manager.runner.wait(job_id, timeout=180)
    job = api.call("GET", f"/jobs/{job_id}").json()
    assert job["state"] == "Exception" and job["error"]["code"] == "E_MAINTENANCE_INCOMPLETE"
    assert api.call("GET", "/hosts/h1").json()["maintenance"] is False
    assert where(api, "m-ha1") == ("h2", "running")  # moved, and stays moved
    assert where(api, "m-ha2") == ("h1", "running")
    assert where(api, "m-plain") == ("h1", "running")  # never saved
    api.ok("POST", "/hosts/h1/migration", {"max_live_migrations": 2})

    # Now the whole drain: m-ha2 moves, m-plain is saved, the host enters maintenance.
    job = api.ok("POST", "/hosts/h1/maintenance/start")
    assert api.call("GET", "/hosts/h1").json()["maintenance"] is True
    assert where(api, "m-ha2") == ("h2", "running") and where(api, "m-plain") == ("h1", "saved")
    hb = wait_heartbeat(api, "m-ha2", above=before["m-ha2"]["counter"])
    assert hb["uptime_s"] >= before["m-ha2"]["uptime_s"] and not hb.get("bad")  # no reboot
    assert api.error("POST", "/vms", lab_vm("m-new", "h1", "local"))[1] == "E_HOST_IN_MAINTENANCE"

    stop = api.ok("POST", "/hosts/h1/maintenance/stop", {"move_back": True, "restart_saved": True})
    assert [s["name"] for s in stop["steps"]] == ["leave", "move-back", "restore"]
    for vm in ("m-ha1", "m-ha2", "m-plain"):
        assert where(api, vm) == ("h1", "running"), vm
        hb = wait_heartbeat(api, vm, above=before[vm]["counter"])
        assert hb["uptime_s"] >= before[vm]["uptime_s"] and not hb.get("bad"), (vm, hb)


def _recovered(api: Api, vm: str, dead: str) -> dict[str, Any] | None:
    host, state = where(api, vm)
    return api.call("GET", f"/vms/{vm}").json() if host != dead and state == "running" else None


def _failover_jobs(api: Api, host: str) -> list[dict[str, Any]]:
    jobs = api.call("GET", "/jobs").json()
    return [j for j in jobs if j["kind"] == "host.failover" and j["subject"] == host]


def test_ha_vm_survives_the_kill_of_its_host_which_comes_back_clean(lab: Lab, lab_api: Api) -> None:
    api = lab_api
    ha_vm(api, "f-kill", "h2", 3)
    seq = wait_heartbeat(api, "f-kill", above=2)["disk_seq"]
    try:
        t0 = time.monotonic()
        assert lab.kill_host("h2")
        wait_for(lambda: _recovered(api, "f-kill", "h2"), timeout=90)
        restarted = time.monotonic() - t0
        hb = wait_heartbeat(api, "f-kill")
        beating = time.monotonic() - t0
        assert where(api, "f-kill")[0] == "h1"
        assert hb["disk_seq"] > seq and not hb.get("bad"), hb  # same disk, carried on
        job_id = _failover_jobs(api, "h2")[0]["id"]
        api.manager.runner.wait(job_id)
        job = api.call("GET", f"/jobs/{job_id}").json()
        assert job["state"] == "Completed"
        assert [s["name"] for s in job["steps"]] == ["verify", "fence", "restart"]
        fenced = job["steps"][1]["result"]
        assert fenced["agent"] == "lab" and "none left" in fenced["proof"]
        assert "both channels silent" in fenced["evidence"]
        assert api.call("GET", "/hosts/h2").json()["state"] == "fenced"
        print(f"\nkill -> running on h1: {restarted:.1f} s; -> first heartbeat: {beating:.1f} s")
        assert restarted < 30, f"failover took {restarted:.1f} s"
    finally:
        lab.start_host("h2")
    # Back, it is cleaned up before it takes VMs: no stale definition of f-kill.
    h2 = wait_for(
        lambda: (h := api.call("GET", "/hosts/h2").json())["state"] == "connected" and h,
        timeout=60,
    )
    assert "removed stale definitions of f-kill (now on h1)" in h2["events"][-1]["event"]
    assert "f-kill" not in {d.name for d in api.manager.conns.for_host("h2").list_domains()}
    api.ok("DELETE", "/vms/f-kill", params={"force": True})
    api.ok("POST", "/vms", lab_vm("f-kill", "h2", "csv-alpha"))  # no E_DOMAIN_EXISTS
    assert where(api, "f-kill") == ("h2", "running")


def test_a_second_start_of_a_running_vm_is_refused_by_its_disk_lease(
    lab: Lab, lab_api: Api
) -> None:
    api = lab_api
    ha_vm(api, "f-lease", "h1")
    wait_heartbeat(api, "f-lease")
    with api.manager.sessions() as s:
        from whimbrel.jobs.flows.vm_common import spec_of
        from whimbrel.store.repo import get_vm

        spec = spec_of(get_vm(s, "f-lease"))
    h2 = api.manager.conns.for_host("h2")
    h2.define(spec)
    try:
        from whimbrel.errors import LockConflict

        with pytest.raises(LockConflict) as exc:
            h2.start("f-lease")
        assert exc.value.code == "E_DISK_LOCKED"
        assert where(api, "f-lease") == ("h1", "running")
    finally:
        h2.undefine("f-lease")
