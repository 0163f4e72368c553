"""A host back from silence (fenced, lost, isolated, not responding) is cleaned up
before it takes VMs again.

While it was away its HA VMs may have been restarted elsewhere; it still holds
their (inactive) definitions and perhaps their saved states.  Left there, they
would make a later VM of the same name fail with E_DOMAIN_EXISTS, and a start by
hand would run a second copy.  What the host reports is compared with the store
first: a definition of a VM that the store places on another host is removed
(never started), with its saved state.  A copy that *runs* there while the store
places it elsewhere is never touched: that is for an administrator, and the
event says so.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from whimbrel.domain.vm import ACTIVE, VmState
from whimbrel.drivers.base import HostDriver
from whimbrel.errors import WhimbrelError
from whimbrel.store.models import Host, Vm
from whimbrel.store.repo import busy_vms, note_event

log = logging.getLogger(__name__)


def reconcile_returning(
    sessions: sessionmaker[Session],
    host: str,
    drv: HostDriver,
    domains: dict[str, VmState],
    was: str,
) -> dict[str, VmState]:
    """Remove stale definitions from ``host``; return its domains without them."""
    with sessions() as s:
        row = s.scalar(select(Host).where(Host.name == host))
        if row is None:
            return domains
        elsewhere = {
            vm.name: vm.host.name
            for vm in s.scalars(select(Vm).where(Vm.name.in_(list(domains))))
            if vm.host is not None and vm.host_id != row.id
        }
        busy = busy_vms(s)
    removed: dict[str, str] = {}  # VM -> what became of it
    notes: list[str] = []
    for name, state in sorted(domains.items()):
        home = elsewhere.get(name)
        if home is None or name in busy:
            continue  # its own VM, a stranger, or one a job is moving here
        if state in ACTIVE:
            notes.append(
                f"VM {name} runs here while the store places it on {home}: left alone; stop "
                f"the copy that should not run ('virsh destroy {name}' on the wrong host)"
            )
            continue
        try:
            drv.undefine(name)  # with its saved state, if any
        except WhimbrelError as exc:
            notes.append(f"could not remove the stale definition of {name}: {exc.cause}")
            continue
        dropped = ", saved state dropped" if state == VmState.SAVED else ""
        removed[name] = f"{name} (now on {home}{dropped})"
    if removed:
        what = ", ".join(removed.values())
        notes.insert(0, f"back after being {was}: removed stale definitions of {what}")
    if notes:
        with sessions.begin() as s:
            row = s.scalar(select(Host).where(Host.name == host))
            if row is not None:
                for n in notes:
                    note_event(row, n)
        for n in notes:
            log.warning("host %s: %s", host, n)
    return {n: st for n, st in domains.items() if n not in removed}
