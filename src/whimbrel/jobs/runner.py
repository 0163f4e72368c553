"""The job runner: queues jobs, runs their steps, undoes them on failure.

Every transition goes through :mod:`whimbrel.domain.job`'s tables and is
committed before the next action, so the store always tells what was done.
A job waits in ``New`` while another job holds one of its locks (the queue
position is shown in its message); it never fails for that.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from whimbrel.connections import ConnectionPool
from whimbrel.domain.job import (
    FINAL_JOB_STATES,
    JobState,
    Rollback,
    StepState,
    check_job_transition,
    check_step_transition,
)
from whimbrel.drivers.base import HostDriver
from whimbrel.errors import Cancelled, NotFound, WhimbrelError, WrongState
from whimbrel.jobs.flow import FlowRegistry
from whimbrel.jobs.step import Step
from whimbrel.ops import Op, op_from_dict
from whimbrel.store.models import Job, JobStep

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _error_dict(exc: BaseException) -> dict[str, Any]:
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


class _Run:
    """The :class:`whimbrel.jobs.step.JobContext` of one job."""

    def __init__(self, runner: JobRunner, job_id: int):
        self.job_id = job_id
        self.sessions = runner.sessions
        self._runner = runner
        self.span = (0.0, 100.0)  # the share of the bar the running step owns

    def driver(self, host_name: str) -> HostDriver:
        return self._runner.conns.for_host(host_name)

    def driver_for_uri(self, uri: str) -> HostDriver:
        return self._runner.conns.for_uri(uri)

    def reconnect(self, host_name: str) -> HostDriver:
        conns = self._runner.conns
        conns.drop(conns.uri_of(host_name))
        return conns.for_host(host_name)

    def probe(self, host_name: str, timeout_s: float) -> str:
        conns = self._runner.conns
        return conns.probe(conns.uri_of(host_name), timeout_s)

    def progress(self, phase: str, percent: int, message: str = "", **extra: Any) -> None:
        with self.sessions.begin() as s:
            job = s.get_one(Job, self.job_id)
            job.phase = phase
            # Percent never runs backwards or past 100, whatever a step reports.
            job.percent = max(job.percent, min(100, max(0, percent)))
            job.message = message
            if extra:
                job.progress = {**job.progress, **extra}

    def step_progress(self, fraction: float, phase: str, message: str = "", **extra: Any) -> None:
        lo, hi = self.span
        pct = int(lo + (hi - lo) * min(1.0, max(0.0, fraction)))
        self.progress(phase, pct, message, **extra)

    def cancelled(self) -> bool:
        return self._runner.cancel_requested(self.job_id)

    def submit(self, op: Op) -> int:
        return self._runner.submit(op)

    def cancel(self, job_id: int) -> None:
        self._runner.cancel(job_id)


class JobRunner:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        flows: FlowRegistry,
        conns: ConnectionPool,
        workers: int = 16,
        capacity: Callable[[str], int] | None = None,
    ):
        self.sessions = sessions
        self.flows = flows
        self.conns = conns
        self._workers = workers
        # How many jobs may hold a lock at once: 1, except for slots such as a
        # host's live-migration limit (Hyper-V's MaximumVirtualMachineMigrations).
        self._capacity = capacity or (lambda _lock: 1)
        self._held: Counter[str] = Counter()
        self._running: dict[int, threading.Thread] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._scheduler: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------

    def start(self) -> None:
        self.recover()
        self._scheduler = threading.Thread(target=self._schedule, name="job-scheduler", daemon=True)
        self._scheduler.start()

    def stop(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._scheduler is not None:
            self._scheduler.join(timeout)
        for t in list(self._running.values()):
            t.join(timeout)

    def recover(self) -> None:
        """Undo the completed steps of jobs a previous manager left running.

        Steps that were running when the manager died are undone too: their
        work may be half done, and every undo tolerates that.
        """
        with self.sessions() as s:
            ids = s.scalars(
                select(Job.id).where(
                    Job.state.in_(
                        [
                            JobState.STARTING,
                            JobState.RUNNING,
                            JobState.SUSPENDED,
                            JobState.SHUTTING_DOWN,
                        ]
                    )
                )
            ).all()
        for job_id in ids:
            log.warning("job %d was interrupted by a manager restart; undoing it", job_id)
            steps = self._steps_of(job_id)
            self._set_job(job_id, JobState.SHUTTING_DOWN, message="interrupted by manager restart")
            ok = self._undo(job_id, steps, include_running=True)
            self._finish(job_id, JobState.KILLED, Rollback.CLEAN if ok else Rollback.FAILED)

    # -- submission -----------------------------------------------------------

    def submit(self, op: Op) -> int:
        """Validate ``op`` (raising user errors, changing nothing) and queue its job."""
        flow = self.flows.for_kind(op.kind)
        op = flow.prepare(op)
        with self.sessions() as s:
            flow.validate(op, s, self.conns)
            op = flow.bind(op, s)
        steps = flow.steps(op)
        with self.sessions.begin() as s:
            job = Job(
                kind=op.kind,
                subject=flow.subject(op),
                op=op.to_dict(),
                state=JobState.NEW,
                locks=flow.locks(op),
                phase="queued",
            )
            job.steps = [
                JobStep(index=i, name=st.name, description=st.description)
                for i, st in enumerate(steps)
            ]
            s.add(job)
            s.flush()
            job_id = job.id
        with self._cond:
            self._cond.notify_all()
        return job_id

    def cancel(self, job_id: int) -> None:
        with self.sessions.begin() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFound(
                    "E_JOB_NOT_FOUND",
                    f"no job {job_id}",
                    "run 'whimbrel job list' to see the job ids",
                )
            if JobState(job.state) in FINAL_JOB_STATES:
                raise WrongState(
                    "E_JOB_FINISHED",
                    f"job {job_id} has already ended ({job.state})",
                    "nothing to cancel",
                )
            job.cancel_requested = True
        with self._cond:
            self._cond.notify_all()

    def cancel_requested(self, job_id: int) -> bool:
        with self.sessions() as s:
            return bool(s.scalar(select(Job.cancel_requested).where(Job.id == job_id)))

    def wait(self, job_id: int, timeout: float = 120.0) -> Job:
        """Block until the job ends (used by tests and the demo; the CLI polls the API)."""
        deadline = _now().timestamp() + timeout
        while True:
            with self.sessions() as s:
                job = s.get_one(Job, job_id)
                if JobState(job.state).final:
                    _ = job.steps  # load before the session closes
                    return job
            if _now().timestamp() > deadline:
                raise TimeoutError(f"job {job_id} still {job.state} after {timeout} s")
            with self._cond:
                self._cond.wait(0.05)

    # -- scheduling -----------------------------------------------------------

    def _schedule(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                self._start_ready()
                self._cond.wait(0.5)

    def _start_ready(self) -> None:
        """Start every queued job whose locks are free (caller holds ``_cond``)."""
        with self.sessions() as s:
            queued = s.execute(
                select(Job.id, Job.locks, Job.cancel_requested)
                .where(Job.state == JobState.NEW)
                .order_by(Job.id)
            ).all()
        waiting = 0
        for job_id, locks, cancel in queued:
            if cancel:
                self._set_job(job_id, JobState.TERMINATED, message="cancelled before it started")
                continue
            if job_id in self._running:
                continue
            caps = {lk: max(1, self._capacity(lk)) for lk in locks}
            busy = [lk for lk in locks if self._held[lk] >= caps[lk]]
            if busy or len(self._running) >= self._workers:
                waiting += 1
                what = ", ".join(f"{lk} (limit {caps[lk]})" for lk in busy)
                self._set_message(
                    job_id, f"queued: position {waiting}, waiting for {what or 'a worker'}"
                )
                continue
            self._held.update(locks)
            t = threading.Thread(target=self._run, args=(job_id, list(locks)), daemon=True)
            self._running[job_id] = t
            t.start()

    def _run(self, job_id: int, locks: list[str]) -> None:
        try:
            self._execute(job_id)
        except Exception:  # the runner itself must survive anything a job does
            log.exception("job %d crashed the runner", job_id)
        finally:
            with self._cond:
                self._held.subtract(locks)
                self._held = +self._held  # drop the zero counts
                self._running.pop(job_id, None)
                self._cond.notify_all()

    def _steps_of(self, job_id: int) -> list[Step]:
        with self.sessions() as s:
            op = op_from_dict(s.get_one(Job, job_id).op)
        return self.flows.for_kind(op.kind).steps(op)

    # -- execution ------------------------------------------------------------

    def _execute(self, job_id: int) -> None:
        self._set_job(job_id, JobState.STARTING, started=True)
        try:
            steps = self._steps_of(job_id)
        except Exception as exc:  # a job that cannot even be read must end, not loop
            self._set_job(job_id, JobState.SHUTTING_DOWN, error=_error_dict(exc))
            return self._finish(job_id, JobState.EXCEPTION, Rollback.NONE)
        ctx = _Run(self, job_id)
        self._set_job(job_id, JobState.RUNNING)
        weights = [max(1, getattr(st, "weight", 1)) for st in steps]
        total = sum(weights)
        for i, step in enumerate(steps):
            if ctx.cancelled():
                return self._terminate(job_id, steps)
            lo = 100 * sum(weights[:i]) / total
            ctx.span = (lo, lo + 100 * weights[i] / total)
            ctx.progress(step.name, int(lo), step.description)
            self._set_step(job_id, i, StepState.RUNNING)
            try:
                result = step.do(ctx)
            except Cancelled as exc:  # the step stopped its own work on a cancel request
                self._set_step(job_id, i, StepState.FAILED, error=_error_dict(exc))
                return self._terminate(job_id, steps)
            except BaseException as exc:
                log.info("job %d step %s failed: %s", job_id, step.name, exc)
                self._set_step(job_id, i, StepState.FAILED, error=_error_dict(exc))
                err = _error_dict(exc)
                self._set_job(
                    job_id,
                    JobState.SHUTTING_DOWN,
                    message=f"{err['code']}: {err['cause']}; undoing",
                    error=err,
                )
                ok = self._undo(job_id, steps)
                self._finish(job_id, JobState.EXCEPTION, Rollback.CLEAN if ok else Rollback.FAILED)
                return
            self._set_step(job_id, i, StepState.DONE, result=result)
        ctx.progress("done", 100, "completed")
        self._finish(job_id, JobState.COMPLETED, Rollback.NONE)

    def _terminate(self, job_id: int, steps: list[Step]) -> None:
        """End a cancelled job: undo what it did, state Terminated."""
        self._set_job(job_id, JobState.SHUTTING_DOWN, message="cancel requested")
        ok = self._undo(job_id, steps)
        self._finish(job_id, JobState.TERMINATED, Rollback.CLEAN if ok else Rollback.FAILED)

    def _undo(self, job_id: int, steps: list[Step], include_running: bool = False) -> bool:
        """Undo completed steps in reverse; return False if any undo failed."""
        ctx = _Run(self, job_id)
        with self.sessions() as s:
            rows = {r.index: (StepState(r.state), r.result) for r in s.get_one(Job, job_id).steps}
        undoable = {StepState.DONE} | (
            {StepState.RUNNING, StepState.UNDOING} if include_running else set()
        )
        ok = True
        fixes: list[str] = []
        for i in reversed(range(len(steps))):
            state, result = rows.get(i, (StepState.PENDING, None))
            if state not in undoable:
                continue
            if state != StepState.UNDOING:
                self._set_step(job_id, i, StepState.UNDOING)
            try:
                steps[i].undo(ctx, result)
            except BaseException as exc:
                ok = False
                err = _error_dict(exc)
                self._set_step(job_id, i, StepState.UNDO_FAILED, error=err)
                fixes.append(
                    f"step {i + 1} '{steps[i].name}' ({steps[i].description}) could not be undone: "
                    f"{err['cause']}. {err['fix']}"
                )
                continue
            self._set_step(job_id, i, StepState.UNDONE)
        if fixes:
            with self.sessions.begin() as s:
                s.get_one(Job, job_id).manual_fix = "Fix by hand: " + " | ".join(fixes)
        return ok

    # -- persistence helpers ------------------------------------------------

    def _set_job(
        self,
        job_id: int,
        state: JobState,
        message: str | None = None,
        error: dict[str, Any] | None = None,
        started: bool = False,
    ) -> None:
        with self.sessions.begin() as s:
            job = s.get_one(Job, job_id)
            check_job_transition(JobState(job.state), state)
            job.state = state
            if message is not None:
                job.message = message
            if error is not None:
                job.error = error
            if started:
                job.started_at = _now()
            if state.final:
                job.finished_at = _now()

    def _set_message(self, job_id: int, message: str) -> None:
        with self.sessions.begin() as s:
            s.get_one(Job, job_id).message = message

    def _finish(self, job_id: int, state: JobState, rollback: Rollback) -> None:
        with self.sessions.begin() as s:
            job = s.get_one(Job, job_id)
            job.rollback = rollback
            if state == JobState.COMPLETED:
                job.percent = 100
                job.phase = "done"
            else:
                job.phase = "rolled back" if rollback == Rollback.CLEAN else "rollback failed"
                why = f"{job.error['code']}: {job.error['cause']}" if job.error else job.message
                job.message = f"{why}; {job.phase}"
        self._set_job(job_id, state)
        with self._cond:
            self._cond.notify_all()

    def _set_step(
        self,
        job_id: int,
        index: int,
        state: StepState,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        with self.sessions.begin() as s:
            row = s.scalars(
                select(JobStep).where(JobStep.job_id == job_id, JobStep.index == index)
            ).one()
            check_step_transition(StepState(row.state), state)
            row.state = state
            if state == StepState.RUNNING:
                row.started_at = _now()
            if state in (StepState.DONE, StepState.FAILED):
                row.finished_at = _now()
            if result is not None:
                row.result = result
            if error is not None:
                row.error = error
