"""Steps shared by the kinds of move: preflight, destination disks, the record, cleanup."""

from __future__ import annotations

import posixpath
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from whimbrel.domain.migration import Auth, MigrationRequest, MoveKind, Policy, PostCopy
from whimbrel.drivers.base import HostDriver
from whimbrel.errors import Category, WhimbrelError
from whimbrel.jobs.step import FnStep, JobContext, Step, StepResult
from whimbrel.ops import OpVmMigrate
from whimbrel.placement.refresh import refresh_where
from whimbrel.preflight.finding import PreflightFailed, blocking
from whimbrel.preflight.migration import Plan, preflight
from whimbrel.store.models import Link
from whimbrel.store.repo import (
    cluster_of_vm,
    get_host,
    get_vm,
    is_shared_path,
    migration_settings,
)


class CtxDrivers:
    """A job context seen as the ``HostDrivers`` preflight reads from."""

    def __init__(self, ctx: JobContext):
        self._ctx = ctx

    def for_host(self, host_name: str) -> HostDriver:
        return self._ctx.driver(host_name)


PREFLIGHT, CLEANUP = "preflight", "cleanup"  # steps others find by name


def plan_of(ctx: JobContext) -> Plan:
    """The plan the move's preflight step made (every later step follows it)."""
    return Plan.from_dict(ctx.result_of(PREFLIGHT)["plan"])


def preflight_step(op: OpVmMigrate) -> Step:
    """Check everything again now that the job runs (the fleet may have changed
    while it was queued).  Undo: nothing, it only reads."""

    def run(ctx: JobContext) -> StepResult:
        with ctx.sessions() as s:
            plan = preflight(op, s, CtxDrivers(ctx))
        ctx.progress("preflight", 0, f"{len(plan.findings)} finding(s)", plan=plan.to_dict())
        if blocking(list(plan.findings)):
            raise PreflightFailed(list(plan.findings))
        return {"plan": plan.to_dict()}

    return FnStep(PREFLIGHT, f"preflight checks for moving VM {op.name} to {op.to}", run)


def request(ctx: JobContext, op: OpVmMigrate, plan: Plan) -> MigrationRequest:
    with ctx.sessions() as s:
        src, dst = get_host(s, plan.source), get_host(s, plan.dest)
        ms, md = migration_settings(src), migration_settings(dst)
        dest_uri = dst.uri
        # Post-copy needs both hosts to the end: both clusters must allow it.
        clusters = [h.cluster for h in (src, dst)]
        allowed = all(c is not None and c.postcopy == PostCopy.WHEN_NEEDED for c in clusters)
    # ... and a hypervisor that has it (Hyper-V's moves are pre-copy only).
    postcopy = (op.postcopy or allowed) and ctx.driver(plan.source).has_postcopy
    return MigrationRequest(
        dest_uri=dest_uri,
        address=plan.address,
        auth=ms.auth,
        performance=ms.performance,
        parallel_connections=ms.parallel_connections,
        # Either end asking for encryption gets it: the stream is one stream.
        encrypt=ms.encrypt or md.encrypt,
        copy_disks=plan.disks,
        shared_unsafe=plan.shared and not plan.disks,
        policy=Policy(
            downtime_ms=op.downtime_ms,
            max_downtime_ms=max(op.max_downtime_ms, op.downtime_ms),
            auto_converge=op.auto_converge,
            postcopy=postcopy,
            timeout_s_per_gib=op.timeout_s_per_gib,
            on_timeout=op.on_timeout,  # type: ignore[arg-type]
            bandwidth_mib_s=op.bandwidth_mib_s,
        ),
        peer_pki=ms.peer_pki if ms.auth == Auth.PEER else "",
        quick=plan.kind == MoveKind.QUICK,
    )


def link_of(ctx: JobContext, source: str, dest: str) -> tuple[int, str]:
    with ctx.sessions() as s:
        src, dst = get_host(s, source), get_host(s, dest)
        row = s.get(Link, (src.id, dst.id))
        if row is None:
            return 0, ""
        return row.bytes_per_s, f"measured {source}→{dest} on {row.measured_at:%Y-%m-%d %H:%M}"


def record_link(ctx: JobContext, source: str, dest: str, bytes_per_s: int) -> None:
    if bytes_per_s <= 0:
        return
    # Two moves between the same hosts (a drain) can both find no row and both
    # insert it: the loser updates the winner's row on its second try.
    for attempt in range(2):
        try:
            with ctx.sessions.begin() as s:
                src, dst = get_host(s, source), get_host(s, dest)
                row = s.get(Link, (src.id, dst.id)) or Link(source_id=src.id, dest_id=dst.id)
                row.bytes_per_s, row.measured_at = bytes_per_s, datetime.now(UTC)
                s.add(row)
            return
        except IntegrityError:
            if attempt:
                raise


def dest_volumes_step(op: OpVmMigrate) -> Step:
    """Create empty images of the right size where the disks go.

    Undo: delete them (nothing half-copied is left on the destination)."""

    def run(ctx: JobContext) -> StepResult:
        plan = plan_of(ctx)
        drv = ctx.driver(plan.dest)
        if drv.creates_copy_targets:  # Hyper-V makes them in the move; undo still clears them
            return {"host": plan.dest, "paths": [d.dest_path for d in plan.disks]}
        with ctx.sessions() as s:
            pools = {p.path: p.name for p in get_host(s, plan.dest).pools}
        made: list[str] = []
        try:
            for d in plan.disks:
                pool = pools[posixpath.dirname(d.dest_path)]
                name = posixpath.basename(d.dest_path)
                made.append(drv.create_volume(pool, name, d.size_bytes, "qcow2"))
        except BaseException:
            for path in made:
                drv.delete_volume(path)
            raise
        return {"host": plan.dest, "paths": made}

    def undo(ctx: JobContext, r: StepResult) -> None:
        # Interrupted before its result was kept, it may have made some of them: the
        # plan names them all, and preflight made sure none existed before the move.
        r = r or {}
        plan = plan_of(ctx)
        host = r.get("host") or plan.dest
        paths = r.get("paths") or [d.dest_path for d in plan.disks]
        retrying(ctx, host, lambda drv: [drv.delete_volume(p) for p in paths])

    return FnStep("prepare destination", "create the destination disk images", run, undo)


def retrying(ctx: JobContext, host: str, fn: Any, timeout_s: float = 20.0) -> None:
    """Run ``fn(driver)``, reconnecting while the host is down (it may be restarting:
    a destination that failed mid-copy must still lose its half-copied disks)."""
    deadline = time.monotonic() + timeout_s
    fresh = False
    while True:
        try:
            # Opening counts as trying: the monitor may already have dropped the
            # connection of a host that went down, so the first open can fail too.
            fn(ctx.reconnect(host) if fresh else ctx.driver(host))
            return
        except WhimbrelError as exc:
            if exc.category != Category.ENVIRONMENT or time.monotonic() > deadline:
                raise
            time.sleep(1.0)
            fresh = True


def record_step(op: OpVmMigrate) -> Step:
    """Record the VM on its new host with its new disk paths.

    Undo: record it back where it was."""

    def snapshot(vm: Any) -> dict[str, Any]:
        return {
            "host": vm.host.name if vm.host else None,
            "disks": {d.target: [d.path, d.pool, d.shared] for d in vm.disks},
        }

    def apply(ctx: JobContext, host: str, disks: dict[str, list[Any]], state: str) -> None:
        with ctx.sessions.begin() as s:
            vm = get_vm(s, op.name)
            left = cluster_of_vm(vm)
            vm.host = get_host(s, host)
            for d in vm.disks:
                if d.target in disks:
                    d.path, d.pool, d.shared = disks[d.target]
            if state:
                vm.state = state
            refresh_where(s, f"VM {op.name} moved", {left, cluster_of_vm(vm)})

    def run(ctx: JobContext) -> StepResult:
        plan = plan_of(ctx)
        with ctx.sessions() as s:
            vm = get_vm(s, op.name)
            before = snapshot(vm)
            dst = get_host(s, plan.dest)
            pools = {p.path: p.name for p in dst.pools}
            after = {
                m.target: [
                    m.dest_path,
                    pools.get(posixpath.dirname(m.dest_path), ""),
                    is_shared_path(dst, m.dest_path),
                ]
                for m in plan.disks
            }
        state = str(ctx.driver(plan.dest).domain(op.name).state)
        apply(ctx, plan.dest, after, state)
        return {"before": before}

    def undo(ctx: JobContext, r: StepResult) -> None:
        before = (r or {}).get("before")
        if before and before["host"]:
            apply(ctx, before["host"], before["disks"], "")

    return FnStep("record", f"record VM {op.name} on its new host", run, undo)


def cleanup_step(op: OpVmMigrate) -> Step:
    """Delete the source's copies of disks that moved.  Last step: nothing after
    it can fail, so it has no undo."""

    def run(ctx: JobContext) -> StepResult:
        plan = plan_of(ctx)
        drv = ctx.driver(plan.source)
        gone = [
            d.source_path
            for d in plan.disks
            if d.source_path != d.dest_path or plan.source != plan.dest
        ]
        for path in gone:
            drv.delete_volume(path)
        return {"deleted": gone}

    return FnStep(CLEANUP, "delete the old disk images on the source", run)
