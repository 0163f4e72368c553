"""Domain and volume XML, rendered from typed specs (golden-tested)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from whimbrel.domain.vm import HEARTBEAT_CHANNEL, DomainSpec


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


def volume_xml(name: str, size_bytes: int, fmt: str) -> str:
    vol = ET.Element("volume")
    _sub(vol, "name", name)
    _sub(vol, "capacity", str(size_bytes), unit="bytes")
    tgt = _sub(vol, "target")
    _sub(tgt, "format", type=fmt)
    ET.indent(vol)
    return ET.tostring(vol, encoding="unicode")
