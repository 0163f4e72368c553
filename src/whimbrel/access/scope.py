"""Which clusters an op touches, read from the store when the request arrives.

None means the fleet itself: a host or VM outside any cluster, a new or removed host,
fleet-wide settings.  Something that does not exist counts as the fleet, so a user
scoped to one cluster learns nothing about names outside it.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from whimbrel.errors import not_found
from whimbrel.ops import (
    Op,
    OpClusterAddHost,
    OpClusterSet,
    OpHostFailover,
    OpHostFenceSet,
    OpHostMaintenanceStart,
    OpHostMaintenanceStop,
    OpHostMigrationSet,
    OpHostRefresh,
    OpVmCdrom,
    OpVmCreate,
    OpVmDelete,
    OpVmHa,
    OpVmImport,
    OpVmMigrate,
    OpVmRestore,
    OpVmSave,
    OpVmStart,
    OpVmStop,
)
from whimbrel.store.models import Cluster, Host, Job, Vm
from whimbrel.store.repo import cluster_of_host

_HOST_OPS = (
    OpHostRefresh,
    OpHostMaintenanceStart,
    OpHostMaintenanceStop,
    OpHostMigrationSet,
    OpHostFenceSet,
    OpHostFailover,
)
_VM_OPS = (OpVmStart, OpVmStop, OpVmSave, OpVmRestore, OpVmDelete, OpVmHa, OpVmCdrom)


def host_cluster(s: Session, host: str) -> str | None:
    h = s.scalar(select(Host).where(Host.name == host))
    return cluster_of_host(h) if h is not None else None


def vm_cluster(s: Session, vm: str) -> str | None:
    v = s.scalar(select(Vm).where(Vm.name == vm))
    return host_cluster(s, v.host.name) if v is not None and v.host is not None else None


def cluster_exists(s: Session, name: str) -> str | None:
    return name if s.scalar(select(Cluster.id).where(Cluster.name == name)) else None


def clusters_of(s: Session, op: Op) -> set[str] | None:
    found: list[str | None]
    if isinstance(op, _HOST_OPS):
        found = [host_cluster(s, op.name)]
    elif isinstance(op, _VM_OPS):
        found = [vm_cluster(s, op.name)]
    elif isinstance(op, OpVmCreate):
        found = [host_cluster(s, op.host) if op.host else None]
    elif isinstance(op, OpVmImport):
        found = [host_cluster(s, op.host)]
    elif isinstance(op, OpVmMigrate):
        found = [vm_cluster(s, op.name)]
        if op.to:
            found.append(host_cluster(s, op.to))
        if op.to_cluster:
            found.append(cluster_exists(s, op.to_cluster))
    elif isinstance(op, OpClusterSet):
        found = [cluster_exists(s, op.name)]
    elif isinstance(op, OpClusterAddHost):
        found = [cluster_exists(s, op.name), host_cluster(s, op.host)]
    else:  # host add and remove, clusters made or deleted, fleet settings, recoveries
        return None
    if any(c is None for c in found):
        return None
    return {c for c in found if c is not None}


def one(cluster: str | None) -> set[str] | None:
    """A single cluster as a scope (None: the fleet)."""
    return None if cluster is None else {cluster}


def shown(seen: set[str] | None, cluster: str | None, kind: str, name: str) -> None:
    """A user scoped to some clusters reads only what is in them: anything else is
    answered as unknown, so that names outside their scope leak nothing."""
    if seen is not None and cluster not in seen:
        raise not_found(kind, name)


def jobs_seen(seen: set[str], user: str) -> ColumnElement[bool]:
    """A scoped user's jobs: their own, and those whose subject is a host or VM of
    their clusters (failovers and drains included)."""
    hosts = select(Host.name).join(Cluster, Host.cluster_id == Cluster.id)
    hosts = hosts.where(Cluster.name.in_(seen))
    vms = select(Vm.name).join(Host, Vm.host_id == Host.id)
    vms = vms.join(Cluster, Host.cluster_id == Cluster.id).where(Cluster.name.in_(seen))
    return or_(Job.user == user, Job.subject.in_(hosts), Job.subject.in_(vms))
