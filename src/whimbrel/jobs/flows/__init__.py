"""Every flow Whimbrel knows, by op kind."""

from __future__ import annotations

from whimbrel.jobs.flow import FlowRegistry
from whimbrel.jobs.flows import inventory, vm_create, vm_power


def registry() -> FlowRegistry:
    return FlowRegistry([*inventory.FLOWS, vm_create.VmCreate(), *vm_power.FLOWS])
