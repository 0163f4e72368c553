"""Power flows of an existing VM: start, stop, save, restore, delete."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from whimbrel.connections import ConnectionPool
from whimbrel.domain.vm import VmState
from whimbrel.drivers.base import HostDriver
from whimbrel.errors import NotFound, WrongState
from whimbrel.jobs.flow import Flow
from whimbrel.jobs.flows.vm_common import (
    check_memory,
    host_name,
    host_of,
    save_vm,
    spec_of,
    start_step,
    start_vm,
    vm_step,
)
from whimbrel.jobs.step import FnStep, JobContext, Step, StepResult
from whimbrel.ops import OpVmDelete, OpVmRestore, OpVmSave, OpVmStart, OpVmStop
from whimbrel.placement.refresh import refresh_where
from whimbrel.store.repo import cluster_of_vm, get_vm


class _OneVm(Flow):
    """A flow on one existing VM: locks it and checks it exists."""

    allowed: frozenset[VmState] = frozenset()
    action = ""  # "started", "stopped", ...: the phrase in the wrong-state error

    def locks(self, op: Any) -> list[str]:
        return [f"vm:{op.name}"]

    def validate(self, op: Any, s: Session, conns: ConnectionPool) -> None:
        host_of(s, op.name)
        vm = get_vm(s, op.name)
        if self.allowed and VmState(vm.state) not in self.allowed:
            raise WrongState(
                "E_VM_STATE",
                f"VM {op.name} is {vm.state}; it can be {self.action} only when "
                + " or ".join(sorted(self.allowed)),
                "run 'whimbrel vm show' to see its state",
            )


class VmStart(_OneVm):
    op_type = OpVmStart
    allowed = frozenset({VmState.STOPPED, VmState.SAVED, VmState.CRASHED})
    action = "started"

    def validate(self, op: OpVmStart, s: Session, conns: ConnectionPool) -> None:
        super().validate(op, s, conns)
        vm = get_vm(s, op.name)
        assert vm.host is not None
        check_memory(conns, vm.host, vm.memory_mib)

    def steps(self, op: OpVmStart) -> list[Step]:
        return [start_step(op.name)]


class VmStop(_OneVm):
    op_type = OpVmStop
    allowed = frozenset({VmState.RUNNING, VmState.PAUSED})
    action = "stopped"

    def steps(self, op: OpVmStop) -> list[Step]:
        def stop(drv: HostDriver, vm: str) -> None:
            if op.force:
                drv.power_off(vm)
            else:
                drv.shutdown(vm, op.timeout_s)

        how = "power off" if op.force else "shut down"
        # Undo: start it again (it boots afresh: a stop loses memory state).
        return [vm_step(op.name, "stop", f"{how} VM {op.name}", stop, start_vm)]


class VmSave(_OneVm):
    op_type = OpVmSave
    allowed = frozenset({VmState.RUNNING, VmState.PAUSED})
    action = "saved"

    def steps(self, op: OpVmSave) -> list[Step]:
        # Undo: start the VM, which resumes it from the saved state.
        return [
            vm_step(
                op.name, "save", f"save memory and device state of VM {op.name}", save_vm, start_vm
            )
        ]


class VmRestore(_OneVm):
    op_type = OpVmRestore
    allowed = frozenset({VmState.SAVED})
    action = "restored"

    def steps(self, op: OpVmRestore) -> list[Step]:
        # Undo: save the VM again.
        return [
            vm_step(
                op.name, "restore", f"resume VM {op.name} from its saved state", start_vm, save_vm
            )
        ]


class VmDelete(_OneVm):
    op_type = OpVmDelete
    finishes_cleanup_first = False
    action = "deleted"

    def validate(self, op: OpVmDelete, s: Session, conns: ConnectionPool) -> None:
        super().validate(op, s, conns)
        vm = get_vm(s, op.name)
        if vm.state in (VmState.RUNNING, VmState.PAUSED) and not op.force:
            raise WrongState(
                "E_VM_RUNNING",
                f"VM {op.name} is {vm.state}; deleting it would pull its plug and erase its disks",
                "stop it first (whimbrel vm stop), or pass --force",
            )

    def steps(self, op: OpVmDelete) -> list[Step]:
        def power_off(ctx: JobContext) -> StepResult:
            """Undo: start the VM again if it was running."""
            h = host_name(ctx, op.name)
            try:
                was = ctx.driver(h).domain(op.name).state
            except NotFound:  # already gone from its host: nothing to power off
                return {"host": h, "was": str(VmState.MISSING)}
            ctx.driver(h).power_off(op.name)
            return {"host": h, "was": str(was)}

        def power_on(ctx: JobContext, r: StepResult) -> None:
            r = r or {}
            if r.get("was") in (VmState.RUNNING, VmState.PAUSED):
                ctx.driver(r["host"]).start(op.name)

        def undefine(ctx: JobContext) -> StepResult:
            """Undo: define the domain again from the stored spec."""
            h = host_name(ctx, op.name)
            ctx.driver(h).undefine(op.name)
            return {"host": h}

        def redefine(ctx: JobContext, r: StepResult) -> None:
            with ctx.sessions() as s:
                spec = spec_of(get_vm(s, op.name))
            ctx.driver((r or {})["host"]).define(spec)

        def erase(ctx: JobContext) -> StepResult:
            """Undo: none.  An erased image cannot come back; this is the last host step."""
            with ctx.sessions() as s:
                h = host_of(s, op.name)
                paths = [d.path for d in get_vm(s, op.name).disks]
            for p in paths:
                ctx.driver(h).delete_volume(p)
            with ctx.sessions.begin() as s:
                vm = get_vm(s, op.name)
                was = cluster_of_vm(vm)
                s.delete(vm)
                refresh_where(s, f"VM {op.name} removed", {was})
            return {"deleted": paths}

        return [
            FnStep("power-off", f"power off VM {op.name} if it runs", power_off, power_on),
            FnStep("undefine", f"undefine VM {op.name} on its host", undefine, redefine),
            FnStep("erase", f"forget VM {op.name} and delete its disk images", erase),
        ]


FLOWS: list[Flow] = [VmStart(), VmStop(), VmSave(), VmRestore(), VmDelete()]
