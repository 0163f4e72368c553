"""A VM's life through the REST API on the fake fleet, and the refusals."""

from __future__ import annotations

import time

import pytest

from tests.conftest import Api
from whimbrel.drivers.fake import FakeFleet


@pytest.fixture
def hosts(api: Api) -> Api:
    api.ok("POST", "/clusters", {"name": "c1", "shared_paths": ["/srv/csv"]})
    for h in ("f1", "f2"):
        api.ok("POST", "/hosts", {"name": h, "uri": f"fake://{h}", "cluster": "c1"})
    return api


def _vm(name: str = "v1", host: str = "f1", **kw: object) -> dict[str, object]:
    body: dict[str, object] = {
        "name": name,
        "host": host,
        "memory_mib": 512,
        "disks": [{"size_mib": 64, "pool": "csv"}],
        "networks": ["vm-net"],
    }
    body.update(kw)
    return body


def test_create_start_stop_save_restore_delete(hosts: Api, fleet: FakeFleet) -> None:
    api = hosts
    job = api.ok("POST", "/vms", _vm())
    assert [s["name"] for s in job["steps"]] == ["create-disks", "record", "define", "start"]
    vm = api.call("GET", "/vms/v1").json()
    assert vm["state"] == "running" and vm["cluster"] == "c1"
    assert vm["disks"][0]["shared"] is True and vm["disks"][0]["path"] == "/srv/csv/v1-vda.qcow2"
    assert vm["machine"] == "pc-i440fx-7.2" and vm["virt_type"] == "kvm"
    assert "/srv/csv/v1-vda.qcow2" in fleet.volumes

    hb1 = api.call("GET", "/vms/v1/heartbeat").json()["heartbeat"]["counter"]
    time.sleep(0.25)
    assert api.call("GET", "/vms/v1/heartbeat").json()["heartbeat"]["counter"] > hb1

    api.ok("POST", "/vms/v1/save")
    assert api.call("GET", "/vms/v1").json()["state"] == "saved"
    saved_at = fleet.hosts["f1"].domains["v1"].saved_counter
    api.ok("POST", "/vms/v1/restore")
    assert api.call("GET", "/vms/v1/heartbeat").json()["heartbeat"]["counter"] >= (saved_at or 0)

    api.ok("POST", "/vms/v1/stop", {"force": True})
    assert api.call("GET", "/vms/v1").json()["state"] == "stopped"
    assert api.call("GET", "/vms/v1/heartbeat").json()["heartbeat"] is None
    api.ok("DELETE", "/vms/v1")
    assert api.call("GET", "/vms").json() == []
    assert fleet.volumes == {} and fleet.hosts["f1"].domains == {}


def test_vm_larger_than_free_memory_changes_nothing(hosts: Api, fleet: FakeFleet) -> None:
    assert hosts.error("POST", "/vms", _vm(memory_mib=8192)) == (507, "E_NO_MEMORY")
    assert hosts.call("GET", "/vms").json() == []
    assert fleet.volumes == {} and fleet.hosts["f1"].domains == {}


def test_refusals_for_bad_vm_input(hosts: Api) -> None:
    api = hosts
    assert api.error("POST", "/vms", _vm(name="bad name")) == (400, "E_INVALID_VM_NAME")
    assert api.error("POST", "/vms", _vm(host="nope")) == (404, "E_HOST_NOT_FOUND")
    assert api.error("POST", "/vms", _vm(disks=[{"size_mib": 8, "pool": "nope"}])) == (
        400,
        "E_POOL_NOT_FOUND",
    )
    assert api.error("POST", "/vms", _vm(networks=["nope"])) == (400, "E_NETWORK_NOT_FOUND")
    assert api.error("POST", "/vms", _vm(memory_mib=1)) == (400, "E_INVALID_SIZE")
    api.ok("POST", "/vms", _vm())
    assert api.error("POST", "/vms", _vm(host="f2")) == (409, "E_VM_EXISTS")
    assert api.error("POST", "/vms/v1/start") == (409, "E_VM_STATE")
    assert api.error("POST", "/vms/v1/restore") == (409, "E_VM_STATE")
    assert [v["name"] for v in api.call("GET", "/vms").json()] == ["v1"]


def test_delete_running_vm_needs_force(hosts: Api, fleet: FakeFleet) -> None:
    api = hosts
    api.ok("POST", "/vms", _vm())
    assert api.error("DELETE", "/vms/v1") == (409, "E_VM_RUNNING")
    assert api.call("GET", "/vms/v1").json()["state"] == "running"
    assert "/srv/csv/v1-vda.qcow2" in fleet.volumes
    api.ok("DELETE", "/vms/v1", params={"force": True})
    assert fleet.volumes == {}


def test_failed_start_rolls_the_create_back(hosts: Api, fleet: FakeFleet) -> None:
    """A disk held by another running VM: the create undoes its disks and records."""
    api = hosts
    api.ok("POST", "/vms", _vm())
    # A VM outside Whimbrel's knowledge holding the next VM's disk path.
    from whimbrel.domain.vm import DiskSpec, DomainSpec

    intruder = fleet.open("fake://f2")
    intruder.define(
        DomainSpec("rogue", "u", 64, 1, "kvm", "pc", disks=(DiskSpec("/srv/csv/v2-vda.qcow2"),))
    )
    intruder.start("rogue")
    job = api.job("POST", "/vms", _vm(name="v2"))
    assert job["state"] == "Exception" and job["rollback"] == "clean"
    assert job["error"]["code"] == "E_DISK_LOCKED"
    assert [s["state"] for s in job["steps"]] == ["undone", "undone", "undone", "failed"]
    assert "v2" not in fleet.hosts["f1"].domains
    assert "/srv/csv/v2-vda.qcow2" not in fleet.volumes
    assert [v["name"] for v in api.call("GET", "/vms").json()] == ["v1"]


def test_restart_of_the_manager_loses_nothing(
    hosts: Api, settings: object, fleet: FakeFleet
) -> None:
    from tests.conftest import Api as A
    from whimbrel.manager import Manager

    hosts.ok("POST", "/vms", _vm())
    hosts.manager.stop()
    again = Manager(hosts.manager.settings, opener=fleet.open)
    again.start()
    try:
        api = A(again)
        assert again.token == hosts.manager.token
        assert [h["name"] for h in api.call("GET", "/hosts").json()] == ["f1", "f2"]
        assert api.call("GET", "/vms/v1").json()["state"] == "running"
        assert len(api.call("GET", "/jobs").json()) == 4
        api.ok("POST", "/vms/v1/stop", {"force": True})
    finally:
        again.stop()


def test_monitor_follows_what_hosts_report(hosts: Api, fleet: FakeFleet) -> None:
    api = hosts
    api.ok("POST", "/vms", _vm())
    fleet.open("fake://f1").power_off("v1")  # the guest powered itself off
    api.manager.monitor.poll_once()
    assert api.call("GET", "/vms/v1").json()["state"] == "stopped"
    fleet.hosts["f1"].domains.clear()  # someone undefined it behind Whimbrel's back
    api.manager.monitor.poll_once()
    assert api.call("GET", "/vms/v1").json()["state"] == "missing"
    fleet.hosts["f2"].up = False
    api.manager.monitor.poll_once()
    h2 = api.call("GET", "/hosts/f2").json()
    assert h2["state"] == "not responding" and "does not answer" in h2["state_reason"]
    fleet.hosts["f2"].up = True
    api.manager.monitor.poll_once()
    assert api.call("GET", "/hosts/f2").json()["state"] == "connected"
    api.ok("DELETE", "/vms/v1")  # a missing VM can still be cleaned up
    assert api.call("GET", "/vms").json() == []


def test_monitor_reacts_to_host_events_before_its_next_poll(hosts: Api, fleet: FakeFleet) -> None:
    api = hosts
    api.ok("POST", "/vms", _vm())
    api.manager.monitor.poll_events()  # the create's own events
    fleet.open("fake://f1").power_off("v1")  # outside Whimbrel
    assert api.manager.monitor.poll_events() == 1
    assert api.call("GET", "/vms/v1").json()["state"] == "stopped"
    assert api.manager.monitor.poll_events() == 0  # each event counts once
