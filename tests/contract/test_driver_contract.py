"""One suite, every driver: the fake fleet, real libvirt hosts in the lab, and the Hyper-V
driver over its transport double (two nodes of one failover cluster).

Each driver gets two hosts that share one storage pool, the way a cluster's
nodes share its CSV.  Hyper-V has no guest channel of Whimbrel's (no heartbeat) and pushes no
events over WinRM: those parts of the contract are for the drivers that have them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import wait_for
from whimbrel.domain.image import check_disk_image
from whimbrel.domain.vm import BootSpec, DiskSpec, DomainSpec, VmState
from whimbrel.drivers.base import HostDriver
from whimbrel.drivers.fake import FakeFleet
from whimbrel.errors import Conflict, HypervisorError, LockConflict, NotFound
from whimbrel.lab.topology import GUEST_DIR

MIB = 1 << 20


@dataclass
class Pair:
    a: HostDriver
    b: HostDriver
    shared_pool: str
    virt_type: str
    boot: BootSpec
    real: bool
    machine: str = "pc"  # what a definition asks for; the inventory lists it (as a prefix)
    network: str = "vm-net"
    guest_channel: bool = True  # heartbeats from the lab guest
    pushes_events: bool = True


@pytest.fixture(params=["fake", "libvirt", "hyperv"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    if request.param == "fake":
        fleet = FakeFleet()
        for n in ("a", "b"):
            fleet.add_host(n, pools={"local": f"/srv/{n}", "csv": "/srv/csv"})
        yield Pair(fleet.open("fake://a"), fleet.open("fake://b"), "csv", "kvm", BootSpec(), False)
        return
    if request.param == "hyperv":
        from tests.hyperv_double.estate import HyperVEstate

        e = HyperVEstate.two_clusters()
        a, b = e.open(e.uri("HV01")), e.open(e.uri("HV02"))
        yield Pair(a, b, "Volume1", "hyperv", BootSpec(), False, "10.0", "Prod", False, False)
        return
    lab: Any = request.getfixturevalue("lab")
    from whimbrel.drivers.libvirt.driver import LibvirtHost

    a = LibvirtHost.open(lab.spec.host("h1").uri, lab.settings.client_pki_dir)
    b = LibvirtHost.open(lab.spec.host("h2").uri, lab.settings.client_pki_dir)
    virt = a.inventory().info.virt_types[0]
    boot = BootSpec(
        f"{GUEST_DIR}/vmlinuz",
        f"{GUEST_DIR}/initrd.img",
        "console=ttyS0 quiet panic=-1 workload_mib=4 workload_rate=1",
    )
    yield Pair(a, b, "csv-alpha", virt, boot, True)
    a.close()
    b.close()


def _spec(p: Pair, name: str, disk: str) -> DomainSpec:
    return DomainSpec(
        name=name,
        uuid=str(uuid.uuid4()),
        memory_mib=128,
        vcpus=1,
        virt_type=p.virt_type,
        machine=p.machine,
        boot=p.boot,
        disks=(DiskSpec(disk),),
        console_log=f"/var/log/libvirt/qemu/{name}-console.log",
    )


def test_inventory(pair: Pair) -> None:
    inv = pair.a.inventory()
    assert inv.info.memory_mib > 0 and inv.info.cpus > 0
    assert inv.info.virt_types and inv.info.virt_types[0] == pair.virt_type
    prefix = "pc-i440fx-" if pair.machine == "pc" else pair.machine
    assert any(m.startswith(prefix) for m in inv.info.machine_types)
    assert pair.shared_pool in {p.name for p in inv.pools}
    assert pair.network in {n.name for n in inv.networks}
    assert 0 < pair.a.free_memory_mib() <= inv.info.memory_mib
    assert inv.info.uuid != pair.b.inventory().info.uuid


def test_unknown_domain_is_not_found(pair: Pair) -> None:
    with pytest.raises(NotFound) as info:
        pair.a.domain("no-such-vm")
    assert info.value.code == "E_DOMAIN_NOT_FOUND"
    pair.a.undefine("no-such-vm")  # forgetting what is not there is fine
    pair.a.delete_volume("/srv/nowhere.qcow2")


def test_volume_and_domain_lifecycle(pair: Pair) -> None:
    name = f"ct-{uuid.uuid4().hex[:6]}"
    path = pair.a.create_volume(pair.shared_pool, f"{name}.qcow2", 8 << 20, "qcow2")
    try:
        with pytest.raises(Conflict):
            pair.a.create_volume(pair.shared_pool, f"{name}.qcow2", 8 << 20, "qcow2")
        pair.a.define(_spec(pair, name, path))
        with pytest.raises(Conflict):
            pair.a.define(_spec(pair, name, path))
        assert pair.a.domain(name).state == VmState.STOPPED
        assert name in {d.name for d in pair.a.list_domains()}

        pair.a.events()  # forget older events
        pair.a.start(name)
        assert pair.a.domain(name).state == VmState.RUNNING
        if pair.pushes_events:
            _wait_event(pair.a, name, "started")
        if pair.guest_channel:
            first = wait_for(lambda: pair.a.heartbeat(name), timeout=90)
            later = wait_for(
                lambda: (h := pair.a.heartbeat(name)) and h.counter > first.counter and h,
                timeout=90,
            )
            assert later.counter > first.counter

        pair.a.save(name)
        info = pair.a.domain(name)
        assert info.state == VmState.SAVED and info.has_saved_state
        assert pair.a.heartbeat(name) is None
        pair.a.start(name)  # resumes from the saved state
        if pair.guest_channel:
            resumed = wait_for(lambda: pair.a.heartbeat(name), timeout=90)
            assert resumed.counter >= later.counter
        assert pair.a.domain(name).state == VmState.RUNNING
        assert not pair.a.domain(name).has_saved_state

        pair.a.power_off(name)
        assert pair.a.domain(name).state == VmState.STOPPED
        if pair.pushes_events:
            _wait_event(pair.a, name, "stopped")
        pair.a.power_off(name)  # off already: not an error
    finally:
        if _exists(pair.a, name):
            pair.a.power_off(name)
        pair.a.undefine(name)
        pair.a.delete_volume(path)
    with pytest.raises(NotFound):
        pair.a.domain(name)


def test_a_disk_runs_in_one_domain_only(pair: Pair) -> None:
    name = f"ct-{uuid.uuid4().hex[:6]}"
    path = pair.a.create_volume(pair.shared_pool, f"{name}.qcow2", 8 << 20, "qcow2")
    try:
        pair.a.define(_spec(pair, name, path))
        pair.b.define(_spec(pair, name + "-twin", path))
        pair.a.start(name)
        with pytest.raises(LockConflict) as info:
            pair.b.start(name + "-twin")
        assert info.value.code == "E_DISK_LOCKED"
        assert pair.b.domain(name + "-twin").state == VmState.STOPPED
        pair.a.power_off(name)
        pair.b.start(name + "-twin")  # the lease is free once the owner stops
        assert pair.b.domain(name + "-twin").state == VmState.RUNNING
    finally:
        for drv, n in ((pair.a, name), (pair.b, name + "-twin")):
            if _exists(drv, n):
                drv.power_off(n)
                drv.undefine(n)
        pair.a.delete_volume(path)


def _wait_event(drv: HostDriver, name: str, kind: str, timeout: float = 10.0) -> list[str]:
    """Collect the domain's lifecycle events until one of ``kind`` arrives."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen += [e.kind for e in drv.events() if e.name == name]
        if kind in seen:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"no {kind!r} event for {name}; saw {seen}")


def _exists(drv: HostDriver, name: str) -> bool:
    try:
        drv.domain(name)
    except NotFound:
        return False
    return True


def test_images_clones_and_imports(pair: Pair) -> None:
    if pair.virt_type == "hyperv":  # not through Whimbrel yet, and said so
        with pytest.raises(HypervisorError) as refused:
            pair.a.image("C:/ClusterStorage/Volume1/x.vhdx")
        assert refused.value.code == "E_HYPERV_UNSUPPORTED"
        return
    name = f"ct-{uuid.uuid4().hex[:6]}"
    src = pair.a.create_volume(pair.shared_pool, f"{name}.qcow2", 8 * MIB, "qcow2")
    made = [src]
    try:
        info, head = pair.a.image(src)
        assert (info.path, info.pool, info.size_bytes) == (src, pair.shared_pool, 8 * MIB)
        assert check_disk_image(info, head) == "qcow2"
        assert pair.b.image(src)[0].size_bytes == 8 * MIB  # the shared pool: both see it
        with pytest.raises(NotFound) as absent:
            pair.a.image("/srv/nowhere/x.qcow2")
        assert absent.value.code == "E_IMAGE_NOT_FOUND"
        full = pair.a.clone_volume(pair.shared_pool, f"{name}-full.qcow2", src, 16 * MIB, False)
        made.append(full)
        assert pair.a.image(full)[0].size_bytes == 16 * MIB  # grown
        linked = pair.b.clone_volume(pair.shared_pool, f"{name}-lnk.qcow2", src, 0, True)
        made.append(linked)
        assert pair.b.image(linked)[0].size_bytes == 8 * MIB
        with pytest.raises(Conflict):
            pair.b.clone_volume(pair.shared_pool, f"{name}-lnk.qcow2", src, 0, True)
        pair.a.define(_spec(pair, name, full))
        seen = pair.a.describe(name)
        assert seen.disks[0].path == full and seen.memory_mib == 128 and seen.cdrom == ""
    finally:
        pair.a.undefine(name)
        for path in made:
            pair.a.delete_volume(path)
