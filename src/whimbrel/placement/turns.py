"""Placing a host's VMs one after another, each on the best host the ones before it left.

A maintenance drain and a failover restart both place every VM of one host
at once.  Rating each VM against the fleet as it is would send them all to
the same emptiest host; so each placed VM's load is moved onto its host
before the next is rated, and that running placement is the capacity check.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from whimbrel.placement.inventory import load_of, needs_of, reserves
from whimbrel.placement.rating import Rating, Site, rate
from whimbrel.store.models import Vm


def restart_order(vm: Vm) -> tuple[int, int, str]:
    """Highest restart priority first, then the largest (hardest to fit), then by name."""
    return (-vm.ha_priority, -vm.memory_mib, vm.name)


def move_load(site_list: list[Site], vm: str, to: str) -> list[Site]:
    """The sites with ``vm``'s load moved onto ``to``."""
    load = next(v for st in site_list for v in st.load.vms if v.name == vm)
    out = []
    for st in site_list:
        vms = [v for v in st.load.vms if v.name != vm]
        if st.load.name == to:
            vms.append(load)
        out.append(replace(st, load=replace(st.load, vms=vms)))
    return out


@dataclass(frozen=True)
class Turn:
    vm: Vm
    best: Rating | None  # None: no host can take it
    ratings: list[Rating]


def place_in_turn(s: Session, vms: list[Vm], current: list[Site]) -> tuple[list[Turn], list[Site]]:
    """Each VM in the given order with its best host; and the sites once all are placed."""
    k = reserves(s)
    turns = []
    for vm in vms:
        ratings = rate(load_of(vm), needs_of(s, vm), current, k, allow_overcommit=True)
        best = next((r for r in ratings if r.eligible), None)
        if best is not None:
            current = move_load(current, vm.name, best.host)
        turns.append(Turn(vm, best, ratings))
    return turns, current
