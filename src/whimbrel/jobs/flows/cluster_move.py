"""A move to another cluster (SCVMM's cross-cluster live migration) as one job.

preflight on both clusters → remove the VM's HA role from the source cluster →
the live migration's own steps (with its storage when the clusters share none)
→ add the HA role in the destination cluster.  Any failure undoes the steps
done in reverse: the move undoes itself, then the VM is registered in its
source cluster again.  While the job runs it holds the VM's lock, and the VM
is no HA role of the source cluster, so the source's failover never tries to
recover a VM that is leaving it.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy.orm import Session

from whimbrel.errors import InvalidInput, NotFound, WrongState
from whimbrel.jobs.flows import migrate_steps as ms
from whimbrel.jobs.flows.vm_common import own_cluster
from whimbrel.jobs.step import FnStep, JobContext, Step, StepResult
from whimbrel.ops import OpVmMigrate
from whimbrel.placement.inventory import cluster_verdict, load_of, needs_of, reserves, sites
from whimbrel.placement.rating import rate
from whimbrel.placement.refresh import refresh
from whimbrel.placement.reserve import overcommitted
from whimbrel.preflight.cluster import ClusterView, disk_users, ha_findings
from whimbrel.preflight.finding import Finding, HostDrivers, PreflightFailed, blocking
from whimbrel.preflight.migration import Plan, preflight
from whimbrel.store.models import Cluster, Vm
from whimbrel.store.repo import cluster_of_vm, get_cluster, get_host, get_vm, on_shared_storage

# What registration in the destination cannot judge before the disks have moved.
AFTER_THE_MOVE = {"E_HA_DISK_NOT_SHARED", "E_HA_TOO_BIG"}


def resolve(s: Session, op: OpVmMigrate) -> OpVmMigrate:
    """Fill in the destination host (the best-rated node of the cluster) and the
    storage: copied into the cluster's shared pool unless the disks already are on it."""
    vm = get_vm(s, op.name)
    dest = get_cluster(s, op.to_cluster)
    source = cluster_of_vm(vm)
    if source == dest.name:
        raise InvalidInput(
            "E_SAME_CLUSTER",
            f"VM {op.name} is already in cluster {dest.name}",
            f"use 'whimbrel vm migrate {op.name} --to HOST' to move it within the cluster",
        )
    copy = not all(on_shared_storage(dest, d.path) for d in vm.disks)
    to = op.to or _best_node(s, vm, dest, copy)
    host = get_host(s, to)
    if host.cluster is None or host.cluster.name != dest.name:
        raise InvalidInput(
            "E_HOST_NOT_IN_CLUSTER",
            f"host {to} is not a node of cluster {dest.name}",
            f"name one of {', '.join(h.name for h in dest.hosts)}, or leave --to out",
        )
    path = op.storage_path
    if copy and not path:
        shared = [p.name for p in host.pools if p.active and on_shared_storage(dest, p.path)]
        if not shared:
            raise WrongState(
                "E_NO_SHARED_POOL",
                f"host {to} has no pool on the shared storage of cluster {dest.name}",
                "define a pool on the cluster's shared storage, or give --storage-path",
            )
        path = shared[0]
    priority = vm.ha_priority if vm.ha else 0
    return dataclasses.replace(
        op, to=to, include_storage=copy, storage_path=path, ha_priority=priority
    )


def _best_node(s: Session, vm: Vm, dest: Cluster, copy: bool) -> str:
    needs = dataclasses.replace(needs_of(s, vm, copy), cluster=dest.name)
    here = [st for st in sites(s) if st.cluster == dest.name]
    # The reserve is judged by preflight, with its own finding and override.
    ratings = rate(load_of(vm), needs, here, reserves(s), allow_overcommit=True)
    best = next((r for r in ratings if r.eligible), None)
    if best is None:
        raise NotFound(
            "E_NO_HOST_IN_CLUSTER",
            f"no node of cluster {dest.name} can take VM {vm.name}",
            "see why per node with 'whimbrel vm place' and free capacity there",
            "\n".join(f"{r.host}: {', '.join(r.reasons)}" for r in ratings),
        )
    return best.host


def cluster_findings(s: Session, op: OpVmMigrate) -> list[Finding]:
    """The destination cluster's side: its reserve, and whether the VM can be HA there."""
    vm = get_vm(s, op.name)
    dest = get_cluster(s, op.to_cluster)
    if not vm.ha:
        return []
    out = [
        f
        for f in ha_findings(vm, ClusterView.of(dest, disk_users(s)), assume_ha=True)
        if f.code not in AFTER_THE_MOVE
    ]
    verdict = cluster_verdict(s, dest, add=(op.to, dataclasses.replace(load_of(vm), ha=True)))
    if verdict.overcommitted and not op.allow_overcommit:
        out.append(overcommitted(dest.name, dest.reserve, vm.name, verdict))
    return out


def check(s: Session, op: OpVmMigrate, conns: HostDrivers) -> Plan:
    """Preflight on both clusters: the move's own checks and the destination's."""
    plan = preflight(op, s, conns)
    return dataclasses.replace(plan, findings=plan.findings + tuple(cluster_findings(s, op)))


def steps(op: OpVmMigrate, move: list[Step]) -> list[Step]:
    """The move's steps (its preflight first) wrapped in the HA role's removal and addition."""
    pre, rest = move[0], move[1:]
    # The source's disk images are deleted last, after registration: a failure
    # before that still finds them, and the move back needs them.
    tail = [st for st in rest if st.name == ms.CLEANUP]
    rest = [st for st in rest if st.name != ms.CLEANUP]

    def both(ctx: JobContext) -> StepResult:
        """Undo: nothing, it only reads."""
        result = pre.do(ctx)
        with ctx.sessions() as s:
            found = cluster_findings(s, op)
        if blocking(found):
            raise PreflightFailed(found)
        return result

    def set_ha(ctx: JobContext, on: bool, event: str) -> None:
        # The cluster's own role first (Hyper-V): if it refuses, the store is unchanged.
        with ctx.sessions() as s:
            vm = get_vm(s, op.name)
            host = vm.host.name if vm.host else op.source
        drv = own_cluster(ctx, host)
        if drv is not None:
            drv.cluster_role(op.name, on, op.ha_priority)
        with ctx.sessions.begin() as s:
            vm = get_vm(s, op.name)
            vm.ha, vm.ha_priority = on, op.ha_priority
            refresh(s, event, cluster_of_vm(vm))

    def unregister(ctx: JobContext) -> StepResult:
        """Undo: the VM is an HA role of its source cluster again, same priority."""
        set_ha(ctx, False, f"HA VM {op.name} leaves for cluster {op.to_cluster}")
        return {"cluster": ms.plan_of(ctx).source}

    def reregister(ctx: JobContext, r: StepResult) -> None:
        set_ha(ctx, True, f"HA VM {op.name} stays")

    def register(ctx: JobContext) -> StepResult:
        """Undo: the VM is no HA role of the destination cluster."""
        with ctx.sessions() as s:
            vm = get_vm(s, op.name)
            view = ClusterView.of(get_cluster(s, op.to_cluster), disk_users(s))
            errs = blocking(ha_findings(vm, view, assume_ha=True))
        if errs:
            raise WrongState(
                "E_HA_UNSUPPORTED_CONFIGURATION",
                f"VM {op.name} cannot be HA in cluster {op.to_cluster}: "
                + "; ".join(f.cause for f in errs),
                "; ".join(dict.fromkeys(f.fix for f in errs)),
            )
        set_ha(ctx, True, f"new HA VM {op.name}")
        return {"cluster": op.to_cluster}

    def unregister_dest(ctx: JobContext, r: StepResult) -> None:
        set_ha(ctx, False, f"HA VM {op.name} removed")

    leave = f"remove VM {op.name}'s HA role from the cluster of {op.source}"
    out: list[Step] = [
        FnStep("preflight", f"preflight on both clusters for VM {op.name}", both),
    ]
    if op.ha_priority:
        out.append(FnStep("unregister", leave, unregister, reregister))
    out += rest
    if op.ha_priority:
        out.append(
            FnStep(
                "register",
                f"add VM {op.name} to cluster {op.to_cluster} as an HA role",
                register,
                unregister_dest,
            )
        )
    return out + tail
