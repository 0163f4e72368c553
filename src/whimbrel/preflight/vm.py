"""Checks on the VM being moved and what the destination offers it.

Each check names the Microsoft topic it comes from (docs/hyper-v-mapping.md).
"""

from __future__ import annotations

import posixpath

from whimbrel.domain.migration import MIB, DiskMove, MoveKind
from whimbrel.domain.vm import VmState
from whimbrel.errors import WhimbrelError
from whimbrel.preflight.finding import Finding, HostDrivers, Severity
from whimbrel.store.models import Host, StoragePool, Vm
from whimbrel.store.repo import is_shared_path

E, W = Severity.ERROR, Severity.WARNING

# Hyper-V Manager's move wizard: a running VM moves live; quick migration saves it first;
# only a stopped VM moves offline.
_STATES = {
    MoveKind.LIVE: {VmState.RUNNING},
    MoveKind.LIVE_STORAGE: {VmState.RUNNING},
    MoveKind.STORAGE: {VmState.RUNNING},
    MoveKind.QUICK: {VmState.RUNNING},
    MoveKind.OFFLINE: {VmState.STOPPED},
}


def check_state(vm: Vm, kind: MoveKind, src: Host, dst: Host) -> list[Finding]:
    out = []
    if VmState(vm.state) not in _STATES[kind]:
        want = " or ".join(sorted(_STATES[kind]))
        hint = {
            VmState.SAVED: "restore it ('whimbrel vm restore') or discard its saved state first",
            VmState.STOPPED: "start it, or move it stopped (the move is then offline)",
            VmState.RUNNING: "a running VM moves live (leave out --quick to move it live)",
        }.get(VmState(vm.state), "wait until it is running or stopped")
        out.append(
            Finding(
                "E_VM_STATE",
                E,
                f"VM {vm.name}",
                f"VM {vm.name} is {vm.state}; a {kind} move needs it {want}",
                hint,
            )
        )
    if src.id == dst.id and kind != MoveKind.STORAGE:
        out.append(
            Finding(
                "E_SAME_HOST",
                E,
                f"VM {vm.name}",
                f"VM {vm.name} already runs on {dst.name}",
                "choose another host, or move only its storage with "
                "--include-storage --storage-path POOL",
            )
        )
    return out


def check_machine(vm: Vm, dst: Host) -> list[Finding]:
    """Hyper-V's live migration without clustering, requirements: a VM moves between host
    versions only if its configuration version is one the destination supports (version 5 or
    later between 2012 R2 and 2016).  libvirt's counterpart is the machine type."""
    if vm.machine in dst.machine_types or not dst.machine_types:
        return []
    return [
        Finding(
            "E_MACHINE_TYPE_UNSUPPORTED",
            E,
            f"VM {vm.name}",
            f"VM {vm.name} uses machine type {vm.machine}, which {dst.name}'s hypervisor "
            f"({dst.hypervisor} {dst.hypervisor_version}) does not offer",
            f"move it to a host with a QEMU that has {vm.machine}, or upgrade {dst.name}",
        )
    ]


def check_cpu(vm: Vm, src: Host, dst: Host, conns: HostDrivers) -> list[Finding]:
    """Host compatibility (Hyper-V's processor compatibility): the destination's
    CPU must provide every feature the guest was started with."""
    try:
        cpu = conns.for_host(src.name).domain_cpu(vm.name)
        missing = conns.for_host(dst.name).compare_cpu(cpu, vm.virt_type) if cpu else []
    except WhimbrelError as exc:
        return [Finding(exc.code, W, f"VM {vm.name}", exc.cause, exc.fix, exc.detail)]
    if not missing:
        return []
    return [
        Finding(
            "E_CPU_INCOMPATIBLE",
            E,
            f"VM {vm.name}",
            f"host {dst.name}'s CPU lacks features VM {vm.name} uses: {', '.join(missing)}",
            "define the VM with a CPU model every host of the pair provides "
            "(a common baseline), or choose a host with a compatible CPU",
        )
    ]


def check_networks(vm: Vm, dst: Host) -> list[Finding]:
    """The virtual switch a VM uses must exist, under the same
    name, on the destination, or the VM arrives without its network."""
    have = {n.name for n in dst.networks}
    return [
        Finding(
            "E_NETWORK_MISSING",
            E,
            f"VM {vm.name}",
            f"VM {vm.name} uses network {net!r}, which host {dst.name} does not have",
            f"define network {net!r} on {dst.name} (same name, same bridge or VLAN)",
        )
        for net in vm.networks
        if net not in have
    ]


def check_memory(vm: Vm, dst: Host, conns: HostDrivers) -> list[Finding]:
    try:
        free = conns.for_host(dst.name).free_memory_mib()
    except WhimbrelError:
        free = dst.free_memory_mib
    if vm.memory_mib <= free:
        return []
    return [
        Finding(
            "E_NO_MEMORY",
            E,
            f"host {dst.name}",
            f"VM {vm.name} needs {vm.memory_mib} MiB; host {dst.name} has {free} MiB free",
            "free memory on the destination (move or stop VMs there) or choose another host",
        )
    ]


def target_pool(dst: Host, storage_path: str) -> StoragePool | None:
    for p in dst.pools:
        if storage_path in (p.name, p.path, p.path.rstrip("/")):
            return p
    return None


def check_disks(
    vm: Vm, kind: MoveKind, src: Host, dst: Host, storage_path: str
) -> tuple[list[Finding], list[DiskMove], bool]:
    """Without storage, only the configuration moves, which is right
    only when the disks sit on storage both hosts share.  Returns the findings,
    the disks to copy and whether every disk kept in place is declared shared."""
    shared = all(is_shared_path(src, d.path) and is_shared_path(dst, d.path) for d in vm.disks)
    if kind in (MoveKind.LIVE, MoveKind.QUICK, MoveKind.OFFLINE):
        out = [
            Finding(
                "E_DISK_NOT_SHARED",
                E,
                f"VM {vm.name}",
                f"disk {d.target} ({d.path}) is not on storage that {src.name} and {dst.name} "
                "both share, so the destination cannot reach it",
                "add --include-storage (and --storage-path POOL) to copy it while the VM runs"
                if kind != MoveKind.QUICK
                else "quick migration needs shared storage: use a live move with "
                "--include-storage instead",
            )
            for d in vm.disks
            if src.id != dst.id  # a host reaches its own disks (E_SAME_HOST says the rest)
            and not (is_shared_path(src, d.path) and is_shared_path(dst, d.path))
        ]
        return out, [], shared
    pool = target_pool(dst, storage_path or "local")
    if pool is None:
        return (
            [
                Finding(
                    "E_STORAGE_PATH_UNKNOWN",
                    E,
                    f"host {dst.name}",
                    f"host {dst.name} has no storage pool named or located at "
                    f"{storage_path or 'local'!r}",
                    "give --storage-path one of: " + ", ".join(p.name for p in dst.pools),
                )
            ],
            [],
            False,
        )
    moves = [
        DiskMove(
            d.target, d.path, posixpath.join(pool.path, posixpath.basename(d.path)), d.size_bytes
        )
        for d in vm.disks
    ]
    out = []
    if kind == MoveKind.STORAGE and all(m.dest_path == m.source_path for m in moves):
        out.append(
            Finding(
                "E_STORAGE_SAME_PATH",
                E,
                f"VM {vm.name}",
                f"VM {vm.name}'s disks are already in pool {pool.name}",
                "give --storage-path another pool",
            )
        )
    # Paths are the same on every host: across hosts every disk is copied.
    need = sum(m.size_bytes for m in moves if src.id != dst.id or m.dest_path != m.source_path)
    if pool.available_bytes and need > pool.available_bytes:
        out.append(
            Finding(
                "E_NO_SPACE",
                E,
                f"host {dst.name}",
                f"pool {pool.name} has {pool.available_bytes // MIB} MiB free; the disks need "
                f"{need // MIB} MiB",
                "free space in that pool or choose another with --storage-path",
            )
        )
    return out, moves, shared
