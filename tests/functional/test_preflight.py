"""Preflight findings provoked on real lab hosts, and refused moves that change nothing.

The fake fleet covers every finding (tests/unit/test_api_migration.py); these
provoke the ones whose cause lives in libvirt itself: a host-to-host TLS login
refused in one direction, libvirt's CPU comparison, and settings that block a
move between two real hosts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Api, wait_for
from tests.functional.test_lifecycle import lab_vm, wait_heartbeat
from tests.functional.test_migration import assert_healthy, migrate, on_host
from whimbrel.drivers.libvirt.driver import LibvirtHost
from whimbrel.drivers.libvirt.migration import PROBE_NAME
from whimbrel.lab.lab import Lab

pytestmark = pytest.mark.lab


def errors(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["code"]: f for f in plan["findings"] if f["severity"] == "error"}


def check(api: Api, name: str, **body: Any) -> dict[str, Any]:
    resp = api.call("POST", f"/vms/{name}/migrate/check", json=body)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


@pytest.fixture
def lab_settings(lab: Lab, lab_api: Api) -> Iterator[Api]:
    """Tests here change host settings; the lab's own come back afterwards."""
    yield lab_api
    for h in lab.spec.hosts:
        lab_api.ok("POST", f"/hosts/{h.name}/migration", {**h.migration_settings, "enabled": True})
        lab_api.ok("POST", f"/hosts/{h.name}/migration", {"auth": "managed"})
        lab.retrust(h.name)


def test_peer_trust_missing_in_one_direction(lab: Lab, lab_settings: Api) -> None:
    api = lab_settings
    for h in ("h1", "h2"):
        api.ok("POST", f"/hosts/{h}/migration", {"auth": "peer"})
    api.ok("POST", "/vms", lab_vm("pf-peer", "h1", "csv-alpha"))
    api.ok("POST", "/vms", lab_vm("pf-back", "h2", "csv-alpha"))
    before = wait_heartbeat(api, "pf-peer", above=3)
    lab.untrust("h1")
    assert not lab.trusted("h1")

    found = errors(check(api, "pf-peer", to="h2"))
    assert set(found) == {"E_PEER_UNTRUSTED"}, found
    untrusted = found["E_PEER_UNTRUSTED"]
    assert untrusted["subject"] == "hosts h1 → h2" and untrusted["fix"]
    assert lab.spec.host("h1").mgmt_ip in untrusted["cause"]
    # The other direction still works: h2 logs in to h1 with a certificate h1 trusts.
    assert errors(check(api, "pf-back", to="h1")) == {}
    # A refused move changes nothing and leaves no trace on the destination.
    resp = api.call("POST", "/vms/pf-peer/migrate", json={"to": "h2"})
    assert resp.status_code == 409 and "E_PEER_UNTRUSTED" in resp.text, resp.text
    assert on_host(lab, "h1", "pf-peer") and not on_host(lab, "h2", "pf-peer")
    assert not [n for n in _all_domains(lab, "h2") if n.startswith(PROBE_NAME)]

    lab.retrust("h1")
    assert errors(check(api, "pf-peer", to="h2")) == {}
    job = migrate(api, "pf-peer", to="h2")  # a real peer-to-peer live migration
    assert job["state"] == "Completed", job
    assert job["op"]["move"] == "live"
    assert_healthy(lab, api, "pf-peer", before, "h2")


def test_every_blocking_finding_is_reported_at_once(lab: Lab, lab_settings: Api) -> None:
    api = lab_settings
    api.ok("POST", "/vms", lab_vm("pf-many", "h1", "local"))
    api.ok("POST", "/vms", lab_vm("pf-off", "h1", "csv-alpha", start=False))
    api.ok("POST", "/hosts/h2/migration", {"enabled": False, "networks": ["192.0.2.0/24"]})

    found = errors(check(api, "pf-many", to="h2"))
    assert {"E_MIGRATION_DISABLED", "E_NO_MIGRATION_NETWORK", "E_DISK_NOT_SHARED"} <= set(found)
    assert "h2" in found["E_MIGRATION_DISABLED"]["fix"]
    assert "192.0.2.0/24" in found["E_NO_MIGRATION_NETWORK"]["cause"]
    assert "--include-storage" in found["E_DISK_NOT_SHARED"]["fix"]
    assert set(errors(check(api, "pf-many", to="h1"))) == {"E_SAME_HOST"}
    assert "E_VM_STATE" in errors(check(api, "pf-off", to="h2", quick=True))
    # Cluster beta shares none of alpha's storage.
    assert "E_DISK_NOT_SHARED" in errors(check(api, "pf-off", to="h3"))

    resp = api.call("POST", "/vms/pf-many/migrate", json={"to": "h2"})
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"]["code"] == "E_PREFLIGHT_FAILED"
    assert on_host(lab, "h1", "pf-many") and not on_host(lab, "h2", "pf-many")
    assert api.call("GET", "/vms/pf-many").json()["host"] == "h1"

    # Settings fixed: the same move now goes through with its storage.
    api.ok("POST", "/hosts/h2/migration", lab.spec.host("h2").migration_settings)
    api.ok("POST", "/hosts/h2/migration", {"enabled": True})
    ok = check(api, "pf-many", to="h2", include_storage=True, storage_path="local")
    assert errors(ok) == {} and ok["kind"] == "live+storage"
    assert ok["address"] == lab.spec.host("h2").migration_ip


def test_cpu_comparison_names_missing_features(lab: Lab, lab_api: Api) -> None:
    lab_api.ok("POST", "/vms", lab_vm("pf-cpu", "h1", "csv-alpha"))
    src = LibvirtHost.open(lab.spec.host("h1").local_uri)
    dst = LibvirtHost.open(lab.spec.host("h2").local_uri)
    try:
        cpu = src.domain_cpu("pf-cpu")
        assert cpu, "the running guest has a CPU definition"
        assert dst.compare_cpu(cpu, "qemu") == []
        # A guest started elsewhere with AVX-512 cannot run on a TCG host.
        needy = cpu.replace("</cpu>", "<feature policy='require' name='avx512f'/></cpu>")
        assert dst.compare_cpu(needy, "qemu") == ["avx512f"]
    finally:
        src.close()
        dst.close()


def _all_domains(lab: Lab, host: str) -> list[str]:
    import libvirt

    conn = libvirt.open(lab.spec.host(host).local_uri)
    try:
        return [d.name() for d in conn.listAllDomains(0)]
    finally:
        conn.close()


def _redefine(lab: Lab, host: str, name: str, edit: Any) -> None:
    """Edit a domain's persistent definition on the host behind Whimbrel's back."""
    import libvirt

    conn = libvirt.open(lab.spec.host(host).local_uri)
    try:
        conn.defineXML(edit(conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)))
    finally:
        conn.close()


def test_guest_cpu_the_destination_lacks(lab: Lab, lab_api: Api) -> None:
    # A guest started with AVX-512 required (QEMU's TCG only warns that it cannot
    # provide it), as if it had been started on a host with a newer CPU.
    api = lab_api
    api.ok("POST", "/vms", lab_vm("pf-avx", "h1", "csv-alpha", start=False))
    _redefine(
        lab,
        "h1",
        "pf-avx",
        lambda x: x.replace("</cpu>", "<feature policy='require' name='avx512f'/></cpu>"),
    )
    api.ok("POST", "/vms/pf-avx/start")
    found = errors(check(api, "pf-avx", to="h2"))
    assert set(found) == {"E_CPU_INCOMPATIBLE"}, found
    assert "avx512f" in found["E_CPU_INCOMPATIBLE"]["cause"]


def test_network_only_the_source_has(lab: Lab, lab_api: Api) -> None:
    import libvirt

    from whimbrel.lab import netns

    api = lab_api
    netns.ensure_inner_bridge(lab.spec.host("h1").netns, "br-h1only")
    conn = libvirt.open(lab.spec.host("h1").local_uri)
    net = conn.networkDefineXML(
        "<network><name>h1-only</name><forward mode='bridge'/><bridge name='br-h1only'/></network>"
    )
    try:
        net.create()
        api.ok("POST", "/hosts/h1/refresh")
        api.ok("POST", "/vms", lab_vm("pf-net", "h1", "csv-alpha", networks=["vm-net", "h1-only"]))
        found = errors(check(api, "pf-net", to="h2"))
        assert set(found) == {"E_NETWORK_MISSING"}, found
        assert "'h1-only'" in found["E_NETWORK_MISSING"]["cause"]
        assert "h2" in found["E_NETWORK_MISSING"]["fix"]
        api.job("DELETE", "/vms/pf-net", params={"force": True})
    finally:
        net.destroy()
        net.undefine()
        conn.close()
        api.ok("POST", "/hosts/h1/refresh")


def test_storage_findings_of_a_move_with_its_disks(lab: Lab, lab_api: Api) -> None:
    api = lab_api
    # A sparse 2 TiB disk: it fits where it is, not in h2's local pool.
    api.ok(
        "POST",
        "/vms",
        lab_vm("pf-big", "h1", "local", disks=[{"size_mib": 2 << 20, "pool": "local"}]),
    )
    found = errors(check(api, "pf-big", to="h2", include_storage=True, storage_path="local"))
    assert set(found) == {"E_NO_SPACE"}, found
    found = errors(check(api, "pf-big", to="h2", include_storage=True, storage_path="nowhere"))
    assert set(found) == {"E_STORAGE_PATH_UNKNOWN"}, found
    assert "local" in found["E_STORAGE_PATH_UNKNOWN"]["fix"]
    found = errors(check(api, "pf-big", to="h1", include_storage=True, storage_path="local"))
    assert set(found) == {"E_STORAGE_SAME_PATH"}, found


def test_destination_in_maintenance_or_unreachable(lab: Lab, lab_api: Api) -> None:
    from whimbrel.store.repo import get_host

    api = lab_api
    api.ok("POST", "/vms", lab_vm("pf-dest", "h3", "csv-beta"))
    sessions = api.manager.sessions
    with sessions.begin() as s:
        get_host(s, "h4").maintenance = True
    try:
        found = errors(check(api, "pf-dest", to="h4"))
        assert set(found) == {"E_DEST_IN_MAINTENANCE"}, found
    finally:
        with sessions.begin() as s:
            get_host(s, "h4").maintenance = False
    lab.kill_host("h4")
    try:
        api.manager.conns.drop(lab.spec.host("h4").uri)
        found = errors(check(api, "pf-dest", to="h4"))
        assert set(found) == {"E_HOST_UNREACHABLE"}, found
        assert "h4" in found["E_HOST_UNREACHABLE"]["subject"]
    finally:
        lab.start_host("h4")
        wait_for(lambda: api.call("GET", "/hosts/h4").json()["state"] == "connected")


def test_not_enough_memory_on_the_destination(lab: Lab, lab_api: Api) -> None:
    import mmap

    api = lab_api
    free = api.manager.conns.for_host("h2").free_memory_mib()
    need = free - 512
    api.ok("POST", "/vms", lab_vm("pf-mem", "h1", "csv-alpha", memory_mib=need))
    # The guest touches almost none of it (TCG allocates lazily); something else
    # on the machine now takes 1 GiB, as another VM would.
    hog = mmap.mmap(-1, 1 << 30)
    try:
        for off in range(0, 1 << 30, 4096):
            hog[off] = 1
        found = errors(check(api, "pf-mem", to="h2"))
        assert set(found) == {"E_NO_MEMORY"}, found
    finally:
        hog.close()
