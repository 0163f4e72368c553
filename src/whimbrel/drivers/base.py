"""The driver interface: one connection to one hypervisor host.

Small on purpose (Nova's 111-method driver is the counter-example): typed
dataclasses in and out, no opaque dicts, every error one of
:mod:`whimbrel.errors`.  The orchestrator owns control flow; a driver never
calls back into the manager.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from whimbrel.domain.host import HostInventory
from whimbrel.domain.image import ImageInfo
from whimbrel.domain.migration import (
    DiskMove,
    HostMigration,
    MigrationRequest,
    MigrationResult,
    MigrationStats,
)
from whimbrel.domain.vm import DomainEvent, DomainInfo, DomainSpec, Heartbeat


class HostDriver(Protocol):
    uri: str
    # Hyper-V creates the destination's disk files itself in a move with storage.
    creates_copy_targets: bool
    # The hypervisor can switch a live migration to post-copy (and resume a broken one).
    has_postcopy: bool

    def inventory(self) -> HostInventory:
        """CPU, memory, machine types, virt types, networks and storage pools.

        Raises: HostUnreachable, HypervisorError.
        """
        ...

    def free_memory_mib(self) -> int:
        """Memory a new guest can still get on this host."""
        ...

    def list_domains(self) -> list[DomainInfo]:
        """Every domain the host knows, running or defined."""
        ...

    def domain(self, name: str) -> DomainInfo:
        """Raises: NotFound (E_DOMAIN_NOT_FOUND) when the host does not know it."""
        ...

    def create_volume(self, pool: str, name: str, size_bytes: int, fmt: str) -> str:
        """Create an empty disk image in ``pool``; return its path on the host.

        Raises: NotFound (pool), Conflict (volume exists), InsufficientResources.
        """
        ...

    def delete_volume(self, path: str) -> None:
        """Delete a disk image by path; a missing one is not an error."""
        ...

    def image(self, path: str) -> tuple[ImageInfo, bytes]:
        """The file at ``path`` in one of this host's pools, and its first HEAD_BYTES.

        Raises: NotFound (E_IMAGE_NOT_FOUND) for a path in no pool of the host.
        """
        ...

    def clone_volume(self, pool: str, name: str, source: str, size_bytes: int, linked: bool) -> str:
        """A new qcow2 image in ``pool`` made from the image at ``source``: a full copy,
        or (``linked``) an overlay whose backing file is ``source``; grown to
        ``size_bytes`` when that is larger.  Returns its path on the host.

        Raises: NotFound, Conflict, InsufficientResources (E_NO_SPACE), InvalidInput.
        """
        ...

    def describe(self, name: str) -> DomainSpec:
        """The domain's definition as a spec (for an import).  Raises: NotFound."""
        ...

    def set_cdrom(self, name: str, path: str) -> None:
        """Put ``path`` in the domain's CD-ROM drive ("" ejects), in its definition and,
        when it runs, live.  Raises: NotFound, WrongState (E_NO_CDROM_DRIVE)."""
        ...

    def define(self, spec: DomainSpec) -> None:
        """Define (persist, not start) a domain.  Raises: Conflict, HypervisorError."""
        ...

    def undefine(self, name: str) -> None:
        """Forget a stopped domain and its saved state; a missing one is not an error."""
        ...

    def start(self, name: str) -> None:
        """Start, resuming from saved state when there is one.

        Raises: LockConflict (a disk lease is held elsewhere),
        InsufficientResources, HypervisorError.
        """
        ...

    def shutdown(self, name: str, timeout_s: float) -> None:
        """Ask the guest to power off; wait for it.  Raises: WrongState on timeout."""
        ...

    def power_off(self, name: str) -> None:
        """Stop at once, like pulling the plug; stopped already is not an error."""
        ...

    def save(self, name: str) -> None:
        """Save memory and device state on the host and stop (Hyper-V's Save-VM)."""
        ...

    def discard_saved(self, name: str) -> None:
        """Drop saved state so that the next start boots afresh."""
        ...

    def heartbeat(self, name: str, timeout_s: float = 1.5) -> Heartbeat | None:
        """The newest line of the guest's heartbeat channel, or None if it is silent."""
        ...

    def events(self) -> list[DomainEvent]:
        """Lifecycle events the host pushed since the last call (each given once)."""
        ...

    def last_event(self, name: str, kind: str) -> float | None:
        """When (wall clock, this process's) the host last pushed a ``kind`` event of the
        domain, whoever drained the queue; None if it never did or pushes none."""
        ...

    # -- migration: small calls, the manager's flow owns the control loop ------

    def relocate_disks(self, name: str, paths: dict[str, str]) -> None:
        """Point the persistent definition's disks (target → path) at their new files."""
        ...

    def domain_cpu(self, name: str) -> str:
        """The CPU the guest was defined with, as the hypervisor describes it."""
        ...

    def compare_cpu(self, cpu_xml: str, virt_type: str) -> list[str]:
        """CPU features a guest needs that this host lacks; [] when it can run it."""
        ...

    def dirty_rate(self, name: str, seconds: int = 1) -> int:
        """Bytes per second the running guest dirties; -1 when it cannot be measured."""
        ...

    def check_peer_trust(self, dest_uri: str, peer_pki: str) -> None:
        """Prove this host can log in to ``dest_uri`` itself.  Raises: HostUntrusted."""
        ...

    def migrate(self, name: str, req: MigrationRequest, auto_converge: bool) -> None:
        """Move the domain to the destination; blocks until done.

        On any error the domain is still defined and running (or stopped) here.
        Raises: HostUntrusted, HypervisorError, WrongState (aborted).
        """
        ...

    def migration_stats(self, name: str) -> MigrationStats:
        """The running migration job of ``name`` (``active`` False when none)."""
        ...

    def migration_result(self, name: str, strategy: list[str]) -> MigrationResult:
        """On the destination: the final figures of the migration that brought ``name``."""
        ...

    def tune_migration(self, name: str, downtime_ms: int = 0, postcopy: bool = False) -> None:
        """Raise the allowed downtime, or switch a running migration to post-copy."""
        ...

    def abort_migration(self, name: str) -> None:
        """Stop a running migration; the guest keeps running here."""
        ...

    def pause_postcopy(self, name: str) -> None:
        """Stop a post-copy that no longer moves so that it can be resumed (the guest waits
        paused on the destination).  Raises: HypervisorError."""
        ...

    def resume_postcopy(self, name: str, req: MigrationRequest) -> None:
        """Carry a broken post-copy on from where it stopped; blocks until done.
        Raises: HypervisorError (still broken: it can be tried again)."""
        ...

    def pause(self, name: str) -> None: ...

    def resume(self, name: str) -> None: ...

    def move_disks(
        self, name: str, moves: list[DiskMove], progress: Callable[[int, int], None]
    ) -> None:
        """Copy a running VM's disks to new paths on this host and switch to them.

        On error the VM keeps its old disks.  Raises: HypervisorError.
        """
        ...

    def save_to(self, name: str, path: str) -> None:
        """Save memory and device state to ``path`` and stop (quick migration)."""
        ...

    def restore_from(self, path: str) -> None:
        """Resume here a guest saved with :meth:`save_to` (its domain defined here first)."""
        ...

    def close(self) -> None: ...


class OwnClusterHost(HostDriver, Protocol):
    """A host whose hypervisor keeps its own failover cluster, roles and migration
    settings (Hyper-V): Whimbrel tells it of each change (see drivers.keeps_own_cluster).
    On KVM the manager is the cluster and its store keeps the settings."""

    def cluster_role(self, name: str, on: bool, priority: int) -> None:
        """Make the VM a role of the host's failover cluster, or remove it from it."""
        ...

    def node_pause(self, drain: bool) -> None:
        """Take this node out of its cluster's placement (maintenance); ``drain``
        also has the cluster move what is left and waits for it."""
        ...

    def node_resume(self) -> None:
        """The node takes roles again (no failback: Whimbrel moves VMs back itself)."""
        ...

    def apply_migration_settings(self, m: HostMigration) -> None:
        """Write the migration settings to a host that keeps its own."""
        ...
