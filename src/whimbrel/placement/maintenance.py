"""The plan of maintenance mode: what happens to each VM when its host is drained.

VMM's maintenance mode: highly available VMs are live-migrated to other
nodes of their cluster, the others are put in a saved state; the host enters
maintenance only if every VM could be dealt with.  The plan is computed
before anything moves, so a host whose VMs cannot all fit elsewhere is
refused with nothing changed.  VMs are placed one after the other, highest
restart priority and largest first, each on the best-rated host given the
VMs placed before it: the capacity check is the placement itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from whimbrel.domain.vm import VmState
from whimbrel.ops import OpVmMigrate
from whimbrel.placement.inventory import sites
from whimbrel.placement.load import gib
from whimbrel.placement.reserve import overcommit
from whimbrel.placement.turns import place_in_turn, restart_order
from whimbrel.preflight.finding import HostDrivers, Severity
from whimbrel.preflight.migration import preflight
from whimbrel.store.repo import get_host, vms_on


class Action(StrEnum):
    LIVE_MIGRATE = "live-migrate"
    SAVE = "save"
    STAYS = "stays"  # already stopped or saved: nothing to do
    BLOCKED = "blocked"  # no host can take it: the plan cannot run


@dataclass(frozen=True)
class Entry:
    vm: str
    action: Action
    to: str = ""
    why: str = ""
    memory_mib: int = 0
    priority: int = 0  # HA restart priority; 0 for a VM that is not HA
    findings: tuple[dict[str, Any], ...] = ()  # the move's preflight, when it has some

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "action": str(self.action), "findings": list(self.findings)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Entry:
        return cls(**{**d, "action": Action(d["action"]), "findings": tuple(d["findings"])})


@dataclass(frozen=True)
class MaintenancePlan:
    host: str
    entries: tuple[Entry, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def blocked(self) -> list[Entry]:
        """Entries that stop the plan: no host for the VM, or a preflight error."""
        return [
            e
            for e in self.entries
            if e.action == Action.BLOCKED
            or any(f["severity"] == Severity.ERROR for f in e.findings)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "entries": [e.to_dict() for e in self.entries],
            "warnings": list(self.warnings),
            "blocked": [e.vm for e in self.blocked],
        }


def plan(s: Session, host: str, conns: HostDrivers | None = None) -> MaintenancePlan:
    """Each VM of ``host`` with its action, in the order they run.

    With ``conns``, each planned move is also preflighted (read-only), so a
    move that would fail shows up in the plan instead of halfway through.
    """
    h = get_host(s, host)
    vms = vms_on(s, h)
    live = [v for v in vms if v.state in (VmState.RUNNING, VmState.PAUSED)]
    ha = sorted((v for v in live if v.ha), key=restart_order)
    # The drained host takes nothing back while its own VMs are placed.
    start = [
        replace(st, load=replace(st.load, maintenance=True)) if st.load.name == host else st
        for st in sites(s)
    ]
    turns, current = place_in_turn(s, ha, start)
    entries: list[Entry] = []
    for t in turns:
        vm, best = t.vm, t.best
        if best is None:
            others = [r for r in t.ratings if r.host != host]
            why = "; ".join(f"{r.host}: {', '.join(r.reasons)}" for r in others) or "no other host"
            entries.append(Entry(vm.name, Action.BLOCKED, "", why, vm.memory_mib, vm.ha_priority))
            continue
        found: tuple[dict[str, Any], ...] = ()
        if conns is not None:
            op = OpVmMigrate(vm.name, best.host)
            found = tuple(f.to_dict() for f in preflight(op, s, conns).findings)
        why = f"HA: best host {best.host} ({best.stars} stars: {best.reasons[0]})"
        prio = vm.ha_priority
        entries.append(
            Entry(vm.name, Action.LIVE_MIGRATE, best.host, why, vm.memory_mib, prio, found)
        )
    for vm in sorted((v for v in live if not v.ha), key=restart_order):
        why = f"not HA: its state ({gib(vm.memory_mib)}) is saved on {host}"
        entries.append(Entry(vm.name, Action.SAVE, "", why, vm.memory_mib, 0))
    for vm in sorted((v for v in vms if v not in live), key=lambda v: v.name):
        entries.append(Entry(vm.name, Action.STAYS, "", f"{vm.state}: nothing to do"))
    warnings: list[str] = []
    if h.cluster is not None:
        nodes = [st.load for st in current if st.load.name in {n.name for n in h.cluster.hosts}]
        verdict = overcommit(nodes, h.cluster.reserve)
        if verdict.overcommitted:
            warnings.append(
                f"while {host} is in maintenance, cluster {h.cluster.name} is over-committed: "
                f"{verdict.reason}"
            )
    return MaintenancePlan(host, tuple(entries), tuple(warnings))
