"""Helpers every VM flow shares: the domain spec, memory check, state sync, start step."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from whimbrel.connections import ConnectionPool
from whimbrel.domain.vm import ACTIVE, BootSpec, DiskSpec, DomainSpec
from whimbrel.drivers import keeps_own_cluster
from whimbrel.drivers.base import HostDriver, OwnClusterHost
from whimbrel.errors import InsufficientResources, WrongState
from whimbrel.jobs.step import FnStep, JobContext, Step, StepResult
from whimbrel.placement.inventory import loads
from whimbrel.placement.refresh import refresh
from whimbrel.store.models import Host, Vm
from whimbrel.store.repo import cluster_of_vm, get_vm

MIB = 1 << 20


def pick_machine(machine_types: list[str]) -> str:
    """The newest versioned i440fx machine type: fixed, so a guest keeps its ABI
    (on Hyper-V, the newest configuration version)."""

    def version(m: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", m))

    versioned = [m for m in machine_types if re.fullmatch(r"pc-i440fx-\d+\.\d+", m)]
    if versioned:
        return max(versioned, key=version)
    # Hyper-V: the newest configuration version the host supports (its default).
    config = [m for m in machine_types if re.fullmatch(r"\d+\.\d+", m)]
    return max(config, key=version) if config else "pc"


def spec_of(vm: Vm) -> DomainSpec:
    return DomainSpec(
        name=vm.name,
        uuid=vm.uuid,
        memory_mib=vm.memory_mib,
        vcpus=vm.vcpus,
        virt_type=vm.virt_type,
        machine=vm.machine,
        boot=BootSpec(vm.kernel, vm.initrd, vm.cmdline),
        disks=tuple(
            DiskSpec(d.path, d.target, d.fmt, d.size_bytes, d.pool, backing=d.backing)
            for d in vm.disks
        ),
        networks=tuple(vm.networks),
        console_log=f"/var/log/libvirt/qemu/{vm.name}-console.log",
        cdrom=vm.cdrom,
        boot_cdrom=vm.boot_cdrom,
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
        vm = get_vm(s, name)
        if vm.state != state:
            vm.state = state
            refresh(s, f"VM {name} {state}", cluster_of_vm(vm))
    return str(state)


def host_of(s: Session, name: str) -> str:
    vm = get_vm(s, name)
    if vm.host is None:
        raise WrongState(
            "E_VM_NO_HOST", f"VM {name} is not placed on any host", "recreate it on a host"
        )
    return vm.host.name


Action = Callable[[HostDriver, str], None]


def vm_step(
    vm: str, step: str, description: str, do: Action, undo: Action, host: str | None = None
) -> Step:
    """A step that acts on a VM where it runs, then records the state its host reports.

    Undo: ``undo`` on the same host, then the state is recorded again.
    """

    def run(ctx: JobContext) -> StepResult:
        h = host or host_name(ctx, vm)
        do(ctx.driver(h), vm)
        return {"host": h, "state": sync_state(ctx, h, vm)}

    def revert(ctx: JobContext, r: StepResult) -> None:
        h = (r or {}).get("host") or host or host_name(ctx, vm)
        undo(ctx.driver(h), vm)
        sync_state(ctx, h, vm)

    return FnStep(step, description, run, revert)


def start_step(name: str, host: str | None = None) -> Step:
    """Start the VM, its host's memory checked again first (under the job's locks: a
    check made at submission may no longer hold).  Undo: power it off again."""

    def run(ctx: JobContext) -> StepResult:
        h = host or host_name(ctx, name)
        drv = ctx.driver(h)
        if drv.domain(name).state not in ACTIVE:
            check_memory_at_start(ctx, drv, name)
        drv.start(name)
        return {"host": h, "state": sync_state(ctx, h, name)}

    def revert(ctx: JobContext, r: StepResult) -> None:
        h = (r or {}).get("host") or host or host_name(ctx, name)
        power_off_vm(ctx.driver(h), name)
        sync_state(ctx, h, name)

    return FnStep("start", f"start VM {name}", run, revert)


def check_memory_at_start(ctx: JobContext, drv: HostDriver, vm: str) -> None:
    """Raise E_NO_MEMORY unless the VM's host can hold it now.  Memory promised to the
    host's running VMs counts, touched or not (a TCG guest allocates lazily)."""
    with ctx.sessions() as s:
        row = get_vm(s, vm)
        need, h = row.memory_mib, row.host
        node = loads([h], [v for v in h.vms if v.name != vm])[0] if h else None
    free = drv.free_memory_mib()
    committed = node.used_mib if node is not None else 0
    if node is not None and node.memory_mib:
        free = min(free, node.free_mib)
    if need > free:
        raise InsufficientResources(
            "E_NO_MEMORY",
            f"VM {vm} needs {need} MiB but its host has {free} MiB left now that it starts "
            f"({committed} MiB promised to the VMs running there)",
            "stop a VM on that host, give this one less memory, or choose another host",
        )


def start_vm(drv: HostDriver, vm: str) -> None:
    drv.start(vm)


def power_off_vm(drv: HostDriver, vm: str) -> None:
    drv.power_off(vm)


def save_vm(drv: HostDriver, vm: str) -> None:
    drv.save(vm)


def host_name(ctx: JobContext, name: str) -> str:
    with ctx.sessions() as s:
        return host_of(s, name)


def own_cluster(ctx: JobContext, host: str) -> OwnClusterHost | None:
    """The host's driver when its hypervisor keeps its own cluster and settings
    (Hyper-V) and must be told of a change; None when Whimbrel's store is the truth."""
    with ctx.sessions() as s:
        uri = s.scalar(select(Host.uri).where(Host.name == host))
    if uri is None or not keeps_own_cluster(uri):
        return None
    return cast(OwnClusterHost, ctx.driver(host))
