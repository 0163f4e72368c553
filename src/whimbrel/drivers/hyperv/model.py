"""Typed views of what each inventory script returns (parsed with :mod:`.wire`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from whimbrel.domain.vm import VmState
from whimbrel.drivers.hyperv import wire as w

MIB = 1 << 20
# Hyper-V's VM states folded to Whimbrel's (transitions count as where they come from).
_STATES = {
    "Running": VmState.RUNNING, "Starting": VmState.RUNNING, "Resuming": VmState.RUNNING,
    "Reset": VmState.RUNNING, "Stopping": VmState.RUNNING, "Saving": VmState.RUNNING,
    "FastSaving": VmState.RUNNING, "ForceShutdown": VmState.RUNNING,
    "Off": VmState.STOPPED, "Saved": VmState.SAVED, "FastSaved": VmState.SAVED,
    "Paused": VmState.PAUSED, "Pausing": VmState.PAUSED,
    "ForceReboot": VmState.RUNNING, "ComponentServicing": VmState.RUNNING,
    # Hibernated: the guest wrote its memory to its own disk and the VM is off.
    "Hibernated": VmState.STOPPED,
}  # fmt: skip


@dataclass(frozen=True)
class HvSwitch:
    name: str
    switch_type: str


@dataclass(frozen=True)
class HvHost:
    name: str
    fqdn: str
    uuid: str
    os_version: str
    os_build: int
    part_of_domain: bool
    domain: str
    processor_name: str
    processor_vendor: str
    cpus: int
    memory_bytes: int
    free_memory_bytes: int
    vhd_path: str
    vhd_free_bytes: int
    vhd_size_bytes: int
    migration_enabled: bool
    max_live: int
    max_storage: int
    auth: str
    performance: str
    use_any_network: bool
    supported_versions: tuple[str, ...]
    default_version: str
    migration_subnets: tuple[str, ...]
    addresses: tuple[str, ...]
    switches: tuple[HvSwitch, ...]
    local_accounts: tuple[str, ...]
    clustered: bool

    @classmethod
    def parse(cls, d: dict[str, Any]) -> HvHost:
        nets = sorted(
            w.as_list(d.get("MigrationNetworks")),
            key=lambda n: n.get("Priority") if n.get("Priority") is not None else 1 << 30,
        )  # a lower number is a higher priority
        return cls(
            name=w.text(d["Name"]),
            fqdn=w.text(d.get("Fqdn")) or w.text(d["Name"]),
            uuid=w.text(d.get("Uuid")),
            os_version=w.text(d.get("OsVersion")),
            os_build=int(d.get("OsBuild") or 0),
            part_of_domain=bool(d.get("PartOfDomain")),
            domain=w.text(d.get("Domain")),
            processor_name=w.text(d.get("ProcessorName")),
            processor_vendor=w.text(d.get("ProcessorVendor")),
            cpus=int(d["LogicalProcessorCount"]),
            memory_bytes=int(d["MemoryCapacity"]),
            free_memory_bytes=int(d.get("FreePhysicalMemoryBytes") or 0),
            vhd_path=w.our_path(w.text(d.get("VirtualHardDiskPath"))),
            vhd_free_bytes=int(d.get("VirtualHardDiskFreeBytes") or 0),
            vhd_size_bytes=int(d.get("VirtualHardDiskSizeBytes") or 0),
            migration_enabled=bool(d["VirtualMachineMigrationEnabled"]),
            max_live=int(d["MaximumVirtualMachineMigrations"]),
            max_storage=int(d["MaximumStorageMigrations"]),
            auth=w.enum(d["VirtualMachineMigrationAuthenticationType"], w.AUTH_TYPE, "auth"),
            performance=w.enum(
                d["VirtualMachineMigrationPerformanceOption"], w.PERFORMANCE, "performance"
            ),
            use_any_network=bool(d["UseAnyNetworkForMigration"]),
            supported_versions=tuple(w.version(v) for v in w.as_list(d["SupportedVmVersions"])),
            default_version=w.version(d.get("DefaultVmVersion") or ""),
            migration_subnets=tuple(w.text(n["Subnet"]) for n in nets),
            addresses=tuple(w.text(a) for a in w.as_list(d.get("Addresses"))),
            switches=tuple(
                HvSwitch(w.text(s["Name"]), w.enum(s["SwitchType"], w.SWITCH_TYPE, "switch type"))
                for s in w.as_list(d.get("Switches"))
            ),
            local_accounts=tuple(w.text(a) for a in w.as_list(d.get("LocalAccounts"))),
            clustered=bool(d.get("Clustered")),
        )


@dataclass(frozen=True)
class HvSecurity:
    credential_guard: bool
    vbs_status: int
    os_build: int

    @classmethod
    def parse(cls, d: dict[str, Any]) -> HvSecurity:
        running = [int(x) for x in w.as_list(d.get("SecurityServicesRunning"))]
        return cls(
            credential_guard=bool(d.get("CredentialGuardRunning")) or 1 in running,
            vbs_status=int(d.get("VirtualizationBasedSecurityStatus") or 0),
            os_build=int(d.get("OsBuild") or 0),
        )


@dataclass(frozen=True)
class HvDisk:
    path: str
    controller: str
    number: int
    location: int


@dataclass(frozen=True)
class HvVm:
    name: str
    id: str
    state: str
    generation: int
    version: str
    clustered: bool
    cpus: int
    memory_bytes: int
    uptime_s: float
    path: str
    compat_for_migration: bool
    disks: tuple[HvDisk, ...]
    switches: tuple[str, ...]

    @classmethod
    def parse(cls, d: dict[str, Any]) -> HvVm:
        assigned, startup = int(d.get("MemoryAssigned") or 0), int(d.get("MemoryStartup") or 0)
        return cls(
            name=w.text(d["Name"]),
            id=w.text(d["Id"]),
            state=w.enum(d["State"], w.VM_STATE, "VM state"),
            generation=int(d.get("Generation") or 2),
            version=w.version(d.get("Version") or ""),
            clustered=bool(d.get("IsClustered")),
            cpus=int(d.get("ProcessorCount") or 1),
            memory_bytes=assigned or startup,
            uptime_s=w.seconds(
                d["UptimeSeconds"] if d.get("UptimeSeconds") is not None else d.get("Uptime")
            ),
            path=w.our_path(w.text(d.get("Path"))),
            compat_for_migration=bool(d.get("CompatibilityForMigrationEnabled")),
            disks=tuple(
                HvDisk(
                    w.our_path(w.text(x["Path"])),
                    w.enum(x["ControllerType"], w.CONTROLLER_TYPE, "controller type"),
                    int(x.get("ControllerNumber") or 0),
                    int(x.get("ControllerLocation") or 0),
                )
                for x in w.as_list(d.get("Disks"))
            ),
            switches=tuple(
                w.text(n.get("SwitchName"))
                for n in w.as_list(d.get("NetworkAdapters"))
                if n.get("SwitchName")
            ),
        )


def state_of(vm: HvVm) -> VmState:
    # A *Critical state is the same state with the VM's storage out of reach.
    return _STATES.get(vm.state.removesuffix("Critical"), VmState.UNKNOWN)


@dataclass(frozen=True)
class HvNode:
    name: str
    state: str
    drain_status: str


@dataclass(frozen=True)
class HvGroup:
    name: str
    owner: str
    state: str
    queued: bool
    priority: int

    @classmethod
    def parse(cls, d: dict[str, Any]) -> HvGroup:
        owner = d.get("OwnerNode")
        return cls(
            name=w.text(d["Name"]),
            owner=w.text(owner.get("Name") if isinstance(owner, dict) else owner),
            state=w.enum(d["State"], w.GROUP_STATE, "cluster group state"),
            queued=bool(d.get("Queued")),
            priority=int(d.get("Priority") or 0),
        )


@dataclass(frozen=True)
class HvVolume:
    name: str
    path: str
    size: int
    free: int


@dataclass(frozen=True)
class HvCluster:
    name: str
    max_parallel_migrations: int
    nodes: tuple[HvNode, ...]
    groups: tuple[HvGroup, ...]
    volumes: tuple[HvVolume, ...]

    @classmethod
    def parse(cls, d: dict[str, Any]) -> HvCluster:
        return cls(
            name=w.text(d["Cluster"]),
            max_parallel_migrations=int(d.get("MaximumParallelMigrations") or 0),
            nodes=tuple(node(n) for n in w.as_list(d.get("Nodes"))),
            groups=tuple(HvGroup.parse(g) for g in w.as_list(d.get("VmGroups"))),
            volumes=tuple(
                HvVolume(
                    w.text(c["Name"]),
                    w.our_path(w.text(v["Path"])),
                    int(v.get("Size") or 0),
                    int(v.get("FreeSpace") or 0),
                )
                for c in w.as_list(d.get("Csvs"))
                if w.enum(c.get("State", "Online"), w.RESOURCE_STATE, "volume state") == "Online"
                for v in w.as_list(c.get("Volumes"))
            ),
        )


def node(d: dict[str, Any]) -> HvNode:
    return HvNode(
        w.text(d["Name"]),
        w.enum(d["State"], w.NODE_STATE, "node state"),
        w.enum(d.get("DrainStatus", 0), w.DRAIN_STATUS, "drain status"),
    )


@dataclass(frozen=True)
class HvJob:
    """A WMI job (CIM_ConcreteJob / Msvm_MigrationJob)."""

    state: int
    percent: int
    error_code: int
    error: str
    job_type: int = 0
    instance_id: str = ""
    gone: bool = False  # removed TimeBeforeRemoval (5 minutes) after it ended

    FINAL = frozenset({7, 8, 9, 10, 32768})

    @property
    def done(self) -> bool:
        return self.state in self.FINAL

    @property
    def succeeded(self) -> bool:
        # 32768: completed with warnings (os-win's rule); any error code is a failure.
        return self.state in (7, 32768) and self.error_code == 0

    @classmethod
    def parse(cls, d: dict[str, Any]) -> HvJob:
        if d.get("Gone"):
            return cls(0, 0, 0, "", gone=True)
        return cls(
            state=int(d["JobState"]),
            percent=int(d.get("PercentComplete") or 0),
            error_code=int(d.get("ErrorCode") or 0),
            error=w.text(d.get("ErrorDescription") or d.get("ErrorSummaryDescription")),
            job_type=int(d.get("JobType") or 0),
            instance_id=w.text(d.get("InstanceId")),
        )


@dataclass(frozen=True)
class Incompatibility:
    message_id: int
    message: str
    source_type: str


def incompatibilities(d: dict[str, Any]) -> list[Incompatibility]:
    return [
        Incompatibility(int(x["MessageId"]), w.text(x.get("Message")), w.text(x.get("SourceType")))
        for x in w.as_list(d.get("Incompatibilities"))
    ]
