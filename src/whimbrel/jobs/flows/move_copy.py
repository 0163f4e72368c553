"""The steps of a move that carry the VM: live (memory, and disks with it), storage only,
quick (save, restore), and the hypervisor's own quick migration.  Each says how it is
undone, and the live one how it is observed after a manager restart: by where the VM
runs on the two hosts, never by the plan.

The table of which steps make each kind of move is ``vm_migrate.py``; the steps every
kind shares (preflight, destination images, the record, cleanup) are ``migrate_steps.py``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from whimbrel.domain.migration import MIB, MoveKind
from whimbrel.domain.vm import ACTIVE, VmState
from whimbrel.errors import InvalidInput, NotFound, WhimbrelError, WrongState
from whimbrel.jobs.flows import migrate_steps as ms
from whimbrel.jobs.flows.vm_common import spec_of
from whimbrel.jobs.live import LiveMigration, prediction_for
from whimbrel.jobs.step import FnStep, JobContext, Observed, Step, StepResult, Truth
from whimbrel.ops import OpVmMigrate
from whimbrel.preflight.hosts import pick_address
from whimbrel.preflight.migration import Plan
from whimbrel.store.repo import get_host, get_vm, is_shared_path

SAVE = "save"  # quick migration's step whose result names the state file


def live_step(op: OpVmMigrate) -> Step:
    """Copy memory (and disks) while the VM runs; the policy pushes it to converge.

    Undo: migrate it back the same way, to the source."""

    def run(ctx: JobContext) -> StepResult:
        plan = ms.plan_of(ctx)
        src, dst = ctx.driver(plan.source), ctx.driver(plan.dest)
        req = ms.request(ctx, op, plan)
        with ctx.sessions() as s:
            memory = get_vm(s, op.name).memory_mib * MIB
        size = memory + sum(d.size_bytes for d in plan.disks)
        if plan.kind == MoveKind.OFFLINE:
            src.migrate(op.name, req, False)
            return {"source": plan.source, "dest": plan.dest, "result": None}
        link = ms.link_of(ctx, plan.source, plan.dest)
        # From and to, kept with the figures: a VM's move history reads them.
        where = {"source": plan.source, "dest": plan.dest}
        ctx.step_progress(0.0, "predict", "sampling the guest's dirty rate", **where)
        pred = prediction_for(src, op.name, memory, link, req)
        ctx.step_progress(
            0.0, "predict", pred.verdict, prediction=pred.to_dict(), request=req.to_dict()
        )
        result = LiveMigration(ctx, src, dst, op.name, req, pred, size).run()
        if result.total_ms > 0:
            ms.record_link(
                ctx, plan.source, plan.dest, result.memory_bytes * 1000 // result.total_ms
            )
        ctx.progress("switchover", 0, "migrated", result=result.to_dict())
        return {"source": plan.source, "dest": plan.dest, "result": result.to_dict()}

    def undo(ctx: JobContext, r: StepResult) -> None:
        plan = ms.plan_of(ctx)
        seen = where_it_runs(ctx, op.name, plan)
        if seen.truth == Truth.NOT_DONE:
            return  # it runs on its source already (the move never took effect)
        with ctx.sessions() as s:
            address = pick_address(get_host(s, plan.dest), get_host(s, plan.source)) or ""
        back = Plan(
            plan.kind,
            plan.dest,
            plan.source,
            address,
            tuple(d.reversed() for d in plan.disks),
            plan.shared,
        )
        req = ms.request(ctx, op, back)
        ctx.driver(plan.dest).migrate(op.name, req, True)

    def observe(ctx: JobContext) -> Observed:
        plan = ms.plan_of(ctx)
        seen = where_it_runs(ctx, op.name, plan)
        done = {"source": plan.source, "dest": plan.dest, "result": None}
        return Observed(seen.truth, seen.evidence, done)

    return FnStep(
        "migrate",
        f"{op.move} migration of VM {op.name} to {op.to}",
        run,
        undo,
        weight=10,
        observe=observe,
    )


def where_it_runs(ctx: JobContext, name: str, plan: Plan, wait_s: float = 300.0) -> Observed:
    """Where the VM is, read from both hosts: on the destination only (the move took
    effect), on the source only (it did not), or neither/both (the hosts cannot tell).

    A migration libvirt still carries out (peer to peer, it outlives its client) is
    waited for first.  An offline move is judged by where the VM is defined."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            src, dst = _state(ctx, plan.source, name), _state(ctx, plan.dest, name)
            moving = src is not None and ctx.driver(plan.source).migration_stats(name).active
        except WhimbrelError as exc:
            return Observed(Truth.UNKNOWN, f"the hosts could not be read: {exc.cause}")
        if not moving or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    where = f"on {plan.source}: {src or 'not defined'}; on {plan.dest}: {dst or 'not defined'}"
    if plan.kind == MoveKind.OFFLINE:
        if dst is not None and src is None:
            return Observed(Truth.DONE, f"VM {name} is defined on {plan.dest} only ({where})")
        if src is not None and dst is None:
            return Observed(Truth.NOT_DONE, f"VM {name} is still defined on {plan.source} only")
        return Observed(Truth.UNKNOWN, f"VM {name} {where}")
    on_src, on_dst = src in ACTIVE, dst == VmState.RUNNING
    if on_dst and not on_src:
        return Observed(
            Truth.DONE, f"VM {name} runs on {plan.dest}, not on {plan.source} ({where})"
        )
    if on_src and dst not in ACTIVE:
        return Observed(Truth.NOT_DONE, f"VM {name} still runs on {plan.source} ({where})")
    return Observed(Truth.UNKNOWN, f"VM {name} {where}")


def _state(ctx: JobContext, host: str, name: str) -> VmState | None:
    try:
        return ctx.driver(host).domain(name).state
    except NotFound:
        return None


def storage_step(op: OpVmMigrate) -> Step:
    """Mirror each disk to its new path while the VM runs, then switch to it.

    Undo: mirror it back to the old path (still there until cleanup)."""

    def progress(ctx: JobContext) -> Any:
        def report(done: int, total: int) -> None:
            ctx.step_progress(
                done / max(1, total),
                "disk copy",
                f"disk copy: {(total - done) / MIB:.0f} MiB left",
                remaining_mib=round((total - done) / MIB, 1),
            )

        return report

    def run(ctx: JobContext) -> StepResult:
        plan = ms.plan_of(ctx)
        drv = ctx.driver(plan.source)
        drv.move_disks(op.name, list(plan.disks), progress(ctx))
        drv.relocate_disks(op.name, {d.target: d.dest_path for d in plan.disks})
        return {"host": plan.source}

    def undo(ctx: JobContext, r: StepResult) -> None:
        plan = ms.plan_of(ctx)
        drv = ctx.driver(plan.source)
        drv.move_disks(op.name, [d.reversed() for d in plan.disks], progress(ctx))
        drv.relocate_disks(op.name, {d.target: d.source_path for d in plan.disks})

    return FnStep("copy and switch", f"move VM {op.name}'s disks", run, undo, weight=10)


def state_file(ctx: JobContext, op: OpVmMigrate) -> str:
    """Where quick migration keeps the saved state: next to the VM's first shared disk."""
    with ctx.sessions() as s:
        vm = get_vm(s, op.name)
        host = vm.host
        for d in vm.disks:
            if host is not None and is_shared_path(host, d.path):
                return d.path.rsplit("/", 1)[0] + f"/{op.name}.whimbrel-state"
        if host is not None and host.cluster is not None and host.cluster.shared_storage:
            return host.cluster.shared_storage[0].path.rstrip("/") + f"/{op.name}.whimbrel-state"
    raise InvalidInput(
        "E_QUICK_NEEDS_SHARED",
        f"VM {op.name} has no shared storage to keep its saved state on",
        "quick migration needs cluster shared storage; use a live move",
    )


def quick_steps(op: OpVmMigrate) -> list[Step]:
    """Quick migration: state saved to shared storage, restored on the destination.

    After a manager restart each step is judged by where the VM is defined and runs;
    each undo first looks whether there is still something to undo."""

    def where(ctx: JobContext) -> tuple[Plan, VmState | None, VmState | None]:
        plan = ms.plan_of(ctx)
        return plan, _state(ctx, plan.source, op.name), _state(ctx, plan.dest, op.name)

    def judged(done: bool, undone: bool, what: str, result: StepResult) -> Observed:
        truth = Truth.DONE if done else Truth.NOT_DONE if undone else Truth.UNKNOWN
        return Observed(truth, what, result)

    def define(ctx: JobContext) -> StepResult:
        """Undo: undefine it on the destination."""
        plan = ms.plan_of(ctx)
        with ctx.sessions() as s:
            spec = spec_of(get_vm(s, op.name))
        ctx.driver(plan.dest).define(spec)
        return {"host": plan.dest}

    def undefine(ctx: JobContext, r: StepResult) -> None:
        plan, _, dst = where(ctx)
        if dst in ACTIVE:  # never drop the definition of a copy that runs
            raise WrongState(
                "E_VM_RUNS_ON_DESTINATION",
                f"VM {op.name} runs on {plan.dest}: its definition there is not removed",
                f"stop the copy on {plan.dest} if the one on {plan.source} runs too",
            )
        ctx.driver(plan.dest).undefine(op.name)

    def defined(ctx: JobContext) -> Observed:
        plan, _, dst = where(ctx)
        what = f"on {plan.dest}: {dst or 'not defined'}"
        return judged(dst is not None, dst is None, what, {"host": plan.dest})

    def save(ctx: JobContext) -> StepResult:
        """Undo: restore it on the source from the same file."""
        plan = ms.plan_of(ctx)
        path = state_file(ctx, op)
        ctx.step_progress(0.0, "save", f"saving VM {op.name}'s state to {path}")
        ctx.driver(plan.source).save_to(op.name, path)
        return {"path": path}

    def unsave(ctx: JobContext, r: StepResult) -> None:
        plan, src, _ = where(ctx)
        if src in ACTIVE:
            return  # it runs on its source already: nothing was saved, or it is back
        ctx.driver(plan.source).restore_from((r or {}).get("path") or state_file(ctx, op))

    def saved(ctx: JobContext) -> Observed:
        plan, src, dst = where(ctx)
        what = f"on {plan.source}: {src or 'not defined'}; on {plan.dest}: {dst or 'not defined'}"
        down = src not in ACTIVE and dst not in ACTIVE
        return judged(down, src in ACTIVE, what, {"path": state_file(ctx, op)})

    def restore(ctx: JobContext) -> StepResult:
        """Undo: save it again (it ran on the destination since), for the source."""
        plan = ms.plan_of(ctx)
        path = ctx.result_of(SAVE)["path"]
        ctx.driver(plan.dest).restore_from(str(path))
        return {"path": path}

    def unrestore(ctx: JobContext, r: StepResult) -> None:
        plan, _, dst = where(ctx)
        if dst not in ACTIVE:
            return  # it never ran there: the saved state is where it was
        path = (r or {}).get("path") or ctx.result_of(SAVE)["path"]
        ctx.driver(plan.dest).save_to(op.name, str(path))

    def restored(ctx: JobContext) -> Observed:
        plan, src, dst = where(ctx)
        what = f"on {plan.dest}: {dst or 'not defined'}; on {plan.source}: {src or 'not defined'}"
        path = ctx.result_of(SAVE).get("path")
        return judged(
            dst == VmState.RUNNING and src not in ACTIVE, dst not in ACTIVE, what, {"path": path}
        )

    return [
        FnStep(
            "define on destination",
            f"define VM {op.name} on {op.to}",
            define,
            undefine,
            observe=defined,
        ),
        FnStep(
            SAVE,
            f"save VM {op.name}'s state to shared storage",
            save,
            unsave,
            weight=3,
            observe=saved,
        ),
        FnStep(
            "restore",
            f"restore VM {op.name} on {op.to}",
            restore,
            unrestore,
            weight=3,
            observe=restored,
        ),
    ]


def quick_cleanup_step(op: OpVmMigrate) -> Step:
    """Forget the VM on the source and delete the state file.  Last step: no undo."""

    def run(ctx: JobContext) -> StepResult:
        plan = ms.plan_of(ctx)
        ctx.driver(plan.source).undefine(op.name)
        path = str(ctx.result_of(SAVE)["path"])
        ctx.driver(plan.dest).delete_volume(path)
        return {"deleted": path, "state": str(VmState.RUNNING)}

    return FnStep(ms.CLEANUP, "forget the VM on the source, delete the state file", run)


def native_quick_step(op: OpVmMigrate) -> Step:
    """Quick migration where the hypervisor does it as one operation (Hyper-V: Save-VM and
    Move-VM, or Move-ClusterVirtualMachineRole -MigrationType Quick): the VM is saved,
    moved and started again.  Undo: the same the other way."""

    def quick(ctx: JobContext, plan: Plan) -> None:
        ctx.driver(plan.source).migrate(op.name, ms.request(ctx, op, plan), False)
        dst = ctx.driver(plan.dest)
        if dst.domain(op.name).state == VmState.SAVED:  # outside a cluster: started by us
            dst.start(op.name)

    def run(ctx: JobContext) -> StepResult:
        quick(ctx, ms.plan_of(ctx))
        return {"host": op.to}

    def undo(ctx: JobContext, r: StepResult) -> None:
        plan = ms.plan_of(ctx)
        quick(ctx, dataclasses.replace(plan, source=plan.dest, dest=plan.source))

    return FnStep("quick", f"quick migration of VM {op.name} to {op.to}", run, undo, weight=6)
