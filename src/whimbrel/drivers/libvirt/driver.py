"""One libvirt connection to one KVM/QEMU host."""

from __future__ import annotations

import contextlib
import threading
import time
import xml.etree.ElementTree as ET
from collections import deque
from pathlib import Path
from typing import Any, TypeVar

import libvirt

from whimbrel.domain.host import HostInfo, HostInventory, NetworkInfo, PoolInfo
from whimbrel.domain.vm import (
    HEARTBEAT_CHANNEL,
    DomainEvent,
    DomainInfo,
    DomainSpec,
    Heartbeat,
    VmState,
)
from whimbrel.drivers.libvirt.errors import connect_error
from whimbrel.drivers.libvirt.images import Images
from whimbrel.drivers.libvirt.migration_ops import MigrationOps
from whimbrel.drivers.libvirt.uri import with_pkipath
from whimbrel.drivers.libvirt.xml import domain_xml, volume_xml
from whimbrel.drivers.managed import ManagerIsTheCluster
from whimbrel.errors import Conflict, NotFound, WrongState

T = TypeVar("T")

_STATES = {
    libvirt.VIR_DOMAIN_RUNNING: VmState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: VmState.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: VmState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: VmState.RUNNING,
    libvirt.VIR_DOMAIN_SHUTOFF: VmState.STOPPED,
    libvirt.VIR_DOMAIN_CRASHED: VmState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: VmState.PAUSED,
}

_loop_lock = threading.Lock()
_loop_started = False


def ensure_event_loop() -> None:
    """libvirt keepalive needs an event loop; run libvirt's default one in a thread."""
    global _loop_started
    with _loop_lock:
        if _loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def loop() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=loop, name="libvirt-events", daemon=True).start()
        _loop_started = True


_EVENTS = (
    "defined",
    "undefined",
    "started",
    "suspended",
    "resumed",
    "stopped",
    "shutdown",
    "pmsuspended",
    "crashed",
)


class LibvirtHost(MigrationOps, Images, ManagerIsTheCluster):
    def __init__(self, conn: libvirt.virConnect, uri: str, pki_dir: Path | None = None):
        super().__init__(conn, uri, pki_dir)
        self._events: deque[DomainEvent] = deque(maxlen=10_000)
        self._last: dict[tuple[str, str], float] = {}
        self._callback = conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None
        )

    def _on_lifecycle(self, _c: Any, dom: Any, event: int, _detail: int, _o: Any) -> None:
        # Runs on libvirt's event thread: only queue, never call back into libvirt here.
        kind = _EVENTS[event] if 0 <= event < len(_EVENTS) else f"event-{event}"
        e = DomainEvent(dom.name(), kind, time.time())
        self._events.append(e)
        self._last[(e.name, kind)] = e.at

    def events(self) -> list[DomainEvent]:
        out = []
        while self._events:
            out.append(self._events.popleft())
        return out

    def last_event(self, name: str, kind: str) -> float | None:
        return self._last.get((name, kind))

    @classmethod
    def open(cls, uri: str, pki_dir: Path | None = None) -> LibvirtHost:
        """Raises: HostUnreachable, HostUntrusted, HypervisorError."""
        ensure_event_loop()
        try:
            conn = libvirt.open(with_pkipath(uri, pki_dir))
        except libvirt.libvirtError as exc:
            raise connect_error(uri, exc) from exc
        # Keepalive: a host cut off is noticed within ~12 s (3 unanswered pings 3 s
        # apart) instead of a TCP timeout; the failover watch's grace period follows.
        with contextlib.suppress(libvirt.libvirtError):  # unix sockets have no keepalive
            conn.setKeepAlive(3, 3)
        return cls(conn, uri, pki_dir)

    # -- inventory ------------------------------------------------------------

    def inventory(self) -> HostInventory:
        caps = ET.fromstring(self._call("capabilities", self.conn.getCapabilities))
        model, mem_mib, cpus = self._call("node info", self.conn.getInfo)[:3]
        machines: list[str] = []
        virt_types: list[str] = []
        for guest in caps.findall("guest"):
            arch = guest.find("arch")
            if arch is None or arch.get("name") != "x86_64":
                continue
            machines += [m.text or "" for m in arch.findall("machine") if m.text]
            virt_types += [d.get("type", "") for d in arch.findall("domain")]
        order = {"kvm": 0, "qemu": 1}
        info = HostInfo(
            hostname=self._call("hostname", self.conn.getHostname),
            uuid=caps.findtext("host/uuid", ""),
            arch=caps.findtext("host/cpu/arch", model),
            cpu_model=caps.findtext("host/cpu/model", "") or model,
            cpus=int(cpus),
            memory_mib=int(mem_mib),
            free_memory_mib=self.free_memory_mib(),
            hypervisor=self._call("hypervisor", self.conn.getType),
            hypervisor_version=_version(self._call("version", self.conn.getVersion)),
            machine_types=tuple(sorted(set(machines))),
            virt_types=tuple(sorted(set(virt_types), key=lambda t: order.get(t, 9))),
        )
        return HostInventory(info, tuple(self._networks()), tuple(self._pools()))

    def _networks(self) -> list[NetworkInfo]:
        out = []
        for net in self._call("networks", lambda: self.conn.listAllNetworks(0)):
            try:
                bridge = net.bridgeName()
            except libvirt.libvirtError:
                bridge = ""
            out.append(NetworkInfo(net.name(), bridge, bool(net.isActive())))
        return sorted(out, key=lambda n: n.name)

    def _pools(self) -> list[PoolInfo]:
        out = []
        for pool in self._call("storage pools", lambda: self.conn.listAllStoragePools(0)):
            path = ET.fromstring(pool.XMLDesc(0)).findtext("target/path", "")
            active = bool(pool.isActive())
            cap = avail = 0
            if active:
                _, cap, _, avail = pool.info()
            out.append(PoolInfo(pool.name(), path, int(cap), int(avail), active))
        return sorted(out, key=lambda p: p.name)

    def free_memory_mib(self) -> int:
        return int(self._call("free memory", self.conn.getFreeMemory)) >> 20

    # -- domains --------------------------------------------------------------

    def list_domains(self) -> list[DomainInfo]:
        doms = self._call("list domains", lambda: self.conn.listAllDomains(0))
        out = []
        for d in doms:
            try:
                out.append(self._info(d))
            except NotFound:
                continue  # undefined between the listing and the look: it is gone
        return sorted(out, key=lambda i: i.name)

    def domain(self, name: str) -> DomainInfo:
        return self._info(self._lookup(name))

    def _info(self, dom: libvirt.virDomain) -> DomainInfo:
        state, _reason = self._call(dom.name(), lambda: dom.state(0))
        saved = bool(self._call(dom.name(), lambda: dom.hasManagedSaveImage(0)))
        vm_state = _STATES.get(state, VmState.UNKNOWN)
        if vm_state == VmState.STOPPED and saved:
            vm_state = VmState.SAVED
        _, _, mem_kib, vcpus, _ = self._call(dom.name(), dom.info)
        return DomainInfo(dom.name(), dom.UUIDString(), vm_state, mem_kib >> 10, vcpus, saved)

    def define(self, spec: DomainSpec) -> None:
        try:
            self.conn.lookupByName(spec.name)
        except libvirt.libvirtError:
            pass
        else:
            raise Conflict(
                "E_DOMAIN_EXISTS",
                f"host {self.name} already has a domain named {spec.name!r}",
                "remove it from the host, or choose another VM name",
            )
        self._call(f"define VM {spec.name}", lambda: self.conn.defineXML(domain_xml(spec)))

    def undefine(self, name: str) -> None:
        try:
            dom = self.conn.lookupByName(name)
        except libvirt.libvirtError:
            return
        flags = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        self._call(f"undefine VM {name}", lambda: dom.undefineFlags(flags))

    def start(self, name: str) -> None:
        dom = self._lookup(name)
        if dom.isActive():
            return
        self._call(f"start VM {name}", dom.create)

    def shutdown(self, name: str, timeout_s: float) -> None:
        dom = self._lookup(name)
        if not dom.isActive():
            return
        self._call(f"shut down VM {name}", dom.shutdown)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not dom.isActive():
                return
            time.sleep(0.2)
        raise WrongState(
            "E_VM_SHUTDOWN_TIMEOUT",
            f"VM {name} did not power off within {timeout_s:g} s of the shutdown request",
            "check that the guest handles ACPI power-button events, or stop it with --force",
        )

    def power_off(self, name: str) -> None:
        dom = self._lookup(name)
        if dom.isActive():
            self._call(f"power off VM {name}", dom.destroy)

    def save(self, name: str) -> None:
        dom = self._lookup(name)
        self._call(f"save VM {name}", lambda: dom.managedSave(0))

    def discard_saved(self, name: str) -> None:
        dom = self._lookup(name)
        if dom.hasManagedSaveImage(0):
            self._call(f"discard saved state of VM {name}", lambda: dom.managedSaveRemove(0))

    def heartbeat(self, name: str, timeout_s: float = 1.5) -> Heartbeat | None:
        """Read the guest's heartbeat channel for up to ``timeout_s``; keep the newest line."""
        dom = self._lookup(name)
        if not dom.isActive():
            return None
        stream = self.conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
        try:
            dom.openChannel(HEARTBEAT_CHANNEL, stream, libvirt.VIR_DOMAIN_CHANNEL_FORCE)
        except libvirt.libvirtError:
            return None
        buf = b""
        newest: Heartbeat | None = None
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                data: Any = stream.recv(4096)
                if data == -2:  # nothing yet
                    time.sleep(0.05)
                    continue
                if not data:
                    break
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    hb = Heartbeat.parse(line.decode(errors="replace"))
                    if hb is not None:
                        newest = hb
                if newest is not None and len(lines) > 0:
                    break
        except libvirt.libvirtError:
            pass
        finally:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
        return newest

    # -- storage --------------------------------------------------------------

    def create_volume(self, pool: str, name: str, size_bytes: int, fmt: str) -> str:
        p = self._pool_for(pool, name)
        vol = self._call(
            f"create disk {name}", lambda: p.createXML(volume_xml(name, size_bytes, fmt), 0)
        )
        return str(vol.path())

    def close(self) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            self.conn.domainEventDeregisterAny(self._callback)
        with contextlib.suppress(libvirt.libvirtError):
            self.conn.close()


def _version(v: int) -> str:
    return f"{v // 1_000_000}.{v // 1000 % 1000}.{v % 1000}"
