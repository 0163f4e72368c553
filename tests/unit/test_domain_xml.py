"""Domain XML against golden files (WHIMBREL_REGENERATE=1 rewrites them)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.conftest import assert_golden
from whimbrel.domain.vm import BootSpec, DiskSpec, DomainSpec, Heartbeat
from whimbrel.drivers.libvirt.xml import domain_xml, parse_domain, volume_xml

GOLDEN = Path(__file__).parent.parent / "golden"

SPECS = {
    "lab-guest-tcg": DomainSpec(
        name="demo-alpha",
        uuid="6b1c7a52-3f0e-4e43-9a51-0c8f1d2e3b4a",
        memory_mib=256,
        vcpus=1,
        virt_type="qemu",
        machine="pc-i440fx-7.2",
        boot=BootSpec(
            "/srv/whimbrel/guest/vmlinuz",
            "/srv/whimbrel/guest/initrd.img",
            "console=ttyS0 quiet panic=-1 workload_mib=16 workload_rate=4",
        ),
        disks=(DiskSpec("/srv/whimbrel/shared/alpha/images/demo-alpha-vda.qcow2"),),
        networks=("vm-net",),
        console_log="/var/log/libvirt/qemu/demo-alpha-console.log",
    ),
    "disk-boot-kvm": DomainSpec(
        name="web1",
        uuid="0d5f0a8e-9b2c-4f1e-8e0a-7c6b5a4d3e2f",
        memory_mib=4096,
        vcpus=4,
        virt_type="kvm",
        machine="pc-i440fx-7.2",
        disks=(DiskSpec("/srv/a.qcow2", "vda"), DiskSpec("/srv/b.qcow2", "vdb")),
    ),
    "iso-boot-q35": DomainSpec(
        name="installer",
        uuid="3e1f6a2b-8c4d-4e5f-9a0b-1c2d3e4f5a6b",
        memory_mib=1024,
        vcpus=2,
        virt_type="kvm",
        machine="pc-q35-7.2",
        disks=(DiskSpec("/srv/csv/installer-vda.qcow2", backing="/srv/csv/template-t.qcow2"),),
        networks=("vm-net",),
        cdrom="/srv/csv/debian-12.iso",
        boot_cdrom=True,
    ),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_domain_xml_matches_golden(name: str) -> None:
    got = domain_xml(SPECS[name])
    path = GOLDEN / f"domain-{name}.xml"
    assert_golden(path, got)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_a_definition_reads_back_as_its_spec(name: str) -> None:
    # An import reads what Whimbrel would write; backing files live in the image itself.
    spec = SPECS[name]
    disks = tuple(dataclasses.replace(d, backing="") for d in spec.disks)
    want = dataclasses.replace(spec, console_log="", disks=disks)
    assert parse_domain(domain_xml(spec)) == want


def test_volume_xml() -> None:
    assert '<capacity unit="bytes">67108864</capacity>' in volume_xml("v.qcow2", 64 << 20, "qcow2")
    assert '<format type="qcow2" />' in volume_xml("v.qcow2", 1, "qcow2")
    overlay = volume_xml("c.qcow2", 1, "qcow2", backing=("/srv/csv/t.qcow2", "qcow2"))
    assert "<backingStore>\n    <path>/srv/csv/t.qcow2</path>" in overlay


def test_heartbeat_line_parses() -> None:
    hb = Heartbeat.parse("HB 42 up=4.2 dirtied=16 pass=3 bad=0 disk=4 writer=ab12")
    assert hb == Heartbeat(42, 4.2, 16, 3, 0, 4, "ab12")
    assert Heartbeat.parse("WORKLOAD start mib=16") is None
    assert Heartbeat.parse("HB x") is None
    assert Heartbeat.parse("HB 1 up=zz") is None
