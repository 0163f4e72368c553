"""What the lab's real hosts refuse: a second writer of a disk, untrusted TLS, dead URIs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import Api
from tests.functional.test_lifecycle import lab_vm, wait_heartbeat
from whimbrel.domain.vm import DiskSpec, DomainSpec
from whimbrel.drivers import open_host
from whimbrel.drivers.libvirt.driver import LibvirtHost
from whimbrel.drivers.libvirt.xml import domain_xml
from whimbrel.errors import HostUnreachable, HostUntrusted, LockConflict
from whimbrel.lab.lab import Lab
from whimbrel.lab.topology import GUEST_DIR
from whimbrel.pki import CertificateAuthority, write_client_bundle

pytestmark = pytest.mark.lab


def test_second_start_of_a_shared_disk_is_refused(lab: Lab, lab_api: Api) -> None:
    """A second host cannot start a VM on a disk a running VM holds (QEMU's image
    lock or the lease, whichever comes first)."""
    api = lab_api
    api.ok("POST", "/vms", lab_vm("owner", "h1", "csv-alpha"))
    first = wait_heartbeat(api, "owner")
    disk = api.call("GET", "/vms/owner").json()["disks"][0]["path"]
    leases = list((lab.spec.cluster_dir("alpha") / "shared/leases").iterdir())
    assert leases, "virtlockd keeps its leases on the cluster's shared storage"

    h2 = LibvirtHost.open(lab.spec.host("h2").uri, lab.settings.client_pki_dir)
    intruder = DomainSpec(
        name="intruder",
        uuid="5e6f1d9c-0000-4000-8000-00000000beef",
        memory_mib=128,
        vcpus=1,
        virt_type="qemu",
        machine="pc",
        disks=(DiskSpec(disk),),
    )
    h2.define(intruder)
    try:
        with pytest.raises(LockConflict) as info:
            h2.start("intruder")
        assert info.value.code == "E_DISK_LOCKED"
        assert "lock" in info.value.detail.lower()
        assert h2.domain("intruder").state == "stopped"
    finally:
        h2.undefine("intruder")
        h2.close()
    later = wait_heartbeat(api, "owner", above=first["counter"])
    assert later["writer"] == first["writer"], "the owner kept running, alone"


def test_the_lease_alone_refuses_a_second_start(lab: Lab, lab_api: Api) -> None:
    """virtlockd's lease on the shared storage refuses a second writer by itself.

    The intruder's QEMU has its own image locking off (tests/functional/qemu_nolock.py),
    so the only thing left to refuse it is the lock manager.
    """
    api = lab_api
    api.ok("POST", "/vms", lab_vm("leased", "h3", "csv-beta"))
    first = wait_heartbeat(api, "leased")
    disk = api.call("GET", "/vms/leased").json()["disks"][0]["path"]
    wrapper = lab.spec.guest_dir / "qemu-nolock"  # the lab's guest dir is visible on every host
    shutil.copy(Path(__file__).parent / "qemu_nolock.py", wrapper)
    wrapper.chmod(0o755)
    spec = DomainSpec(
        name="unlocked",
        uuid="5e6f1d9c-0000-4000-8000-00000000cafe",
        memory_mib=128,
        vcpus=1,
        virt_type="qemu",
        machine="pc",
        disks=(DiskSpec(disk),),
    )
    xml = domain_xml(spec).replace(
        "<devices>", f"<devices>\n    <emulator>{GUEST_DIR}/qemu-nolock</emulator>", 1
    )
    h4 = LibvirtHost.open(lab.spec.host("h4").uri, lab.settings.client_pki_dir)
    h4.conn.defineXML(xml)
    try:
        with pytest.raises(LockConflict) as info:
            h4.start("unlocked")
        assert "Lockspace resource" in info.value.detail and "is locked" in info.value.detail
        assert "Failed to get" not in info.value.detail  # not QEMU's own lock this time
        assert h4.domain("unlocked").state == "stopped"
    finally:
        h4.undefine("unlocked")
        h4.close()
        wrapper.unlink()
    later = wait_heartbeat(api, "leased", above=first["counter"])
    assert later["writer"] == first["writer"]


def _rogue_bundle(tmp_path: Path) -> Path:
    rogue = CertificateAuthority.load_or_create(tmp_path / "rogue-ca", cn="Rogue CA")
    write_client_bundle(rogue, tmp_path / "rogue")
    return tmp_path / "rogue"


def test_host_with_untrusted_certificate(lab: Lab, lab_api: Api, tmp_path: Path) -> None:
    rogue = _rogue_bundle(tmp_path)  # credentials of another CA, as a wrong CA file would be
    with pytest.raises(HostUntrusted) as info:
        open_host(lab.spec.host("h1").uri, rogue)
    assert info.value.code == "E_HOST_CERT_UNTRUSTED"
    # A host URI cannot bring credentials of its own: the manager's are the only ones.
    uri = f"{lab.spec.host('h1').uri}?pkipath={rogue}"
    assert lab_api.error("POST", "/hosts", {"name": "rogue", "uri": uri})[1] == (
        "E_HOST_URI_OPTION_REFUSED"
    )
    assert "rogue" not in [h["name"] for h in lab_api.call("GET", "/hosts").json()]


def test_host_refuses_a_client_it_does_not_trust(lab: Lab, tmp_path: Path) -> None:
    """The manager trusts the host, but the host does not trust the manager's certificate."""
    rogue = _rogue_bundle(tmp_path)
    mixed = tmp_path / "mixed"
    shutil.copytree(rogue, mixed)
    # Trusts both CAs itself, so only the host's check of the client can fail.
    ours = (lab.settings.client_pki_dir / "cacert.pem").read_bytes()
    (mixed / "cacert.pem").write_bytes(ours + (rogue / "cacert.pem").read_bytes())
    with pytest.raises(HostUntrusted) as info:
        open_host(lab.spec.host("h1").uri, mixed)
    assert info.value.code == "E_HOST_REJECTS_MANAGER"


def test_uri_that_does_not_answer(lab: Lab, lab_api: Api) -> None:
    uri = f"qemu+tls://{lab.spec.host('h1').mgmt_ip}:16599/system"
    with pytest.raises(HostUnreachable) as info:
        open_host(uri, lab.settings.client_pki_dir)
    assert info.value.code == "E_HOST_UNREACHABLE"
    job = lab_api.job("POST", "/hosts", {"name": "ghost", "uri": uri})
    assert job["error"]["code"] == "E_HOST_UNREACHABLE" and job["rollback"] == "clean"
    assert "ghost" not in [h["name"] for h in lab_api.call("GET", "/hosts").json()]


def _as_client(pki: Path, cert: str, key: str, dest: Path) -> Path:
    """A pkipath directory presenting ``cert`` and ``key`` of a host's bundle as a client."""
    dest.mkdir()
    shutil.copy(pki / "cacert.pem", dest / "cacert.pem")
    shutil.copy(pki / cert, dest / "clientcert.pem")
    shutil.copy(pki / key, dest / "clientkey.pem")
    return dest


def test_a_host_certificate_is_no_client_of_another_host(lab: Lab, tmp_path: Path) -> None:
    """One compromised hypervisor does not control the others: its server certificate logs
    in nowhere, and its peer certificate only at its own cluster's peers."""
    h1, h2, h3 = (lab.spec.host(n) for n in ("h1", "h2", "h3"))
    pki1, pki3 = h1.dir / "pki", h3.dir / "pki"
    server = _as_client(pki1, "servercert.pem", "serverkey.pem", tmp_path / "server")
    with pytest.raises(HostUntrusted) as info:
        open_host(h2.uri, server)
    assert info.value.code == "E_HOST_REJECTS_MANAGER"
    other_cluster = _as_client(pki3, "peercert.pem", "peerkey.pem", tmp_path / "beta-peer")
    with pytest.raises(HostUntrusted) as info:
        open_host(h1.uri, other_cluster)  # h3 is in beta, h1 in alpha
    assert info.value.code == "E_HOST_REJECTS_MANAGER"
    peer = _as_client(pki1, "peercert.pem", "peerkey.pem", tmp_path / "alpha-peer")
    assert open_host(h2.uri, peer).free_memory_mib() > 0  # its own cluster's peer: admitted
