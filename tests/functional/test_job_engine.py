"""The job engine under its own faults, in the real lab.

A manager in a process of its own (``whimbrel serve``) is SIGKILLed in the
middle of a live migration's memory copy, of a move's disk copy, and of a
maintenance drain, then started again: each job ends in the state the hosts
prove (``Completed`` if the VM runs on the destination, ``Terminated`` with a
clean rollback if on the source), never with a false "fix by hand".  A
destination that dies mid-copy leaves its half-copied image behind until it
is back: the undo waits for it, then removes the image, and the same move works.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, wait_for
from tests.functional.served import WHIMBREL, Served, active
from tests.functional.test_ha import ha_vm
from tests.functional.test_lifecycle import lab_vm, wait_heartbeat
from tests.functional.test_migration import copying_job, migrate, on_host
from whimbrel.lab.lab import Lab

pytestmark = pytest.mark.lab
PORT = 8482


@pytest.fixture
def served(lab: Lab, tmp_path: Path) -> Iterator[Served]:
    s = Served(lab, tmp_path / "home", PORT)
    s.start()
    s.cli("lab", "enroll")
    yield s
    for vm in s.get("/vms"):
        r = s.http.delete(f"/vms/{vm['name']}", params={"force": True})
        if r.status_code == 202:
            s.done(int(r.json()["id"]))
    subprocess.run([*WHIMBREL, "serve", "--stop"], env=s.env, capture_output=True)


def _vm(s: Served, name: str, host: str, pool: str, **kw: Any) -> None:
    job = s.done(s.submit("/vms", lab_vm(name, host, pool, **kw)))
    assert job["state"] == "Completed", job["error"]
    wait_for(lambda: (h := s.get(f"/vms/{name}/heartbeat")["heartbeat"]) and h["counter"] > 2, 90)


def _settled_as_the_hosts_say(lab: Lab, s: Served, job: dict[str, Any], vm: str) -> str:
    """The job's end agrees with where the VM runs; returns that host."""
    assert job["manual_fix"] == "", job["manual_fix"]
    assert job["rollback"] in ("none", "clean"), job
    v = s.get(f"/vms/{vm}")
    src, dst = job["op"]["source"], job["op"]["to"]
    if job["state"] == "Completed":
        assert v["host"] == dst and active(lab, dst, vm) and not active(lab, src, vm)
    else:
        assert job["state"] == "Terminated", job
        assert v["host"] == src and active(lab, src, vm) and not on_host(lab, dst, vm)
    return str(v["host"])


def test_a_manager_killed_during_the_memory_copy_settles_by_what_the_hosts_show(
    lab: Lab, served: Served
) -> None:
    s = served
    _vm(s, "k-mem", "h1", "csv-alpha")
    job_id = s.submit("/vms/k-mem/migrate", {"to": "h2", "bandwidth_mib_s": 2})
    s.phase(job_id, "memory pass")
    s.kill()
    took = s.start()
    t0 = time.monotonic()
    job = s.done(job_id)
    settled = time.monotonic() - t0
    where = _settled_as_the_hosts_say(lab, s, job, "k-mem")
    rec = job["progress"]["recovery"]
    print(
        f"\nkilled mid memory copy: {job['state']} on {where} ({rec['evidence']}); "
        f"restart {took:.1f} s, reconciled {settled:.1f} s after"
    )
    assert rec["step"] == "migrate" and rec["truth"] in ("done", "not done")


def test_a_manager_killed_during_the_disk_copy_leaves_no_image_behind(
    lab: Lab, served: Served
) -> None:
    s = served
    _vm(s, "k-disk", "h1", "local", disks=[{"size_mib": 256, "pool": "local"}])
    body = {"to": "h2", "include_storage": True, "storage_path": "local", "bandwidth_mib_s": 8}
    job_id = s.submit("/vms/k-disk/migrate", body)
    s.phase(job_id, "disk copy", "memory pass")
    s.kill()
    s.start()
    job = s.done(job_id)
    where = _settled_as_the_hosts_say(lab, s, job, "k-disk")
    image = Path(s.get("/vms/k-disk")["disks"][0]["path"]).name
    other = "h1" if where == "h2" else "h2"
    assert not (lab.spec.host(other).dir / "local" / image).exists()  # nothing left over
    print(f"\nkilled mid disk copy: {job['state']} on {where}")


def test_a_manager_killed_during_a_drain_settles_the_drain_and_each_move(
    lab: Lab, served: Served
) -> None:
    s = served
    for vm in ("k-d1", "k-d2"):
        _vm(s, vm, "h1", "csv-alpha", ha=True)
    job_id = s.submit("/hosts/h1/maintenance/start")
    wait_for(
        lambda: any(
            k["state"] == "Running" and k["phase"].startswith("memory pass")
            for k in s.get(f"/jobs/{job_id}")["progress"].get("children", [])
        ),
        timeout=90,
        period=0.05,
    )
    s.kill()
    s.start()
    job = s.done(job_id)
    assert job["manual_fix"] == "", job
    kids = [s.done(k["job"]) for k in job["progress"]["children"]]
    for k in kids:
        _settled_as_the_hosts_say(lab, s, k, k["op"]["name"])
    in_maintenance = s.get("/hosts/h1")["maintenance"]
    if job["state"] == "Completed":
        assert in_maintenance and all(k["state"] == "Completed" for k in kids)
        s.done(s.submit("/hosts/h1/maintenance/stop", {"move_back": True}))
    else:
        assert job["state"] == "Terminated" and not in_maintenance, job
    print(f"\nkilled mid drain: {job['state']}; moves {[k['state'] for k in kids]}")


def test_a_destination_that_dies_mid_copy_is_cleaned_up_when_it_is_back(
    lab: Lab, lab_api: Api
) -> None:
    api = lab_api
    ha_vm(api, "x-left", "h1", 3)
    wait_heartbeat(api, "x-left", above=3)
    beta = lab.spec.cluster_dir("beta") / "shared"

    def kill_destination() -> None:
        copying_job(api, "x-left")
        lab.kill_host("h3")

    t = threading.Thread(target=kill_destination)
    t.start()
    try:
        job = migrate(api, "x-left", to_cluster="beta", to="h3", bandwidth_mib_s=4)
    finally:
        t.join()
    try:
        assert job["state"] == "Exception" and job["rollback"] == "pending", job
        assert job["manual_fix"] == ""
        steps = {st["name"]: st["state"] for st in job["steps"]}
        assert steps["prepare destination"] == "undo_pending", steps
        assert list(beta.rglob("x-left*")), "the half-copied image is there while h3 is down"
        v = api.call("GET", "/vms/x-left").json()
        assert (v["host"], v["cluster"], v["state"]) == ("h1", "alpha", "running")
        # A new move of the same VM is told what blocks it.
        _, code = api.error("POST", "/vms/x-left/migrate", {"to_cluster": "beta"})
        assert code == "E_CLEANUP_PENDING"
    finally:
        lab.start_host("h3")
    back = time.monotonic()
    wait_for(lambda: api.call("GET", f"/jobs/{job['id']}").json()["rollback"] == "clean", 90)
    cleaned = time.monotonic() - back
    assert not list(beta.rglob("x-left*"))
    print(f"\nleftover image removed {cleaned:.1f} s after h3 came back")
    assert cleaned < 60
    again = migrate(api, "x-left", to_cluster="beta", to="h3")
    assert again["state"] == "Completed", again["error"]
