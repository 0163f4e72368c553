"""The runner's bookkeeping: every job and step transition, written so that a
database that goes away for a while delays a job but never strands it.

Each write is one transaction through :mod:`whimbrel.domain.job`'s tables.  A
write that fails because the database cannot be reached (PostgreSQL restarting,
SQLite locked) is tried again with backoff for ``retry_s``; only then does the
error reach the runner, which ends the job in a clear state.  A step whose work
is done is therefore never left ``Running`` because its result could not be
recorded at once.

Every write about a job this replica claimed is made only while the claim is
still its own (:func:`whimbrel.jobs.claims.keep`), and renews the claim's lease.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from whimbrel.domain.job import (
    JobState,
    Rollback,
    StepState,
    check_job_transition,
    check_step_transition,
)
from whimbrel.errors import WhimbrelError
from whimbrel.jobs.claims import keep
from whimbrel.jobs.step import Step
from whimbrel.store.models import Job, JobStep

log = logging.getLogger(__name__)
T = TypeVar("T")
Write = Callable[[Session], object]  # one transition, within the caller's transaction
RETRY_S = 300.0


def now() -> datetime:
    return datetime.now(UTC)


def error_dict(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, WhimbrelError):
        return exc.to_dict()
    # An unexpected exception is a Whimbrel bug: keep the traceback for the report.
    return {
        "code": "E_INTERNAL",
        "category": "internal",
        "cause": f"{type(exc).__name__}: {exc}",
        "fix": "report this with the output of 'whimbrel job show'",
        "detail": "".join(traceback.format_exception(exc))[-4000:],
    }


class Books:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        retry_s: float = RETRY_S,
        me: str = "manager",
        lease_s: float = 10.0,
    ) -> None:
        self.sessions = sessions
        self.retry_s = retry_s
        self.me, self.lease_s = me, lease_s
        self.claims: dict[int, int] = {}  # job id -> the claim this replica runs it under
        self.db_down_since: float | None = None  # for /health
        self._lock = threading.Lock()

    def write(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn`` in a transaction, again and again while the database is away."""
        return self._retry(lambda: self._in_tx(fn))

    def read(self, fn: Callable[[Session], T]) -> T:
        def go() -> T:
            with self.sessions() as s:
                return fn(s)

        return self._retry(go)

    def for_job(self, job_id: int, fn: Callable[[Session], T]) -> T:
        """``write``, on condition that this replica still holds the job's claim."""

        def go(s: Session) -> T:
            number = self.claims.get(job_id)
            if number is not None:
                keep(s, job_id, self.me, number, self.lease_s)
            return fn(s)

        return self.write(go)

    def _in_tx(self, fn: Callable[[Session], T]) -> T:
        with self.sessions.begin() as s:
            return fn(s)

    def _retry(self, fn: Callable[[], T]) -> T:
        deadline = time.monotonic() + self.retry_s
        delay = 0.2
        while True:
            try:
                out = fn()
            except (OperationalError, InterfaceError) as exc:
                with self._lock:
                    if self.db_down_since is None:
                        self.db_down_since = time.monotonic()
                        log.error("the database does not answer (%s); retrying", exc.orig)
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            with self._lock:
                if self.db_down_since is not None:
                    log.warning(
                        "the database answers again after %.1f s",
                        time.monotonic() - self.db_down_since,
                    )
                    self.db_down_since = None
            return out

    # -- transitions ------------------------------------------------------------

    def job(
        self,
        job_id: int,
        state: JobState,
        message: str | None = None,
        error: dict[str, Any] | None = None,
        started: bool = False,
    ) -> None:
        self.for_job(job_id, lambda s: set_job(s, job_id, state, message, error, started))

    def message(self, job_id: int, message: str) -> None:
        def go(s: Session) -> None:
            s.get_one(Job, job_id).message = message

        self.for_job(job_id, go)

    def finish(self, job_id: int, state: JobState, rollback: Rollback) -> None:
        self.for_job(job_id, lambda s: set_finish(s, job_id, state, rollback))

    def step(
        self,
        job_id: int,
        index: int,
        state: StepState,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        self.for_job(job_id, lambda s: set_step(s, job_id, index, state, result, error))

    def together(self, job_id: int, writes: list[Write]) -> None:
        """Several transitions of one job in one transaction (a step done and the next
        one begun): a job's pace is its commits, and nothing happens between them."""
        if writes:
            self.for_job(job_id, lambda s: [w(s) for w in writes])

    def steps(self, job_id: int) -> dict[int, tuple[StepState, dict[str, Any] | None]]:
        def go(s: Session) -> dict[int, tuple[StepState, dict[str, Any] | None]]:
            return {r.index: (StepState(r.state), r.result) for r in s.get_one(Job, job_id).steps}

        return self.read(go)


# -- the transitions, each within the caller's transaction ---------------------------


def set_job(
    s: Session,
    job_id: int,
    state: JobState,
    message: str | None = None,
    error: dict[str, Any] | None = None,
    started: bool = False,
) -> None:
    job = s.get_one(Job, job_id)
    if JobState(job.state) == state:
        return  # a retried write that had committed after all
    check_job_transition(JobState(job.state), state)
    job.state = state
    if message is not None:
        job.message = message
    if error is not None:
        job.error = error
    if started:
        job.started_at = now()
    if state.final:
        job.finished_at = now()


def set_finish(s: Session, job_id: int, state: JobState, rollback: Rollback) -> None:
    job = s.get_one(Job, job_id)
    job.rollback = rollback
    if state == JobState.COMPLETED:
        job.percent = 100
        job.phase = "done"
    else:
        job.phase = {
            Rollback.CLEAN: "rolled back",
            Rollback.PENDING: "rollback pending",
            Rollback.NONE: "stopped",
        }.get(rollback, "rollback failed")
        why = f"{job.error['code']}: {job.error['cause']}" if job.error else job.message
        job.message = f"{why}; {job.phase}"
    set_job(s, job_id, state)


def set_step(
    s: Session,
    job_id: int,
    index: int,
    state: StepState,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> None:
    row = s.scalars(select(JobStep).where(JobStep.job_id == job_id, JobStep.index == index)).one()
    if StepState(row.state) != state:
        check_step_transition(StepState(row.state), state)
    row.state = state
    if state == StepState.RUNNING:
        row.started_at = now()
    if state in (StepState.DONE, StepState.FAILED):
        row.finished_at = now()
    if result is not None:
        row.result = result
    if error is not None:
        row.error = error


def set_progress(
    s: Session, job_id: int, phase: str, percent: int, message: str, extra: dict[str, Any]
) -> None:
    job = s.get_one(Job, job_id)
    job.phase = phase
    # Percent never runs backwards or past 100, whatever a step reports.
    job.percent = max(job.percent, min(100, max(0, percent)))
    job.message = message
    if extra:
        job.progress = {**job.progress, **extra}


def begin_step(job_id: int, index: int, step: Step, percent: int) -> list[Write]:
    """The writes that begin a step: the job's phase and the step ``Running``."""
    return [
        lambda s: set_progress(s, job_id, step.name, percent, step.description, {}),
        lambda s: set_step(s, job_id, index, StepState.RUNNING),
    ]
