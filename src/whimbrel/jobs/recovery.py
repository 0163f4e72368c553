"""After a manager restart or a replica's death: reconcile, don't replay.

Each job its manager left unfinished is taken up (:func:`whimbrel.jobs.claims.takeover`)
on a thread of its own, still holding its locks (so new jobs on the same VMs
wait), and settled by what the hosts show, not by the plan it was following:

* a step interrupted mid-way is **observed** (:meth:`Step.observe`): if its work
  is in place (the VM runs on the destination), the step is recorded done and
  the job carries on to ``Completed``; if none of it is (the VM still runs on
  its source), only the steps before it are undone and the job ends
  ``Terminated`` (a step that acts only on what is left, ``redo``, runs again
  instead); only if the hosts cannot tell is the step undone too and the job
  ``Killed``;
* a job between two steps carries on from the next one;
* a job that was undoing finishes its undo (every undo observes first).

Parents (a drain, a failover) observe their children, which are reconciled
alongside them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from whimbrel.domain.job import JobState, Rollback, StepState
from whimbrel.jobs.bookkeeping import error_dict
from whimbrel.jobs.context import RunContext
from whimbrel.jobs.step import Observed, Truth
from whimbrel.store.models import Job

if TYPE_CHECKING:
    from whimbrel.jobs.runner import JobRunner

log = logging.getLogger(__name__)


def _note(runner: JobRunner, job_id: int, **what: object) -> None:
    def go(s: Session) -> None:
        job = s.get_one(Job, job_id)
        job.progress = {**job.progress, "recovery": what}

    runner.books.write(go)


def reconcile(runner: JobRunner, job_id: int) -> None:
    books = runner.books
    try:
        _, steps = runner.steps_of(job_id)
    except Exception as exc:  # a job that cannot even be read must end, not loop
        books.job(job_id, JobState.SHUTTING_DOWN, error=error_dict(exc))
        return books.finish(job_id, JobState.EXCEPTION, Rollback.NONE)
    state, cancel, has_error = books.read(
        lambda s: (
            JobState((j := s.get_one(Job, job_id)).state),
            j.cancel_requested,
            j.error is not None,
        )
    )
    rows = books.steps(job_id)
    if state == JobState.SHUTTING_DOWN:  # it was rolling back: finish that
        rollback = runner.undo(job_id, steps, include_running=True)
        final = (
            JobState.TERMINATED if cancel else JobState.EXCEPTION if has_error else JobState.KILLED
        )
        return books.finish(job_id, final, rollback)
    running = [i for i, (st, _) in sorted(rows.items()) if st == StepState.RUNNING]
    if not running:  # between two steps: carry on from the next
        nxt = next((i for i, (st, _) in sorted(rows.items()) if st == StepState.PENDING), None)
        _note(runner, job_id, resumed_at=nxt, evidence="no step was running")
        return runner.execute(job_id, start=nxt if nxt is not None else len(steps))
    i = running[0]
    step = steps[i]
    try:
        seen = step.observe(RunContext(runner, job_id))
    except Exception as exc:
        seen = Observed(Truth.UNKNOWN, f"observing failed: {error_dict(exc)['cause']}")
    log.warning(
        "job %d step %s after the restart: %s (%s)", job_id, step.name, seen.truth, seen.evidence
    )
    _note(runner, job_id, step=step.name, truth=str(seen.truth), evidence=seen.evidence)
    if seen.truth == Truth.DONE:
        books.step(job_id, i, StepState.DONE, result=seen.result or {})
        return runner.execute(job_id, start=i + 1)
    if seen.truth == Truth.NOT_DONE and step.redo:  # it acts only on what is left: again
        return runner.execute(job_id, start=i)
    if seen.truth == Truth.NOT_DONE:
        err = {
            "code": "E_INTERRUPTED",
            "category": "environment",
            "cause": f"the manager stopped during step '{step.name}', which had not taken "
            f"effect: {seen.evidence}",
            "fix": "nothing to fix: what came before it was rolled back; submit it again",
        }
        books.step(job_id, i, StepState.FAILED, error=err)
        books.job(job_id, JobState.SHUTTING_DOWN, message=err["cause"], error=err)
        return books.finish(job_id, JobState.TERMINATED, runner.undo(job_id, steps))
    msg = f"interrupted by a manager restart during step '{step.name}': {seen.evidence}"
    books.job(job_id, JobState.SHUTTING_DOWN, message=msg)
    books.finish(job_id, JobState.KILLED, runner.undo(job_id, steps, include_running=True))
