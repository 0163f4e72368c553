"""Maintenance mode on the fake fleet: the plan, the drain, a failure midway, re-admission."""

from __future__ import annotations

from tests.conftest import Api
from tests.unit.test_api_vms import _vm
from whimbrel.drivers.fake import FakeFleet


def _fleet_of_f1(api: Api) -> None:
    """On f1: HA VMs a (high) and b (low), plain VM c running, plain VM d stopped."""
    api.ok("POST", "/vms", _vm("b", "f1", memory_mib=512, ha=True))
    api.ok("POST", "/vms", _vm("a", "f1", memory_mib=1024, ha=True))
    api.ok("POST", "/vms/a/ha", {"enabled": True, "priority": 3})
    api.ok("POST", "/vms/b/ha", {"enabled": True, "priority": 1})
    api.ok("POST", "/vms", _vm("c", "f1"))
    api.ok("POST", "/vms", _vm("d", "f1", start=False))


def _where(api: Api, vm: str) -> tuple[str, str]:
    v = api.call("GET", f"/vms/{vm}").json()
    return v["host"], v["state"]


def test_plan_orders_ha_moves_then_saves_and_changes_nothing(hosts: Api) -> None:
    _fleet_of_f1(hosts)
    p = hosts.call("GET", "/hosts/f1/maintenance/plan").json()
    assert [(e["vm"], e["action"]) for e in p["entries"]] == [
        ("a", "live-migrate"),
        ("b", "live-migrate"),
        ("c", "save"),
        ("d", "stays"),
    ]
    assert {e["to"] for e in p["entries"][:2]} <= {"f2", "f3"} and p["blocked"] == []
    assert all(e["findings"] == [] for e in p["entries"])
    assert hosts.call("GET", "/hosts/f1").json()["maintenance"] is False
    assert _where(hosts, "a") == ("f1", "running")


def test_drain_then_readmit_with_both_options(hosts: Api, fleet: FakeFleet) -> None:
    _fleet_of_f1(hosts)
    job = hosts.ok("POST", "/hosts/f1/maintenance/start")
    assert [s["name"] for s in job["steps"]] == ["enter", "migrate", "save", "verify"]
    kids = job["progress"]["children"]
    assert [(k["vm"], k["state"]) for k in kids] == [("c", "Completed")]  # the last step's
    moved = job["steps"][1]["result"]["moved"]
    assert [m["vm"] for m in moved] == ["a", "b"]
    assert _where(hosts, "a")[0] in ("f2", "f3") and _where(hosts, "a")[1] == "running"
    assert _where(hosts, "c") == ("f1", "saved") and _where(hosts, "d") == ("f1", "stopped")
    assert hosts.call("GET", "/hosts/f1").json()["maintenance"] is True
    # A host in maintenance takes no VM and rates zero.
    assert hosts.error("POST", "/vms", _vm("e", "f1"))[1] == "E_HOST_IN_MAINTENANCE"
    by = {r["host"]: r for r in hosts.call("GET", "/vms/a/placement").json()["ratings"]}
    assert "E_DEST_IN_MAINTENANCE" in by["f1"]["blocked_by"]
    assert hosts.error("POST", "/hosts/f1/maintenance/start")[1] == "E_HOST_IN_MAINTENANCE"
    # Stop with both options: everything comes home.
    stop = hosts.ok(
        "POST", "/hosts/f1/maintenance/stop", {"move_back": True, "restart_saved": True}
    )
    assert [s["name"] for s in stop["steps"]] == ["leave", "move-back", "restore"]
    for vm in ("a", "b", "c"):
        assert _where(hosts, vm) == ("f1", "running"), vm
    assert _where(hosts, "d") == ("f1", "stopped")
    assert hosts.error("POST", "/hosts/f1/maintenance/stop", {})[1] == "E_HOST_NOT_IN_MAINTENANCE"
    # Again; stop alone re-admits and moves nothing.
    hosts.ok("POST", "/hosts/f1/maintenance/start")
    stop = hosts.ok("POST", "/hosts/f1/maintenance/stop", {})
    assert [s["name"] for s in stop["steps"]] == ["leave"]
    assert hosts.call("GET", "/hosts/f1").json()["maintenance"] is False
    assert _where(hosts, "a")[0] != "f1" and _where(hosts, "c") == ("f1", "saved")


def test_failure_midway_leaves_host_in_service_and_moved_vms_moved(
    hosts: Api,
    fleet: FakeFleet,
) -> None:
    _fleet_of_f1(hosts)
    p = hosts.call("GET", "/hosts/f1/maintenance/plan").json()
    to_b = p["entries"][1]["to"]
    fleet.hosts[to_b].refuse_incoming.add("b")  # the second move fails on its destination
    job = hosts.job("POST", "/hosts/f1/maintenance/start")
    assert job["state"] == "Exception" and job["rollback"] == "clean"
    assert job["error"]["code"] == "E_MAINTENANCE_INCOMPLETE"
    assert (
        "b: E_MIGRATION_FAILED" in job["error"]["cause"]
        and "a live-migrate" in (job["error"]["fix"])
    )
    kids = {k["vm"]: k["state"] for k in job["progress"]["children"]}
    assert kids == {"a": "Completed", "b": "Exception"}
    assert hosts.call("GET", "/hosts/f1").json()["maintenance"] is False
    assert _where(hosts, "a")[0] in ("f2", "f3")  # moved, and stays moved
    assert _where(hosts, "b") == ("f1", "running")  # its move undid itself
    assert _where(hosts, "c") == ("f1", "running")  # saves never ran
    assert [s["state"] for s in job["steps"]] == ["undone", "failed", "pending", "pending"]


def test_no_capacity_is_refused_before_anything_moves(hosts: Api) -> None:
    hosts.ok("POST", "/vms", _vm("big", "f1", memory_mib=3500, ha=True))
    hosts.ok("POST", "/vms", _vm("f2big", "f2", memory_mib=3500))
    hosts.ok("POST", "/vms", _vm("f3big", "f3", memory_mib=3500))
    resp = hosts.call("POST", "/hosts/f1/maintenance/start")
    assert resp.status_code == 507
    error = resp.json()["error"]
    assert error["code"] == "E_MAINTENANCE_NO_CAPACITY" and "big" in error["cause"]
    assert "f2: " in error["detail"] and "free, the VM needs" in error["detail"]
    p = hosts.call("GET", "/hosts/f1/maintenance/plan").json()
    assert p["blocked"] == ["big"] and p["entries"][0]["action"] == "blocked"
    assert hosts.call("GET", "/hosts/f1").json()["maintenance"] is False
    assert _where(hosts, "big") == ("f1", "running")
