"""What a driver reports about one hypervisor host."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from whimbrel.domain.migration import HostMigration


class HostState(StrEnum):
    CONNECTED = "connected"
    UNREACHABLE = "unreachable"


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
