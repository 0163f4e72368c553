"""Templates: a stopped VM's first disk copied into a pool with the VM's shape, and
their removal once no linked clone stands on them (VMM's VM templates; the image of
a template on a cluster's shared storage serves every node of that cluster)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from whimbrel.connections import ConnectionPool
from whimbrel.domain.vm import VmState, check_name
from whimbrel.errors import InvalidInput, WrongState, already_exists
from whimbrel.jobs.flow import Flow
from whimbrel.jobs.flows.vm_sources import get_template
from whimbrel.jobs.step import FnStep, JobContext, Step, StepResult
from whimbrel.ops import OpTemplateCreate, OpTemplateDelete
from whimbrel.store.catalog import Template
from whimbrel.store.models import Disk, Vm
from whimbrel.store.repo import get_vm


class TemplateCreate(Flow):
    op_type = OpTemplateCreate

    def locks(self, op: OpTemplateCreate) -> list[str]:
        return [f"template:{op.name}", f"vm:{op.vm}"]

    def validate(self, op: OpTemplateCreate, s: Session, conns: ConnectionPool) -> None:
        check_name("template", op.name)
        if s.scalar(select(Template).where(Template.name == op.name)) is not None:
            raise already_exists("template", op.name)
        vm = get_vm(s, op.vm)
        if vm.state != VmState.STOPPED:
            raise WrongState(
                "E_VM_STATE",
                f"VM {op.vm} is {vm.state}; a template is copied from a stopped VM, so that "
                "its disk is consistent",
                f"stop it first ('whimbrel vm stop {op.vm}')",
            )
        if not vm.disks or vm.host is None:
            raise WrongState(
                "E_TEMPLATE_NO_DISK", f"VM {op.vm} has no disk to make a template of", ""
            )
        if op.pool not in {p.name for p in vm.host.pools}:
            raise InvalidInput(
                "E_POOL_NOT_FOUND",
                f"host {vm.host.name} has no storage pool {op.pool!r}",
                "choose one of: " + ", ".join(sorted(p.name for p in vm.host.pools)),
            )

    def steps(self, op: OpTemplateCreate) -> list[Step]:
        def copy(ctx: JobContext) -> StepResult:
            """Undo: delete the copy."""
            with ctx.sessions() as s:
                vm = get_vm(s, op.vm)
                host, source = vm.host.name if vm.host else "", vm.disks[0].path
            path = ctx.driver(host).clone_volume(
                op.pool, f"template-{op.name}.qcow2", source, 0, linked=False
            )
            return {"host": host, "path": path}

        def uncopy(ctx: JobContext, r: StepResult) -> None:
            if r:
                ctx.driver(r["host"]).delete_volume(r["path"])

        def record(ctx: JobContext) -> StepResult:
            """Undo: forget the template."""
            made = ctx.result_of("copy")
            info, _head = ctx.driver(made["host"]).image(made["path"])
            with ctx.sessions.begin() as s:
                vm = get_vm(s, op.vm)
                s.add(
                    Template(
                        name=op.name,
                        host=made["host"],
                        pool=op.pool,
                        path=made["path"],
                        fmt="qcow2",
                        size_bytes=info.size_bytes,
                        memory_mib=vm.memory_mib,
                        vcpus=vm.vcpus,
                        networks=list(vm.networks),
                        kernel=vm.kernel,
                        initrd=vm.initrd,
                        cmdline=vm.cmdline,
                        source_vm=vm.name,
                    )
                )
            return None

        def forget(ctx: JobContext, _r: StepResult) -> None:
            with ctx.sessions.begin() as s:
                t = s.scalar(select(Template).where(Template.name == op.name))
                if t is not None:
                    s.delete(t)

        return [
            FnStep("copy", f"copy VM {op.vm}'s disk into pool {op.pool}", copy, uncopy),
            FnStep("record", f"record template {op.name}", record, forget),
        ]


class TemplateDelete(Flow):
    op_type = OpTemplateDelete

    def locks(self, op: OpTemplateDelete) -> list[str]:
        return [f"template:{op.name}"]

    def validate(self, op: OpTemplateDelete, s: Session, conns: ConnectionPool) -> None:
        t = get_template(s, op.name)
        users = sorted(s.scalars(select(Vm.name).join(Disk).where(Disk.backing == t.path)))
        if users:
            raise WrongState(
                "E_TEMPLATE_IN_USE",
                f"template {op.name} is the backing image of {len(users)} linked clone(s): "
                + ", ".join(users),
                "delete those VMs first, or keep the template",
            )

    def steps(self, op: OpTemplateDelete) -> list[Step]:
        def forget(ctx: JobContext) -> StepResult:
            """Undo: record it again."""
            with ctx.sessions.begin() as s:
                t = get_template(s, op.name)
                row = {c.name: getattr(t, c.name) for c in Template.__table__.columns}
                s.delete(t)
            return {"row": {k: v for k, v in row.items() if k not in ("id", "created_at")}}

        def unforget(ctx: JobContext, r: StepResult) -> None:
            with ctx.sessions.begin() as s:
                s.add(Template(**(r or {})["row"]))

        def remove(ctx: JobContext) -> StepResult:
            """Undo: none; the image is gone (its record went first)."""
            row = ctx.result_of("forget")["row"]
            ctx.driver(row["host"]).delete_volume(row["path"])
            return None

        return [
            FnStep("forget", f"forget template {op.name}", forget, unforget),
            FnStep("remove", f"delete template {op.name}'s image", remove),
        ]


FLOWS = [TemplateCreate(), TemplateDelete()]
