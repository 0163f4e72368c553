"""Flows of high availability: a cluster's reserve, and a VM's HA registration."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session

from whimbrel.connections import ConnectionPool
from whimbrel.domain.host import DETECTION_MAX_S, DETECTION_MIN_S, DETECTION_S, IsolationResponse
from whimbrel.domain.migration import PostCopy
from whimbrel.errors import InsufficientResources, InvalidInput, WrongState
from whimbrel.jobs.flow import Flow
from whimbrel.jobs.flows.vm_common import own_cluster
from whimbrel.jobs.step import FnStep, JobContext, Step, StepResult
from whimbrel.ops import OpClusterSet, OpVmCreate, OpVmHa
from whimbrel.placement.inventory import HOLDS_MEMORY, cluster_verdict, load_of
from whimbrel.placement.load import VmLoad
from whimbrel.placement.refresh import refresh
from whimbrel.placement.reserve import overcommitted
from whimbrel.preflight.cluster import ClusterView, disk_users, ha_findings
from whimbrel.preflight.finding import blocking
from whimbrel.store.models import Host, Vm
from whimbrel.store.repo import cluster_of_vm, get_cluster, get_vm, is_shared_path


class ClusterSet(Flow):
    op_type = OpClusterSet

    def locks(self, op: OpClusterSet) -> list[str]:
        return [f"cluster:{op.name}"]

    def validate(self, op: OpClusterSet, s: Session, conns: ConnectionPool) -> None:
        get_cluster(s, op.name)
        check_cluster_settings(op)

    def steps(self, op: OpClusterSet) -> list[Step]:
        """Set what was given; a new reserve recomputes the verdict.
        Undo: the old settings, recomputed."""
        fields = ("reserve", "detection_s", "isolation_response", "heartbeat_dir", "postcopy")

        def put(ctx: JobContext, values: dict[str, Any]) -> StepResult:
            with ctx.sessions.begin() as s:
                c = get_cluster(s, op.name)
                old = {f: getattr(c, f) for f in values}
                for f, v in values.items():
                    setattr(c, f, v)
                event = "reserve changed" if "reserve" in values else "settings changed"
                verdict = refresh(s, event, op.name)[op.name]
            ctx.progress("set", 100, verdict.reason, overcommit=verdict.to_dict())
            return {"old": old, "overcommit": verdict.to_dict()}

        def undo(ctx: JobContext, r: StepResult) -> None:
            assert r is not None
            put(ctx, dict(r["old"]))

        given = {f: getattr(op, f) for f in fields if getattr(op, f) is not None}
        what = ", ".join(f"{f.replace('_', ' ')} {v}" for f, v in given.items())
        return [FnStep("set", f"cluster {op.name}: {what}", lambda ctx: put(ctx, given), undo)]


def check_cluster_settings(op: OpClusterSet) -> None:
    """Refuse a setting that cannot work, before anything changes."""
    if op.reserve is not None and not 0 <= op.reserve <= 63:
        raise InvalidInput(
            "E_RESERVE_INVALID",
            f"a cluster reserve of {op.reserve} nodes is not possible",
            "give the number of node failures to absorb, 0 to 63 (default 1)",
        )
    if op.detection_s is not None and not DETECTION_MIN_S <= op.detection_s <= DETECTION_MAX_S:
        raise InvalidInput(
            "E_DETECTION_TIME_INVALID",
            f"a failure-detection time of {op.detection_s} s is not possible",
            f"give whole seconds from {DETECTION_MIN_S} to {DETECTION_MAX_S} (default "
            f"{DETECTION_S}): a host is lost after both its channels are silent this long, and "
            "it stops its own VMs after 60 % of it",
        )
    responses = [r.value for r in IsolationResponse]
    if op.isolation_response is not None and op.isolation_response not in responses:
        raise InvalidInput(
            "E_ISOLATION_RESPONSE_INVALID",
            f"{op.isolation_response!r} is not an isolation response",
            "use one of " + ", ".join(responses) + " (default leave)",
        )
    if op.heartbeat_dir is not None and op.heartbeat_dir and not op.heartbeat_dir.startswith("/"):
        raise InvalidInput(
            "E_INVALID_PATH",
            f"heartbeat directory {op.heartbeat_dir!r} is not an absolute path",
            "give where the manager's machine mounts the cluster's heartbeat directory, "
            "or '' for SHARED_PATH/heartbeat",
        )
    choices = [c.value for c in PostCopy]
    if op.postcopy is not None and op.postcopy not in choices:
        raise InvalidInput(
            "E_POSTCOPY_POLICY_INVALID",
            f"{op.postcopy!r} is not a post-copy policy",
            "use never (default: pre-copy only, the downtime raised when it stalls) or "
            "when-needed (post-copy ends a copy that would need more than the target downtime)",
        )
    given = (op.reserve, op.detection_s, op.isolation_response, op.heartbeat_dir, op.postcopy)
    if all(v is None for v in given):
        raise InvalidInput("E_NOTHING_TO_SET", "no setting given", "give at least one setting")


class VmHa(Flow):
    op_type = OpVmHa

    def locks(self, op: OpVmHa) -> list[str]:
        # One HA change per cluster at a time: each spends the same reserve.
        return [f"vm:{op.name}"] + ([f"reserve:{op.cluster}"] if op.cluster else [])

    def bind(self, op: OpVmHa, s: Session) -> OpVmHa:
        return replace(op, cluster=cluster_of_vm(get_vm(s, op.name)) or "")

    def validate(self, op: OpVmHa, s: Session, conns: ConnectionPool) -> None:
        vm = get_vm(s, op.name)
        if op.priority not in (0, 1, 2, 3):
            raise InvalidInput(
                "E_HA_PRIORITY_INVALID",
                f"restart priority {op.priority} is not one of 3 (high), 2 (medium), 1 (low), "
                "0 (never restarted)",
                "give --priority high, medium, low or none",
            )
        if op.enabled:
            check_can_be_ha(s, vm, op.allow_overcommit)

    def steps(self, op: OpVmHa) -> list[Step]:
        """Set the VM's HA flag and priority, refresh its cluster.  Undo: the old values."""

        def put(ctx: JobContext, values: tuple[bool, int], check: bool = False) -> StepResult:
            with ctx.sessions() as s:
                vm = get_vm(s, op.name)
                host = vm.host.name if vm.host else None
                if check:  # again, under the cluster's lock: the reserve may be spent now
                    check_can_be_ha(s, vm, op.allow_overcommit)
            drv = own_cluster(ctx, host) if host is not None else None
            if drv is not None:  # the failover cluster's role, where it has its own (Hyper-V)
                drv.cluster_role(op.name, *values)
            with ctx.sessions.begin() as s:
                vm = get_vm(s, op.name)
                old = {"enabled": vm.ha, "priority": vm.ha_priority}
                vm.ha, vm.ha_priority = values
                refresh(s, "new HA VM" if op.enabled else "HA VM removed", cluster_of_vm(vm))
            return old

        def undo(ctx: JobContext, r: StepResult) -> None:
            assert r is not None
            put(ctx, (bool(r["enabled"]), int(r["priority"])))

        state = "on" if op.enabled else "off"
        return [
            FnStep(
                "set",
                f"high availability {state} for VM {op.name}",
                lambda ctx: put(ctx, (op.enabled, op.priority), check=op.enabled),
                undo,
            )
        ]


def check_can_be_ha(s: Session, vm: Vm, allow_overcommit: bool) -> None:
    """VMM's highly available VMs: an HA VM lives on clustered hosts, entirely on shared
    storage, and its cluster must keep its reserve unless the administrator overrides it."""
    cluster = vm.host.cluster if vm.host is not None else None
    view = ClusterView.of(cluster, disk_users(s)) if cluster else None
    errs = blocking(ha_findings(vm, view, assume_ha=True))
    if errs:
        raise WrongState(
            "E_HA_UNSUPPORTED_CONFIGURATION",
            f"VM {vm.name} cannot be highly available: " + "; ".join(f.cause for f in errs),
            "; ".join(dict.fromkeys(f.fix for f in errs)),
            "\n".join(f.line() for f in errs),
        )
    assert cluster is not None
    # A VM that is not running holds no memory now: making it HA changes no verdict.
    ha_load = replace(load_of(vm), ha=True)
    add = (vm.host.name, ha_load) if vm.host and vm.state in HOLDS_MEMORY else None
    verdict = cluster_verdict(s, cluster, add)
    if verdict.overcommitted and not allow_overcommit:
        f = overcommitted(cluster.name, cluster.reserve, vm.name, verdict)
        raise InsufficientResources(f.code, f.cause, f.fix)


def check_new_ha(s: Session, op: OpVmCreate, host: Host) -> None:
    """VMM's highly available VMs: an HA VM goes only to a clustered host, wholly on the cluster's
    shared storage, and not onto a cluster it would over-commit (unless overridden)."""
    shared = {p.name for p in host.pools if is_shared_path(host, p.path)}
    unshared = sorted({d.pool for d in op.disks} - shared)
    if host.cluster is None or unshared:
        raise WrongState(
            "E_HA_UNSUPPORTED_CONFIGURATION",
            f"host {op.host} is in no cluster"
            if host.cluster is None
            else f"pool(s) {', '.join(unshared)} are not the cluster's shared storage",
            "create HA VMs on a clustered host, with disks in a shared pool ("
            + (", ".join(sorted(shared)) or "none on this host")
            + ")",
        )
    vm = VmLoad(op.name, op.memory_mib, op.vcpus, ha=True)
    verdict = cluster_verdict(s, host.cluster, add=(host.name, vm))
    if verdict.overcommitted and not op.allow_overcommit:
        f = overcommitted(host.cluster.name, host.cluster.reserve, op.name, verdict)
        raise InsufficientResources(f.code, f.cause, f.fix)
