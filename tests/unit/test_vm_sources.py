"""VMs from images, ISOs, templates and existing domains, on the fake fleet: what each
makes, the findings an ISO or a linked clone brings, and the refusals that make nothing."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from tests.conftest import Api
from whimbrel.domain.image import ISO_MAGIC_AT, QCOW2_MAGIC
from whimbrel.domain.vm import DiskSpec, DomainSpec
from whimbrel.drivers.fake import FakeFleet
from whimbrel.drivers.fake_images import qcow2_header

MIB = 1 << 20
BASE = "/srv/csv/base.qcow2"
BAD_VERSION = QCOW2_MAGIC + struct.pack(">I", 9) + bytes(80)  # no QEMU knows version 9
ZERO_SIZE = QCOW2_MAGIC + struct.pack(">IQIIQ", 3, 0, 0, 16, 0) + bytes(40)


def put(fleet: FakeFleet, path: str, size: int, head: bytes, content: str = "") -> None:
    fleet.volumes[path], fleet.images[path] = size, head
    if content:
        fleet.content[path] = content


def iso_head() -> bytes:
    head = bytearray(ISO_MAGIC_AT + 16)
    head[ISO_MAGIC_AT : ISO_MAGIC_AT + 5] = b"CD001"
    return bytes(head)


def vm(name: str, host: str = "f1", **kw: Any) -> dict[str, Any]:
    return {"name": name, "host": host, "networks": ["vm-net"], **kw}


@pytest.fixture
def base(hosts: Api, fleet: FakeFleet) -> Api:
    put(fleet, BASE, 64 * MIB, qcow2_header(64 * MIB), "debian root file system")
    return hosts


def nothing_made(api: Api, fleet: FakeFleet, name: str) -> None:
    assert api.call("GET", f"/vms/{name}").status_code == 404
    assert not [p for p in fleet.volumes if name in p]
    assert all(name not in h.domains for h in fleet.hosts.values())


def test_an_image_is_copied_into_the_pool_and_grown_to_the_size_asked(
    base: Api, fleet: FakeFleet
) -> None:
    base.ok("POST", "/vms", vm("v1", image=BASE, disks=[{"size_mib": 128, "pool": "csv"}]))
    v = base.call("GET", "/vms/v1").json()
    disk = v["disks"][0]
    assert disk["path"] == "/srv/csv/v1-vda.qcow2" and disk["size_bytes"] == 128 * MIB
    assert disk["backing"] is None and v["state"] == "running"
    assert fleet.content[disk["path"]] == "debian root file system"  # the image's content
    # Left at 0 the disk takes the image's size; a linked clone stands on the image.
    base.ok(
        "POST", "/vms", vm("v2", image=BASE, clone="linked", disks=[{"size_mib": 0, "pool": "csv"}])
    )
    d2 = base.call("GET", "/vms/v2").json()["disks"][0]
    assert d2["size_bytes"] == 64 * MIB and d2["backing"] == BASE
    assert fleet.backing[d2["path"]] == BASE


@pytest.mark.parametrize(
    ("path", "size", "head", "code"),
    [
        ("/srv/csv/absent.qcow2", None, b"", "E_IMAGE_NOT_FOUND"),
        ("/elsewhere/base.qcow2", 64 * MIB, qcow2_header(64 * MIB), "E_IMAGE_NOT_FOUND"),
        ("/srv/csv/bad.qcow2", 64 * MIB, BAD_VERSION, "E_IMAGE_CORRUPT"),
        ("/srv/csv/zero.qcow2", 64 * MIB, ZERO_SIZE, "E_IMAGE_CORRUPT"),
        ("/srv/csv/cd.iso", 4 * MIB, iso_head(), "E_IMAGE_IS_ISO"),
        ("/srv/csv/huge.raw", 1 << 40, b"\0" * 512, "E_NO_SPACE"),
    ],
)  # fmt: skip
def test_a_bad_image_is_refused_with_its_code_and_nothing_is_made(
    base: Api, fleet: FakeFleet, path: str, size: int | None, head: bytes, code: str
) -> None:
    if size is not None:
        put(fleet, path, size, head)
    fleet.hosts["f1"].pool_free["csv"] = 512 * MIB
    base.ok("POST", "/hosts/f1/refresh")
    body = vm("v9", image=path, disks=[{"size_mib": 0, "pool": "csv"}])
    assert base.error("POST", "/vms", body)[1] == code
    nothing_made(base, fleet, "v9")


def test_an_iso_must_be_iso_9660_and_there(base: Api, fleet: FakeFleet) -> None:
    put(fleet, "/srv/csv/not.iso", MIB, b"\0" * 0x9000)
    assert base.error("POST", "/vms", vm("v9", iso="/srv/csv/not.iso"))[1] == "E_ISO_INVALID"
    assert base.error("POST", "/vms", vm("v9", iso="/srv/csv/no.iso"))[1] == "E_ISO_NOT_FOUND"
    assert base.error("POST", "/vms", vm("v9", boot_cdrom=True))[1] == "E_BOOT_CDROM_EMPTY"
    nothing_made(base, fleet, "v9")


def test_an_iso_off_shared_storage_makes_an_ha_vm_unsupported_until_ejected(
    base: Api, fleet: FakeFleet
) -> None:
    put(fleet, "/srv/f1/tools.iso", 4 * MIB, iso_head())
    disks = [{"size_mib": 16, "pool": "csv"}]
    body = vm("v1", iso="/srv/f1/tools.iso", boot_cdrom=True, disks=disks, ha=True)
    assert base.error("POST", "/vms", body)[1] == "E_HA_UNSUPPORTED_CONFIGURATION"
    nothing_made(base, fleet, "v1")
    # HA is refused while it is in; inserted into an HA VM, it makes it unsupported.
    base.ok("POST", "/vms", {**body, "ha": False})
    v = base.call("GET", "/vms/v1").json()
    assert v["cdrom"] == "/srv/f1/tools.iso" and v["boot_cdrom"] is True
    assert fleet.hosts["f1"].domains["v1"].spec.cdrom == "/srv/f1/tools.iso"
    assert (
        base.error("POST", "/vms/v1/ha", {"enabled": True})[1] == "E_HA_UNSUPPORTED_CONFIGURATION"
    )
    base.ok("POST", "/vms/v1/cdrom", {"iso": ""})
    base.ok("POST", "/vms/v1/ha", {"enabled": True})
    base.ok("POST", "/vms/v1/cdrom", {"iso": "/srv/f1/tools.iso"})
    v = base.call("GET", "/vms/v1").json()
    assert v["unsupported_cluster_configuration"] is True
    assert [f["code"] for f in v["findings"]] == ["E_HA_ISO_NOT_SHARED"]
    # f2 cannot open the ISO: the move's preflight says so before anything moves.
    check = base.call("POST", "/vms/v1/migrate/check", json={"to": "f2"}).json()
    assert "E_ISO_MISSING" in [f["code"] for f in check["findings"]]
    base.ok("POST", "/vms/v1/cdrom", {"iso": ""})
    base.call("POST", "/vms/v1/repair")
    v = base.call("GET", "/vms/v1").json()
    assert v["cdrom"] is None and v["findings"] == [] and not v["unsupported_cluster_configuration"]
    assert fleet.hosts["f1"].domains["v1"].spec.cdrom == ""
    assert base.error("POST", "/vms/v1/cdrom", {"iso": ""})[1] == "E_CDROM_EMPTY"
    base.ok("POST", "/vms/v1/migrate", {"to": "f2"})


def test_a_template_is_cloned_full_or_linked_and_kept_while_a_clone_needs_it(
    base: Api, fleet: FakeFleet
) -> None:
    boot = {"kernel": "", "memory_mib": 512, "vcpus": 2}
    base.ok("POST", "/vms", vm("gold", image=BASE, disks=[{"size_mib": 0, "pool": "csv"}], **boot))
    assert (
        base.error("POST", "/templates", {"name": "t1", "vm": "gold", "pool": "csv"})[1]
        == "E_VM_STATE"
    )
    base.ok("POST", "/vms/gold/stop", {"force": True})
    base.ok("POST", "/templates", {"name": "t1", "vm": "gold", "pool": "csv"})
    [t] = base.call("GET", "/templates").json()
    assert t["path"] == "/srv/csv/template-t1.qcow2" and t["memory_mib"] == 512
    assert fleet.content[t["path"]] == "debian root file system"
    clone = {"template": "t1", "disks": [{"size_mib": 0, "pool": "csv"}]}
    assert base.error("POST", "/vms", vm("c0", **clone))[1] == "E_CLONE_MODE_REQUIRED"
    base.ok("POST", "/vms", vm("c1", host="f2", clone="full", **clone))
    base.ok("POST", "/vms", vm("c2", host="f3", clone="linked", **clone))
    c1, c2 = (base.call("GET", f"/vms/{n}").json() for n in ("c1", "c2"))
    assert (c1["memory_mib"], c1["vcpus"]) == (512, 2)  # the template's shape
    assert c1["disks"][0]["backing"] is None and fleet.content[c1["disks"][0]["path"]]
    assert c2["disks"][0]["backing"] == t["path"]
    assert base.error("DELETE", "/templates/t1")[1] == "E_TEMPLATE_IN_USE"
    base.ok("DELETE", "/vms/c2", params={"force": True})
    base.ok("DELETE", "/templates/t1")
    assert t["path"] not in fleet.volumes and base.call("GET", "/templates").json() == []


def test_an_existing_domain_is_imported_as_it_is(hosts: Api, fleet: FakeFleet) -> None:
    spec = DomainSpec(
        "legacy", "9b0f3c1e-0000-4000-8000-000000000001", 768, 2, "kvm", "pc-q35-7.2",
        disks=(DiskSpec("/srv/csv/legacy.qcow2", "vda", "qcow2", 32 * MIB),),
        networks=("vm-net",),
    )  # fmt: skip
    fleet.volumes["/srv/csv/legacy.qcow2"] = 32 * MIB
    fleet.open("fake://f1").define(spec)
    hosts.ok("POST", "/vms/import", {"host": "f1", "name": "legacy"})
    v = hosts.call("GET", "/vms/legacy").json()
    assert (v["host"], v["state"], v["memory_mib"], v["machine"]) == (
        "f1",
        "stopped",
        768,
        "pc-q35-7.2",
    )
    assert v["disks"][0]["pool"] == "csv" and v["disks"][0]["shared"] is True
    assert hosts.error("POST", "/vms/import", {"host": "f1", "name": "legacy"})[1] == "E_VM_EXISTS"
    assert (
        hosts.error("POST", "/vms/import", {"host": "f1", "name": "ghost"})[1]
        == "E_DOMAIN_NOT_FOUND"
    )
    hosts.ok("POST", "/vms/legacy/start")
    assert fleet.hosts["f1"].domains["legacy"].spec == spec  # nothing changed on the host
