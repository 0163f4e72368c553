"""A move from cluster alpha to beta in the lab: the HA role goes along, or nothing moves."""

from __future__ import annotations

import threading
import time

import pytest

from tests.conftest import Api, wait_for
from tests.functional.test_ha import ha_vm
from tests.functional.test_lifecycle import wait_heartbeat
from tests.functional.test_migration import assert_healthy, copying_job, migrate, on_host
from whimbrel.lab.lab import Lab
from whimbrel.lab.topology import shared_dir

pytestmark = pytest.mark.lab


def test_ha_vm_moves_to_the_other_cluster_with_its_role(lab: Lab, lab_api: Api) -> None:
    api = lab_api
    ha_vm(api, "x-move", "h1", 3)
    before = wait_heartbeat(api, "x-move", above=3)
    check = api.call("POST", "/vms/x-move/migrate/check", json={"to_cluster": "beta"}).json()
    assert check["kind"] == "live+storage" and check["dest"] in ("h3", "h4")
    assert [f for f in check["findings"] if f["severity"] == "error"] == []
    job = migrate(api, "x-move", to_cluster="beta")
    assert job["state"] == "Completed", job["error"]
    assert [s["name"] for s in job["steps"]][:2] == ["preflight", "unregister"]
    assert [s["name"] for s in job["steps"]][-2:] == ["register", "cleanup"]
    v = api.call("GET", "/vms/x-move").json()
    assert v["cluster"] == "beta" and v["ha"] and v["ha_priority"] == 3 and v["findings"] == []
    assert all(d["path"].startswith(shared_dir("beta")) for d in v["disks"])
    assert list((lab.spec.cluster_dir("beta") / "shared").rglob("x-move*"))  # really there
    assert not list((lab.spec.cluster_dir("alpha") / "shared").rglob("x-move*"))
    assert_healthy(lab, api, "x-move", before, v["host"])
    assert not on_host(lab, "h1", "x-move")


def test_destination_failure_leaves_the_vm_registered_on_the_source(lab: Lab, lab_api: Api) -> None:
    api = lab_api
    ha_vm(api, "x-fail", "h1", 3)
    before = wait_heartbeat(api, "x-fail", above=3)

    def kill_destination() -> None:
        copying_job(api, "x-fail")
        lab.kill_host("h3")
        time.sleep(1)
        lab.start_host("h3")

    t = threading.Thread(target=kill_destination)
    t.start()
    try:
        job = migrate(api, "x-fail", to_cluster="beta", to="h3", bandwidth_mib_s=4)
    finally:
        t.join()
    assert job["state"] == "Exception" and job["rollback"] == "clean", (job, job["manual_fix"])
    steps = {s["name"]: s["state"] for s in job["steps"]}
    assert steps["unregister"] == "undone" and steps["register"] == "pending"
    v = api.call("GET", "/vms/x-fail").json()
    assert (v["host"], v["cluster"], v["ha"], v["ha_priority"]) == ("h1", "alpha", True, 3)
    assert_healthy(lab, api, "x-fail", before, "h1")
    wait_for(lambda: api.call("GET", "/hosts/h3").json()["state"] == "connected", timeout=60)
    assert not on_host(lab, "h3", "x-fail")
    beta = lab.spec.cluster_dir("beta") / "shared"
    assert beta.is_dir() and not list(beta.rglob("x-fail*"))  # no half-copied image left
    # No failover ever ran for the VM while it was leaving.
    assert not [j for j in api.call("GET", "/jobs").json() if j["kind"] == "vm.recover"]
