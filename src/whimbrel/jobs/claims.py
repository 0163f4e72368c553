"""Jobs claimed in the store, so that replicas share one queue.

A job is free while ``owner`` is empty; a replica claims it by writing its name,
the next ``claim`` number and a lease, which it renews while it runs the job
(:mod:`whimbrel.replica.member`).  A job holds its locks from its claim until it
ends, whichever replica runs it: every claim pass reads them from the store,
under the row lock of the ``queue`` lease, so two replicas never start two jobs
that need the same lock.

A job whose lease ran out (its replica died or lost the store) is taken over by
another replica and reconciled (:mod:`whimbrel.jobs.recovery`).  Every write of
a job's progress is made on condition that its claim is still the writer's
(:func:`keep`): a replica that lost a job stops at its next step, never undoing
what the new owner does.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.orm import Session

from whimbrel.domain.job import FINAL_JOB_STATES, JobState
from whimbrel.replica.clock import lock_lease, store_now
from whimbrel.store.models import Job, PendingUndo, Replica

FINAL = list(FINAL_JOB_STATES)


class Deposed(Exception):
    """This replica's claim on a job was taken over: it must stop touching the job."""


@dataclass(frozen=True)
class Claimed:
    job_id: int
    kind: str
    locks: list[str]
    claim: int
    state: JobState


def lock_queue(s: Session) -> float:
    """Take the queue's row lock for this transaction; the store's time."""
    lock_lease(s, "queue")
    return store_now(s)


def held(s: Session) -> Counter[str]:
    """The locks of every claimed, unfinished job, and of cleanups being retried."""
    out: Counter[str] = Counter()
    for locks in s.scalars(
        select(Job.locks).where(Job.owner.is_not(None), Job.state.not_in(FINAL))
    ):
        out.update(locks)
    retried = select(PendingUndo.job_id).where(PendingUndo.retrying_by.is_not(None))
    for locks in s.scalars(select(Job.locks).where(Job.id.in_(retried))):
        out.update(lk for lk in locks if lk.startswith("vm:"))
    return out


def claim(s: Session, job_id: int, me: str, now: float, ttl_s: float) -> Claimed:
    job = s.get_one(Job, job_id, with_for_update=True)
    job.owner, job.claim, job.lease_until = me, job.claim + 1, now + ttl_s
    return Claimed(job.id, job.kind, list(job.locks), job.claim, JobState(job.state))


@dataclass(frozen=True)
class Queued:
    job_id: int
    kind: str
    locks: list[str]
    cancel: bool
    message: str
    foreign: bool  # submitted through another replica a moment ago: left to it


def queued(s: Session, me: str, steal_after_s: float) -> list[Queued]:
    """The free jobs waiting to start, oldest first."""
    recent = datetime.now(UTC) - timedelta(seconds=steal_after_s)
    rows = s.execute(
        select(
            Job.id,
            Job.kind,
            Job.locks,
            Job.cancel_requested,
            Job.message,
            Job.submitted_by,
            Job.created_at,
        )
        .where(Job.state == JobState.NEW, Job.owner.is_(None))
        .order_by(Job.id)
    ).all()
    return [
        Queued(
            r.id,
            r.kind,
            list(r.locks),
            bool(r.cancel_requested),
            r.message,
            r.submitted_by not in (None, me) and _aware(r.created_at) > recent,
        )
        for r in rows
    ]


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def takeover(s: Session, me: str, mine: set[int], ttl_s: float, everything: bool) -> list[Claimed]:
    """Claim the unfinished jobs nobody holds any more: their lease ran out, they
    were left by a manager before replicas, or (``everything``: a store only this
    manager can use) any job this process does not run."""
    now = lock_queue(s)
    started = and_(Job.owner.is_(None), Job.state != JobState.NEW)
    lapsed = and_(Job.owner.is_not(None), Job.lease_until < now)
    ours_before = Job.owner == me  # a previous process of this name, proved gone
    cond = Job.owner.is_not(None) if everything else or_(lapsed, ours_before)
    ids = s.scalars(
        select(Job.id)
        .where(Job.state.not_in(FINAL), or_(started, cond), Job.id.not_in(mine or {-1}))
        .order_by(Job.id)
    ).all()
    alive = select(Replica.name).where(Replica.lease_until > now, Replica.stopped.is_(False))
    s.execute(
        update(PendingUndo)
        .where(PendingUndo.retrying_by.is_not(None), PendingUndo.retrying_by.not_in(alive))
        .values(retrying_by=None)
    )
    return [claim(s, i, me, now, ttl_s) for i in ids]


def keep(s: Session, job_id: int, me: str, number: int, ttl_s: float) -> None:
    """Raise :class:`Deposed` unless the claim ``number`` on the job is still ``me``'s;
    renew its lease in the same statement, so that nobody takes it while it acts."""
    expiry = _now_sql(s) + f" + {float(ttl_s)}"
    done = s.execute(
        update(Job)
        .where(Job.id == job_id, Job.owner == me, Job.claim == number)
        .values(lease_until=text(expiry))
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        row = s.execute(select(Job.owner, Job.claim).where(Job.id == job_id)).one_or_none()
        who = f"{row.owner} (claim {row.claim})" if row is not None else "nobody: it is gone"
        raise Deposed(f"job {job_id} is held by {who}, not by {me} (claim {number})")


def _now_sql(s: Session) -> str:
    if s.get_bind().dialect.name == "postgresql":
        return "extract(epoch FROM clock_timestamp())"
    return "((julianday('now') - 2440587.5) * 86400.0)"


def hold_cleanup(s: Session, pending_id: int, me: str, locks: list[str]) -> bool:
    """Take a pending undo's VM locks for its retry, if no job holds them."""
    lock_queue(s)
    busy = held(s)
    if any(busy[lk] for lk in locks):
        return False
    row = s.get(PendingUndo, pending_id, with_for_update=True)
    if row is None or row.retrying_by is not None:
        return False
    row.retrying_by = me
    return True


def drop_cleanup(s: Session, pending_id: int) -> None:
    s.execute(update(PendingUndo).where(PendingUndo.id == pending_id).values(retrying_by=None))
