"""A move to another cluster on the fake fleet: HA role carried over, or everything undone."""

from __future__ import annotations

import pytest

from tests.conftest import Api
from tests.unit.test_api_vms import _vm
from whimbrel.drivers.fake import FakeFleet


@pytest.fixture
def clusters(hosts: Api, fleet: FakeFleet) -> Api:
    """c1 (f1..f3, /srv/csv) as before, and c2 (g1, g2) sharing /srv/csvb only."""
    hosts.ok("POST", "/clusters", {"name": "c2", "shared_paths": ["/srv/csvb"]})
    for i, g in enumerate(("g1", "g2"), start=4):
        fleet.add_host(g, memory_mib=4096, pools={"local": f"/srv/{g}", "csvb": "/srv/csvb"})
        hosts.ok("POST", "/hosts", {"name": g, "uri": f"fake://{g}", "cluster": "c2"})
        body = {"addresses": [f"10.9.0.{i}/24", f"10.9.1.{i}/24"], "networks": ["10.9.1.0/24"]}
        hosts.ok("POST", f"/hosts/{g}/migration", body)
    hosts.ok("POST", "/vms", _vm("a", "f1", ha=True))
    hosts.ok("POST", "/vms/a/ha", {"enabled": True, "priority": 3})
    return hosts


def _vm_view(api: Api) -> dict[str, object]:
    return dict(api.call("GET", "/vms/a").json())


def test_move_carries_the_ha_role_to_the_other_cluster(clusters: Api, fleet: FakeFleet) -> None:
    plan = clusters.call("POST", "/vms/a/migrate/check", json={"to_cluster": "c2"}).json()
    assert plan["kind"] == "live+storage" and plan["dest"] in ("g1", "g2"), plan
    assert [f for f in plan["findings"] if f["severity"] == "error"] == []
    job = clusters.ok("POST", "/vms/a/migrate", {"to_cluster": "c2"})
    assert [s["name"] for s in job["steps"]] == [
        "preflight",
        "unregister",
        "prepare destination",
        "migrate",
        "record",
        "register",
        "cleanup",
    ]
    v = _vm_view(clusters)
    assert v["host"] in ("g1", "g2") and v["cluster"] == "c2" and v["state"] == "running"
    assert v["ha"] is True and v["ha_priority"] == 3 and v["findings"] == []
    assert all(d["path"].startswith("/srv/csvb/") for d in v["disks"])  # type: ignore[attr-defined]
    assert not [p for p in fleet.volumes if p.startswith("/srv/csv/a")]  # source image gone


def test_destination_failure_rolls_everything_back(clusters: Api, fleet: FakeFleet) -> None:
    to = clusters.call("POST", "/vms/a/migrate/check", json={"to_cluster": "c2"}).json()["dest"]
    fleet.hosts[to].refuse_incoming.add("a")
    job = clusters.job("POST", "/vms/a/migrate", {"to_cluster": "c2"})
    assert job["state"] == "Exception" and job["rollback"] == "clean", job
    assert [s["state"] for s in job["steps"]][:4] == ["undone", "undone", "undone", "failed"]
    v = _vm_view(clusters)
    assert (v["host"], v["state"], v["ha"], v["ha_priority"]) == ("f1", "running", True, 3)
    assert all(d["path"].startswith("/srv/csv/") for d in v["disks"])  # type: ignore[attr-defined]
    assert not [p for p in fleet.volumes if p.startswith("/srv/csvb/")]  # nothing left there
    oc = clusters.call("GET", "/clusters/c1").json()["overcommit"]
    assert oc["after"] == "HA VM a stays"


def test_wrong_destinations_and_unfit_clusters_change_nothing(
    clusters: Api, fleet: FakeFleet
) -> None:
    for body, code in (
        ({"to_cluster": "c1"}, "E_SAME_CLUSTER"),
        ({"to_cluster": "c2", "to": "f2"}, "E_HOST_NOT_IN_CLUSTER"),
        ({"to_cluster": "nope"}, "E_CLUSTER_NOT_FOUND"),
        ({}, "E_NO_DESTINATION"),
        ({"to_cluster": "c2", "quick": True}, "E_INVALID_POLICY"),
    ):
        assert clusters.error("POST", "/vms/a/migrate", body)[1] == code, body
    # A network the VM uses is missing on one node of c2: it could not be HA there.
    fleet.hosts["g2"].networks = ("other-net",)
    clusters.ok("POST", "/hosts/g2/refresh")
    resp = clusters.call("POST", "/vms/a/migrate", json={"to_cluster": "c2", "to": "g1"})
    assert resp.status_code == 409 and "E_HA_NETWORK_NOT_COMMON" in resp.json()["error"]["detail"]
    v = _vm_view(clusters)
    assert (v["host"], v["ha"]) == ("f1", True)
