"""Every flow Whimbrel knows, by op kind."""

from __future__ import annotations

from whimbrel.jobs.flow import FlowRegistry
from whimbrel.jobs.flows import (
    failover,
    ha,
    host_migration,
    inventory,
    maintenance,
    templates,
    vm_create,
    vm_media,
    vm_migrate,
    vm_power,
)


def registry() -> FlowRegistry:
    return FlowRegistry(
        [
            *inventory.FLOWS,
            host_migration.HostMigrationSet(),
            vm_create.VmCreate(),
            *vm_power.FLOWS,
            vm_migrate.VmMigrate(),
            ha.ClusterSet(),
            ha.VmHa(),
            *maintenance.FLOWS,
            *failover.FLOWS,
            *vm_media.FLOWS,
            *templates.FLOWS,
        ]
    )
