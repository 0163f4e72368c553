"""The cross-cluster move and maintenance flows on the Hyper-V driver, over the transport
double of a two-cluster estate: the same ops and flows as on KVM, with the cluster's own
roles, node pauses and moves underneath."""

from __future__ import annotations

import time

from tests.conftest import Api
from tests.hyperv_double.estate import HyperVEstate
from tests.unit.hyperv_estate import new_vm
from tests.unit.test_api_migration import codes


def _view(api: Api, vm: str) -> dict[str, object]:
    return dict(api.call("GET", f"/vms/{vm}").json())


def test_inventory_reads_the_hosts_settings(hv: Api) -> None:
    h = hv.call("GET", "/hosts/hv01").json()
    assert h["hypervisor"] == "Hyper-V 10.0.20348"
    m = hv.call("GET", "/hosts/hv01/migration").json()
    assert (m["enabled"], m["auth"], m["performance"], m["networks"]) == (
        True,
        "peer",
        "compression",
        ["10.10.20.0/24"],
    )


def test_vm_created_is_a_cluster_role(
    hv: Api,
    estate: HyperVEstate,
) -> None:
    new_vm(hv, "web1", "hv01")
    assert estate.where("web1").name == "HV01"
    assert estate.clusters["CL-ALPHA"].groups["web1"] == 3000
    v = _view(hv, "web1")
    assert v["state"] == "running" and v["ha"] is True


def _groups(e: HyperVEstate, cluster: str) -> dict[str, int]:
    return dict(e.clusters[f"CL-{cluster.upper()}"].groups)


def _scripts(e: HyperVEstate) -> list[str]:
    return [name for _, name, _ in e.calls]


def _at_home(api: Api, e: HyperVEstate, vm: str = "web1") -> None:
    """The VM runs on HV01, a role of alpha with its priority, its disk on Volume1."""
    assert e.where(vm).name == "HV01"  # type: ignore[union-attr]
    assert e.hosts["HV01"].vms[vm].state == "Running"
    assert _groups(e, "alpha").get(vm) == 3000 and vm not in _groups(e, "beta")
    v = _view(api, vm)
    assert (v["host"], v["cluster"], v["state"], v["ha"]) == ("hv01", "alpha", "running", True)
    assert e.hosts["HV01"].vms[vm].disks[0].startswith("C:\\ClusterStorage\\Volume1\\")


def test_cross_cluster_move_removes_moves_and_adds_the_role(
    hv: Api,
    estate: HyperVEstate,
) -> None:
    new_vm(hv, "web1", "hv01")
    assert codes(hv, "web1", to_cluster="beta") == set()
    estate.calls.clear()
    job = hv.ok("POST", "/vms/web1/migrate", {"to_cluster": "beta"})
    assert [s["name"] for s in job["steps"]] == [
        "preflight",
        "unregister",
        "prepare destination",
        "migrate",
        "record",
        "register",
        "cleanup",
    ]
    host = estate.where("web1")
    assert host is not None and host.name in ("HV03", "HV04") and host.cluster == "CL-BETA"
    assert _groups(estate, "beta") == {"web1": 3000} and _groups(estate, "alpha") == {}
    disk = host.vms["web1"].disks[0]
    assert disk.startswith("C:\\ClusterStorage\\Volume2\\")
    assert not [k for k in estate.files if k[0] == "CL-ALPHA"]  # nothing left in alpha
    v = _view(hv, "web1")
    assert (v["cluster"], v["state"], v["ha"], v["ha_priority"]) == ("beta", "running", True, 3)
    # SCVMM's order: the role leaves, the VM and its storage move (WMI
    # MigrationType 32771), the role is added in the destination cluster.
    calls = [(h, n, p) for h, n, p in estate.calls if n.startswith(("cluster_role", "vm_migrate"))]
    assert [(h, n) for h, n, _ in calls] == [
        ("HV01", "cluster_role_remove"),
        ("HV01", "vm_migrate_wmi"),
        (host.name, "cluster_role_add"),
    ]
    assert calls[1][2]["MigrationType"] == 32771 and calls[2][2]["Priority"] == 3000
    stats = job["steps"][3]["result"]["result"]
    assert stats["downtime_ms"] == 300  # the blackout Hyper-V logged (event 20415)


def test_cross_cluster_failure_after_the_move_undoes_it_all(
    hv: Api,
    estate: HyperVEstate,
) -> None:
    new_vm(hv, "web1", "hv01")
    estate.fail["cluster_role_add"] = "The cluster service refused the role (0x80071398)."
    job = hv.job("POST", "/vms/web1/migrate", {"to_cluster": "beta"})
    assert job["state"] == "Exception" and job["rollback"] == "clean", job
    assert job["error"]["code"] == "E_CLUSTER_NOT_POSSIBLE_OWNER"
    _at_home(hv, estate)
    assert not [k for k in estate.files if k[0] in ("CL-BETA", "HV03", "HV04")]


def test_maintenance_moves_roles_in_the_cluster_and_pauses_the_node(
    hv: Api,
    estate: HyperVEstate,
) -> None:
    new_vm(hv, "web1", "hv01")
    new_vm(hv, "app1", "hv01", ha=False)
    estate.calls.clear()
    job = hv.ok("POST", "/hosts/hv01/maintenance/start")
    assert [s["name"] for s in job["steps"]] == ["enter", "migrate", "save", "verify"]
    assert estate.where("web1").name == "HV02"  # type: ignore[union-attr]
    assert estate.hosts["HV01"].vms["app1"].state == "Saved"
    assert (estate.hosts["HV01"].node_state, estate.hosts["HV01"].drain) == ("Paused", "Completed")
    moves = [p for _, n, p in estate.calls if n == "cluster_move_role"]
    assert moves == [{"Name": "web1", "Node": "hv02", "MigrationType": "Live"}]
    assert "vm_migrate_wmi" not in _scripts(estate)  # inside the cluster: the cluster's move
    hv.ok("POST", "/hosts/hv01/maintenance/stop", {"move_back": True, "restart_saved": True})
    assert estate.hosts["HV01"].node_state == "Up"
    assert {v.name: v.state for v in estate.hosts["HV01"].vms.values()} == {
        "web1": "Running",
        "app1": "Running",
    }
    assert _groups(estate, "alpha") == {"web1": 3000}


def test_maintenance_failure_midway_resumes_the_node(
    hv: Api,
    estate: HyperVEstate,
) -> None:
    new_vm(hv, "web1", "hv01")
    estate.fail["cluster_move_role"] = (
        "Failed to perform migration on virtual machine 'web1' because virtual machine "
        "migration limit '2' was reached."
    )
    job = hv.job("POST", "/hosts/hv01/maintenance/start")
    assert job["state"] == "Exception" and job["error"]["code"] == "E_MAINTENANCE_INCOMPLETE"
    assert estate.hosts["HV01"].node_state == "Up"
    assert hv.call("GET", "/hosts/hv01").json()["maintenance"] is False
    _at_home(hv, estate)


def test_a_dead_node_is_the_clusters_to_fail_over_and_whimbrel_follows(
    hv: Api,
    estate: HyperVEstate,
) -> None:
    new_vm(hv, "web1", "hv01")
    new_vm(hv, "app1", "hv01", ha=False)
    estate.fail_node("HV01")
    mon = hv.manager.monitor
    mon.poll_once()
    mon.poll_once()  # the dead node's VMs are unknown first, then found where they run
    web, app = _view(hv, "web1"), _view(hv, "app1")
    assert (web["host"], web["state"]) == ("hv02", "running")
    assert (app["host"], app["state"]) == ("hv01", "unknown")
    assert hv.call("GET", "/hosts/hv01").json()["state"] == "not responding"
    assert mon.watch is not None
    assert mon.watch.tick() == []  # no fencing, no restart of our own: the cluster's job
    kinds = {j["kind"] for j in hv.call("GET", "/jobs").json()}
    assert "host.failover" not in kinds


def test_vm_lifecycle_and_storage_move_on_the_host(
    hv: Api,
    estate: HyperVEstate,
) -> None:
    new_vm(hv, "web1", "hv01", ha=False)
    d = _view(hv, "web1")["disks"][0]  # type: ignore[index]
    assert (d["fmt"], d["path"]) == ("vhdx", "C:/ClusterStorage/Volume1/web1-vda.vhdx")
    assert ("CL-ALPHA", "c:\\clusterstorage\\volume1\\web1-vda.vhdx") in estate.files
    for action, state in (("stop", "Off"), ("start", "Running"), ("save", "Saved")):
        hv.ok("POST", f"/vms/web1/{action}", {"force": True} if action == "stop" else None)
        assert estate.hosts["HV01"].vms["web1"].state == state
    hv.ok("POST", "/vms/web1/start")
    # Storage only, within the host: Move-VMStorage, its job's percent in our progress.
    job = hv.ok("POST", "/vms/web1/migrate", {"to": "hv01", "storage_path": "local"})
    assert [s["name"] for s in job["steps"]] == [
        "preflight",
        "prepare destination",
        "copy and switch",
        "record",
        "cleanup",
    ]
    vm = estate.hosts["HV01"].vms["web1"]
    assert vm.disks == ["C:\\Hyper-V\\Virtual Hard Disks\\web1-vda.vhdx"] and vm.state == "Running"
    assert _view(hv, "web1")["disks"][0]["path"].startswith("C:/Hyper-V/")  # type: ignore[index]
    assert "vm_move_storage" in _scripts(estate)


def test_quick_and_offline_moves_inside_the_cluster(
    hv: Api,
    estate: HyperVEstate,
) -> None:
    new_vm(hv, "web1", "hv01")
    estate.calls.clear()
    job = hv.ok("POST", "/vms/web1/migrate", {"to": "hv02", "quick": True})
    assert [s["name"] for s in job["steps"]] == ["preflight", "quick", "record"]
    assert estate.where("web1").name == "HV02"  # type: ignore[union-attr]
    assert estate.hosts["HV02"].vms["web1"].state == "Running"
    moves = [p for _, n, p in estate.calls if n == "cluster_move_role"]
    assert moves == [{"Name": "web1", "Node": "hv02", "MigrationType": "Quick"}]
    assert "vm_define" not in _scripts(estate)  # the host does it all: no definition of ours
    hv.ok("POST", "/vms/web1/stop", {"force": True})
    hv.ok("POST", "/vms/web1/migrate", {"to": "hv01"})
    assert estate.where("web1").name == "HV01"  # type: ignore[union-attr]
    assert estate.hosts["HV01"].vms["web1"].state == "Off"
    assert _view(hv, "web1")["host"] == "hv01"


def test_settings_written_to_the_host_and_the_clusters_limit_wins(
    hv: Api,
    estate: HyperVEstate,
) -> None:
    body = {
        "max_live_migrations": 5,
        "max_storage_migrations": 3,
        "performance": "tcp",
        "networks": ["10.10.20.0/24", "10.10.30.0/24"],
    }
    hv.ok("POST", "/hosts/hv01/migration", body)
    h = estate.hosts["HV01"]
    assert (h.max_live, h.max_storage, h.performance) == (5, 3, "TCPIP")
    assert h.subnets == ["10.10.20.0/24", "10.10.30.0/24"] and not h.use_any
    m = hv.call("GET", "/hosts/hv01/migration").json()
    # (Get-Cluster).MaximumParallelMigrations (2) overrides the host's 5 in a cluster.
    assert (m["max_live_migrations"], m["max_storage_migrations"]) == (2, 3)
    assert m["performance"] == "tcp" and m["networks"] == ["10.10.20.0/24", "10.10.30.0/24"]
    hv.ok("POST", "/hosts/hv01/migration", {"enabled": False})  # Disable-VMMigration
    assert h.enabled is False
    estate.fail["migration_set"] = "Access is denied. (0x80070005)"
    assert hv.job("POST", "/hosts/hv01/migration", {"enabled": True})["state"] == "Exception"
    assert h.enabled is False and hv.call("GET", "/hosts/hv01/migration").json()["enabled"] is False


def test_blackout_comes_from_this_move_only(estate: HyperVEstate) -> None:
    """An older move's event 20415 must not be reported as this move's downtime."""
    from whimbrel.drivers.hyperv import moves

    d = estate.open(estate.uri("HV02"))
    old = "completed the live migration of virtual machine 'x' with a blackout time of 9.9 seconds"
    estate.events["HV02"] = [(time.time() - 600, old)]  # within the default 15 min
    moves._RESULTS["x"] = (1500, 0, 0)
    assert moves.result(d, "x", []).downtime_ms == 0
    estate.events["HV02"].append((time.time(), old.replace("9.9", "0.4")))
    moves._RESULTS["x"] = (1500, 0, 0)
    assert moves.result(d, "x", []).downtime_ms == 400
