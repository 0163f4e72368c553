"""An in-memory fleet of hosts, for unit tests and scale simulations.

It keeps the rules that matter to the manager: memory is finite, a disk
image is one file seen by every host that mounts its pool path, a disk can be
open in one running domain only (the lease), saved state survives a stop, and
the guest's heartbeat counts on while the domain runs.  Never a stand-in for
the real hypervisor in a feature's proof: that is the lab's job.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from whimbrel.domain.host import HostInfo, HostInventory, NetworkInfo, PoolInfo
from whimbrel.domain.migration import (
    Auth,
    DiskMove,
    MigrationRequest,
    MigrationResult,
    MigrationStats,
)
from whimbrel.domain.vm import DomainEvent, DomainInfo, DomainSpec, Heartbeat, VmState
from whimbrel.drivers.fake_images import FakeImages
from whimbrel.drivers.managed import ManagerIsTheCluster
from whimbrel.errors import (
    Conflict,
    HostUnreachable,
    HostUntrusted,
    HypervisorError,
    InsufficientResources,
    LockConflict,
    NotFound,
    WrongState,
)


@dataclass
class _Domain:
    spec: DomainSpec
    state: VmState = VmState.STOPPED
    started_at: float = 0.0
    counter_base: int = 0
    saved_counter: int | None = None
    dirty_bps: int = 0
    last_result: MigrationResult | None = None

    def counter(self) -> int:
        if self.state != VmState.RUNNING:
            return self.counter_base
        return self.counter_base + int((time.monotonic() - self.started_at) * 10)


@dataclass
class FakeHostState:
    name: str
    memory_mib: int = 16384
    cpus: int = 8
    cpu_model: str = "EPYC"
    machine_types: tuple[str, ...] = ("pc-i440fx-7.2", "pc-q35-7.2")
    virt_types: tuple[str, ...] = ("kvm", "qemu")
    networks: tuple[str, ...] = ("vm-net",)
    pools: dict[str, str] = field(default_factory=lambda: {"local": "/srv/local"})
    cpu_features: frozenset[str] = frozenset({"sse2", "lahf_lm"})
    # Hosts whose own certificate this host accepts (peer authentication); None: any.
    trusts: set[str] | None = None
    up: bool = True
    # VMs whose incoming migration this host refuses (a libvirt migrate hook saying no).
    refuse_incoming: set[str] = field(default_factory=set)
    domains: dict[str, _Domain] = field(default_factory=dict)
    pool_free: dict[str, int] = field(default_factory=dict)  # pool -> bytes; unset: plenty
    events: deque[DomainEvent] = field(default_factory=deque)
    last: dict[tuple[str, str], float] = field(default_factory=dict)

    def emit(self, name: str, kind: str) -> None:
        self.events.append(DomainEvent(name, kind, time.time()))
        self.last[(name, kind)] = time.time()


class FakeFleet:
    _default: FakeFleet | None = None

    def __init__(self) -> None:
        self.hosts: dict[str, FakeHostState] = {}
        self.volumes: dict[str, int] = {}  # path -> size; shared by every host
        self.images: dict[str, bytes] = {}  # path -> its first bytes (images, ISOs)
        self.backing: dict[str, str] = {}  # a linked clone's path -> its backing image
        self.content: dict[str, str] = {}  # path -> what a test wrote in it (clones copy it)
        self.saved_files: dict[str, tuple[int, DomainSpec]] = {}  # quick-migration state
        self.lock = threading.RLock()
        self._disk_hosts: dict[str, set[str]] = {}  # disk path -> hosts that defined it

    @classmethod
    def default(cls) -> FakeFleet:
        if cls._default is None:
            cls._default = cls()
        return cls._default

    @classmethod
    def reset_default(cls) -> FakeFleet:
        cls._default = cls()
        return cls._default

    def add_host(self, name: str, **kw: object) -> FakeHostState:
        host = FakeHostState(name=name, **kw)  # type: ignore[arg-type]
        self.hosts[name] = host
        return host

    def open(self, uri: str) -> FakeHost:
        return FakeHost(self, self.host_of_uri(uri), uri)

    def host_of_uri(self, uri: str) -> FakeHostState:
        name = uri.split("://", 1)[-1].strip("/").split("?")[0]
        host = self.hosts.get(name)
        if host is None or not host.up:
            raise HostUnreachable(
                "E_HOST_UNREACHABLE",
                f"host {uri} does not answer",
                "check that the host is up and its address is right",
            )
        return host

    def placed(self, host: FakeHostState, spec: DomainSpec) -> None:
        """Note where a domain's disks are defined (under ``lock``), so that finding a
        disk's holder reads those hosts, not the fleet: the scale simulator has 40,000."""
        for k in spec.disks:
            self._disk_hosts.setdefault(k.path, set()).add(host.name)

    def disk_holder(self, path: str) -> str | None:
        for name in sorted(self._disk_hosts.get(path, ())):
            h = self.hosts.get(name)
            if h is None:
                continue
            for d in h.domains.values():
                if d.state in (VmState.RUNNING, VmState.PAUSED) and any(
                    k.path == path for k in d.spec.disks
                ):
                    return h.name
        return None


def _relocated(spec: DomainSpec, paths: dict[str, str]) -> DomainSpec:
    """``spec`` with the disks of ``paths`` (target → new path) moved."""
    disks = tuple(dataclasses.replace(k, path=paths.get(k.target, k.path)) for k in spec.disks)
    return dataclasses.replace(spec, disks=disks)


class FakeHost(FakeImages, ManagerIsTheCluster):
    def __init__(self, fleet: FakeFleet, host: FakeHostState, uri: str):
        self.fleet = fleet
        self.h = host
        self.uri = uri

    def _alive(self) -> None:
        if not self.h.up:
            raise HostUnreachable(
                "E_HOST_UNREACHABLE", f"host {self.uri} does not answer", "check the host"
            )

    def _dom(self, name: str) -> _Domain:
        self._alive()
        d = self.h.domains.get(name)
        if d is None:
            raise NotFound(
                "E_DOMAIN_NOT_FOUND",
                f"host {self.h.name} has no domain {name!r}",
                "refresh the host",
            )
        return d

    def inventory(self) -> HostInventory:
        self._alive()
        info = HostInfo(
            hostname=self.h.name,
            uuid=f"00000000-0000-4000-8000-{abs(hash(self.h.name)) % 10**12:012d}",
            arch="x86_64",
            cpu_model=self.h.cpu_model,
            cpus=self.h.cpus,
            memory_mib=self.h.memory_mib,
            free_memory_mib=self.free_memory_mib(),
            hypervisor="fake",
            hypervisor_version="1.0",
            machine_types=self.h.machine_types,
            virt_types=self.h.virt_types,
        )
        nets = tuple(NetworkInfo(n, f"br-{n}", True) for n in self.h.networks)
        free = self.h.pool_free
        pools = tuple(
            PoolInfo(n, p, 1 << 40, free.get(n, 1 << 39), True) for n, p in self.h.pools.items()
        )
        return HostInventory(info, nets, pools)

    def free_memory_mib(self) -> int:
        with self.fleet.lock:
            used = sum(
                d.spec.memory_mib
                for d in self.h.domains.values()
                if d.state in (VmState.RUNNING, VmState.PAUSED)
            )
        return self.h.memory_mib - used

    def list_domains(self) -> list[DomainInfo]:
        self._alive()
        return [self.domain(n) for n in list(self.h.domains)]

    def domain(self, name: str) -> DomainInfo:
        d = self._dom(name)
        state = (
            VmState.SAVED if d.state == VmState.STOPPED and d.saved_counter is not None else d.state
        )
        return DomainInfo(
            d.spec.name,
            d.spec.uuid,
            state,
            d.spec.memory_mib,
            d.spec.vcpus,
            d.saved_counter is not None,
        )

    def define(self, spec: DomainSpec) -> None:
        self._alive()
        with self.fleet.lock:
            if spec.name in self.h.domains:
                raise Conflict("E_DOMAIN_EXISTS", f"{spec.name} is defined", "undefine it first")
            self.h.domains[spec.name] = _Domain(spec)
            self.fleet.placed(self.h, spec)
            self.h.emit(spec.name, "defined")

    def undefine(self, name: str) -> None:
        self._alive()
        with self.fleet.lock:
            d = self.h.domains.get(name)
            if d is not None and d.state in (VmState.RUNNING, VmState.PAUSED):
                raise WrongState("E_VM_RUNNING", f"{name} is running", "stop it first")
            if self.h.domains.pop(name, None) is not None:
                self.h.emit(name, "undefined")

    def start(self, name: str) -> None:
        with self.fleet.lock:
            d = self._dom(name)
            if d.state == VmState.RUNNING:
                return
            for disk in d.spec.disks:
                holder = self.fleet.disk_holder(disk.path)
                if holder is not None:
                    raise LockConflict(
                        "E_DISK_LOCKED",
                        f"disk {disk.path} is in use by a running VM on host {holder}",
                        "stop the VM that holds the disk first",
                    )
            if d.spec.memory_mib > self.free_memory_mib():
                raise InsufficientResources("E_NO_MEMORY", "not enough memory", "free memory")
            if d.spec.cdrom and self.sees(d.spec.cdrom) is None:  # QEMU cannot open it
                raise HypervisorError(
                    "E_START_FAILED", f"host {self.h.name} has no {d.spec.cdrom}", ""
                )
            if d.saved_counter is not None:
                d.counter_base, d.saved_counter = d.saved_counter, None
            else:
                d.counter_base = 0
            d.state, d.started_at = VmState.RUNNING, time.monotonic()
            self.h.emit(name, "started")

    def shutdown(self, name: str, timeout_s: float) -> None:
        self.power_off(name)

    def power_off(self, name: str) -> None:
        with self.fleet.lock:
            d = self._dom(name)
            d.counter_base = d.counter()
            d.state = VmState.STOPPED
            self.h.emit(name, "stopped")

    def save(self, name: str) -> None:
        with self.fleet.lock:
            d = self._dom(name)
            if d.state != VmState.RUNNING:
                raise WrongState("E_VM_NOT_RUNNING", f"{name} is not running", "start it first")
            d.saved_counter = d.counter()
            d.state = VmState.STOPPED
            self.h.emit(name, "stopped")

    def discard_saved(self, name: str) -> None:
        with self.fleet.lock:
            self._dom(name).saved_counter = None

    def heartbeat(self, name: str, timeout_s: float = 1.5) -> Heartbeat | None:
        d = self._dom(name)
        if d.state != VmState.RUNNING:
            return None
        return Heartbeat(d.counter(), 0.0, 0, 0, 0, -1, "fake")

    def events(self) -> list[DomainEvent]:
        out = []
        while self.h.events:
            out.append(self.h.events.popleft())
        return out

    def last_event(self, name: str, kind: str) -> float | None:
        return self.h.last.get((name, kind))

    # -- migration: instantaneous, with the same refusals as the real thing -----

    def relocate_disks(self, name: str, paths: dict[str, str]) -> None:
        with self.fleet.lock:
            d = self._dom(name)
            d.spec = _relocated(d.spec, paths)
            self.fleet.placed(self.h, d.spec)

    def domain_cpu(self, name: str) -> str:
        self._dom(name)
        return ",".join(sorted(self.h.cpu_features))

    def compare_cpu(self, cpu_xml: str, virt_type: str) -> list[str]:
        self._alive()
        return sorted(set(filter(None, cpu_xml.split(","))) - self.h.cpu_features)

    def dirty_rate(self, name: str, seconds: int = 1) -> int:
        return self._dom(name).dirty_bps

    def check_peer_trust(self, dest_uri: str, peer_pki: str) -> None:
        dest = self.fleet.host_of_uri(dest_uri)
        if dest.trusts is not None and self.h.name not in dest.trusts:
            raise HostUntrusted(
                "E_PEER_UNTRUSTED",
                f"the destination ({dest_uri}) refused the certificate of host {self.h.name}",
                "issue the source host a certificate the destination trusts",
            )

    def migrate(self, name: str, req: MigrationRequest, auto_converge: bool) -> None:
        if req.auth == Auth.PEER:
            self.check_peer_trust(req.dest_uri, req.peer_pki)
        dest = self.fleet.host_of_uri(req.dest_uri)
        if name in dest.refuse_incoming:
            raise HypervisorError(
                "E_MIGRATION_FAILED",
                f"host {dest.name} refused the incoming migration of {name}",
                "see the destination host's log",
            )
        with self.fleet.lock:
            d = self._dom(name)
            if name in dest.domains:
                raise Conflict("E_DOMAIN_EXISTS", f"{name} exists on {dest.name}", "remove it")
            for m in req.copy_disks:
                self.fleet.volumes[m.dest_path] = m.size_bytes
            self.h.domains.pop(name)
            d.spec = _relocated(d.spec, {m.target: m.dest_path for m in req.copy_disks})
            mem = d.spec.memory_mib << 20
            disk = sum(m.size_bytes for m in req.copy_disks)
            d.last_result = MigrationResult(1, 1, mem, disk, 1, [])
            dest.domains[name] = d
            self.fleet.placed(dest, d.spec)
            self.h.emit(name, "undefined")
            dest.events.append(DomainEvent(name, "started", time.time()))

    def migration_stats(self, name: str) -> MigrationStats:
        self._alive()
        return MigrationStats(active=False)

    def migration_result(self, name: str, strategy: list[str]) -> MigrationResult:
        r = self._dom(name).last_result or MigrationResult(0, 0, 0, 0, 0, [])
        return dataclasses.replace(r, strategy=strategy)

    def tune_migration(self, name: str, downtime_ms: int = 0, postcopy: bool = False) -> None:
        self._dom(name)

    def abort_migration(self, name: str) -> None:
        self._alive()

    def pause_postcopy(self, name: str) -> None:
        self._dom(name)

    def resume_postcopy(self, name: str, req: MigrationRequest) -> None:
        self._dom(name)  # the fake's migrations end at once: nothing is ever left to resume

    def pause(self, name: str) -> None:
        with self.fleet.lock:
            self._dom(name).state = VmState.PAUSED

    def resume(self, name: str) -> None:
        with self.fleet.lock:
            d = self._dom(name)
            if d.state == VmState.PAUSED:
                d.state = VmState.RUNNING

    def move_disks(
        self, name: str, moves: list[DiskMove], progress: Callable[[int, int], None]
    ) -> None:
        with self.fleet.lock:
            for m in moves:
                self.fleet.volumes[m.dest_path] = self.fleet.volumes.get(m.source_path, 0)
        self.relocate_disks(name, {m.target: m.dest_path for m in moves})
        total = sum(m.size_bytes for m in moves)
        progress(total, total)

    def save_to(self, name: str, path: str) -> None:
        with self.fleet.lock:
            self.save(name)
            d = self.h.domains[name]
            self.fleet.saved_files[path] = (d.saved_counter or 0, d.spec)
            d.saved_counter = None

    def restore_from(self, path: str) -> None:
        with self.fleet.lock:
            counter, spec = self.fleet.saved_files[path]
            d = self._dom(spec.name)
            d.saved_counter = counter
        self.start(spec.name)

    def close(self) -> None:
        pass
