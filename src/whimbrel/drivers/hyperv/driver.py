"""``HyperVHost``: the driver interface over PowerShell remoting to one Hyper-V host.

Every call is one script of :mod:`.scripts` with bound parameters; the
envelope's error becomes a Whimbrel error (:mod:`.errors`).  Whimbrel's paths
use '/', Windows gets backslashes (:func:`.wire.win_path`).  Moves live in
:mod:`.moves`; what only Hyper-V has (cluster roles, node pause, the host's
own migration settings, the facts preflight reads) is here too.
"""

from __future__ import annotations

import json
import posixpath
import threading
import time
from collections.abc import Callable
from typing import Any

from whimbrel.domain.host import HostInfo, HostInventory, NetworkInfo, PoolInfo
from whimbrel.domain.migration import (
    Auth,
    DiskMove,
    HostMigration,
    MigrationRequest,
    MigrationResult,
    MigrationStats,
    Performance,
)
from whimbrel.domain.vm import DomainEvent, DomainInfo, DomainSpec, Heartbeat, VmState
from whimbrel.drivers.hyperv import moves
from whimbrel.drivers.hyperv import wire as w
from whimbrel.drivers.hyperv.errors import remote
from whimbrel.drivers.hyperv.model import MIB, HvCluster, HvHost, HvSecurity, HvVm, state_of
from whimbrel.drivers.hyperv.scripts import script
from whimbrel.drivers.hyperv.sources import NoImageSources
from whimbrel.drivers.hyperv.transport import Transport
from whimbrel.errors import Conflict, HypervisorError, NotFound, WhimbrelError, WrongState

AUTH = {"CredSSP": Auth.MANAGED, "Kerberos": Auth.PEER}
PERFORMANCE = {"TCPIP": Performance.TCP, "Compression": Performance.COMPRESSION,
               "SMB": Performance.PARALLEL}  # fmt: skip
PRIORITY = {0: 0, 1: 1000, 2: 2000, 3: 3000}  # Whimbrel's none..high → the cluster group's


def disk_location(target: str) -> int:
    """Whimbrel's disk targets (vda, vdb, ...) are SCSI 0 locations 0, 1, ... here."""
    if target.startswith("vd") and len(target) == 3 and target[2].isalpha():
        return ord(target[2]) - ord("a")
    raise WrongState(
        "E_HYPERV_DISK_TARGET",
        f"disk target {target!r} names no SCSI location",
        "use targets vda, vdb, ... (SCSI 0:0, 0:1, ...)",
    )


class HyperVHost(NoImageSources):
    """One Hyper-V host.  ``directory`` is the Active Directory its delegation lives in."""

    creates_copy_targets = True  # a move with storage creates the destination VHDs itself
    has_postcopy = False  # Hyper-V's live migration is pre-copy only

    def __init__(self, uri: str, transport: Transport, directory: Any = None):
        self.uri = uri
        self.transport = transport
        self.directory = directory
        self._lock = threading.Lock()
        self._progress: dict[str, tuple[bool, int, float, int]] = {}
        self._facts: tuple[float, HvHost] | None = None
        self.poll_s = 1.0  # how often a running move is looked at

    # -- plumbing -------------------------------------------------------------

    def call(self, name: str, **params: Any) -> Any:
        s = script(name)
        unknown = set(params) - set(s.params)
        if unknown:
            raise TypeError(f"script {name} has no parameter(s) {sorted(unknown)}")
        env = self.transport.run(s, params)
        if not env.get("ok"):
            raise remote(env.get("error") or {})
        return env.get("data")

    def facts(self, max_age_s: float = 10.0) -> HvHost:
        """The host's inventory script, parsed; read again after ``max_age_s``."""
        with self._lock:
            cached = self._facts
        if cached is not None and time.monotonic() - cached[0] < max_age_s:
            return cached[1]
        h = HvHost.parse(self.call("host_inventory"))
        with self._lock:
            self._facts = (time.monotonic(), h)
        return h

    def security(self) -> HvSecurity:
        return HvSecurity.parse(self.call("host_security"))

    def cluster(self) -> HvCluster | None:
        return HvCluster.parse(self.call("cluster_inventory")) if self.facts().clustered else None

    def vm(self, name: str) -> HvVm:
        found = [HvVm.parse(d) for d in w.as_list(self.call("vm_list", Name=name))]
        if not found:
            raise NotFound(
                "E_DOMAIN_NOT_FOUND",
                f"Hyper-V host {self.facts().name} has no VM {name!r}",
                "check the VM's host with 'whimbrel vm list' and refresh the host",
            )
        return found[0]

    # -- inventory --------------------------------------------------------------

    def inventory(self) -> HostInventory:
        h = self.facts(max_age_s=0)
        c = self.cluster()
        info = HostInfo(
            hostname=h.fqdn,
            uuid=h.uuid,
            arch="x86_64",
            cpu_model=h.processor_name,
            cpus=h.cpus,
            memory_mib=h.memory_bytes // MIB,
            free_memory_mib=h.free_memory_bytes // MIB,
            hypervisor="Hyper-V",
            hypervisor_version=h.os_version,
            machine_types=h.supported_versions,
            virt_types=("hyperv",),
        )
        return HostInventory(
            info=info,
            networks=tuple(NetworkInfo(s.name, s.switch_type, True) for s in h.switches),
            pools=tuple(_pools(h, c)),
            migration=self._migration(h, c),
            addresses=h.addresses,
        )

    @staticmethod
    def _migration(h: HvHost, c: HvCluster | None) -> HostMigration:
        # In a cluster, (Get-Cluster).MaximumParallelMigrations overrides the host's limit.
        live = c.max_parallel_migrations if c and c.max_parallel_migrations else h.max_live
        return HostMigration(
            enabled=h.migration_enabled,
            max_live_migrations=live,
            max_storage_migrations=h.max_storage,
            networks=() if h.use_any_network else h.migration_subnets,
            auth=AUTH[h.auth],
            performance=PERFORMANCE[h.performance],
        )

    def free_memory_mib(self) -> int:
        # A second old: preflight has just read the host, one round trip spared.
        return self.facts(max_age_s=1.0).free_memory_bytes // MIB

    def list_domains(self) -> list[DomainInfo]:
        return [self._info(HvVm.parse(d)) for d in w.as_list(self.call("vm_list"))]

    def domain(self, name: str) -> DomainInfo:
        return self._info(self.vm(name))

    @staticmethod
    def _info(vm: HvVm) -> DomainInfo:
        st = state_of(vm)
        return DomainInfo(vm.name, vm.id, st, vm.memory_bytes // MIB, vm.cpus, st == VmState.SAVED)

    # -- disks and definitions ------------------------------------------------------

    def create_volume(self, pool: str, name: str, size_bytes: int, fmt: str) -> str:
        # The facts just read will do: a full inventory is one more round trip per disk.
        pools = {p.name: p.path for p in _pools(self.facts(), self.cluster())}
        if pool not in pools:
            raise NotFound(
                "E_POOL_NOT_FOUND",
                f"Hyper-V host {self.facts().name} has no storage {pool!r}",
                "use one of: " + ", ".join(pools),
            )
        stem = name.rsplit(".", 1)[0] if name.endswith((".qcow2", ".raw", ".img")) else name
        path = f"{pools[pool]}/{stem if stem.endswith('.vhdx') else stem + '.vhdx'}"
        try:
            self.call("vhd_new", Path=w.win_path(path), SizeBytes=size_bytes)
        except Conflict as exc:
            raise Conflict(
                "E_VOLUME_EXISTS", f"{path} already exists", "choose another name", exc.detail
            ) from exc
        return path

    def delete_volume(self, path: str) -> None:
        self.call("vhd_remove", Path=w.win_path(path))

    def define(self, spec: DomainSpec) -> None:
        if any(d.name == spec.name for d in self.list_domains()):
            raise Conflict(
                "E_DOMAIN_EXISTS",
                f"Hyper-V host {self.facts().name} already has a VM {spec.name!r}",
                "choose another name, or remove that VM first",
            )
        where = posixpath.dirname(spec.disks[0].path) if spec.disks else self.facts().vhd_path
        self.call(
            "vm_define",
            Name=spec.name,
            MemoryBytes=spec.memory_mib * MIB,
            ProcessorCount=spec.vcpus,
            Version=spec.machine or self.facts().default_version,
            Path=w.win_path(where),
            Disks=[w.win_path(d.path) for d in spec.disks],
            Switches=list(spec.networks),
        )

    def undefine(self, name: str) -> None:
        self.call("vm_remove", Name=name)

    def relocate_disks(self, name: str, paths: dict[str, str]) -> None:
        current = {d.location: d.path for d in self.vm(name).disks if d.controller == "SCSI"}
        change = {
            str(disk_location(t)): w.win_path(p)
            for t, p in paths.items()
            if current.get(disk_location(t)) != p
        }
        if change:  # Move-VMStorage has switched them already when it ran
            self.call("vm_disks_set", Name=name, Paths=change)

    # -- power ------------------------------------------------------------------

    def _power(self, name: str, action: str) -> None:
        self.call("vm_power", Name=name, Action=action)

    def start(self, name: str) -> None:
        self._power(name, "Start")

    def shutdown(self, name: str, timeout_s: float) -> None:
        self._power(name, "Shutdown")  # Stop-VM waits for the guest itself

    def power_off(self, name: str) -> None:
        if state_of(self.vm(name)) != VmState.STOPPED:
            self._power(name, "TurnOff")

    def save(self, name: str) -> None:
        self._power(name, "Save")

    def discard_saved(self, name: str) -> None:
        self._power(name, "DiscardSaved")

    def pause(self, name: str) -> None:
        self._power(name, "Pause")

    def resume(self, name: str) -> None:
        if state_of(self.vm(name)) == VmState.PAUSED:
            self._power(name, "Resume")

    def heartbeat(self, name: str, timeout_s: float = 1.5) -> Heartbeat | None:
        """Whimbrel's heartbeat channel is the lab guest's; Hyper-V guests have none."""
        return None

    def last_event(self, name: str, kind: str) -> float | None:
        return None  # no events over WinRM (see events)

    def events(self) -> list[DomainEvent]:
        """Hyper-V pushes nothing over WinRM (its WMI events need a DCOM sink on the
        manager's side): the monitor's poll of every host sees the changes instead."""
        return []

    # -- migration ----------------------------------------------------------------

    def domain_cpu(self, name: str) -> str:
        h, vm = self.facts(), self.vm(name)
        cpu = {"vendor": h.processor_vendor, "model": h.processor_name}
        return json.dumps({**cpu, "compat": vm.compat_for_migration})

    def compare_cpu(self, cpu_xml: str, virt_type: str) -> list[str]:
        """Hyper-V's rule: never across vendors; across models only with processor
        compatibility on (it hides the newer features)."""
        want, h = json.loads(cpu_xml), self.facts()
        if want["vendor"] != h.processor_vendor:
            return [f"{want['vendor']} processor (this host's is {h.processor_vendor})"]
        if want["model"] != h.processor_name and not want["compat"]:
            return [f"features of {want['model']} (processor compatibility is off)"]
        return []

    def dirty_rate(self, name: str, seconds: int = 1) -> int:
        return -1  # Hyper-V does not expose it

    def check_peer_trust(self, dest_uri: str, peer_pki: str) -> None:
        """Kerberos delegation is read from Active Directory by preflight.hyperv."""

    def migrate(self, name: str, req: MigrationRequest, auto_converge: bool) -> None:
        moves.migrate(self, name, req)

    def report(self, name: str, active: bool, percent: int, total: int) -> None:
        with self._lock:
            started = self._progress.get(name, (False, 0, time.monotonic(), 0))[2]
            self._progress[name] = (active, percent, started, total)

    def migration_stats(self, name: str) -> MigrationStats:
        with self._lock:
            p = self._progress.get(name)
        if p is None or not p[0]:
            return MigrationStats(active=False)
        _, pct, started, total = p
        done = total * pct // 100
        return MigrationStats(
            active=True,
            elapsed_ms=int((time.monotonic() - started) * 1000),
            memory_total=total,
            memory_processed=done,
            memory_remaining=total - done,
        )

    def migration_result(self, name: str, strategy: list[str]) -> MigrationResult:
        return moves.result(self, name, strategy)

    def tune_migration(self, name: str, downtime_ms: int = 0, postcopy: bool = False) -> None:
        """Hyper-V has no downtime or post-copy knob: it converges on its own."""

    def abort_migration(self, name: str) -> None:
        moves.abort(self, name)

    def pause_postcopy(self, name: str) -> None:
        raise _no_postcopy()

    def resume_postcopy(self, name: str, req: MigrationRequest) -> None:
        raise _no_postcopy()

    def move_disks(
        self, name: str, moves_: list[DiskMove], progress: Callable[[int, int], None]
    ) -> None:
        moves.move_storage(self, name, moves_, progress)

    def save_to(self, name: str, path: str) -> None:
        raise _no_state_file()

    def restore_from(self, path: str) -> None:
        raise _no_state_file()

    # -- what only Hyper-V has ----------------------------------------------------

    def cluster_role(self, name: str, on: bool, priority: int) -> None:
        """Add-ClusterVirtualMachineRole / Remove-ClusterGroup -RemoveResources."""
        if not self.facts().clustered:
            if on:
                raise WrongState(
                    "E_HYPERV_NOT_CLUSTERED",
                    f"Hyper-V host {self.facts().name} is no node of a failover cluster",
                    "add the host to a failover cluster first (New-Cluster / Add-ClusterNode)",
                )
            return
        if on:
            self.call("cluster_role_add", VMName=name, Priority=PRIORITY.get(priority, 2000))
        else:
            self.call("cluster_role_remove", VMName=name)

    def node_pause(self, drain: bool) -> None:
        if self.facts().clustered:
            moves.suspend_node(self, drain)

    def node_resume(self) -> None:
        if self.facts().clustered:
            self.call("node_resume", Name=self.facts().name, Failback="NoFailback")

    def apply_migration_settings(self, m: HostMigration) -> None:
        auth = {v: k for k, v in AUTH.items()}[m.auth]
        perf = {v: k for k, v in PERFORMANCE.items()}[m.performance]
        self.call(
            "migration_set",
            Enabled=m.enabled,
            Authentication=auth,
            Performance=perf,
            MaximumVirtualMachineMigrations=m.max_live_migrations,
            MaximumStorageMigrations=m.max_storage_migrations,
            Subnets=list(m.networks),
        )
        with self._lock:
            self._facts = None

    def close(self) -> None:
        self.transport.close()


def _no_state_file() -> WhimbrelError:
    return HypervisorError(
        "E_HYPERV_UNSUPPORTED",
        "Hyper-V keeps a saved state with its VM, not in a file of Whimbrel's choosing",
        "quick migration on Hyper-V is one operation (migrate with --quick)",
    )


def _pools(h: HvHost, c: HvCluster | None) -> list[PoolInfo]:
    """The host's default VHD folder ("local") and its cluster's shared volumes."""
    local = h.vhd_path.rstrip("/")
    out = [PoolInfo("local", local, h.vhd_size_bytes, h.vhd_free_bytes, True)]
    for v in c.volumes if c else ():
        path = v.path.rstrip("/")
        out.append(PoolInfo(posixpath.basename(path), path, v.size, v.free, True))
    return out


def _no_postcopy() -> WrongState:
    return WrongState(
        "E_POSTCOPY_UNSUPPORTED",
        "Hyper-V's live migration has no post-copy phase to pause or resume",
        "nothing to do: a Hyper-V migration that fails leaves the VM on its source",
    )
