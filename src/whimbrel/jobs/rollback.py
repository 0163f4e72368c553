"""Undoing a job: its completed steps in reverse, each undo's outcome recorded;
or, when a step stranded its work, not undoing anything.

An undo whose host does not answer is kept for later (``pending``, retried by
the janitor); any other failure asks for a fix by hand, in the job's
``manual_fix``.  The job's rollback says which of the two, or clean.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from whimbrel.domain.job import JobState, Rollback, StepState
from whimbrel.errors import Stranded
from whimbrel.jobs import pending
from whimbrel.jobs.bookkeeping import error_dict, set_finish, set_job, set_step
from whimbrel.jobs.claims import Deposed
from whimbrel.jobs.context import RunContext
from whimbrel.jobs.step import Step
from whimbrel.store.models import Job

if TYPE_CHECKING:
    from whimbrel.jobs.runner import JobRunner

log = logging.getLogger(__name__)


def undo(
    runner: JobRunner, job_id: int, steps: list[Step], include_running: bool = False
) -> Rollback:
    """Undo completed steps in reverse.  An undo whose host does not answer is kept
    for later (``pending``); any other failure asks for a fix by hand."""
    ctx = RunContext(runner, job_id)
    rows = runner.books.steps(job_id)
    undoable = {StepState.DONE} | (
        {StepState.RUNNING, StepState.UNDOING} if include_running else set()
    )
    fixes: list[str] = []
    waits: list[str] = []
    for i in reversed(range(len(steps))):
        state, result = rows.get(i, (StepState.PENDING, None))
        if state not in undoable:
            continue
        runner.books.step(job_id, i, StepState.UNDOING)
        try:
            steps[i].undo(ctx, result)
        except Deposed:
            raise
        except BaseException as exc:
            err = error_dict(exc)
            what = f"step {i + 1} '{steps[i].name}' ({steps[i].description})"
            if pending.deferrable(exc):
                waits.append(_defer(runner, job_id, i, steps[i], result, err))
                continue
            runner.books.step(job_id, i, StepState.UNDO_FAILED, error=err)
            fixes.append(f"{what} could not be undone: {err['cause']}. {err['fix']}")
            continue
        runner.books.step(job_id, i, StepState.UNDONE)
    if fixes:

        def fix(s: Session) -> None:
            s.get_one(Job, job_id).manual_fix = "Fix by hand: " + " | ".join(fixes)

        runner.books.write(fix)
    return Rollback.FAILED if fixes else Rollback.PENDING if waits else Rollback.CLEAN


def _defer(
    runner: JobRunner, job_id: int, i: int, step: Step, result: Any, err: dict[str, Any]
) -> str:
    op, _ = runner.steps_of(job_id)
    host = pending.host_of(result, op)

    def go(s: Session) -> str:
        job = s.get_one(Job, job_id)
        p = pending.record(s, job, i, step.description, host, str(err["cause"]))
        s.flush()
        return pending.text(p)

    runner.books.step(job_id, i, StepState.UNDO_PENDING, error=err)
    waits = runner.books.write(go)
    log.warning("job %d: undo kept for later: %s", job_id, waits)
    return waits


def strand(runner: JobRunner, job_id: int, i: int, exc: Stranded) -> None:
    """End the job where it stands: undoing the steps before ``i`` would take away the
    ground its half-done work stands on (the destination's disks of a VM in post-copy)."""
    log.warning("job %d stranded at step %d: %s", job_id, i, exc)
    err = error_dict(exc)

    def fix(s: Session) -> None:
        job = s.get_one(Job, job_id)
        job.manual_fix = f"Nothing was undone: {exc.cause}. {exc.fix}"
        job.message, job.phase = f"{exc.code}: {exc.cause}; nothing undone", "stranded"

    runner.books.together(
        job_id,
        [
            lambda s: set_step(s, job_id, i, StepState.FAILED, None, err),
            lambda s: set_job(s, job_id, JobState.SHUTTING_DOWN, None, err),
            lambda s: set_finish(s, job_id, JobState.EXCEPTION, Rollback.NONE),
            fix,
        ],
    )
