"""Flows of a VM's life on one host: create, start, stop, save, restore, delete."""

from __future__ import annotations

import re
import uuid as uuidlib
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from whimbrel.connections import ConnectionPool
from whimbrel.domain.vm import BootSpec, DiskSpec, DomainSpec, VmState, check_name
from whimbrel.errors import (
    InsufficientResources,
    InvalidInput,
    NotFound,
    WrongState,
    already_exists,
)
from whimbrel.jobs.flow import Flow
from whimbrel.jobs.step import FnStep, JobContext, Step, StepResult
from whimbrel.ops import OpVmCreate, OpVmDelete, OpVmRestore, OpVmSave, OpVmStart, OpVmStop
from whimbrel.store.models import Disk, Host, Vm
from whimbrel.store.repo import get_host, get_vm, is_shared_path

MIB = 1 << 20


def pick_machine(machine_types: list[str]) -> str:
    """The newest versioned i440fx machine type: fixed, so a guest keeps its ABI."""

    def version(m: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", m))

    versioned = [m for m in machine_types if re.fullmatch(r"pc-i440fx-\d+\.\d+", m)]
    return max(versioned, key=version) if versioned else "pc"


def spec_of(vm: Vm) -> DomainSpec:
    return DomainSpec(
        name=vm.name,
        uuid=vm.uuid,
        memory_mib=vm.memory_mib,
        vcpus=vm.vcpus,
        virt_type=vm.virt_type,
        machine=vm.machine,
        boot=BootSpec(vm.kernel, vm.initrd, vm.cmdline),
        disks=tuple(DiskSpec(d.path, d.target, d.fmt, d.size_bytes, d.pool) for d in vm.disks),
        networks=tuple(vm.networks),
        console_log=f"/var/log/libvirt/qemu/{vm.name}-console.log",
    )


def check_memory(conns: ConnectionPool, host: Host, memory_mib: int) -> None:
    free = conns.for_host(host.name).free_memory_mib()
    if memory_mib > free:
        raise InsufficientResources(
            "E_NO_MEMORY",
            f"the VM needs {memory_mib} MiB but host {host.name} has {free} MiB free",
            "give the VM less memory, stop VMs on that host, or choose another host",
        )


def sync_state(ctx: JobContext, host: str, name: str) -> str:
    state = ctx.driver(host).domain(name).state
    with ctx.sessions.begin() as s:
        get_vm(s, name).state = state
    return str(state)


def _host_of(s: Session, name: str) -> str:
    vm = get_vm(s, name)
    if vm.host is None:
        raise WrongState(
            "E_VM_NO_HOST", f"VM {name} is not placed on any host", "recreate it on a host"
        )
    return vm.host.name


class VmCreate(Flow):
    op_type = OpVmCreate

    def locks(self, op: OpVmCreate) -> list[str]:
        return [f"vm:{op.name}"]

    def prepare(self, op: OpVmCreate) -> OpVmCreate:
        return op if op.uuid else replace(op, uuid=str(uuidlib.uuid4()))

    def validate(self, op: OpVmCreate, s: Session, conns: ConnectionPool) -> None:
        check_name("vm", op.name)
        if s.scalar(select(Vm).where(Vm.name == op.name)) is not None:
            raise already_exists("vm", op.name)
        if op.memory_mib < 16 or op.vcpus < 1:
            raise InvalidInput(
                "E_INVALID_SIZE",
                f"{op.memory_mib} MiB and {op.vcpus} vCPUs is not a VM",
                "give at least 16 MiB of memory and 1 vCPU",
            )
        host = get_host(s, op.host)
        pools = {p.name for p in host.pools}
        for d in op.disks:
            if d.pool not in pools:
                raise InvalidInput(
                    "E_POOL_NOT_FOUND",
                    f"host {op.host} has no storage pool {d.pool!r}",
                    "choose one of: " + ", ".join(sorted(pools)),
                )
            if d.size_mib < 1:
                raise InvalidInput(
                    "E_INVALID_SIZE", "a disk needs at least 1 MiB", "give --disk-mib"
                )
        nets = {n.name for n in host.networks}
        for n in op.networks:
            if n not in nets:
                raise InvalidInput(
                    "E_NETWORK_NOT_FOUND",
                    f"host {op.host} has no network {n!r}",
                    "choose one of: " + ", ".join(sorted(nets)),
                )
        if not host.virt_type:
            raise WrongState(
                "E_HOST_NO_VIRT",
                f"host {op.host} offers no x86_64 domain type",
                "install QEMU on the host, then 'whimbrel host refresh'",
            )
        check_memory(conns, host, op.memory_mib)

    def steps(self, op: OpVmCreate) -> list[Step]:
        targets = [f"vd{chr(ord('a') + i)}" for i in range(len(op.disks))]

        def volumes(ctx: JobContext) -> StepResult:
            """Undo: delete the disk images it created."""
            drv = ctx.driver(op.host)
            paths: list[str] = []
            try:
                for i, d in enumerate(op.disks):
                    name = f"{op.name}-{targets[i]}.qcow2"
                    paths.append(drv.create_volume(d.pool, name, d.size_mib * MIB, "qcow2"))
            except BaseException:
                for p in paths:
                    drv.delete_volume(p)
                raise
            return {"paths": paths}

        def unvolumes(ctx: JobContext, r: StepResult) -> None:
            for p in (r or {}).get("paths", []):
                ctx.driver(op.host).delete_volume(p)

        def record(ctx: JobContext) -> StepResult:
            """Undo: delete the VM's row.  Runs before 'define' so the spec comes from the store."""
            paths = ctx_result(ctx, 0)["paths"]
            with ctx.sessions.begin() as s:
                host = get_host(s, op.host)
                disks = [
                    Disk(
                        target=targets[i],
                        path=paths[i],
                        size_bytes=d.size_mib * MIB,
                        pool=d.pool,
                        shared=is_shared_path(host, paths[i]),
                    )
                    for i, d in enumerate(op.disks)
                ]
                vm = Vm(
                    name=op.name,
                    uuid=op.uuid,
                    host=host,
                    state=VmState.STOPPED,
                    memory_mib=op.memory_mib,
                    vcpus=op.vcpus,
                    virt_type=host.virt_type,
                    machine=pick_machine(host.machine_types),
                    kernel=op.kernel,
                    initrd=op.initrd,
                    cmdline=op.cmdline,
                    networks=list(op.networks),
                    disks=disks,
                )
                s.add(vm)
            return None

        def unrecord(ctx: JobContext, _r: StepResult) -> None:
            with ctx.sessions.begin() as s:
                vm = s.scalar(select(Vm).where(Vm.uuid == op.uuid))
                if vm is not None:
                    s.delete(vm)

        def define(ctx: JobContext) -> StepResult:
            """Undo: undefine the domain on the host."""
            with ctx.sessions() as s:
                spec = spec_of(get_vm(s, op.name))
            ctx.driver(op.host).define(spec)
            return None

        def undefine(ctx: JobContext, _r: StepResult) -> None:
            ctx.driver(op.host).undefine(op.name)

        steps: list[Step] = [
            FnStep(
                "create-disks",
                f"create {len(op.disks)} disk image(s) on {op.host}",
                volumes,
                unvolumes,
            ),
            FnStep("record", f"record VM {op.name} in the inventory", record, unrecord),
            FnStep("define", f"define VM {op.name} on host {op.host}", define, undefine),
        ]
        if op.start:
            steps.append(_start_step(op.name, op.host))
        return steps


def ctx_result(ctx: JobContext, index: int) -> dict[str, list[str]]:
    """The persisted result of an earlier step of the same job."""
    from whimbrel.store.models import JobStep

    with ctx.sessions() as s:
        row = s.scalars(
            select(JobStep).where(JobStep.job_id == ctx.job_id, JobStep.index == index)
        ).one()
        return dict(row.result or {})


def _start_step(name: str, host: str | None = None) -> Step:
    def start(ctx: JobContext) -> StepResult:
        """Undo: power the VM off again."""
        h = host or _host_name(ctx, name)
        ctx.driver(h).start(name)
        return {"host": h, "state": sync_state(ctx, h, name)}

    def stop(ctx: JobContext, r: StepResult) -> None:
        h = (r or {}).get("host") or host or _host_name(ctx, name)
        ctx.driver(h).power_off(name)
        sync_state(ctx, h, name)

    return FnStep("start", f"start VM {name}", start, stop)


def _host_name(ctx: JobContext, name: str) -> str:
    with ctx.sessions() as s:
        return _host_of(s, name)


class _OneVm(Flow):
    """A flow on one existing VM: locks it and checks it exists."""

    allowed: frozenset[VmState] = frozenset()
    verb = ""

    def locks(self, op: Any) -> list[str]:
        return [f"vm:{op.name}"]

    def validate(self, op: Any, s: Session, conns: ConnectionPool) -> None:
        _host_of(s, op.name)
        vm = get_vm(s, op.name)
        if self.allowed and VmState(vm.state) not in self.allowed:
            raise WrongState(
                f"E_VM_STATE_{self.verb.upper()}",
                f"VM {op.name} is {vm.state}; it can be {self.verb}ed only when "
                + " or ".join(sorted(self.allowed)),
                "run 'whimbrel vm show' to see its state",
            )


class VmStart(_OneVm):
    op_type = OpVmStart
    allowed = frozenset({VmState.STOPPED, VmState.SAVED, VmState.CRASHED})
    verb = "start"

    def validate(self, op: OpVmStart, s: Session, conns: ConnectionPool) -> None:
        super().validate(op, s, conns)
        vm = get_vm(s, op.name)
        assert vm.host is not None
        check_memory(conns, vm.host, vm.memory_mib)

    def steps(self, op: OpVmStart) -> list[Step]:
        return [_start_step(op.name)]


class VmStop(_OneVm):
    op_type = OpVmStop
    allowed = frozenset({VmState.RUNNING, VmState.PAUSED})
    verb = "stopp"

    def steps(self, op: OpVmStop) -> list[Step]:
        def stop(ctx: JobContext) -> StepResult:
            """Undo: start the VM again (it boots afresh: a stop loses memory state)."""
            h = _host_name(ctx, op.name)
            drv = ctx.driver(h)
            if op.force:
                drv.power_off(op.name)
            else:
                drv.shutdown(op.name, op.timeout_s)
            return {"host": h, "state": sync_state(ctx, h, op.name)}

        def restart(ctx: JobContext, r: StepResult) -> None:
            h = (r or {})["host"]
            ctx.driver(h).start(op.name)
            sync_state(ctx, h, op.name)

        how = "power off" if op.force else "shut down"
        return [FnStep("stop", f"{how} VM {op.name}", stop, restart)]


class VmSave(_OneVm):
    op_type = OpVmSave
    allowed = frozenset({VmState.RUNNING, VmState.PAUSED})
    verb = "sav"

    def steps(self, op: OpVmSave) -> list[Step]:
        def save(ctx: JobContext) -> StepResult:
            """Undo: start the VM, which resumes it from the saved state."""
            h = _host_name(ctx, op.name)
            ctx.driver(h).save(op.name)
            return {"host": h, "state": sync_state(ctx, h, op.name)}

        def resume(ctx: JobContext, r: StepResult) -> None:
            h = (r or {})["host"]
            ctx.driver(h).start(op.name)
            sync_state(ctx, h, op.name)

        return [FnStep("save", f"save memory and device state of VM {op.name}", save, resume)]


class VmRestore(_OneVm):
    op_type = OpVmRestore
    allowed = frozenset({VmState.SAVED})
    verb = "restor"

    def steps(self, op: OpVmRestore) -> list[Step]:
        def restore(ctx: JobContext) -> StepResult:
            """Undo: save the VM again."""
            h = _host_name(ctx, op.name)
            ctx.driver(h).start(op.name)
            return {"host": h, "state": sync_state(ctx, h, op.name)}

        def resave(ctx: JobContext, r: StepResult) -> None:
            h = (r or {})["host"]
            ctx.driver(h).save(op.name)
            sync_state(ctx, h, op.name)

        return [FnStep("restore", f"resume VM {op.name} from its saved state", restore, resave)]


class VmDelete(_OneVm):
    op_type = OpVmDelete
    verb = "delet"

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
            h = _host_name(ctx, op.name)
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
            h = _host_name(ctx, op.name)
            ctx.driver(h).undefine(op.name)
            return {"host": h}

        def redefine(ctx: JobContext, r: StepResult) -> None:
            with ctx.sessions() as s:
                spec = spec_of(get_vm(s, op.name))
            ctx.driver((r or {})["host"]).define(spec)

        def erase(ctx: JobContext) -> StepResult:
            """Undo: none.  An erased image cannot come back; this is the last host step."""
            with ctx.sessions() as s:
                h = _host_of(s, op.name)
                paths = [d.path for d in get_vm(s, op.name).disks]
            for p in paths:
                ctx.driver(h).delete_volume(p)
            with ctx.sessions.begin() as s:
                s.delete(get_vm(s, op.name))
            return {"deleted": paths}

        return [
            FnStep("power-off", f"power off VM {op.name} if it runs", power_off, power_on),
            FnStep("undefine", f"undefine VM {op.name} on its host", undefine, redefine),
            FnStep("erase", f"forget VM {op.name} and delete its disk images", erase),
        ]


FLOWS: list[Flow] = [VmCreate(), VmStart(), VmStop(), VmSave(), VmRestore(), VmDelete()]
