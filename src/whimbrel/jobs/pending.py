"""Undos that wait for their host.

An undo that fails because its host does not answer (a destination that died
mid-copy still holds the half-copied image) is not a "fix by hand": it is kept,
with what it waits for, and the runner's janitor tries it again once the host is
connected.  ``job show`` shows the step as ``undo_pending`` and the job's
rollback as ``pending``; a later job on the same VM finishes the cleanup first,
or is refused with what blocks it (``E_CLEANUP_PENDING``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from whimbrel.domain.host import HostState
from whimbrel.errors import HostUnreachable, WrongState
from whimbrel.ops import Op
from whimbrel.store.models import Host, Job, PendingUndo
from whimbrel.store.repo import vms_locked

RETRY_S = 15.0


def deferrable(exc: BaseException) -> bool:
    """An undo that failed this way can succeed later, once its host answers."""
    return isinstance(exc, HostUnreachable)


def host_of(result: dict[str, Any] | None, op: Op) -> str:
    """The host an undo needs: the one its step's result names, else the move's target."""
    r = result or {}
    for key in ("host", "dest"):
        if r.get(key):
            return str(r[key])
    return str(getattr(op, "to", "") or "")


def record(
    s: Session, job: Job, index: int, description: str, host: str, error: str
) -> PendingUndo:
    row = s.scalar(
        select(PendingUndo).where(PendingUndo.job_id == job.id, PendingUndo.step_index == index)
    )
    if row is None:
        row = PendingUndo(job_id=job.id, step_index=index, attempts=0)
        s.add(row)
    row.host, row.vms, row.description = host, vms_locked(job.locks), description
    row.attempts += 1
    row.last_error = error
    return row


def text(p: PendingUndo) -> str:
    waits = f"host {p.host} to answer" if p.host else "its host to answer"
    return (
        f"job {p.job_id} step {p.step_index + 1} ({p.description}) waits for {waits} since "
        f"{p.since:%Y-%m-%d %H:%M:%S}: {p.last_error}"
    )


def due(s: Session) -> list[PendingUndo]:
    """The pending undos whose host is connected now (or that name no host)."""
    up = {h.name for h in s.scalars(select(Host).where(Host.state == HostState.CONNECTED))}
    return [
        p
        for p in s.scalars(select(PendingUndo).order_by(PendingUndo.id))
        if not p.host or p.host in up
    ]


def blocking(s: Session, vms: list[str]) -> list[PendingUndo]:
    """The pending undos of earlier jobs on any of ``vms``."""
    rows = s.scalars(select(PendingUndo).order_by(PendingUndo.id)).all()
    return [p for p in rows if set(p.vms) & set(vms)]


def refuse(rows: list[PendingUndo]) -> WrongState:
    vms = sorted({v for p in rows for v in p.vms})
    hosts = sorted({p.host for p in rows if p.host})
    return WrongState(
        "E_CLEANUP_PENDING",
        f"VM {', '.join(vms)} has cleanup left from an earlier job: "
        + "; ".join(text(p) for p in rows),
        f"bring host {', '.join(hosts) or '(see the job)'} back: the cleanup then runs by "
        f"itself within {RETRY_S:g} s and this job can be submitted again; "
        f"'whimbrel job show {rows[0].job_id}' shows it",
    )
