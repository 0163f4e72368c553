"""Create a VM: disk images, inventory record, definition on the host, first start."""

from __future__ import annotations

import os
import uuid as uuidlib
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from whimbrel.config import boot_dir
from whimbrel.connections import ConnectionPool
from whimbrel.domain.vm import VmState, check_name
from whimbrel.errors import InsufficientResources, InvalidInput, WrongState, already_exists
from whimbrel.jobs.flow import Flow
from whimbrel.jobs.flows.ha import check_new_ha
from whimbrel.jobs.flows.vm_common import (
    MIB,
    check_memory,
    pick_machine,
    spec_of,
    start_step,
)
from whimbrel.jobs.flows.vm_sources import check_sources, with_template
from whimbrel.jobs.step import FnStep, JobContext, Step, StepResult
from whimbrel.ops import OpVmCreate
from whimbrel.placement.inventory import reserves, sites
from whimbrel.placement.load import VmLoad
from whimbrel.placement.rating import Goal, Needs, rate
from whimbrel.store.models import Disk, Host, Vm
from whimbrel.store.repo import get_host, get_vm, is_shared_path

CREATE_DISKS = "create-disks"  # the step whose result holds the new images


def place_new(s: Session, op: OpVmCreate) -> str:
    """The best-rated host for a new VM: its pools and networks there, memory free,
    a cluster for an HA VM (whose pools must be the cluster's shared storage)."""
    hosts = s.scalars(select(Host).options(selectinload(Host.pools), selectinload(Host.cluster)))
    wanted = {d.pool for d in op.disks}
    reach = frozenset(
        h.name
        for h in hosts
        if h.virt_type
        and wanted <= {p.name for p in h.pools if not op.ha or is_shared_path(h, p.path)}
    )
    load = VmLoad(op.name, op.memory_mib, op.vcpus, op.ha)
    ratings = rate(
        load,
        Needs(op.networks, None, reach),
        sites(s),
        reserves(s),
        Goal.BALANCE,
        op.allow_overcommit,
    )
    best = next((r for r in ratings if r.eligible), None)
    if best is None:
        raise InsufficientResources(
            "E_NO_HOST",
            f"no host can take VM {op.name} ({op.memory_mib} MiB"
            + (f", pools {', '.join(sorted(wanted))}" if wanted else "")
            + (", highly available" if op.ha else "")
            + ")",
            "free memory, add a host with those pools and networks, or name one with --host",
            "\n".join(f"{r.host}: {', '.join(r.reasons)}" for r in ratings),
        )
    return best.host


class VmCreate(Flow):
    op_type = OpVmCreate

    def locks(self, op: OpVmCreate) -> list[str]:
        # One start at a time per host: each finds the memory the one before it took.
        return [f"vm:{op.name}"] + ([f"memory:{op.host}"] if op.start and op.host else [])

    def prepare(self, op: OpVmCreate) -> OpVmCreate:
        return op if op.uuid else replace(op, uuid=str(uuidlib.uuid4()))

    def validate(self, op: OpVmCreate, s: Session, conns: ConnectionPool) -> None:
        check_name("vm", op.name)
        op = with_template(op, s)
        if s.scalar(select(Vm).where(Vm.name == op.name)) is not None:
            raise already_exists("vm", op.name)
        if op.memory_mib < 16 or op.vcpus < 1:
            raise InvalidInput(
                "E_INVALID_SIZE",
                f"{op.memory_mib} MiB and {op.vcpus} vCPUs is not a VM",
                "give at least 16 MiB of memory and 1 vCPU",
            )
        host = get_host(s, op.host or place_new(s, op))
        pools = {p.name for p in host.pools}
        for i, d in enumerate(op.disks):
            if d.pool not in pools:
                raise InvalidInput(
                    "E_POOL_NOT_FOUND",
                    f"host {op.host} has no storage pool {d.pool!r}",
                    "choose one of: " + ", ".join(sorted(pools)),
                )
            if d.size_mib < (0 if i == 0 and op.image else 1):  # 0: the image's size
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
        if host.maintenance:
            raise WrongState(
                "E_HOST_IN_MAINTENANCE",
                f"host {op.host} is in maintenance mode and takes no new VMs",
                f"choose another host, or end maintenance on {op.host}",
            )
        for what, path in (("kernel", op.kernel), ("initrd", op.initrd)):
            check_boot_file(what, path)
        check_sources(op, s, conns, host)
        check_memory(conns, host, op.memory_mib)
        if op.ha:
            check_new_ha(s, op, host)

    def bind(self, op: OpVmCreate, s: Session) -> OpVmCreate:
        op = with_template(op, s)  # the job keeps the image's path and the shape it gave
        return op if op.host else replace(op, host=place_new(s, op))

    def steps(self, op: OpVmCreate) -> list[Step]:
        targets = [f"vd{chr(ord('a') + i)}" for i in range(len(op.disks))]

        def volumes(ctx: JobContext) -> StepResult:
            """Undo: delete the disk images it created."""
            drv = ctx.driver(op.host)
            paths: list[str] = []
            sizes: list[int] = []
            try:
                for i, d in enumerate(op.disks):
                    name = f"{op.name}-{targets[i]}.qcow2"
                    size = d.size_mib * MIB
                    if i == 0 and op.image:  # the image's copy, or an overlay on it
                        size = max(size, drv.image(op.image)[0].size_bytes)
                        linked = op.clone == "linked"
                        paths.append(drv.clone_volume(d.pool, name, op.image, size, linked))
                    else:
                        paths.append(drv.create_volume(d.pool, name, size, "qcow2"))
                    sizes.append(size)
            except BaseException:
                for p in paths:
                    drv.delete_volume(p)
                raise
            return {"paths": paths, "sizes": sizes}

        def unvolumes(ctx: JobContext, r: StepResult) -> None:
            for p in (r or {}).get("paths", []):
                ctx.driver(op.host).delete_volume(p)

        def record(ctx: JobContext) -> StepResult:
            """Undo: delete the VM's row.  Runs before 'define' so the spec comes from the store."""
            made = ctx.result_of(CREATE_DISKS)
            paths = made["paths"]
            sizes = made.get("sizes") or [d.size_mib * MIB for d in op.disks]
            with ctx.sessions.begin() as s:
                host = get_host(s, op.host)
                disks = [
                    Disk(
                        target=targets[i],
                        path=paths[i],
                        size_bytes=sizes[i],
                        backing=op.image if i == 0 and op.clone == "linked" else "",
                        pool=d.pool,
                        shared=is_shared_path(host, paths[i]),
                        # the driver's own format: qcow2 on KVM, vhdx on Hyper-V
                        fmt="vhdx" if paths[i].endswith(".vhdx") else "qcow2",
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
                    ha=op.ha,
                    cdrom=op.iso,
                    boot_cdrom=op.boot_cdrom,
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
                CREATE_DISKS,
                f"create {len(op.disks)} disk image(s) on {op.host}",
                volumes,
                unvolumes,
            ),
            FnStep("record", f"record VM {op.name} in the inventory", record, unrecord),
            FnStep("define", f"define VM {op.name} on host {op.host}", define, undefine),
        ]
        if op.start:
            steps.append(start_step(op.name, op.host))
        return steps


def check_boot_file(what: str, path: str) -> None:
    """A directly booted kernel or initrd only from the hosts' boot directory."""
    if not path:
        return
    root = boot_dir()
    norm = os.path.normpath(path)
    if not os.path.isabs(path) or norm != path or not norm.startswith(root + os.sep):
        raise InvalidInput(
            "E_BOOT_FILE_REFUSED",
            f"{what} {path!r} is not a file of the hosts' boot directory {root}",
            f"put the {what} in {root} on the hosts and give its full path there "
            "(WHIMBREL_BOOT_DIR names another directory)",
        )
