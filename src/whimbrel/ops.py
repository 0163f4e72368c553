"""The command model: every change to the fleet is one of these ops.

The CLI and the REST API build the same op and submit it; the runner turns it
into a job through its flow (:mod:`whimbrel.jobs.flows`).  Ops are plain data
and round-trip through JSON, so a job can be rebuilt from the store.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from whimbrel.domain.migration import DEFAULT_POLICY
from whimbrel.errors import InvalidInput


@dataclass(frozen=True)
class Op:
    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class OpHostAdd(Op):
    kind: ClassVar[str] = "host.add"
    name: str
    uri: str
    cluster: str = ""


@dataclass(frozen=True)
class OpHostRefresh(Op):
    kind: ClassVar[str] = "host.refresh"
    name: str


@dataclass(frozen=True)
class OpHostRemove(Op):
    kind: ClassVar[str] = "host.remove"
    name: str


@dataclass(frozen=True)
class OpClusterCreate(Op):
    kind: ClassVar[str] = "cluster.create"
    name: str
    shared_paths: tuple[str, ...] = ()
    reserve: int = 1


@dataclass(frozen=True)
class OpClusterAddHost(Op):
    kind: ClassVar[str] = "cluster.add-host"
    name: str
    host: str


@dataclass(frozen=True)
class OpClusterRemoveHost(Op):
    kind: ClassVar[str] = "cluster.remove-host"
    name: str
    host: str


@dataclass(frozen=True)
class OpClusterDelete(Op):
    kind: ClassVar[str] = "cluster.delete"
    name: str


@dataclass(frozen=True)
class OpClusterSet(Op):
    """Cluster settings; None leaves one as it is."""

    kind: ClassVar[str] = "cluster.set"
    name: str
    reserve: int | None = None
    detection_s: int | None = None
    isolation_response: str | None = None
    heartbeat_dir: str | None = None
    postcopy: str | None = None


@dataclass(frozen=True)
class OpHaSet(Op):
    """Fleet-wide failover guards."""

    kind: ClassVar[str] = "ha.set"
    fence_cap: int | None = None
    fence_window_s: int | None = None


@dataclass(frozen=True)
class OpVmHa(Op):
    """Register a VM as highly available in its cluster (the failover cluster's VM role), or not."""

    kind: ClassVar[str] = "vm.ha"
    name: str
    enabled: bool
    priority: int = 2  # restart order: 3 high, 2 medium, 1 low
    allow_overcommit: bool = False
    cluster: str = ""  # filled in at submission: whose reserve the change spends


@dataclass(frozen=True)
class DiskRequest:
    size_mib: int
    pool: str


@dataclass(frozen=True)
class OpVmCreate(Op):
    kind: ClassVar[str] = "vm.create"
    name: str
    host: str
    memory_mib: int = 256
    vcpus: int = 1
    disks: tuple[DiskRequest, ...] = ()
    networks: tuple[str, ...] = ()
    kernel: str = ""
    initrd: str = ""
    cmdline: str = ""
    start: bool = True
    uuid: str = field(default="")
    ha: bool = False  # highly available in the host's cluster
    allow_overcommit: bool = False
    # Sources (vm_sources.py): the first disk made from a disk image on the host, or from
    # a template, copied ('full') or as an overlay on it ('linked'); an ISO in the CD-ROM.
    image: str = ""
    template: str = ""
    clone: str = ""  # 'full' or 'linked'; an image is copied unless told otherwise
    iso: str = ""
    boot_cdrom: bool = False


@dataclass(frozen=True)
class OpVmCdrom(Op):
    """Insert an ISO into a VM's CD-ROM drive, or eject it (``iso`` empty)."""

    kind: ClassVar[str] = "vm.cdrom"
    name: str
    iso: str = ""


@dataclass(frozen=True)
class OpVmImport(Op):
    """Adopt a domain already defined on a host: recorded as it is, nothing changed."""

    kind: ClassVar[str] = "vm.import"
    host: str
    name: str


@dataclass(frozen=True)
class OpTemplateCreate(Op):
    """Copy a stopped VM's first disk into ``pool`` of its host, with the VM's shape."""

    kind: ClassVar[str] = "template.create"
    name: str
    vm: str
    pool: str


@dataclass(frozen=True)
class OpTemplateDelete(Op):
    kind: ClassVar[str] = "template.delete"
    name: str


@dataclass(frozen=True)
class OpVmStart(Op):
    kind: ClassVar[str] = "vm.start"
    name: str


@dataclass(frozen=True)
class OpVmStop(Op):
    kind: ClassVar[str] = "vm.stop"
    name: str
    force: bool = False
    timeout_s: float = 60.0


@dataclass(frozen=True)
class OpVmSave(Op):
    kind: ClassVar[str] = "vm.save"
    name: str


@dataclass(frozen=True)
class OpVmRestore(Op):
    kind: ClassVar[str] = "vm.restore"
    name: str


@dataclass(frozen=True)
class OpVmDelete(Op):
    kind: ClassVar[str] = "vm.delete"
    name: str
    force: bool = False


@dataclass(frozen=True)
class OpHostMigrationSet(Op):
    """Hyper-V's Enable-VMMigration, Set-VMMigrationNetwork and Set-VMHost in one op.

    A field left None keeps its value.
    """

    kind: ClassVar[str] = "host.migration-set"
    name: str
    enabled: bool | None = None
    max_live_migrations: int | None = None
    max_storage_migrations: int | None = None
    networks: tuple[str, ...] | None = None  # () means any network
    addresses: tuple[str, ...] | None = None
    auth: str | None = None
    performance: str | None = None
    parallel_connections: int | None = None
    encrypt: bool | None = None
    peer_pki: str | None = None


@dataclass(frozen=True)
class OpVmMigrate(Op):
    """Every kind of move: live (with or without storage), storage only, quick, offline."""

    kind: ClassVar[str] = "vm.migrate"
    name: str
    to: str
    include_storage: bool = False
    storage_path: str = ""  # a pool name, or a pool's directory, on the destination
    quick: bool = False
    downtime_ms: int = DEFAULT_POLICY.downtime_ms
    max_downtime_ms: int = DEFAULT_POLICY.max_downtime_ms
    auto_converge: bool = DEFAULT_POLICY.auto_converge
    postcopy: bool = False
    timeout_s_per_gib: float = DEFAULT_POLICY.timeout_s_per_gib
    on_timeout: str = "abort"
    bandwidth_mib_s: int = 0
    ignore: tuple[str, ...] = ()
    source: str = ""  # filled in at submission: where the VM was
    move: str = ""  # filled in at submission: the kind of move (MoveKind)
    # To another cluster (then ``to`` may be left empty: the best node is chosen).
    to_cluster: str = ""
    allow_overcommit: bool = False  # the destination cluster's reserve may be broken
    ha_priority: int = 0  # filled in at submission: the HA role to carry over; 0 none
    native_quick: bool = False  # filled in at submission: the host moves it quick itself


@dataclass(frozen=True)
class OpHostMaintenanceStart(Op):
    """VMM's Start Maintenance Mode: drain the host, then take it out of placement."""

    kind: ClassVar[str] = "host.maintenance-start"
    name: str
    plan: tuple[dict[str, Any], ...] = ()  # filled in at submission: the entries, in order


@dataclass(frozen=True)
class OpHostMaintenanceStop(Op):
    """Re-admit the host; moving VMs back and restoring saved ones only when asked."""

    kind: ClassVar[str] = "host.maintenance-stop"
    name: str
    move_back: bool = False
    restart_saved: bool = False
    back: tuple[str, ...] = ()  # filled in at submission: VMs to move back
    saved: tuple[str, ...] = ()  # filled in at submission: VMs to restore


@dataclass(frozen=True)
class OpHostFenceSet(Op):
    """How failover powers the host off: a fence agent and its options ('' agent: none)."""

    kind: ClassVar[str] = "host.fence-set"
    name: str
    agent: str
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OpHostFailover(Op):
    """Unplanned downtime, as a failover cluster handles it: fence a lost host, restart its HA
    VMs elsewhere."""

    kind: ClassVar[str] = "host.failover"
    name: str
    evidence: str = ""  # what the monitor saw: why the host is taken for lost
    confirmed_off: bool = False  # the administrator says it is off: no agent needed
    approved: bool = False  # the administrator lets its agent fence it past the fence cap
    heartbeat_seq: int = -1  # the storage heartbeat last seen: it must not have moved since
    # An isolated host that stopped these HA VMs itself (isolation response): they
    # restart elsewhere and the host, alive, is not fenced.
    stopped: tuple[str, ...] = ()
    epoch: int = 0  # the leader's epoch that decided it (replicas: ``replica/member.py``)


@dataclass(frozen=True)
class OpVmRecover(Op):
    """Start an HA VM of a lost host on another node, from its shared disks."""

    kind: ClassVar[str] = "vm.recover"
    name: str
    to: str
    source: str


ALL_OPS: tuple[type[Op], ...] = (
    OpHostAdd,
    OpHostRefresh,
    OpHostRemove,
    OpClusterCreate,
    OpClusterAddHost,
    OpClusterRemoveHost,
    OpClusterDelete,
    OpVmCreate,
    OpVmStart,
    OpVmStop,
    OpVmSave,
    OpVmRestore,
    OpVmDelete,
    OpHostMigrationSet,
    OpVmMigrate,
    OpClusterSet,
    OpHaSet,
    OpVmHa,
    OpHostMaintenanceStart,
    OpHostMaintenanceStop,
    OpHostFenceSet,
    OpHostFailover,
    OpVmRecover,
    OpVmCdrom,
    OpVmImport,
    OpTemplateCreate,
    OpTemplateDelete,
)
_BY_KIND = {o.kind: o for o in ALL_OPS}


def op_from_dict(data: dict[str, Any]) -> Op:
    """Rebuild an op from its JSON form (as stored with its job)."""
    data = dict(data)
    cls = _BY_KIND.get(str(data.pop("kind", "")))
    if cls is None:
        raise InvalidInput(
            "E_INVALID_OP", f"unknown op {data!r}", "use one of " + ", ".join(_BY_KIND)
        )
    if cls is OpVmCreate:
        data["disks"] = tuple(DiskRequest(**d) for d in data.get("disks", ()))
        data["networks"] = tuple(data.get("networks", ()))
    if cls is OpClusterCreate:
        data["shared_paths"] = tuple(data.get("shared_paths", ()))
    # JSON lists back to tuples
    for key in ("networks", "addresses", "ignore", "plan", "back", "saved", "stopped"):
        if isinstance(data.get(key), list):
            data[key] = tuple(data[key])
    return cls(**data)
