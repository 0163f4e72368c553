"""VM sources on the lab's real hosts: a template from a guest's disk, a linked and a
full clone that carry on from its data, an ISO in the CD-ROM (HA finding, a move's
preflight, eject live, repair), an import of a domain made outside, and bad inputs
that leave nothing behind."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import libvirt
import pytest

from tests.conftest import Api
from tests.functional.test_lifecycle import lab_vm, wait_heartbeat
from whimbrel.domain.vm import BootSpec, DiskSpec, DomainSpec
from whimbrel.drivers.libvirt.xml import domain_xml
from whimbrel.lab.lab import Lab
from whimbrel.lab.topology import GUEST_DIR, LOCAL_DIR, shared_dir

pytestmark = pytest.mark.lab
SHARED = f"{shared_dir('alpha')}/images"  # pool csv-alpha, as the hosts see it


def make_iso(lab: Lab, where: Path, name: str) -> None:
    """A real ISO 9660 image (xorriso), holding one README."""
    src = where / f"{name}.d"
    src.mkdir(parents=True, exist_ok=True)
    (src / "README").write_text("whimbrel test media\n")
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "-quiet", "-V", "WBTEST", "-o", str(where / name), str(src)],
        check=True,
    )
    shutil.rmtree(src)


def xml_of(lab: Lab, host: str, name: str) -> str:
    conn = libvirt.open(lab.spec.host(host).local_uri)
    try:
        return str(conn.lookupByName(name).XMLDesc(0))
    finally:
        conn.close()


def test_templates_and_clones_carry_the_guests_data(lab: Lab, lab_api: Api) -> None:
    api = lab_api
    api.ok("POST", "/vms", lab_vm("gold", "h1", "csv-alpha"))
    seq = wait_heartbeat(api, "gold", above=3)["disk_seq"]
    assert seq >= 0
    api.ok("POST", "/vms/gold/stop", {"force": True})
    api.ok("POST", "/templates", {"name": "lab-t", "vm": "gold", "pool": "csv-alpha"})
    t = api.call("GET", "/templates/lab-t").json()
    assert t["path"] == f"{SHARED}/template-lab-t.qcow2"
    try:
        clone = {"template": "lab-t", "disks": [{"size_mib": 0, "pool": "csv-alpha"}]}
        api.ok("POST", "/vms", {"name": "linked", "host": "h2", "clone": "linked", **clone})
        api.ok("POST", "/vms", {"name": "full", "host": "h1", "clone": "full", **clone})
        # The template's image given as a plain --image, grown to 32 MiB on a local pool.
        image = {"image": t["path"], "disks": [{"size_mib": 32, "pool": "local"}]}
        api.ok("POST", "/vms", lab_vm("imaged", "h2", "local", **image))
        assert api.call("GET", "/vms/imaged").json()["disks"][0]["size_bytes"] == 32 << 20
        for vm in ("linked", "full", "imaged"):
            hb = wait_heartbeat(api, vm)
            assert hb["disk_seq"] > seq, (vm, hb)  # it went on from the template's data
        linked = api.call("GET", "/vms/linked").json()
        assert linked["disks"][0]["backing"] == t["path"]
        assert api.error("DELETE", "/templates/lab-t")[1] == "E_TEMPLATE_IN_USE"
        # The linked clone moves live within the cluster: its template is shared.
        api.ok("POST", "/vms/linked/migrate", {"to": "h1"})
        wait_heartbeat(api, "linked", above=wait_heartbeat(api, "linked")["counter"])
    finally:
        for vm in ("linked", "full", "imaged"):
            api.job("DELETE", f"/vms/{vm}", params={"force": True})
        api.ok("DELETE", "/templates/lab-t")
    assert not (
        lab.spec.cluster_dir("alpha") / "shared" / "images" / "template-lab-t.qcow2"
    ).exists()


def test_an_iso_in_the_cdrom_its_finding_its_preflight_and_its_eject(
    lab: Lab, lab_api: Api
) -> None:
    api = lab_api
    local = lab.spec.host("h1").dir / "local"
    make_iso(lab, local, "tools.iso")
    iso = f"{LOCAL_DIR}/tools.iso"  # h1's own: h2's local pool has no such file
    try:
        api.ok("POST", "/vms", lab_vm("disc", "h1", "csv-alpha", iso=iso))
        wait_heartbeat(api, "disc")
        assert f"<source file='{iso}'" in xml_of(lab, "h1", "disc").replace('"', "'")
        # An HA VM with this ISO is refused; inserted into one, it makes it unsupported.
        assert api.error("POST", "/vms/disc/ha", {"enabled": True})[1] == (
            "E_HA_UNSUPPORTED_CONFIGURATION"
        )
        api.ok("POST", "/vms/disc/cdrom", {"iso": ""})
        api.ok("POST", "/vms/disc/ha", {"enabled": True})
        api.ok("POST", "/vms/disc/cdrom", {"iso": iso})  # live, into the running guest
        assert f"<source file='{iso}'" in xml_of(lab, "h1", "disc").replace('"', "'")
        v = api.call("GET", "/vms/disc").json()
        assert [f["code"] for f in v["findings"]] == ["E_HA_ISO_NOT_SHARED"]
        check = api.call("POST", "/vms/disc/migrate/check", json={"to": "h2"}).json()
        assert "E_ISO_MISSING" in [f["code"] for f in check["findings"]]
        api.ok("POST", "/vms/disc/cdrom", {"iso": ""})  # live: the guest runs on
        assert "tools.iso" not in xml_of(lab, "h1", "disc")
        api.call("POST", "/vms/disc/repair")
        assert api.call("GET", "/vms/disc").json()["findings"] == []
        api.ok("POST", "/vms/disc/migrate", {"to": "h2"})
        assert wait_heartbeat(api, "disc")["bad"] == 0
    finally:
        (local / "tools.iso").unlink(missing_ok=True)


def test_bad_sources_are_refused_and_leave_nothing(lab: Lab, lab_api: Api) -> None:
    api = lab_api
    shared = lab.spec.cluster_dir("alpha") / "shared" / "images"
    (shared / "broken.qcow2").write_bytes(b"QFI\xfb" + struct.pack(">I", 7) + bytes(4096))
    (shared / "notes.iso").write_text("not an ISO at all\n" * 4096)
    make_iso(lab, shared, "real.iso")
    disk = [{"size_mib": 0, "pool": "csv-alpha"}]
    try:
        cases = [
            ({"image": f"{SHARED}/absent.qcow2", "disks": disk}, "E_IMAGE_NOT_FOUND"),
            ({"image": f"{SHARED}/broken.qcow2", "disks": disk}, "E_IMAGE_CORRUPT"),
            ({"image": f"{SHARED}/real.iso", "disks": disk}, "E_IMAGE_IS_ISO"),
            ({"iso": f"{SHARED}/notes.iso"}, "E_ISO_INVALID"),
            ({"template": "no-such", "clone": "full", "disks": disk}, "E_TEMPLATE_NOT_FOUND"),
        ]
        before = sorted(p.name for p in shared.iterdir())
        for extra, code in cases:
            body = {"name": "bad", "host": "h1", "memory_mib": 128, **extra}
            assert api.error("POST", "/vms", body)[1] == code, extra
        assert sorted(p.name for p in shared.iterdir()) == before  # no image was made
        assert api.call("GET", "/vms/bad").status_code == 404
    finally:
        for name in ("broken.qcow2", "notes.iso", "real.iso"):
            (shared / name).unlink(missing_ok=True)


def test_a_domain_made_outside_is_imported_as_it_is(lab: Lab, lab_api: Api) -> None:
    api = lab_api
    path = f"{LOCAL_DIR}/outside.qcow2"
    on_host = lab.spec.host("h3").dir / "local" / "outside.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(on_host), "16M"], check=True)
    virt = api.call("GET", "/hosts/h3").json()["virt_type"]
    spec = DomainSpec(
        "outside", "6d2b0c57-1e1f-4c55-9a61-0000000000aa", 192, 1, virt, "pc-i440fx-7.2",
        BootSpec(f"{GUEST_DIR}/vmlinuz", f"{GUEST_DIR}/initrd.img", "console=ttyS0 quiet panic=-1"),
        (DiskSpec(path, "vda", "qcow2"),), ("vm-net",),
    )  # fmt: skip
    conn = libvirt.open(lab.spec.host("h3").local_uri)
    try:
        conn.defineXML(domain_xml(spec))
        before = conn.lookupByName("outside").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        api.ok("POST", "/hosts/h3/refresh")
        api.ok("POST", "/vms/import", {"host": "h3", "name": "outside"})
        v = api.call("GET", "/vms/outside").json()
        assert (v["host"], v["state"], v["memory_mib"]) == ("h3", "stopped", 192)
        assert v["disks"][0]["path"] == path and v["disks"][0]["pool"] == "local"
        assert conn.lookupByName("outside").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == before
        api.ok("POST", "/vms/outside/start")
        assert wait_heartbeat(api, "outside")["counter"] > 0
    finally:
        conn.close()
