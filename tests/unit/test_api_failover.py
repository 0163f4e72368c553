"""Failover on the fake fleet: no proof no restart, leases as the second guard, priority order."""

from __future__ import annotations

from tests.conftest import Api
from tests.unit.test_api_maintenance import _where
from tests.unit.test_api_migration import hosts  # noqa: F401  (fixture)
from tests.unit.test_api_vms import _vm
from whimbrel.domain.vm import VmState
from whimbrel.drivers.fake import FakeFleet


def _lose_f1(api: Api, fleet: FakeFleet) -> None:
    """f1 runs HA VMs a (low) and b (high) and plain VM c, then stops answering."""
    api.ok("POST", "/vms", _vm("a", "f1", ha=True))
    api.ok("POST", "/vms", _vm("b", "f1", ha=True))
    api.ok("POST", "/vms/a/ha", {"enabled": True, "priority": 1})
    api.ok("POST", "/vms/b/ha", {"enabled": True, "priority": 3})
    api.ok("POST", "/vms", _vm("c", "f1"))
    fleet.hosts["f1"].up = False  # cut off: its VMs still run and hold their disks
    api.manager.monitor.poll_once()


def _failover_job(api: Api) -> dict[str, object]:
    watch = api.manager.monitor.watch
    assert watch is not None
    watch.grace_s = 0
    assert watch.tick() == ["f1"]
    jobs = [j for j in api.call("GET", "/jobs").json() if j["kind"] == "host.failover"]
    api.manager.runner.wait(jobs[0]["id"])
    return dict(api.call("GET", f"/jobs/{jobs[0]['id']}").json())


def test_lost_host_without_fence_agent_keeps_its_vms_down(
    hosts: Api,  # noqa: F811
    fleet: FakeFleet,
) -> None:
    _lose_f1(hosts, fleet)
    assert hosts.call("GET", "/hosts/f1").json()["state"] == "unreachable"
    assert _where(hosts, "a") == ("f1", "unknown")
    oc = hosts.call("GET", "/clusters/c1").json()["overcommit"]
    assert oc["after"] == "node f1 failed"  # seed 004: a node failure recomputes the reserve
    job = _failover_job(hosts)
    assert job["state"] == "Exception" and job["error"]["code"] == "E_FENCE_UNAVAILABLE"
    assert str(job["op"]["evidence"]).startswith("lost at")  # type: ignore[index]
    assert _where(hosts, "a") == ("f1", "unknown") and _where(hosts, "b") == ("f1", "unknown")
    assert hosts.manager.monitor.watch is not None
    assert hosts.manager.monitor.watch.tick() == []  # the next try waits for retry_s


def test_lease_refuses_a_second_start_until_the_host_is_really_off(
    hosts: Api,  # noqa: F811
    fleet: FakeFleet,
) -> None:
    _lose_f1(hosts, fleet)
    # The administrator says f1 is off, but it is only cut off: the leases refuse.
    job = hosts.job("POST", "/hosts/f1/fence/confirm")
    assert job["state"] == "Exception" and job["error"]["code"] == "E_FAILOVER_INCOMPLETE"
    assert "E_DISK_LOCKED" in job["error"]["cause"]
    assert [k["vm"] for k in job["progress"]["children"]] == ["b", "a"]  # priority order
    running = [
        (h.name, n)
        for h in fleet.hosts.values()
        for n, d in h.domains.items()
        if d.state == VmState.RUNNING
    ]
    assert sorted(running) == [("f1", "a"), ("f1", "b"), ("f1", "c")]  # never twice
    assert _where(hosts, "a") == ("f1", "unknown")
    # Now it really goes off: the restart succeeds, HA VMs only.
    for d in fleet.hosts["f1"].domains.values():
        d.state = VmState.STOPPED
    job = hosts.ok("POST", "/hosts/f1/fence/confirm")
    restarted = job["steps"][1]["result"]["restarted"]
    assert [r["vm"] for r in restarted] == ["b", "a"]
    for vm in ("a", "b"):
        host, state = _where(hosts, vm)
        assert host in ("f2", "f3") and state == "running"
    assert _where(hosts, "c") == ("f1", "unknown")
    assert hosts.error("POST", "/hosts/f1/fence/confirm")[1] == "E_NOTHING_TO_RECOVER"


def test_fence_settings_are_checked_and_masked(hosts: Api) -> None:  # noqa: F811
    for body, code in (
        ({"agent": "rm -rf /"}, "E_FENCE_INVALID"),
        ({"agent": "fence_nosuchagent"}, "E_FENCE_AGENT_MISSING"),
        ({"agent": "lab"}, "E_FENCE_INVALID"),
    ):
        assert hosts.error("POST", "/hosts/f1/fence", body)[1] == code
    assert hosts.call("GET", "/hosts/f1/fence").json() == {"agent": "", "options": {}}
    hosts.ok("POST", "/hosts/f1/fence", {"agent": "lab", "options": {"namespace": "x"}})
    assert hosts.call("GET", "/hosts/f1/fence").json()["agent"] == "lab"
    assert hosts.error("POST", "/hosts/f1/fence/confirm")[1] == "E_HOST_CONNECTED"
