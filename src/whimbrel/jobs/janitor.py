"""The runner's janitor: undos that waited for their host, and old jobs.

Every ``RETRY_S`` it tries again each pending undo whose host is connected (not
while a job holds the same VM), and once an hour it deletes finished jobs older
than the retention (30 days by default), keeping any with cleanup left.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from whimbrel.domain.job import FINAL_JOB_STATES, Rollback, StepState
from whimbrel.jobs import claims, pending
from whimbrel.jobs.bookkeeping import Books, error_dict, now
from whimbrel.jobs.context import RunContext
from whimbrel.store.models import Job, JobStep, PendingUndo

if TYPE_CHECKING:
    from whimbrel.jobs.runner import JobRunner

log = logging.getLogger(__name__)
PRUNE_EVERY_S = 3600.0


def run(runner: JobRunner) -> None:
    """The janitor's loop, on the leader only (one janitor for the whole store).  Its
    own clock: job events wake the scheduler, not the janitor.  The first pass waits
    too, so that recovery settles the jobs before any cleanup."""
    pruned = float("-inf")
    while not runner.stopped.wait(runner.janitor_s):
        if not runner.leading():
            runner.last_pass["janitor"] = time.time()
            continue
        try:
            retry_pending(runner)
            if time.monotonic() - pruned > PRUNE_EVERY_S:
                prune(runner.books, runner.retention_days)
                pruned = time.monotonic()
            runner.last_pass["janitor"] = time.time()
        except Exception:
            log.exception("janitor pass failed; the next one tries again")


def retry_pending(runner: JobRunner, only: list[int] | None = None) -> int:
    """Try again the pending undos whose host answers; return how many are done."""
    with runner.sessions() as s:
        due = [(p.id, p.job_id, p.step_index) for p in pending.due(s)]
    done = 0
    for pid, job_id, index in due:
        if only is not None and pid not in only:
            continue
        with runner.sessions() as s:
            locks = list(s.get_one(Job, job_id).locks)
        done += _retry_held(
            runner, pid, job_id, index, [lk for lk in locks if lk.startswith("vm:")]
        )
    return done


def _retry_held(runner: JobRunner, pid: int, job_id: int, index: int, vm_locks: list[str]) -> int:
    # Not while a job holds the same VM, on any replica: the hold is in the store.
    if not runner.books.write(lambda s: claims.hold_cleanup(s, pid, runner.me, vm_locks)):
        return 0
    try:
        return _retry_one(runner, pid, job_id, index)
    finally:
        runner.books.write(lambda s: claims.drop_cleanup(s, pid))


def _retry_one(runner: JobRunner, pid: int, job_id: int, index: int) -> int:
    _, steps = runner.steps_of(job_id)
    result = runner.books.steps(job_id)[index][1]
    runner.books.step(job_id, index, StepState.UNDOING)
    try:
        steps[index].undo(RunContext(runner, job_id), result)
    except BaseException as exc:
        err = error_dict(exc)
        if pending.deferrable(exc):
            runner.books.step(job_id, index, StepState.UNDO_PENDING, error=err)

            def again(s: Session) -> None:
                p = s.get_one(PendingUndo, pid)
                p.attempts += 1
                p.last_error = str(err["cause"])

            runner.books.write(again)
            return 0
        runner.books.step(job_id, index, StepState.UNDO_FAILED, error=err)
        runner.books.write(lambda s: _settle(s, job_id, pid, f"{err['cause']}. {err['fix']}"))
        return 0
    runner.books.step(job_id, index, StepState.UNDONE)
    runner.books.write(lambda s: _settle(s, job_id, pid, ""))
    log.warning("job %d: the undo of step %d that waited for its host is done", job_id, index)
    return 1


def prune(books: Books, retention_days: float) -> int:
    """Delete finished jobs older than the retention (none with cleanup left)."""
    cutoff = now() - timedelta(days=retention_days)

    def go(s: Session) -> int:
        keep = select(PendingUndo.job_id)
        old = select(Job.id).where(
            Job.state.in_(list(FINAL_JOB_STATES)),
            Job.finished_at < cutoff,
            Job.id.not_in(keep),
        )
        ids = list(s.scalars(old))
        for chunk in range(0, len(ids), 500):
            part = ids[chunk : chunk + 500]
            s.execute(delete(JobStep).where(JobStep.job_id.in_(part)))
            s.execute(delete(Job).where(Job.id.in_(part)))
        return len(ids)

    n = books.write(go)
    if n:
        log.info("pruned %d finished job(s) older than %g days", n, retention_days)
    return n


def _settle(s: Session, job_id: int, pid: int, failure: str) -> None:
    """One pending undo is over: done (``failure`` empty) or failed for good."""
    s.delete(s.get_one(PendingUndo, pid))
    s.flush()
    job = s.get_one(Job, job_id)
    if failure:
        job.rollback = Rollback.FAILED
        job.manual_fix = (job.manual_fix + " | " if job.manual_fix else "Fix by hand: ") + failure
        return
    left = s.scalar(select(PendingUndo.id).where(PendingUndo.job_id == job_id))
    if left is None and job.rollback == Rollback.PENDING:
        job.rollback = Rollback.CLEAN
        job.phase = "rolled back"
        job.message = f"{job.message}; the cleanup that waited for its host is done"
