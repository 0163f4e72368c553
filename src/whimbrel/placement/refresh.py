"""Recompute the derived HA state: each cluster's reserve verdict and its VMs' findings.

VMM's cluster refresher runs after four events: the reserve changed, a
node failed or was removed, a node was added, a new VM appeared.  Whimbrel
calls ``refresh`` at each of them (and ``cluster verify`` / ``vm repair`` on
demand), inside the caller's transaction.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from whimbrel.placement.inventory import loads
from whimbrel.placement.reserve import ReserveVerdict, overcommit
from whimbrel.preflight.cluster import ClusterView, disk_users, ha_findings
from whimbrel.store.models import Cluster, Host, Vm


def refresh(s: Session, event: str, cluster: str | None = None) -> dict[str, ReserveVerdict]:
    """Refresh one cluster (or all) and every HA VM's findings; return the verdicts."""
    s.flush()
    q = select(Vm).options(selectinload(Vm.disks), selectinload(Vm.host))
    cq = select(Cluster).options(selectinload(Cluster.hosts).selectinload(Host.networks))
    if cluster is not None:  # one cluster's event reads that cluster, not the fleet
        cq = cq.where(Cluster.name == cluster)
        q = q.join(Host, Vm.host_id == Host.id).join(Cluster, Host.cluster_id == Cluster.id)
        q = q.where(Cluster.name == cluster)
    vms = list(s.scalars(q))
    clusters = list(s.scalars(cq))
    users = disk_users(s, None if cluster is None else [d.path for v in vms for d in v.disks])
    by_host: dict[int | None, list[Vm]] = defaultdict(list)
    for vm in vms:
        by_host[vm.host_id].append(vm)
    out = {}
    for c in clusters:
        if cluster is not None and c.name != cluster:
            continue
        view = ClusterView.of(c, users)
        members = [vm for h in c.hosts for vm in by_host[h.id]]
        for vm in members:
            _set_findings(vm, view)
        verdict = overcommit(loads(c.hosts, members), c.reserve)
        c.overcommit = verdict.to_dict() | {
            "after": event,
            "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        out[c.name] = verdict
    for vm in vms:  # HA VMs on hosts outside any cluster
        if vm.host is not None and vm.host.cluster_id is None:
            _set_findings(vm, None)
    return out


def refresh_where(s: Session, event: str, clusters: set[str | None]) -> None:
    """Refresh just the clusters an event touched (None: hosts outside any cluster),
    not the whole fleet: a VM moved, started or removed changes two at most."""
    for name in sorted(c for c in clusters if c is not None):
        refresh(s, event, name)
    if None in clusters:
        s.flush()
        q = select(Vm).join(Host, Vm.host_id == Host.id).where(Host.cluster_id.is_(None))
        for vm in s.scalars(q.options(selectinload(Vm.disks), selectinload(Vm.host))):
            _set_findings(vm, None)


def _set_findings(vm: Vm, view: ClusterView | None) -> None:
    found = [f.to_dict() for f in ha_findings(vm, view)]
    if vm.findings != found:  # unchanged rows are not rewritten (thousands per event)
        vm.findings = found
