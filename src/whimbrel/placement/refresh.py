"""Recompute the derived HA state: each cluster's reserve verdict and its VMs' findings.

Seed 004's cluster refresher runs after four events: the reserve changed, a
node failed or was removed, a node was added, a new VM appeared.  Whimbrel
calls ``refresh`` at each of them (and ``cluster verify`` / ``vm repair`` on
demand), inside the caller's transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from whimbrel.placement.inventory import cluster_verdict
from whimbrel.placement.reserve import ReserveVerdict
from whimbrel.preflight.cluster import ClusterView, ha_findings
from whimbrel.store.models import Cluster, Host, Vm


def refresh(s: Session, event: str, cluster: str | None = None) -> dict[str, ReserveVerdict]:
    """Refresh one cluster (or all) and every HA VM's findings; return the verdicts."""
    s.flush()
    vms = list(s.scalars(select(Vm).options(selectinload(Vm.disks), selectinload(Vm.host))))
    clusters = list(
        s.scalars(select(Cluster).options(selectinload(Cluster.hosts).selectinload(Host.networks)))
    )
    out = {}
    for c in clusters:
        if cluster is not None and c.name != cluster:
            continue
        view = ClusterView.of(c, vms)
        ids = {h.id for h in c.hosts}
        for vm in vms:
            if vm.host_id in ids:
                vm.findings = [f.to_dict() for f in ha_findings(vm, view)]
        verdict = cluster_verdict(s, c)
        c.overcommit = verdict.to_dict() | {
            "after": event,
            "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        out[c.name] = verdict
    for vm in vms:  # HA VMs on hosts outside any cluster
        if vm.host is not None and vm.host.cluster_id is None:
            vm.findings = [f.to_dict() for f in ha_findings(vm, None)]
    return out


def cluster_of_vm(vm: Vm) -> str | None:
    return vm.host.cluster.name if vm.host is not None and vm.host.cluster else None
