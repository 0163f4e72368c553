"""Maintenance mode (VMM's highly available VMs): drain a host through child jobs, then keep it
out of placement.

Start: the host leaves placement at once (no VM may arrive while it drains),
its HA VMs are live-migrated to the hosts the plan named, then the others
are saved.  If any VM fails to move, the job fails: the host is not in
maintenance, and VMs already moved stay where they are, as VMM does.
Migrations run before saves so that a failed drain leaves the non-HA VMs
running.  Stop re-admits the host; it moves VMs back or restores saved ones
only when asked, from what the last completed start recorded.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from whimbrel.connections import ConnectionPool
from whimbrel.domain.host import HostState
from whimbrel.domain.job import JobState
from whimbrel.domain.vm import VmState
from whimbrel.errors import Conflict, InsufficientResources, WrongState
from whimbrel.jobs.children import Child, outcome, reattach, run_children
from whimbrel.jobs.flow import Flow
from whimbrel.jobs.flows.vm_common import own_cluster
from whimbrel.jobs.step import FnStep, JobContext, Observed, Step, StepResult
from whimbrel.ops import (
    OpHostMaintenanceStart,
    OpHostMaintenanceStop,
    OpVmMigrate,
    OpVmRestore,
    OpVmSave,
)
from whimbrel.placement.maintenance import Action, Entry, MaintenancePlan, plan
from whimbrel.placement.refresh import refresh
from whimbrel.store.models import Job, Vm
from whimbrel.store.repo import get_host


def check_plan(p: MaintenancePlan) -> None:
    """Refuse a plan that cannot run, naming every VM that stops it."""
    if not p.blocked:
        return
    lines = []
    for e in p.blocked:
        errs = [f"{f['code']}: {f['cause']}" for f in e.findings if f["severity"] == "error"]
        lines.append(f"{e.vm}: " + ("; ".join(errs) or e.why))
    homeless = [e.vm for e in p.blocked if e.action == Action.BLOCKED]
    if homeless:
        raise InsufficientResources(
            "E_MAINTENANCE_NO_CAPACITY",
            f"no other host can take {', '.join(homeless)}: host {p.host} cannot be drained",
            "free memory or add a node in the cluster, or stop those VMs; "
            f"'whimbrel host maintenance start {p.host} --dry-run' shows the plan",
            "\n".join(lines),
        )
    raise WrongState(
        "E_MAINTENANCE_PREFLIGHT",
        f"the move of {', '.join(e.vm for e in p.blocked)} would fail: host {p.host} "
        "cannot be drained",
        "fix the findings listed (see 'whimbrel host maintenance start "
        f"{p.host} --dry-run'), or stop those VMs",
        "\n".join(lines),
    )


def _set_maintenance(ctx: JobContext, host: str, on: bool) -> None:
    """The store's flag, and the node's pause in a failover cluster that has its own
    placement (Hyper-V: Suspend-ClusterNode, Resume-ClusterNode -Failback NoFailback)."""
    drv = own_cluster(ctx, host)
    if drv is not None and on:
        drv.node_pause(drain=False)
    elif drv is not None:
        drv.node_resume()
    with ctx.sessions.begin() as s:
        h = get_host(s, host)
        h.maintenance = on
        refresh(s, f"host {host} {'enters' if on else 'leaves'} maintenance", None)


def _fail_if_any(host: str, what: str, children: list[Child]) -> None:
    bad = [c for c in children if not c.ok]
    if not bad:
        return
    good = [f"{c.vm} {c.action} {c.to}".strip() for c in children if c.ok]
    why = "; ".join(
        f"{c.vm}: {c.error.get('code', c.state)} {c.error.get('cause', c.message)}" for c in bad
    )
    raise Conflict(
        "E_MAINTENANCE_INCOMPLETE",
        f"{what} on host {host} did not finish: {why}",
        "fix the cause and start maintenance again; VMs already done stay where they are"
        + (f" ({', '.join(good)})" if good else ""),
    )


class MaintenanceStart(Flow):
    op_type = OpHostMaintenanceStart
    waits_for_children = True

    def locks(self, op: OpHostMaintenanceStart) -> list[str]:
        return [f"host:{op.name}"]

    def validate(self, op: OpHostMaintenanceStart, s: Session, conns: ConnectionPool) -> None:
        h = get_host(s, op.name)
        if h.maintenance:
            raise WrongState(
                "E_HOST_IN_MAINTENANCE",
                f"host {op.name} is already in maintenance mode",
                f"nothing to do; 'whimbrel host maintenance stop {op.name}' re-admits it",
            )
        if h.state != HostState.CONNECTED:
            raise WrongState(
                "E_HOST_UNREACHABLE",
                f"host {op.name} is {h.state} ({h.state_reason}): its VMs cannot be moved",
                "bring the host back, or let failover restart its HA VMs",
            )
        check_plan(plan(s, op.name, conns))

    def bind(self, op: OpHostMaintenanceStart, s: Session) -> OpHostMaintenanceStart:
        entries = plan(s, op.name).entries
        return dataclasses.replace(op, plan=tuple(e.to_dict() for e in entries))

    def steps(self, op: OpHostMaintenanceStart) -> list[Step]:
        entries = [Entry.from_dict(d) for d in op.plan]
        moves = [e for e in entries if e.action == Action.LIVE_MIGRATE]
        saves = [e for e in entries if e.action == Action.SAVE]

        def enter(ctx: JobContext) -> StepResult:
            """Undo: the host takes VMs again."""
            _set_maintenance(ctx, op.name, True)
            return {"maintenance": True}

        def leave(ctx: JobContext, r: StepResult) -> None:
            _set_maintenance(ctx, op.name, False)

        def migrate(ctx: JobContext) -> StepResult:
            """Undo: none; VMs that moved stay where they are, as in VMM."""
            kids = [Child(e.vm, str(e.action), OpVmMigrate(e.vm, e.to), e.to) for e in moves]
            run_children(ctx, kids, "migrate")
            # Kept in the job even if it fails: stop --move-back brings these home.
            moved = [{"vm": c.vm, "to": c.to, "job": c.job} for c in kids if c.ok]
            ctx.step_progress(1.0, "migrate", f"{len(moved)} VM(s) moved", moved=moved)
            _fail_if_any(op.name, "live migration", kids)
            return {"moved": moved}

        def save(ctx: JobContext) -> StepResult:
            """Undo: none; a saved VM is resumed with 'vm restore' or maintenance stop."""
            kids = [Child(e.vm, str(e.action), OpVmSave(e.vm)) for e in saves]
            run_children(ctx, kids, "save")
            saved = [c.vm for c in kids if c.ok]
            ctx.step_progress(1.0, "save", f"{len(saved)} VM(s) saved", saved=saved)
            _fail_if_any(op.name, "save", kids)
            return {"saved": saved}

        def migrated(ctx: JobContext) -> Observed:
            kids = reattach(ctx, str(Action.LIVE_MIGRATE))
            moved = [{"vm": c.vm, "to": c.to, "job": c.job} for c in kids or [] if c.ok]
            ctx.step_progress(1.0, "migrate", f"{len(moved)} VM(s) moved", moved=moved)
            truth, evidence = outcome(kids, "drain's live migrations")
            return Observed(truth, evidence, {"moved": moved})

        def saved(ctx: JobContext) -> Observed:
            kids = reattach(ctx, str(Action.SAVE))
            done = [c.vm for c in kids or [] if c.ok]
            ctx.step_progress(1.0, "save", f"{len(done)} VM(s) saved", saved=done)
            truth, evidence = outcome(kids, "drain's saves")
            return Observed(truth, evidence, {"saved": done})

        def verify(ctx: JobContext) -> StepResult:
            """Undo: none.  A VM that started on the host meanwhile stops the drain."""
            with ctx.sessions() as s:
                h = get_host(s, op.name)
                left = [
                    v.name
                    for v in s.scalars(select(Vm).where(Vm.host_id == h.id))
                    if v.state in (VmState.RUNNING, VmState.PAUSED)
                ]
            if left:
                raise Conflict(
                    "E_MAINTENANCE_INCOMPLETE",
                    f"VMs still run on host {op.name}: {', '.join(left)}",
                    "stop or move them, then start maintenance again",
                )
            # Where the cluster has placement of its own, it drains the node too and
            # says so (Suspend-ClusterNode -Drain): a role Whimbrel does not know moves.
            drv = own_cluster(ctx, op.name)
            if drv is not None:
                drv.node_pause(drain=True)
            return {"drained": True}

        return [
            FnStep("enter", f"take host {op.name} out of placement", enter, leave),
            FnStep(
                "migrate",
                f"live-migrate {len(moves)} HA VM(s)",
                migrate,
                weight=10,
                observe=migrated,
            ),
            FnStep("save", f"save {len(saves)} other VM(s)", save, weight=4, observe=saved),
            FnStep("verify", f"check that no VM runs on host {op.name}", verify),
        ]


def last_drain(s: Session, host: str) -> tuple[list[dict[str, Any]], list[str]]:
    """What maintenance starts moved away from the host and saved since it was last
    re-admitted, failed starts included (their moved VMs stayed moved)."""
    since = s.scalar(
        select(Job.id)
        .where(Job.kind == OpHostMaintenanceStop.kind, Job.subject == host)
        .where(Job.state == JobState.COMPLETED)
        .order_by(Job.id.desc())
        .limit(1)
    )
    jobs = s.scalars(
        select(Job)
        .where(Job.kind == OpHostMaintenanceStart.kind, Job.subject == host)
        .where(Job.id > (since or 0))
        .order_by(Job.id)
    ).all()
    moved: list[dict[str, Any]] = []
    saved: list[str] = []
    for job in jobs:
        moved += job.progress.get("moved", [])
        saved += job.progress.get("saved", [])
    return moved, saved


class MaintenanceStop(Flow):
    op_type = OpHostMaintenanceStop
    waits_for_children = True

    def locks(self, op: OpHostMaintenanceStop) -> list[str]:
        return [f"host:{op.name}"]

    def validate(self, op: OpHostMaintenanceStop, s: Session, conns: ConnectionPool) -> None:
        if not get_host(s, op.name).maintenance:
            raise WrongState(
                "E_HOST_NOT_IN_MAINTENANCE",
                f"host {op.name} is not in maintenance mode",
                f"nothing to do; 'whimbrel host maintenance start {op.name}' drains it",
            )

    def bind(self, op: OpHostMaintenanceStop, s: Session) -> OpHostMaintenanceStop:
        moved, saved = last_drain(s, op.name)
        vms = {
            v.name: v
            for v in s.scalars(select(Vm).where(Vm.name.in_([m["vm"] for m in moved] + saved)))
        }
        back = tuple(
            m["vm"]
            for m in moved
            if op.move_back
            and (v := vms.get(m["vm"])) is not None
            and v.host is not None
            and v.host.name == m["to"]
            and v.state == VmState.RUNNING
        )
        here = tuple(
            n
            for n in saved
            if op.restart_saved
            and (v := vms.get(n)) is not None
            and v.host is not None
            and v.host.name == op.name
            and v.state == VmState.SAVED
        )
        return dataclasses.replace(op, back=back, saved=here)

    def steps(self, op: OpHostMaintenanceStop) -> list[Step]:
        def leave(ctx: JobContext) -> StepResult:
            """Undo: none.  Re-admitting is what stop is for; a VM that does not
            come back afterwards is reported, and the host stays in service."""
            _set_maintenance(ctx, op.name, False)
            return {"maintenance": False}

        def back(ctx: JobContext) -> StepResult:
            """Undo: none; each move undoes itself if it fails."""
            kids = [Child(v, "live-migrate", OpVmMigrate(v, op.name), op.name) for v in op.back]
            _fail_if_any(op.name, "moving VMs back", run_children(ctx, kids, "move back"))
            return {"moved_back": list(op.back)}

        def restore(ctx: JobContext) -> StepResult:
            """Undo: none; a restore that fails leaves its VM saved."""
            kids = [Child(v, "restore", OpVmRestore(v)) for v in op.saved]
            _fail_if_any(op.name, "restoring saved VMs", run_children(ctx, kids, "restore"))
            return {"restored": list(op.saved)}

        steps: list[Step] = [FnStep("leave", f"let host {op.name} take VMs again", leave)]
        if op.back:
            steps.append(FnStep("move-back", f"move {len(op.back)} VM(s) back", back, weight=10))
        if op.saved:
            steps.append(
                FnStep("restore", f"restore {len(op.saved)} saved VM(s)", restore, weight=4)
            )
        return steps


FLOWS: list[Flow] = [MaintenanceStart(), MaintenanceStop()]
