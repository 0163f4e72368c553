"""Hyper-V's workgroup clusters: a workgroup cluster (no domain) moves VMs live inside the
cluster only from Windows Server 2025 on, authenticated by one local account present on every
node."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Api
from tests.hyperv_double.estate import HyperVEstate
from tests.unit.hyperv_estate import new_vm
from tests.unit.test_api_migration import codes
from whimbrel.config import Settings
from whimbrel.manager import Manager


@pytest.fixture
def wg() -> HyperVEstate:
    e = HyperVEstate(domain="")
    e.add_cluster("CL-WG", ["C:\\ClusterStorage\\Volume1"])
    for i, n in enumerate(("WG01", "WG02"), start=1):
        e.add_host(
            n,
            cluster="CL-WG",
            domain="",
            os_build=20348,
            accounts=["wcadmin"],
            addresses=[f"192.168.5.{i}/24"],
            use_any=True,
        )
    return e


@pytest.fixture
def wg_api(settings: Settings, wg: HyperVEstate) -> Iterator[Api]:
    m = Manager(settings, opener=wg.open)
    m.start()
    api = Api(m)
    api.ok("POST", "/clusters", {"name": "wg", "shared_paths": ["C:/ClusterStorage/Volume1"]})
    for n in ("WG01", "WG02"):
        uri = wg.uri(n, auth="negotiate", user=".\\wcadmin")
        api.ok("POST", "/hosts", {"name": n.lower(), "uri": uri, "cluster": "wg"})
    yield api
    m.stop()


def test_workgroup_live_migration_needs_ws2025_and_the_same_account(
    wg_api: Api, wg: HyperVEstate
) -> None:
    new_vm(wg_api, "db1", "wg01")
    assert wg.clusters["CL-WG"].groups == {"db1": 3000}
    assert "E_WORKGROUP_LIVE_MIGRATION_UNSUPPORTED" in codes(wg_api, "db1", to="wg02")
    for h in wg.hosts.values():
        h.os_build = 26100
    wg.hosts["WG02"].accounts = ["Administrator"]
    assert codes(wg_api, "db1", to="wg02") == {"E_WORKGROUP_ACCOUNT_MISSING"}
    wg.hosts["WG02"].accounts = ["Administrator", "wcadmin"]
    assert codes(wg_api, "db1", to="wg02") == set()
    wg.calls.clear()
    wg_api.ok("POST", "/vms/db1/migrate", {"to": "wg02"})
    assert wg.where("db1").name == "WG02"  # type: ignore[union-attr]
    # Inside the cluster: the cluster's live migration, no delegation, no WMI move.
    names = [n for _, n, _ in wg.calls]
    assert "cluster_move_role" in names and "vm_migrate_wmi" not in names
    v = wg_api.call("GET", "/vms/db1").json()
    assert (v["host"], v["state"]) == ("wg02", "running")
