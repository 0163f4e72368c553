"""A VM's CD-ROM (insert an ISO, eject it) and the import of a domain a host already has."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from whimbrel.connections import ConnectionPool
from whimbrel.domain.image import check_iso
from whimbrel.domain.vm import check_name
from whimbrel.errors import NotFound, WrongState, already_exists
from whimbrel.jobs.flow import Flow
from whimbrel.jobs.flows.vm_common import host_name, host_of
from whimbrel.jobs.step import FnStep, JobContext, Step, StepResult
from whimbrel.ops import OpVmCdrom, OpVmImport
from whimbrel.placement.refresh import refresh_where
from whimbrel.store.models import Disk, Vm
from whimbrel.store.repo import cluster_of_vm, get_host, get_vm, is_shared_path


def _set_cdrom(ctx: JobContext, name: str, iso: str) -> None:
    """The drive on the host, then the store, then the VM's findings (an ISO off shared
    storage makes an HA VM unsupported; ejecting it clears that)."""
    ctx.driver(host_name(ctx, name)).set_cdrom(name, iso)
    with ctx.sessions.begin() as s:
        vm = get_vm(s, name)
        vm.cdrom = iso
        vm.boot_cdrom = vm.boot_cdrom and bool(iso)
        refresh_where(s, f"CD-ROM of VM {name} changed", {cluster_of_vm(vm)})


class VmCdrom(Flow):
    op_type = OpVmCdrom

    def locks(self, op: OpVmCdrom) -> list[str]:
        return [f"vm:{op.name}"]

    def validate(self, op: OpVmCdrom, s: Session, conns: ConnectionPool) -> None:
        host = host_of(s, op.name)
        vm = get_vm(s, op.name)
        if not op.iso:
            if not vm.cdrom:
                raise WrongState(
                    "E_CDROM_EMPTY",
                    f"VM {op.name}'s CD-ROM holds no ISO",
                    "nothing to eject; 'whimbrel vm show' shows its CD-ROM",
                )
            return
        try:
            info, head = conns.for_host(host).image(op.iso)
        except NotFound as exc:
            raise NotFound("E_ISO_NOT_FOUND", f"ISO {op.iso}: {exc.cause}", exc.fix) from exc
        check_iso(info, head)

    def steps(self, op: OpVmCdrom) -> list[Step]:
        def change(ctx: JobContext) -> StepResult:
            """Undo: put back what was in the drive."""
            with ctx.sessions() as s:
                before = get_vm(s, op.name).cdrom
            _set_cdrom(ctx, op.name, op.iso)
            return {"before": before}

        def back(ctx: JobContext, r: StepResult) -> None:
            _set_cdrom(ctx, op.name, (r or {}).get("before", ""))

        what = f"insert {op.iso} into" if op.iso else "eject the ISO of"
        return [FnStep("cdrom", f"{what} VM {op.name}'s CD-ROM", change, back)]


class VmImport(Flow):
    """Hyper-V's Import-VM and VMM's "refresh" of a VM made outside it: the domain stays
    exactly as it is; the inventory learns it, and its findings are computed."""

    op_type = OpVmImport

    def locks(self, op: OpVmImport) -> list[str]:
        return [f"vm:{op.name}"]

    def validate(self, op: OpVmImport, s: Session, conns: ConnectionPool) -> None:
        check_name("vm", op.name)
        get_host(s, op.host)
        if s.scalar(select(Vm).where(Vm.name == op.name)) is not None:
            raise already_exists("vm", op.name)
        spec = conns.for_host(op.host).describe(op.name)
        if s.scalar(select(Vm).where(Vm.uuid == spec.uuid)) is not None:
            raise WrongState(
                "E_VM_UUID_KNOWN",
                f"domain {op.name} on {op.host} has the UUID of a VM Whimbrel already manages",
                "it is a copy of that VM: remove one of the two, or import it under its own UUID",
            )

    def steps(self, op: OpVmImport) -> list[Step]:
        def record(ctx: JobContext) -> StepResult:
            """Undo: forget it again (the domain on the host is left as it is)."""
            drv = ctx.driver(op.host)
            spec, state = drv.describe(op.name), drv.domain(op.name).state
            with ctx.sessions.begin() as s:
                host = get_host(s, op.host)
                pools = {p.path.rstrip("/") + "/": p.name for p in host.pools}
                disks = [
                    Disk(
                        target=d.target,
                        path=d.path,
                        fmt=d.fmt,
                        size_bytes=d.size_bytes,
                        pool=next((n for base, n in pools.items() if d.path.startswith(base)), ""),
                        shared=is_shared_path(host, d.path),
                        backing=d.backing,
                    )
                    for d in spec.disks
                ]
                vm = Vm(
                    name=spec.name,
                    uuid=spec.uuid,
                    host=host,
                    state=state,
                    memory_mib=spec.memory_mib,
                    vcpus=spec.vcpus,
                    virt_type=spec.virt_type,
                    machine=spec.machine,
                    kernel=spec.boot.kernel,
                    initrd=spec.boot.initrd,
                    cmdline=spec.boot.cmdline,
                    networks=list(spec.networks),
                    disks=disks,
                    cdrom=spec.cdrom,
                    boot_cdrom=spec.boot_cdrom,
                )
                s.add(vm)
                s.flush()
                refresh_where(s, f"VM {op.name} imported", {cluster_of_vm(vm)})
            return {"uuid": spec.uuid, "state": str(state)}

        def forget(ctx: JobContext, _r: StepResult) -> None:
            with ctx.sessions.begin() as s:
                vm = s.scalar(select(Vm).where(Vm.name == op.name))
                if vm is not None:
                    s.delete(vm)

        return [
            FnStep(
                "record", f"record domain {op.name} of {op.host} in the inventory", record, forget
            )
        ]


FLOWS = [VmCdrom(), VmImport()]
