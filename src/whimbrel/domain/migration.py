"""Migration vocabulary: kinds of move, host settings, what a driver is asked and reports.

Hyper-V's names are kept next to ours (Enable-VMMigration,
Set-VMMigrationNetwork, Set-VMHost; the WMI MigrationType values).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from whimbrel.errors import InvalidInput

MIB = 1 << 20
GIB = 1 << 30


class MoveKind(StrEnum):
    LIVE = "live"  # Move-VM; WMI MigrationType 32768 VirtualSystem
    LIVE_STORAGE = "live+storage"  # Move-VM -IncludeStorage; 32771 VirtualSystemAndStorage
    STORAGE = "storage"  # Move-VMStorage; 32769 Storage
    QUICK = "quick"  # quick migration: save, move, restore
    OFFLINE = "offline"  # a stopped VM's definition (and disks) moved


class Auth(StrEnum):
    MANAGED = "managed"  # CredSSP's place: the manager connects to both hosts
    PEER = "peer"  # Kerberos delegation's place: the source logs in to the destination


class Performance(StrEnum):
    TCP = "tcp"  # TCP/IP
    COMPRESSION = "compression"  # Hyper-V's default
    PARALLEL = "parallel"  # SMB multichannel's place: several connections


class OnTimeout(StrEnum):
    ABORT = "abort"  # the VM stays on the source
    FORCE = "force"  # pause the guest (or switch to post-copy) so the copy ends


@dataclass(frozen=True)
class HostMigration:
    """One host's migration settings, as stored (defaults are Hyper-V's)."""

    enabled: bool = True
    max_live_migrations: int = 2
    max_storage_migrations: int = 2
    networks: tuple[str, ...] = ()  # empty: any network (UseAnyNetworkForMigration)
    auth: Auth = Auth.MANAGED
    performance: Performance = Performance.COMPRESSION
    parallel_connections: int = 4
    encrypt: bool = False
    peer_pki: str = ""  # peer auth: the host's own certificate directory

    def allows(self, address: str) -> bool:
        """Whether incoming migration traffic may arrive on ``address``."""
        if not self.networks:
            return True
        ip = ipaddress.ip_interface(address).ip
        return any(ip in ipaddress.ip_network(n, strict=False) for n in self.networks)


def parse_networks(values: list[str]) -> tuple[str, ...]:
    """``any`` or a list of CIDRs (a bare address means that one address)."""
    if values == ["any"] or not values:
        return ()
    out = []
    for v in values:
        try:
            out.append(str(ipaddress.ip_network(v, strict=False)))
        except ValueError as exc:
            raise InvalidInput(
                "E_MIGRATION_NETWORK_INVALID",
                f"{v!r} is not a network in CIDR form",
                "give networks like 10.0.1.0/24 (or 10.0.1.5 for one address), or 'any'",
            ) from exc
    return tuple(out)


class PostCopy(StrEnum):
    """A cluster's word on post-copy.  In post-copy the guest runs on the destination
    while the pages it has not yet received are pulled from the source: the downtime is
    that of one switch-over, but until the last page arrives the VM needs both hosts
    and the link between them (a failure pauses it until the copy is resumed)."""

    NEVER = "never"
    WHEN_NEEDED = "when-needed"


@dataclass(frozen=True)
class Policy:
    """How hard to push a live migration to converge, and when to give up.

    Beyond the anchors (research/anchors.md §3.1): the allowed downtime is
    escalated in steps, then auto-converge throttles the guest.  Where post-copy is
    allowed (``postcopy``: the move's --postcopy or its cluster's when-needed) it takes
    the place of both: the downtime stays at its target and a copy that would not end
    under it switches to post-copy (see ``PostCopy`` for its risk).
    """

    downtime_ms: int = 300
    max_downtime_ms: int = 2000
    auto_converge: bool = True
    postcopy: bool = False
    timeout_s_per_gib: float = 60.0
    on_timeout: OnTimeout = OnTimeout.ABORT
    bandwidth_mib_s: int = 0  # 0: unlimited

    def downtime_ladder(self) -> list[int]:
        """300, 600, 1200 ... up to the maximum: each step doubles the last."""
        out, d = [], self.downtime_ms
        while d < self.max_downtime_ms:
            out.append(d)
            d *= 2
        return [*out, self.max_downtime_ms]


# The one source of the policy's defaults: the op, the API model and the CLI read it.
DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class DiskMove:
    """One disk to copy: where it is, where it goes (same path when left empty)."""

    target: str
    source_path: str
    dest_path: str
    size_bytes: int

    def reversed(self) -> DiskMove:
        """The same copy the other way: how a move is undone."""
        return DiskMove(self.target, self.dest_path, self.source_path, self.size_bytes)


@dataclass(frozen=True)
class MigrationRequest:
    """Everything a driver needs for one live migration; the manager decides all of it."""

    dest_uri: str  # how the source (peer) or the manager (managed) reaches the destination
    address: str  # destination address on the chosen migration network
    auth: Auth
    performance: Performance
    parallel_connections: int = 4
    encrypt: bool = False
    copy_disks: tuple[DiskMove, ...] = ()
    shared_unsafe: bool = False
    policy: Policy = field(default_factory=Policy)
    peer_pki: str = ""  # peer auth: the source host's own credentials directory
    quick: bool = False  # quick migration, for drivers that do it as one operation

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "auth": str(self.auth),
            "performance": str(self.performance),
            "parallel_connections": self.parallel_connections,
            "encrypt": self.encrypt,
            "copy_disks": [d.target for d in self.copy_disks],
        }


@dataclass(frozen=True)
class MigrationStats:
    """One sample of a running (or the final figures of a finished) migration job."""

    active: bool
    elapsed_ms: int = 0
    memory_total: int = 0
    memory_processed: int = 0
    memory_remaining: int = 0
    memory_bps: int = 0
    dirty_rate_pps: int = 0  # pages per second, as QEMU reports it
    page_size: int = 4096
    iteration: int = 0
    disk_total: int = 0
    disk_processed: int = 0
    disk_remaining: int = 0
    disk_bps: int = 0
    downtime_ms: int = 0  # final: real downtime; running: the current limit
    postcopy: bool = False

    @property
    def dirty_bps(self) -> int:
        return self.dirty_rate_pps * self.page_size

    @property
    def remaining(self) -> int:
        return self.memory_remaining + self.disk_remaining


@dataclass(frozen=True)
class MigrationResult:
    total_ms: int
    downtime_ms: int
    memory_bytes: int
    disk_bytes: int
    iterations: int
    strategy: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_ms": self.total_ms,
            "downtime_ms": self.downtime_ms,
            "memory_mib": round(self.memory_bytes / MIB, 1),
            "disk_mib": round(self.disk_bytes / MIB, 1),
            "iterations": self.iterations,
            "strategy": self.strategy,
        }
