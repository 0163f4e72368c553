"""What placement and the cluster reserve reason about: nodes and the VMs on them.

Plain dataclasses, built from the store (placement/inventory.py) or by a
benchmark, so the arithmetic is the same at 4 lab hosts and at 64 nodes.
Memory is the resource that decides: a VM cannot start without its memory,
while CPU is shared (it only weighs in the ratings).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class VmLoad:
    name: str
    memory_mib: int
    vcpus: int = 1
    ha: bool = False
    priority: int = 2  # restart order after a failure: 3 high, 2 medium, 1 low


@dataclass
class NodeLoad:
    name: str
    memory_mib: int
    cpus: int = 1
    # Takes VMs: connected and not in maintenance.  A node that does not is
    # neither a survivor nor (its VMs having already left or failed) a failure.
    up: bool = True
    maintenance: bool = False
    vms: list[VmLoad] = field(default_factory=list)

    @property
    def used_mib(self) -> int:
        return sum(v.memory_mib for v in self.vms)

    @property
    def free_mib(self) -> int:
        return self.memory_mib - self.used_mib

    @property
    def ha_mib(self) -> int:
        return sum(v.memory_mib for v in self.vms if v.ha)

    @property
    def vcpus(self) -> int:
        return sum(v.vcpus for v in self.vms)

    def ha_vms(self) -> list[VmLoad]:
        return [v for v in self.vms if v.ha]


def with_vm(nodes: list[NodeLoad], host: str, vm: VmLoad) -> list[NodeLoad]:
    """The nodes as they would be with ``vm`` on ``host`` (moved there if it ran elsewhere)."""
    out = []
    for n in nodes:
        vms = [v for v in n.vms if v.name != vm.name]
        out.append(replace(n, vms=[*vms, vm] if n.name == host else vms))
    return out


def gib(mib: int) -> str:
    return f"{mib / 1024:.1f} GiB"
