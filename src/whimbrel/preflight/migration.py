"""Preflight of a move: every check, every finding, and the plan the move will follow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from whimbrel.domain.migration import DiskMove, MoveKind
from whimbrel.domain.vm import VmState
from whimbrel.ops import OpVmMigrate
from whimbrel.preflight import hosts, hyperv
from whimbrel.preflight import vm as vmc
from whimbrel.preflight.finding import Finding, HostDrivers, demote
from whimbrel.preflight.media import check_media
from whimbrel.store.repo import get_host, get_vm


def move_kind(op: OpVmMigrate, state: str, same_host: bool) -> MoveKind:
    if same_host and (op.include_storage or op.storage_path):
        return MoveKind.STORAGE
    if op.quick:
        return MoveKind.QUICK
    if state == VmState.STOPPED:
        return MoveKind.OFFLINE
    return MoveKind.LIVE_STORAGE if op.include_storage else MoveKind.LIVE


@dataclass(frozen=True)
class Plan:
    """What preflight decided: the move's kind, hosts, address and disk copies."""

    kind: MoveKind
    source: str
    dest: str
    address: str = ""
    disks: tuple[DiskMove, ...] = ()
    shared: bool = False
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "source": self.source,
            "dest": self.dest,
            "address": self.address,
            "disks": [d.__dict__ for d in self.disks],
            "shared": self.shared,
            "findings": [f.to_dict() for f in self.findings],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        return cls(
            MoveKind(d["kind"]),
            d["source"],
            d["dest"],
            d["address"],
            tuple(DiskMove(**x) for x in d["disks"]),
            d["shared"],
        )


def preflight(op: OpVmMigrate, s: Session, conns: HostDrivers) -> Plan:
    """Run every check (read-only) and return the plan with all findings."""
    vm = get_vm(s, op.name)
    dst = get_host(s, op.to)
    src = vm.host
    if src is None:
        src = dst  # no host: the state check reports it
    kind = move_kind(op, vm.state, src.id == dst.id)
    f: list[Finding] = []
    # Hyper-V hosts keep their own settings: those checks read them live (preflight.hyperv).
    hv = hyperv.is_hyperv(src) or hyperv.is_hyperv(dst)
    f += vmc.check_state(vm, kind, src, dst)
    f += hosts.check_enabled(src, dst) if kind != MoveKind.STORAGE and not hv else []
    f += hosts.check_maintenance(dst) if src.id != dst.id else []
    address = ""
    if kind in (MoveKind.LIVE, MoveKind.LIVE_STORAGE) and src.id != dst.id and not hv:
        found, addr = hosts.check_network(src, dst)
        f += found
        address = addr or ""
    f += hosts.check_auth(src, dst, conns) if src.id != dst.id else []
    if src.id != dst.id and hv and not any(x.code.startswith("E_HOST") for x in f):
        f += hyperv.check_move(vm, kind, src, dst, conns, op.storage_path)
    elif src.id != dst.id and not hv:
        f += vmc.check_machine(vm, dst)
        f += vmc.check_networks(vm, dst)
        if not any(x.code.startswith("E_HOST") for x in f):
            f += check_media(vm, src, dst, conns)
    if src.id != dst.id:
        if vm.state == VmState.RUNNING and not any(x.code.startswith("E_HOST") for x in f):
            f += vmc.check_cpu(vm, src, dst, conns)
        if kind != MoveKind.OFFLINE:
            f += vmc.check_memory(vm, dst, conns)
    found_disks, moves, shared = vmc.check_disks(vm, kind, src, dst, op.storage_path)
    f += found_disks
    return Plan(
        kind, src.name, dst.name, address, tuple(moves), shared, tuple(demote(f, op.ignore))
    )
