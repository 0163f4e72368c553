"""Every kind of move on real lab hosts, judged by the guest's own health report.

A move passes only if the guest kept counting (same writer: no reboot), found
no stale page and printed no kernel error, and its disk sequence went on.
Workloads stay light: QEMU 7.2's TCG corrupts heavily dirtying guests in long
migrations (lab notes §2.3), which is not what these tests are about.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, wait_for
from tests.functional.test_lifecycle import heartbeat, lab_vm, wait_heartbeat
from whimbrel.lab.lab import Lab

pytestmark = pytest.mark.lab

OOPS = ("BUG:", "general protection fault", "Kernel panic", "Oops", "soft lockup")


def migrate(api: Api, name: str, **body: Any) -> dict[str, Any]:
    return api.job("POST", f"/vms/{name}/migrate", body)


def assert_healthy(lab: Lab, api: Api, name: str, before: dict[str, Any], host: str) -> None:
    after = wait_heartbeat(api, name, above=before["counter"], timeout=30)
    assert after["writer"] == before["writer"], "the guest rebooted"
    assert after["bad"] == 0, "pages went back in time"
    assert after["disk_seq"] >= before["disk_seq"]
    console = lab.console_log(host, name).read_text(errors="replace")
    assert not [o for o in OOPS if o in console], console[-2000:]


def on_host(lab: Lab, host: str, name: str) -> bool:
    import libvirt

    conn = libvirt.open(lab.spec.host(host).local_uri)
    try:
        return name in [d.name() for d in conn.listAllDomains(0)]
    finally:
        conn.close()


def test_live_move_on_shared_storage_keeps_the_guest_running(lab: Lab, lab_api: Api) -> None:
    lab_api.ok("POST", "/vms", lab_vm("mig-live", "h1", "csv-alpha"))
    before = wait_heartbeat(lab_api, "mig-live", above=5)
    job = migrate(lab_api, "mig-live", to="h2")
    assert job["state"] == "Completed", job
    res = job["progress"]["result"]
    assert res["downtime_ms"] > 0 and res["total_ms"] >= res["downtime_ms"]
    assert job["progress"]["prediction"]["converges"] is True
    assert lab_api.call("GET", "/vms/mig-live").json()["host"] == "h2"
    assert not on_host(lab, "h1", "mig-live")
    assert_healthy(lab, lab_api, "mig-live", before, "h2")
    back = migrate(lab_api, "mig-live", to="h1")
    assert back["state"] == "Completed", back


def test_live_move_with_storage_copies_the_disk(lab: Lab, lab_api: Api) -> None:
    lab_api.ok("POST", "/vms", lab_vm("mig-copy", "h1", "local"))
    before = wait_heartbeat(lab_api, "mig-copy", above=20)  # a few disk records written
    path = lab_api.call("GET", "/vms/mig-copy").json()["disks"][0]["path"]
    job = migrate(lab_api, "mig-copy", to="h2", include_storage=True, storage_path="local")
    assert job["state"] == "Completed", job
    assert_healthy(lab, lab_api, "mig-copy", before, "h2")
    # The guest's disk sequence went on from the copied records, and the source image is gone.
    assert not (lab.spec.host("h1").dir / "local" / Path(path).name).exists()
    assert (lab.spec.host("h2").dir / "local" / Path(path).name).exists()


def test_storage_only_move_switches_disks_while_running(lab: Lab, lab_api: Api) -> None:
    lab_api.ok("POST", "/vms", lab_vm("mig-stor", "h1", "csv-alpha"))
    before = wait_heartbeat(lab_api, "mig-stor", above=20)
    job = migrate(lab_api, "mig-stor", to="h1", include_storage=True, storage_path="local")
    assert job["state"] == "Completed", job
    disk = lab_api.call("GET", "/vms/mig-stor").json()["disks"][0]
    assert disk["path"].startswith("/srv/whimbrel/local/") and disk["pool"] == "local"
    assert_healthy(lab, lab_api, "mig-stor", before, "h1")
    assert not (lab.spec.cluster_dir("alpha") / Path(disk["path"]).name).exists()


def test_quick_migration_keeps_the_guest_state(lab: Lab, lab_api: Api) -> None:
    lab_api.ok("POST", "/vms", lab_vm("mig-quick", "h1", "csv-alpha"))
    before = wait_heartbeat(lab_api, "mig-quick", above=5)
    job = migrate(lab_api, "mig-quick", to="h2", quick=True)
    assert job["state"] == "Completed", job
    assert [s["name"] for s in job["steps"]][1:4] == ["define on destination", "save", "restore"]
    assert_healthy(lab, lab_api, "mig-quick", before, "h2")
    assert not on_host(lab, "h1", "mig-quick")


def test_offline_move_of_a_stopped_vm(lab: Lab, lab_api: Api) -> None:
    lab_api.ok("POST", "/vms", lab_vm("mig-off", "h1", "csv-alpha", start=False))
    job = migrate(lab_api, "mig-off", to="h2")
    assert job["state"] == "Completed", job
    assert job["op"]["move"] == "offline"
    assert on_host(lab, "h2", "mig-off") and not on_host(lab, "h1", "mig-off")
    lab_api.ok("POST", "/vms/mig-off/start")
    wait_heartbeat(lab_api, "mig-off", above=2)


def copying_job(api: Api, name: str) -> int:
    """Wait until the move of ``name`` is copying memory or disks; return its job id."""

    def job() -> int | None:
        for j in api.call("GET", "/jobs").json():
            if j["subject"] == name and j["kind"] == "vm.migrate":
                return int(j["id"]) if j["phase"].startswith(("memory pass", "disk copy")) else None
        return None

    return int(wait_for(job, timeout=60, period=0.1))


def test_cancel_mid_copy_leaves_the_vm_on_the_source(lab: Lab, lab_api: Api) -> None:
    lab_api.ok("POST", "/vms", lab_vm("mig-cancel", "h1", "local"))
    before = wait_heartbeat(lab_api, "mig-cancel", above=5)
    t = threading.Thread(
        target=lambda: lab_api.call("POST", f"/jobs/{copying_job(lab_api, 'mig-cancel')}/cancel")
    )
    t.start()
    # 4 MiB/s: the copy takes long enough to be cancelled in the middle.
    job = migrate(
        lab_api,
        "mig-cancel",
        to="h2",
        include_storage=True,
        storage_path="local",
        bandwidth_mib_s=4,
    )
    t.join()
    assert job["state"] == "Terminated" and job["rollback"] == "clean", job
    assert lab_api.call("GET", "/vms/mig-cancel").json()["host"] == "h1"
    assert not on_host(lab, "h2", "mig-cancel")
    assert not list((lab.spec.host("h2").dir / "local").glob("mig-cancel*"))
    assert_healthy(lab, lab_api, "mig-cancel", before, "h1")


def test_destination_lost_mid_copy_leaves_the_vm_on_the_source(lab: Lab, lab_api: Api) -> None:
    lab_api.ok("POST", "/vms", lab_vm("mig-kill", "h1", "local"))
    before = wait_heartbeat(lab_api, "mig-kill", above=5)

    def kill_destination() -> None:
        copying_job(lab_api, "mig-kill")
        lab.kill_host("h2")
        time.sleep(1)
        lab.start_host("h2")

    t = threading.Thread(target=kill_destination)
    t.start()
    job = migrate(
        lab_api, "mig-kill", to="h2", include_storage=True, storage_path="local", bandwidth_mib_s=4
    )
    t.join()
    assert job["state"] == "Exception" and job["rollback"] == "clean", (job, job["manual_fix"])
    assert lab_api.call("GET", "/vms/mig-kill").json()["host"] == "h1"
    assert_healthy(lab, lab_api, "mig-kill", before, "h1")
    assert not on_host(lab, "h2", "mig-kill")
    assert not list((lab.spec.host("h2").dir / "local").glob("mig-kill*"))
    assert heartbeat(lab_api, "mig-kill") is not None
