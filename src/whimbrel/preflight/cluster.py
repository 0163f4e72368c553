"""An HA VM's "unsupported cluster configuration": what would stop it failing over.

VMM's highly available VMs, "Troubleshooting the
'unsupported cluster configuration' state of highly available VMs", one check per
listed cause.  A cluster is read once
(``ClusterView``) so that verifying thousands of VMs costs one pass.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from whimbrel.preflight.finding import Finding, Severity
from whimbrel.store.models import Cluster, Disk, Vm
from whimbrel.store.repo import on_shared_storage

E, W = Severity.ERROR, Severity.WARNING


@dataclass(frozen=True)
class ClusterView:
    cluster: Cluster
    # network name (casefolded) -> {node: bridge}; common when every node has it, on one bridge
    networks: dict[str, dict[str, str]]
    machines: set[str]  # machine types every node offers
    disk_users: Counter[str]  # disk path -> VMs using it (every VM the manager knows)
    largest_node_mib: dict[str, int]  # node -> memory of the largest *other* node

    @classmethod
    def of(cls, cluster: Cluster, users: Counter[str]) -> ClusterView:
        nodes = cluster.hosts
        nets: dict[str, dict[str, str]] = {}
        for h in nodes:
            for n in h.networks:
                nets.setdefault(n.name.casefold(), {})[h.name] = n.bridge
        machines = set.intersection(*(set(h.machine_types) for h in nodes)) if nodes else set()
        biggest = {
            h.name: max((o.memory_mib for o in nodes if o.id != h.id), default=0) for h in nodes
        }
        return cls(cluster, nets, machines, users, biggest)


def disk_users(s: Session, paths: list[str] | None = None) -> Counter[str]:
    """How many VMs use each disk path (of ``paths``, or every one), over every VM the
    manager knows (one query)."""
    q = select(Disk.path)
    if paths is not None:
        q = q.where(Disk.path.in_(paths))
    return Counter(s.scalars(q))


def ha_findings(vm: Vm, view: ClusterView | None, assume_ha: bool = False) -> list[Finding]:
    """Every reason ``vm`` could not fail over; [] for a VM that is not HA (or assumed so)."""
    if not (vm.ha or assume_ha):
        return []
    subject = f"VM {vm.name}"
    if view is None:
        return [
            Finding(
                "E_HA_NOT_CLUSTERED",
                E,
                subject,
                f"VM {vm.name} is highly available but its host is in no cluster",
                "move it to a clustered host, or disable HA ('whimbrel vm ha disable')",
            )
        ]
    c = view.cluster
    nodes = c.hosts
    out: list[Finding] = []
    for d in vm.disks:
        # "バーチャル マシンが非クラスター記憶領域を使用している"
        if not on_shared_storage(c, d.path):  # the same answer for every node
            out.append(
                Finding(
                    "E_HA_DISK_NOT_SHARED",
                    E,
                    subject,
                    f"disk {d.target} ({d.path}) is not on storage every node of cluster "
                    f"{c.name} shares, so no other node could start the VM",
                    f"move the disk to the cluster's shared storage ('whimbrel vm migrate "
                    f"{vm.name} --to HOST --include-storage --storage-path POOL')",
                )
            )
        # "複数のバーチャル マシンを含む非 CSV LUN": one image used by two VMs.
        if view.disk_users[d.path] > 1:
            out.append(
                Finding(
                    "E_HA_DISK_IN_USE",
                    E,
                    subject,
                    f"disk {d.path} is also attached to another VM: the two could not fail "
                    "over independently, and both would write it",
                    "give each VM its own disk image",
                )
            )
        if d.backing and not on_shared_storage(c, d.backing):
            out.append(
                Finding(
                    "E_HA_BACKING_NOT_SHARED",
                    E,
                    subject,
                    f"disk {d.target} is a linked clone of {d.backing}, which is not on "
                    f"storage every node of cluster {c.name} shares",
                    "keep templates on the cluster's shared storage, or make the VM from a "
                    "full clone",
                )
            )
    # VMM: "an ISO image attached to the VM is not on shared storage".
    if vm.cdrom and not on_shared_storage(c, vm.cdrom):
        out.append(
            Finding(
                "E_HA_ISO_NOT_SHARED",
                E,
                subject,
                f"the ISO in VM {vm.name}'s CD-ROM ({vm.cdrom}) is not on storage every node "
                f"of cluster {c.name} shares, so no other node could start the VM",
                f"eject it ('whimbrel vm eject {vm.name}') or copy it to the cluster's shared "
                f"storage and insert that copy; then 'whimbrel vm repair {vm.name}'",
            )
        )
    for net in vm.networks:
        # "共通仮想ネットワーク": same name (any case) and same bridge on every node.
        on = view.networks.get(net.casefold(), {})
        missing = [h.name for h in nodes if h.name not in on]
        bridges = set(on.values())
        if missing or len(bridges) > 1:
            why = (
                f"is missing on {', '.join(missing)}"
                if missing
                else f"uses different bridges on the nodes ({', '.join(sorted(bridges))})"
            )
            out.append(
                Finding(
                    "E_HA_NETWORK_NOT_COMMON",
                    E,
                    subject,
                    f"network {net!r} {why}: after a failover the VM could lose its network",
                    f"define {net!r} on every node of {c.name} with the same bridge, then "
                    f"'whimbrel cluster verify {c.name}'",
                )
            )
    if view.machines and vm.machine not in view.machines:
        out.append(
            Finding(
                "E_HA_MACHINE_NOT_COMMON",
                E,
                subject,
                f"machine type {vm.machine} is not offered by every node of {c.name}",
                "upgrade QEMU on the nodes that lack it, or recreate the VM with a common type",
            )
        )
    if len(nodes) < 2:
        out.append(
            Finding(
                "W_HA_SINGLE_NODE",
                W,
                subject,
                f"cluster {c.name} has one node: there is nowhere to fail over to",
                f"add a node ('whimbrel cluster add-host {c.name} HOST')",
            )
        )
    elif vm.host is not None and vm.memory_mib > view.largest_node_mib.get(vm.host.name, 0):
        out.append(
            Finding(
                "E_HA_TOO_BIG",
                E,
                subject,
                f"VM {vm.name} needs {vm.memory_mib} MiB, more than any other node of "
                f"{c.name} has in total",
                "give it less memory or add a larger node",
            )
        )
    return out
