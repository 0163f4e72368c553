"""What a driver reports about one hypervisor host."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from whimbrel.domain.migration import HostMigration


class HostState(StrEnum):
    """What is known of a host, from its two liveness channels (see ``ha/liveness.py``).

    * ``connected``: its management connection answers.
    * ``not responding``: the management connection is silent but the host still
      renews its storage heartbeat (or nothing proves it dead): its VMs are left alone.
    * ``isolated``: silent on management, alive on storage, and it reports that it
      cannot reach its peers: the cluster's isolation response applies.
    * ``lost``: both channels silent for the cluster's failure-detection time.
    * ``fenced``: failover powered it off; it stays so until it answers again.
    """

    CONNECTED = "connected"
    NOT_RESPONDING = "not responding"
    ISOLATED = "isolated"
    LOST = "lost"
    FENCED = "fenced"


class IsolationResponse(StrEnum):
    """What a host cut off from its peers but not from its storage does with its HA VMs
    (vSphere HA's host isolation response)."""

    LEAVE = "leave"  # keep them running: nobody else starts them
    SHUTDOWN = "shutdown"  # guest shutdown (ACPI), powered off after a grace time
    POWER_OFF = "power-off"  # stopped at once


#: Failure detection defaults, per cluster.  vSphere HA takes a host for failed
#: after about 15 s without network heartbeats and then checks its datastore
#: heartbeats; Proxmox waits 60 s before fencing.  15 s of silence on *both*
#: channels keeps vSphere's speed while a hung libvirtd (storage still beating)
#: never counts as a failure.
DETECTION_S = 15
DETECTION_MIN_S, DETECTION_MAX_S = 5, 600


@dataclass(frozen=True)
class HostInfo:
    """Inventory of a host, read from the hypervisor.

    ``virt_types`` lists the domain types this host can really run, best first
    (``kvm`` before ``qemu``); a lab host on a machine without hardware KVM
    offers only ``qemu`` (TCG).
    """

    hostname: str
    uuid: str
    arch: str
    cpu_model: str
    cpus: int
    memory_mib: int
    free_memory_mib: int
    hypervisor: str
    hypervisor_version: str
    machine_types: tuple[str, ...]
    virt_types: tuple[str, ...]


@dataclass(frozen=True)
class NetworkInfo:
    name: str
    bridge: str
    active: bool


@dataclass(frozen=True)
class PoolInfo:
    """A storage pool: a directory on the host that holds disk images."""

    name: str
    path: str
    capacity_bytes: int
    available_bytes: int
    active: bool


@dataclass(frozen=True)
class HostInventory:
    info: HostInfo
    networks: tuple[NetworkInfo, ...] = field(default_factory=tuple)
    pools: tuple[PoolInfo, ...] = field(default_factory=tuple)
    # Hosts that keep their own migration settings (Hyper-V's Get-VMHost) report
    # them, with their addresses; for the others the manager's store is the truth.
    migration: HostMigration | None = None
    addresses: tuple[str, ...] = ()
