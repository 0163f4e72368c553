"""What a driver does where the manager itself is the cluster (KVM, the fake fleet).

HA roles, node pauses and migration settings live in Whimbrel's store and are
enforced by the manager, so the hypervisor has nothing to be told.
"""

from __future__ import annotations

from whimbrel.domain.migration import HostMigration


class ManagerIsTheCluster:
    quick_native = False
    creates_copy_targets = False

    def cluster_role(self, name: str, on: bool, priority: int) -> None:
        """The HA registration is the store's record and the VM's disk lease."""

    def node_pause(self, drain: bool) -> None:
        """Maintenance is the store's flag; the manager drains the host itself."""

    def node_resume(self) -> None:
        """Re-admission is the store's flag."""

    def apply_migration_settings(self, m: HostMigration) -> None:
        """The manager enforces the stored settings on every move."""
