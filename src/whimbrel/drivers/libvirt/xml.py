"""Domain and volume XML, rendered from typed specs (golden-tested), and a domain read
back into one (an import)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from whimbrel.domain.vm import HEARTBEAT_CHANNEL, BootSpec, DiskSpec, DomainSpec


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def domain_xml(spec: DomainSpec) -> str:
    dom = ET.Element("domain", {"type": spec.virt_type})
    _sub(dom, "name", spec.name)
    _sub(dom, "uuid", spec.uuid)
    _sub(dom, "memory", str(spec.memory_mib), unit="MiB")
    _sub(dom, "vcpu", str(spec.vcpus))
    os_el = _sub(dom, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine=spec.machine)
    if spec.boot.kernel:
        _sub(os_el, "kernel", spec.boot.kernel)
        if spec.boot.initrd:
            _sub(os_el, "initrd", spec.boot.initrd)
        if spec.boot.cmdline:
            _sub(os_el, "cmdline", spec.boot.cmdline)
    else:
        if spec.boot_cdrom and spec.cdrom:
            _sub(os_el, "boot", dev="cdrom")
        _sub(os_el, "boot", dev="hd")
    feats = _sub(dom, "features")
    _sub(feats, "acpi")  # graceful shutdown is an ACPI power-button press
    _sub(feats, "apic")
    if spec.virt_type == "kvm":
        _sub(dom, "cpu", mode="host-model")
    else:
        # TCG: a fixed, portable model so that any TCG host can take the guest.
        cpu = _sub(dom, "cpu", mode="custom", match="exact")
        _sub(cpu, "model", "qemu64", fallback="forbid")
    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")
    dev = _sub(dom, "devices")
    for disk in spec.disks:
        d = _sub(dev, "disk", type="file", device="disk")
        # cache='none' (O_DIRECT) is the mode libvirt considers safe for live migration.
        _sub(d, "driver", name="qemu", type=disk.fmt, cache="none")
        _sub(d, "source", file=disk.path)
        _sub(d, "target", dev=disk.target, bus="virtio")
    # Every VM has a CD-ROM drive (Hyper-V's and VMM's have a DVD drive), empty or not:
    # IDE and SATA drives cannot be added to a running guest, media can.
    dev.append(ET.fromstring(cdrom_xml(spec.cdrom, *cdrom_target(spec.machine))))
    for net in spec.networks:
        i = _sub(dev, "interface", type="network")
        _sub(i, "source", network=net)
        _sub(i, "model", type="virtio")
    if spec.console_log:
        ser = _sub(dev, "serial", type="file")
        _sub(ser, "source", path=spec.console_log, append="on")
        _sub(ser, "target", port="0")
    else:
        ser = _sub(dev, "serial", type="pty")
        _sub(ser, "target", port="0")
    ch = _sub(dev, "channel", type="unix")
    _sub(ch, "source", mode="bind")  # libvirt picks a per-host socket path
    _sub(ch, "target", type="virtio", name=HEARTBEAT_CHANNEL)
    _sub(dev, "memballoon", model="none")
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode") + "\n"


def volume_xml(name: str, size_bytes: int, fmt: str, backing: tuple[str, str] | None = None) -> str:
    """A new volume; with ``backing`` (path, format) a qcow2 overlay on that image."""
    vol = ET.Element("volume")
    _sub(vol, "name", name)
    _sub(vol, "capacity", str(size_bytes), unit="bytes")
    tgt = _sub(vol, "target")
    _sub(tgt, "format", type=fmt)
    if backing is not None:
        store = _sub(vol, "backingStore")
        _sub(store, "path", backing[0])
        _sub(store, "format", type=backing[1])
    ET.indent(vol)
    return ET.tostring(vol, encoding="unicode")


def cdrom_target(machine: str) -> tuple[str, str]:
    """The CD-ROM's device and bus: IDE on i440fx, SATA (AHCI) on q35."""
    return ("sda", "sata") if "q35" in machine else ("hdc", "ide")


def cdrom_xml(path: str, dev: str, bus: str) -> str:
    """A read-only CD-ROM drive; without ``path`` an empty one (ejected)."""
    d = ET.Element("disk", type="file", device="cdrom")
    _sub(d, "driver", name="qemu", type="raw")
    if path:
        _sub(d, "source", file=path)
    _sub(d, "target", dev=dev, bus=bus)
    _sub(d, "readonly")
    return ET.tostring(d, encoding="unicode")


_UNIT = {"b": 1, "bytes": 1, "KiB": 1 << 10, "k": 1 << 10, "MiB": 1 << 20, "M": 1 << 20,
         "GiB": 1 << 30, "G": 1 << 30, "KB": 1000, "MB": 10**6, "GB": 10**9}  # fmt: skip


def parse_domain(xml: str) -> DomainSpec:
    """A domain's definition as Whimbrel's spec (its import): what it boots, its disks
    with their backing images, its CD-ROM, its networks."""
    dom = ET.fromstring(xml)
    mem = dom.find("memory")
    mem_bytes = (
        int(mem.text or 0) * _UNIT.get(mem.get("unit", "KiB"), 1 << 10) if mem is not None else 0
    )
    os_type = dom.find("os/type")
    boots = [b.get("dev") for b in dom.findall("os/boot")]
    disks, cdrom = [], ""
    for d in dom.findall("devices/disk"):
        src = d.find("source")
        path = (src.get("file") or src.get("dev") or "") if src is not None else ""
        if d.get("device") == "cdrom":
            cdrom = cdrom or path
            continue
        if d.get("device", "disk") != "disk" or not path:
            continue
        drv, tgt = d.find("driver"), d.find("target")
        back = d.find("backingStore/source")
        disks.append(
            DiskSpec(
                path=path,
                target=tgt.get("dev", "") if tgt is not None else "",
                fmt=drv.get("type", "raw") if drv is not None else "raw",
                backing=(back.get("file") or "") if back is not None else "",
            )
        )
    nets = tuple(
        s.get("network", "")
        for i in dom.findall("devices/interface[@type='network']")
        if (s := i.find("source")) is not None
    )
    return DomainSpec(
        name=dom.findtext("name", ""),
        uuid=dom.findtext("uuid", ""),
        memory_mib=mem_bytes >> 20,
        vcpus=int(dom.findtext("vcpu", "1")),
        virt_type=dom.get("type", "kvm"),
        machine=os_type.get("machine", "") if os_type is not None else "",
        boot=BootSpec(
            dom.findtext("os/kernel", ""),
            dom.findtext("os/initrd", ""),
            dom.findtext("os/cmdline", ""),
        ),
        disks=tuple(disks),
        networks=nets,
        cdrom=cdrom,
        boot_cdrom=bool(boots) and boots[0] == "cdrom",
    )
