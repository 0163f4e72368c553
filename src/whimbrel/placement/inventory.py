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
from whimbrel.placement.load import NodeLoad, VmLoad, with_vm
from whimbrel.placement.rating import Needs, Site
from whimbrel.placement.reserve import ReserveVerdict, overcommit
from whimbrel.store.models import Cluster, Host, Vm
from whimbrel.store.repo import cluster_of_vm, is_shared_path

# States in which a VM holds its host's memory (unknown: its host may still run it).
HOLDS_MEMORY = {VmState.RUNNING, VmState.PAUSED, VmState.UNKNOWN}


def load_of(vm: Vm) -> VmLoad:
    return VmLoad(vm.name, vm.memory_mib, vm.vcpus, vm.ha, vm.ha_priority)


def node_of(h: Host) -> NodeLoad:
    """A host's node, without its VMs yet."""
    up = h.state == HostState.CONNECTED
    return NodeLoad(h.name, h.memory_mib, max(1, h.cpus), up=up, maintenance=h.maintenance)


def loads(hosts: list[Host], vms: list[Vm]) -> list[NodeLoad]:
    """Nodes with the VMs that hold their memory, from rows already loaded."""
    by_id = {h.id: node_of(h) for h in hosts}
    for vm in vms:
        node = by_id.get(vm.host_id) if vm.host_id is not None else None
        if node is not None and vm.state in HOLDS_MEMORY:
            node.vms.append(load_of(vm))
    return list(by_id.values())


def sites(s: Session, cluster: str | None = None) -> list[Site]:
    q = select(Host).options(selectinload(Host.networks), selectinload(Host.cluster))
    hosts = list(s.scalars(q))
    if cluster is not None:
        hosts = [h for h in hosts if h.cluster is not None and h.cluster.name == cluster]
    by_id = {h.id: node_of(h) for h in hosts}
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
    cluster = cluster_of_vm(vm) if vm.ha else None
    return Needs(tuple(vm.networks), cluster, reach, vm.host.name if vm.host is not None else None)


def cluster_verdict(
    s: Session, cluster: Cluster, add: tuple[str, VmLoad] | None = None
) -> ReserveVerdict:
    """The cluster's reserve verdict, or what it would be with ``add`` = (host, VM)."""
    nodes = [site.load for site in sites(s, cluster.name)]
    if add is not None:
        nodes = with_vm(nodes, *add)
    return overcommit(nodes, cluster.reserve)
