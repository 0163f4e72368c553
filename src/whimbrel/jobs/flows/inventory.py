"""Flows that change the inventory: hosts and clusters."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from whimbrel.connections import ConnectionPool
from whimbrel.domain.job import FINAL_JOB_STATES
from whimbrel.domain.vm import check_name
from whimbrel.drivers import check_uri
from whimbrel.errors import Conflict, InvalidInput, WrongState, already_exists
from whimbrel.jobs.flow import Flow
from whimbrel.jobs.step import FnStep, JobContext, Step, StepResult
from whimbrel.ops import (
    OpClusterAddHost,
    OpClusterCreate,
    OpClusterDelete,
    OpClusterRemoveHost,
    OpHostAdd,
    OpHostRefresh,
    OpHostRemove,
)
from whimbrel.placement.refresh import refresh
from whimbrel.store.models import Cluster, Host, Job, SharedStorage
from whimbrel.store.repo import (
    apply_domains,
    apply_inventory,
    busy_vms,
    follow_moves,
    get_cluster,
    get_host,
)


class HostAdd(Flow):
    op_type = OpHostAdd

    def locks(self, op: OpHostAdd) -> list[str]:
        return [f"host:{op.name}"]

    def validate(self, op: OpHostAdd, s: Session, conns: ConnectionPool) -> None:
        check_name("host", op.name)
        check_uri(op.uri)
        if s.scalar(select(Host).where(Host.name == op.name)) is not None:
            raise already_exists("host", op.name)
        other = s.scalar(select(Host).where(Host.uri == op.uri))
        if other is not None:
            raise Conflict(
                "E_HOST_URI_EXISTS",
                f"host {other.name!r} already uses URI {op.uri}",
                "a host is added once; use that name",
            )
        if op.cluster:
            get_cluster(s, op.cluster)

    def steps(self, op: OpHostAdd) -> list[Step]:
        def connect(ctx: JobContext) -> StepResult:
            """Undo: none; connecting and reading change nothing."""
            drv = ctx.driver_for_uri(op.uri)
            inv = drv.inventory()
            return {"hostname": inv.info.hostname, "virt_types": list(inv.info.virt_types)}

        def record(ctx: JobContext) -> StepResult:
            """Undo: delete the host row (and its networks, pools and settings)."""
            inv = ctx.driver_for_uri(op.uri).inventory()
            with ctx.sessions.begin() as s:
                if s.scalar(select(Host).where(Host.name == op.name)) is not None:
                    raise already_exists("host", op.name)
                host = Host(name=op.name, uri=op.uri)
                if op.cluster:
                    host.cluster = get_cluster(s, op.cluster)
                apply_inventory(host, inv)
                s.add(host)
                refresh(s, "node added", op.cluster or None)
            return {"name": op.name}

        def unrecord(ctx: JobContext, _r: StepResult) -> None:
            with ctx.sessions.begin() as s:
                host = s.scalar(select(Host).where(Host.name == op.name))
                if host is not None:
                    s.delete(host)

        return [
            FnStep("connect", f"connect to {op.uri} over TLS and read its inventory", connect),
            FnStep("record", f"record host {op.name} in the inventory", record, unrecord),
        ]


class HostRefresh(Flow):
    op_type = OpHostRefresh

    def locks(self, op: OpHostRefresh) -> list[str]:
        return [f"host:{op.name}"]

    def validate(self, op: OpHostRefresh, s: Session, conns: ConnectionPool) -> None:
        get_host(s, op.name)

    def steps(self, op: OpHostRefresh) -> list[Step]:
        def refresh(ctx: JobContext) -> StepResult:
            """Undo: none; the inventory read is the truth either way."""
            drv = ctx.driver(op.name)
            inv = drv.inventory()
            domains = {d.name: d.state for d in drv.list_domains()}
            with ctx.sessions.begin() as s:
                host = get_host(s, op.name)
                apply_inventory(host, inv)
                busy = busy_vms(s)
                apply_domains(s, host, domains, busy)
                follow_moves(s, host, domains, busy)
            return {"free_memory_mib": inv.info.free_memory_mib}

        return [FnStep("refresh", f"read the inventory of host {op.name}", refresh)]


class HostRemove(Flow):
    op_type = OpHostRemove

    def locks(self, op: OpHostRemove) -> list[str]:
        return [f"host:{op.name}"]

    def validate(self, op: OpHostRemove, s: Session, conns: ConnectionPool) -> None:
        host = get_host(s, op.name)
        if host.vms:
            raise WrongState(
                "E_HOST_HAS_VMS",
                f"host {op.name} still holds VMs: " + ", ".join(v.name for v in host.vms),
                "move or delete those VMs first",
            )

    def steps(self, op: OpHostRemove) -> list[Step]:
        def remove(ctx: JobContext) -> StepResult:
            """Undo: re-add the host with the same URI and cluster.  Checked again here:
            a VM or a job may have come to the host since the removal was submitted."""
            with ctx.sessions.begin() as s:
                host = get_host(s, op.name)
                busy = [
                    f"job {j.id} ({j.kind} {j.subject})"
                    for j in s.scalars(select(Job).where(Job.state.not_in(list(FINAL_JOB_STATES))))
                    if j.id != ctx.job_id and any(lk.endswith(f":{op.name}") for lk in j.locks)
                ]
                if host.vms or busy:
                    raise WrongState(
                        "E_HOST_BUSY",
                        f"host {op.name} is in use: "
                        + ", ".join([*(f"VM {v.name}" for v in host.vms), *busy]),
                        "let those jobs end, move or delete its VMs, then remove it",
                    )
                result = {"uri": host.uri, "cluster": host.cluster.name if host.cluster else ""}
                s.delete(host)
                refresh(s, "node removed", result["cluster"] or None)
            return result

        def readd(ctx: JobContext, r: StepResult) -> None:
            assert r is not None
            with ctx.sessions.begin() as s:
                host = Host(name=op.name, uri=r["uri"])
                if r["cluster"]:
                    host.cluster = get_cluster(s, r["cluster"])
                s.add(host)

        return [FnStep("remove", f"remove host {op.name} from the inventory", remove, readd)]


class ClusterCreate(Flow):
    op_type = OpClusterCreate

    def locks(self, op: OpClusterCreate) -> list[str]:
        return [f"cluster:{op.name}"]

    def validate(self, op: OpClusterCreate, s: Session, conns: ConnectionPool) -> None:
        check_name("cluster", op.name)
        if s.scalar(select(Cluster).where(Cluster.name == op.name)) is not None:
            raise already_exists("cluster", op.name)
        if op.reserve < 0:
            raise InvalidInput(
                "E_INVALID_RESERVE",
                f"cluster reserve {op.reserve} is negative",
                "give the number of node failures the cluster must absorb (0 or more)",
            )
        for p in op.shared_paths:
            # POSIX, or a Windows drive written with '/' (C:/ClusterStorage/Volume1)
            if not (p.startswith("/") or re.match(r"^[A-Za-z]:/", p)):
                raise InvalidInput(
                    "E_INVALID_PATH",
                    f"shared storage path {p!r} is not absolute",
                    "give a full path (/srv/csv, or C:/ClusterStorage/Volume1 on Hyper-V)",
                )

    def steps(self, op: OpClusterCreate) -> list[Step]:
        def create(ctx: JobContext) -> StepResult:
            """Undo: delete the cluster row."""
            with ctx.sessions.begin() as s:
                c = Cluster(name=op.name, reserve=op.reserve)
                c.shared_storage = [SharedStorage(path=p.rstrip("/")) for p in op.shared_paths]
                s.add(c)
            return {"name": op.name}

        def delete(ctx: JobContext, _r: StepResult) -> None:
            with ctx.sessions.begin() as s:
                c = s.scalar(select(Cluster).where(Cluster.name == op.name))
                if c is not None:
                    s.delete(c)

        return [FnStep("create", f"create cluster {op.name}", create, delete)]


class ClusterDelete(Flow):
    op_type = OpClusterDelete

    def locks(self, op: OpClusterDelete) -> list[str]:
        return [f"cluster:{op.name}"]

    def validate(self, op: OpClusterDelete, s: Session, conns: ConnectionPool) -> None:
        c = get_cluster(s, op.name)
        if c.hosts:
            raise WrongState(
                "E_CLUSTER_HAS_HOSTS",
                f"cluster {op.name} still has hosts: " + ", ".join(h.name for h in c.hosts),
                "remove them with 'whimbrel cluster remove-host' first",
            )

    def steps(self, op: OpClusterDelete) -> list[Step]:
        def delete(ctx: JobContext) -> StepResult:
            """Undo: create the cluster again with the same reserve and shared storage."""
            with ctx.sessions.begin() as s:
                c = get_cluster(s, op.name)
                r: dict[str, Any] = {
                    "reserve": c.reserve,
                    "paths": [sp.path for sp in c.shared_storage],
                }
                s.delete(c)
            return r

        def recreate(ctx: JobContext, r: StepResult) -> None:
            assert r is not None
            with ctx.sessions.begin() as s:
                c = Cluster(name=op.name, reserve=r["reserve"])
                c.shared_storage = [SharedStorage(path=p) for p in r["paths"]]
                s.add(c)

        return [FnStep("delete", f"delete cluster {op.name}", delete, recreate)]


class ClusterAddHost(Flow):
    op_type = OpClusterAddHost

    def locks(self, op: OpClusterAddHost) -> list[str]:
        return [f"cluster:{op.name}", f"host:{op.host}"]

    def subject(self, op: OpClusterAddHost) -> str:
        return f"{op.name}/{op.host}"

    def validate(self, op: OpClusterAddHost, s: Session, conns: ConnectionPool) -> None:
        get_cluster(s, op.name)
        host = get_host(s, op.host)
        if host.cluster is not None:
            raise Conflict(
                "E_HOST_IN_CLUSTER",
                f"host {op.host} already belongs to cluster {host.cluster.name}",
                f"remove it from {host.cluster.name} first (whimbrel cluster remove-host)",
            )

    def steps(self, op: OpClusterAddHost) -> list[Step]:
        # Undo: take the host out of the cluster again.
        return [
            _membership("join", f"add host {op.host} to cluster {op.name}", op.host, op.name, None)
        ]


class ClusterRemoveHost(Flow):
    op_type = OpClusterRemoveHost

    def locks(self, op: OpClusterRemoveHost) -> list[str]:
        return [f"cluster:{op.name}", f"host:{op.host}"]

    def subject(self, op: OpClusterRemoveHost) -> str:
        return f"{op.name}/{op.host}"

    def validate(self, op: OpClusterRemoveHost, s: Session, conns: ConnectionPool) -> None:
        get_cluster(s, op.name)
        host = get_host(s, op.host)
        if host.cluster is None or host.cluster.name != op.name:
            raise InvalidInput(
                "E_HOST_NOT_IN_CLUSTER",
                f"host {op.host} is not a member of cluster {op.name}",
                "run 'whimbrel cluster show' to see its members",
            )
        ha = [v.name for v in host.vms if v.ha]
        if ha:
            raise WrongState(
                "E_HOST_HAS_HA_VMS",
                f"host {op.host} runs highly available VMs of the cluster: " + ", ".join(ha),
                "move them to another node of the cluster first",
            )

    def steps(self, op: OpClusterRemoveHost) -> list[Step]:
        # Undo: put the host back into the cluster.
        desc = f"take host {op.host} out of cluster {op.name}"
        return [_membership("leave", desc, op.host, None, op.name)]


def _membership(step: str, description: str, host: str, to: str | None, back: str | None) -> Step:
    """Set the host's cluster to ``to``.  Undo: set it to ``back``."""

    def move(ctx: JobContext, cluster: str | None) -> None:
        with ctx.sessions.begin() as s:
            get_host(s, host).cluster = get_cluster(s, cluster) if cluster else None
            refresh(s, "node added" if cluster else "node removed")

    return FnStep(step, description, lambda ctx: move(ctx, to), lambda ctx, _r: move(ctx, back))


FLOWS: list[Flow] = [
    HostAdd(),
    HostRefresh(),
    HostRemove(),
    ClusterCreate(),
    ClusterDelete(),
    ClusterAddHost(),
    ClusterRemoveHost(),
]
