"""HA registration, configuration findings, cluster reserve and placement on the fake fleet."""

from __future__ import annotations

from tests.conftest import Api
from tests.unit.test_api_vms import _vm
from whimbrel.drivers.fake import FakeFleet
from whimbrel.store.repo import get_host


def ha_vm(name: str, host: str, mib: int = 512, **kw: object) -> dict[str, object]:
    return _vm(name, host, memory_mib=mib, ha=True, **kw)


def test_ha_vm_lives_on_shared_storage_and_is_placed_elsewhere(hosts: Api) -> None:
    hosts.ok("POST", "/vms", ha_vm("h1", "f1"))
    v = hosts.call("GET", "/vms/h1").json()
    assert v["ha"] and v["findings"] == [] and not v["unsupported_cluster_configuration"]
    oc = hosts.call("GET", "/clusters/c1").json()["overcommit"]
    assert oc["overcommitted"] is False and oc["reserve"] == 1 and oc["nodes_up"] == 3
    p = hosts.call("GET", "/vms/h1/placement").json()
    by = {r["host"]: r for r in p["ratings"]}
    assert by["f1"]["blocked_by"] == ["E_SAME_HOST"] and by["f1"]["stars"] == 0
    assert p["best"] in ("f2", "f3") and 0 < by[p["best"]]["stars"] <= 5
    assert any("keeps its reserve" in r for r in by[p["best"]]["reasons"])


def test_ha_refused_off_shared_storage_and_nothing_changes(hosts: Api) -> None:
    local = {"disks": [{"size_mib": 64, "pool": "local"}]}
    assert hosts.error("POST", "/vms", ha_vm("bad", "f1", **local))[1] == (
        "E_HA_UNSUPPORTED_CONFIGURATION"
    )
    assert hosts.call("GET", "/vms/bad").status_code == 404
    hosts.ok("POST", "/vms", _vm("plain", "f1", **local))
    resp = hosts.call("POST", "/vms/plain/ha", json={"enabled": True})
    assert resp.status_code == 409
    error = resp.json()["error"]
    assert error["code"] == "E_HA_UNSUPPORTED_CONFIGURATION"
    assert (
        "not on storage every node" in error["cause"] and "E_HA_DISK_NOT_SHARED" in error["detail"]
    )
    assert hosts.call("GET", "/vms/plain").json()["ha"] is False


def test_reserve_refuses_an_overcommitting_ha_vm_unless_overridden(hosts: Api) -> None:
    # Three 4 GiB nodes: five 2 GiB HA VMs leave no room for f1's two if f1 fails.
    for name, host in (("a", "f1"), ("b", "f2"), ("c", "f3"), ("d", "f1")):
        hosts.ok("POST", "/vms", ha_vm(name, host, 2048))
    _status, code = hosts.error("POST", "/vms", ha_vm("e", "f2", 2048))
    assert code == "E_CLUSTER_OVERCOMMITTED"
    hosts.ok("POST", "/vms", ha_vm("e", "f2", 2048, allow_overcommit=True))
    oc = hosts.call("GET", "/clusters/c1").json()["overcommit"]
    assert oc["overcommitted"] and set(oc["failed"]) <= {"f1", "f2"} and oc["stranded"]
    # VMM's refresher's first event: the reserve changes, the verdict is recomputed.
    job = hosts.ok("POST", "/clusters/c1/settings", {"reserve": 0})
    oc = hosts.call("GET", "/clusters/c1").json()["overcommit"]
    assert not oc["overcommitted"] and oc["after"] == "reserve changed"
    assert job["progress"]["overcommit"]["reserve"] == 0
    assert hosts.error("POST", "/clusters/c1/settings", {"reserve": -1})[1] == "E_RESERVE_INVALID"


def test_network_not_common_makes_the_configuration_unsupported(
    hosts: Api,
    fleet: FakeFleet,
) -> None:
    hosts.ok("POST", "/vms", ha_vm("n1", "f1"))
    assert hosts.call("POST", "/clusters/c1/verify").json()["unsupported"] == []
    # Same name in another case is the same network (VMM 2008 R2), but the fake
    # puts it on bridge br-VM-NET: another bridge, so not common either.
    fleet.hosts["f3"].networks = ("VM-NET",)
    hosts.ok("POST", "/hosts/f3/refresh")
    c = hosts.call("POST", "/clusters/c1/verify").json()
    assert "different bridges" in c["findings"]["n1"][0]["cause"]
    fleet.hosts["f3"].networks = ()
    hosts.ok("POST", "/hosts/f3/refresh")
    c = hosts.call("POST", "/clusters/c1/verify").json()
    assert c["unsupported"] == ["n1"]
    assert [f["code"] for f in c["findings"]["n1"]] == ["E_HA_NETWORK_NOT_COMMON"]
    assert "missing on f3" in c["findings"]["n1"][0]["cause"]
    fleet.hosts["f3"].networks = ("vm-net",)
    hosts.ok("POST", "/hosts/f3/refresh")
    assert hosts.call("POST", "/vms/n1/repair").json()["findings"] == []


def test_maintenance_host_takes_no_vm_and_rates_zero(hosts: Api) -> None:
    hosts.ok("POST", "/vms", _vm("m1", "f1"))
    with hosts.manager.sessions.begin() as s:
        get_host(s, "f3").maintenance = True
    assert hosts.error("POST", "/vms", _vm("m2", "f3"))[1] == "E_HOST_IN_MAINTENANCE"
    by = {r["host"]: r for r in hosts.call("GET", "/vms/m1/placement").json()["ratings"]}
    assert by["f3"]["blocked_by"] == ["E_DEST_IN_MAINTENANCE"]
    assert by["f2"]["eligible"]
    consolidate = hosts.call("GET", "/vms/m1/placement?goal=consolidate").json()
    assert consolidate["goal"] == "consolidate" and consolidate["best"] == "f2"


def test_create_without_host_takes_the_best_rated_one(hosts: Api) -> None:
    hosts.ok("POST", "/vms", _vm("big", "f1", memory_mib=3000))
    hosts.ok("POST", "/vms", _vm("mid", "f2", memory_mib=1000))
    placed = _vm("auto", "", memory_mib=512)
    hosts.ok("POST", "/vms", placed)
    assert hosts.call("GET", "/vms/auto").json()["host"] == "f3"  # the emptiest
    hosts.ok("POST", "/vms", ha_vm("auto-ha", "", 512))
    v = hosts.call("GET", "/vms/auto-ha").json()
    assert v["host"] in ("f2", "f3") and v["ha"] and v["findings"] == []
    resp = hosts.call("POST", "/vms", json=_vm("huge", "", memory_mib=65536))
    assert resp.status_code == 507 and resp.json()["error"]["code"] == "E_NO_HOST"
    assert "f1: " in resp.json()["error"]["detail"]
    bad = _vm("nopool", "", disks=[{"size_mib": 16, "pool": "nowhere"}])
    assert hosts.error("POST", "/vms", bad)[1] == "E_NO_HOST"
    assert hosts.call("GET", "/vms/huge").status_code == 404
