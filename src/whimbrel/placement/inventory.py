"""Placement's view of the store: hosts as sites, VMs as loads, in two queries.

The memory a host offers is what the store knows is allocated (the VMs placed
on it), not the hypervisor's momentary free figure: a VM being restarted or
moved counts at once, and the result is the same for every caller.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from whimbrel.domain.host import HostState
from whimbrel.domain.vm import VmState
from whimbrel.placement.load import NodeLoad, VmLoad
from whimbrel.placement.rating import Needs, Site
from whimbrel.placement.reserve import ReserveVerdict, overcommit
from whimbrel.store.models import Cluster, Host, Vm
from whimbrel.store.repo import is_shared_path

# States in which a VM holds its host's memory (unknown: its host may still run it).
HOLDS_MEMORY = {VmState.RUNNING, VmState.PAUSED, VmState.UNKNOWN}


def load_of(vm: Vm) -> VmLoad:
    return VmLoad(vm.name, vm.memory_mib, vm.vcpus, vm.ha, vm.ha_priority)


def sites(s: Session, cluster: str | None = None) -> list[Site]:
    q = select(Host).options(selectinload(Host.networks), selectinload(Host.cluster))
    hosts = list(s.scalars(q))
    if cluster is not None:
        hosts = [h for h in hosts if h.cluster is not None and h.cluster.name == cluster]
    by_id = {
        h.id: NodeLoad(
            h.name,
            h.memory_mib,
            max(1, h.cpus),
            up=h.state == HostState.CONNECTED,
            maintenance=h.maintenance,
        )
        for h in hosts
    }
    rows = s.execute(
        select(Vm.host_id, Vm.name, Vm.memory_mib, Vm.vcpus, Vm.ha, Vm.ha_priority, Vm.state)
    )
    for host_id, name, mem, vcpus, ha, prio, state in rows:
        node = by_id.get(host_id) if host_id is not None else None
        if node is not None and state in HOLDS_MEMORY:
            node.vms.append(VmLoad(name, mem, vcpus, ha, prio))
    return [
        Site(
            by_id[h.id],
            h.cluster.name if h.cluster else None,
            frozenset(n.name.casefold() for n in h.networks if n.active),
        )
        for h in hosts
    ]


def reserves(s: Session) -> dict[str, int]:
    return {c.name: c.reserve for c in s.scalars(select(Cluster))}


def needs_of(s: Session, vm: Vm, copy_storage: bool = False) -> Needs:
    """What ``vm`` needs: its networks, its cluster if HA, hosts that reach its disks."""
    reach = None
    if not copy_storage:
        hosts = s.scalars(select(Host).options(selectinload(Host.cluster))).all()
        reach = frozenset(
            h.name
            for h in hosts
            if all(
                is_shared_path(h, d.path) or (vm.host is not None and h.id == vm.host.id)
                for d in vm.disks
            )
        )
    cluster = vm.host.cluster.name if vm.ha and vm.host and vm.host.cluster else None
    return Needs(tuple(vm.networks), cluster, reach, vm.host.name if vm.host is not None else None)


def cluster_verdict(
    s: Session, cluster: Cluster, reserve: int | None = None, as_ha: VmLoad | None = None
) -> ReserveVerdict:
    """The reserve verdict, optionally for another ``reserve`` or with one VM made HA."""
    nodes = [site.load for site in sites(s, cluster.name)]
    if as_ha is not None:
        for n in nodes:
            n.vms = [as_ha if v.name == as_ha.name else v for v in n.vms]
    return overcommit(nodes, cluster.reserve if reserve is None else reserve)
