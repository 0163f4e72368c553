"""A VM's whole life on real libvirt hosts in the lab, with a real guest."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import Api
from whimbrel.lab.lab import Lab
from whimbrel.lab.topology import GUEST_DIR

pytestmark = pytest.mark.lab


def lab_vm(name: str, host: str, pool: str, **kw: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "host": host,
        "memory_mib": 192,
        "disks": [{"size_mib": 16, "pool": pool}],
        "networks": ["vm-net"],
        "kernel": f"{GUEST_DIR}/vmlinuz",
        "initrd": f"{GUEST_DIR}/initrd.img",
        "cmdline": "console=ttyS0 quiet panic=-1 workload_mib=8 workload_rate=2",
    }
    return body | kw


def heartbeat(api: Api, name: str) -> dict[str, Any] | None:
    hb: dict[str, Any] | None = api.call("GET", f"/vms/{name}/heartbeat").json()["heartbeat"]
    return hb


def wait_heartbeat(api: Api, name: str, above: int = 0, timeout: float = 90) -> dict[str, Any]:
    """The first heartbeat whose counter exceeds ``above`` (TCG boots take seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hb = heartbeat(api, name)
        if hb is not None and hb["counter"] > above:
            return hb
        time.sleep(0.5)
    raise AssertionError(f"no heartbeat above {above} from {name} in {timeout} s")


def test_lab_hosts_are_distinct_tls_hosts(lab: Lab, lab_api: Api) -> None:
    hosts = {
        h["name"]: lab_api.call("GET", f"/hosts/{h['name']}").json()
        for h in lab_api.call("GET", "/hosts").json()
    }
    assert set(hosts) == {"h1", "h2", "h3", "h4"}
    assert len({h["host_uuid"] for h in hosts.values()}) == 4
    assert {h["hostname"] for h in hosts.values()} == {"h1", "h2", "h3", "h4"}
    assert all(h["uri"].startswith("qemu+tls://10.78.0.") for h in hosts.values())
    expected = "kvm" if lab.accel()["accel"] == "kvm" else "qemu"
    assert {h["virt_type"] for h in hosts.values()} == {expected}
    # Each host sees its own cluster's shared storage and nothing else.
    pools = {n: {p["name"] for p in h["pools"]} for n, h in hosts.items()}
    assert pools["h1"] == pools["h2"] == {"local", "csv-alpha"}
    assert pools["h3"] == pools["h4"] == {"local", "csv-beta"}
    assert all(h["state"] == "connected" for h in hosts.values())


def test_vm_on_shared_and_local_storage_lives_and_dies(lab: Lab, lab_api: Api) -> None:
    api = lab_api
    api.ok("POST", "/vms", lab_vm("life-shared", "h1", "csv-alpha"))
    api.ok("POST", "/vms", lab_vm("life-local", "h2", "local"))
    shared = api.call("GET", "/vms/life-shared").json()
    local = api.call("GET", "/vms/life-local").json()
    assert shared["disks"][0]["shared"] is True and local["disks"][0]["shared"] is False
    image = lab.spec.cluster_dir("alpha") / "shared/images/life-shared-vda.qcow2"
    assert image.exists()

    for name in ("life-shared", "life-local"):
        first = wait_heartbeat(api, name)
        later = wait_heartbeat(api, name, above=first["counter"] + 5)
        assert later["bad"] == 0
        assert later["disk_seq"] >= 1, "the guest writes its disk every second"

    # Graceful stop: the guest sees an ACPI power-button press and powers off.
    api.ok("POST", "/vms/life-local/stop", {"timeout_s": 60})
    assert api.call("GET", "/vms/life-local").json()["state"] == "stopped"
    assert heartbeat(api, "life-local") is None
    api.ok("POST", "/vms/life-local/start")
    assert wait_heartbeat(api, "life-local")["counter"] >= 1

    # Save and restore: the guest resumes where it was, it does not boot again.
    before = wait_heartbeat(api, "life-shared", above=10)
    api.ok("POST", "/vms/life-shared/save")
    assert api.call("GET", "/vms/life-shared").json()["state"] == "saved"
    api.ok("POST", "/vms/life-shared/restore")
    after = wait_heartbeat(api, "life-shared")
    assert after["counter"] >= before["counter"], (before, after)
    assert after["writer"] == before["writer"], "same guest run, not a reboot"

    console = lab.console_log("h1", "life-shared").read_text(errors="replace")
    assert "WORKLOAD start" in console
    for bad in ("BUG:", "general protection fault", "Kernel panic"):
        assert bad not in console

    api.ok("DELETE", "/vms/life-shared", params={"force": True})
    assert not image.exists()
    names = [v["name"] for v in api.call("GET", "/vms").json()]
    assert names == ["life-local"]


def test_vm_larger_than_host_memory_changes_nothing(lab: Lab, lab_api: Api) -> None:
    code = lab_api.error("POST", "/vms", lab_vm("huge", "h3", "csv-beta", memory_mib=10_000_000))
    assert code == (507, "E_NO_MEMORY")
    assert lab_api.call("GET", "/vms").json() == []
    assert not (lab.spec.cluster_dir("beta") / "shared/images/huge-vda.qcow2").exists()


def test_delete_running_vm_without_force_is_refused(lab_api: Api) -> None:
    lab_api.ok("POST", "/vms", lab_vm("keep", "h4", "local"))
    assert lab_api.error("DELETE", "/vms/keep") == (409, "E_VM_RUNNING")
    assert lab_api.call("GET", "/vms/keep").json()["state"] == "running"
