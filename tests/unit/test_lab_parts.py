"""Lab pieces that need no root: acceleration check, configs, initramfs, module order."""

from __future__ import annotations

import gzip
from pathlib import Path

from whimbrel.lab.accel import detect
from whimbrel.lab.assets import Cpio, module_order
from whimbrel.lab.hostconf import libvirtd_conf, lockd_conf, qemu_conf
from whimbrel.lab.topology import LabSpec


def test_accel_detection(tmp_path: Path) -> None:
    dev, mods = tmp_path / "kvm", tmp_path / "module"
    mods.mkdir()
    assert not detect(dev, mods).kvm  # no /dev/kvm
    dev.touch()
    (mods / "kvm_pvm").mkdir()
    pvm = detect(dev, mods)
    assert not pvm.kvm and "PVM" in pvm.reason
    (mods / "kvm_pvm").rmdir()
    assert detect(dev, mods).kvm


def test_host_configs() -> None:
    host = LabSpec(name="x", octet=91).host("h3")
    assert host.mgmt_ip == "10.91.0.3" and host.migration_ip == "10.91.1.3"
    assert host.cluster == "beta" and host.netns == "wbx-h3"
    d = libvirtd_conf(host)
    assert "listen_tls = 1" in d and "listen_tcp = 0" in d and 'listen_addr = "10.91.0.3"' in d
    q = qemu_conf(host)
    assert 'lock_manager = "lockd"' in q and 'migration_host = "10.91.1.3"' in q
    assert 'file_lockspace_dir = "/srv/whimbrel/shared/beta/leases"' in lockd_conf(host)
    assert "require_lease_for_disks = 1" in lockd_conf(host)


def _read_cpio(data: bytes) -> dict[str, tuple[int, bytes]]:
    out, i = {}, 0
    while True:
        assert data[i : i + 6] == b"070701"
        f = [int(data[i + 6 + 8 * k : i + 14 + 8 * k], 16) for k in range(13)]
        mode, size, namesize = f[1], f[6], f[11]
        name = data[i + 110 : i + 110 + namesize - 1].decode()
        i += 110 + namesize
        i += -i % 4
        body = data[i : i + size]
        i += size
        i += -i % 4
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, body)


def test_cpio_newc_archive_round_trips() -> None:
    c = Cpio()
    c.dir("bin")
    c.file("bin/x", b"hello", 0o755)
    c.file("init", b"#!/bin/sh\n", 0o755)
    files = _read_cpio(gzip.decompress(gzip.compress(c.finish())))
    assert files["bin"][0] == 0o040755
    assert files["bin/x"] == (0o100755, b"hello")
    assert files["init"][1] == b"#!/bin/sh\n"


def test_module_order_puts_dependencies_first(tmp_path: Path) -> None:
    mods = tmp_path / "lib/modules/6.1/kernel"
    mods.mkdir(parents=True)
    for name, deps in {
        "virtio": "",
        "virtio_ring": "",
        "virtio_pci": "virtio,virtio_ring",
        "virtio_blk": "virtio,virtio_ring",
        "evdev": "",
        "button": "",
        "virtio_console": "virtio,virtio_ring",
        "virtio_net": "net_failover",
        "net_failover": "failover",
        "failover": "",
    }.items():
        (mods / f"{name}.ko").write_bytes(
            b"\x7fELF...\0license=GPL\0depends=" + deps.encode() + b"\0"
        )
    order = [p.name.removesuffix(".ko") for p in module_order(tmp_path)]
    assert order.index("virtio") < order.index("virtio_pci")
    assert order.index("failover") < order.index("net_failover") < order.index("virtio_net")
    assert len(order) == len(set(order)) == 10
