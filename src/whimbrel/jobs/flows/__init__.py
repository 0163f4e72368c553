"""Every flow Whimbrel knows, by op kind."""

from __future__ import annotations

from whimbrel.jobs.flow import FlowRegistry
from whimbrel.jobs.flows import inventory, vm


def registry() -> FlowRegistry:
    return FlowRegistry([*inventory.FLOWS, *vm.FLOWS])
