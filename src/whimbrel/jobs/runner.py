"""The job runner: queues jobs, runs their steps, undoes them on failure.

Every transition goes through :mod:`whimbrel.domain.job`'s tables and is
committed before the next action (:mod:`whimbrel.jobs.bookkeeping`, which
waits out a database that is briefly away), so the store always tells what was
done.  A job waits in ``New`` while another job holds one of its locks (the
queue position is shown in its message); it never fails for that.

Several managers (replicas) may share one PostgreSQL store: each claims jobs
in the store (:mod:`whimbrel.jobs.claims`), so a job runs on one replica, holds
its locks whichever replica runs it, and is taken over and reconciled by another
if its replica dies.

Three threads keep it going, each guarded so that no error stops it silently,
and each reporting its last good pass to ``/health``: the scheduler (claims and
starts queued jobs), the janitor (on the leader only: retries undos that waited
for their host, prunes old jobs), and one thread per running job.  Parent jobs
(a drain, a failover) wait for their children without taking a worker, so
children always get one.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from whimbrel.connections import ConnectionPool
from whimbrel.domain.job import FINAL_JOB_STATES, JobState, Rollback, StepState
from whimbrel.errors import Cancelled, NotFound, Stranded, WrongState
from whimbrel.jobs import claims, janitor, pending, rollback
from whimbrel.jobs.bookkeeping import (
    Books,
    Write,
    begin_step,
    error_dict,
    set_finish,
    set_job,
    set_progress,
    set_step,
)
from whimbrel.jobs.claims import Claimed, Deposed
from whimbrel.jobs.context import RunContext
from whimbrel.jobs.flow import FlowRegistry
from whimbrel.jobs.recovery import reconcile
from whimbrel.jobs.step import Step
from whimbrel.ops import Op, op_from_dict
from whimbrel.store.models import Job, JobStep

log = logging.getLogger(__name__)
RETENTION_DAYS = 30
STEAL_AFTER_S = 1.0  # a job submitted through another replica is left to it this long
# How many jobs may hold each lock at once, read in the claim pass's transaction.
Capacity = Callable[[Session, set[str]], dict[str, int]]


class JobRunner:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        flows: FlowRegistry,
        conns: ConnectionPool,
        workers: int = 16,
        capacity: Capacity | None = None,
        retention_days: float = RETENTION_DAYS,
        janitor_s: float = pending.RETRY_S,
        me: str = "manager",
        lease_s: float = 10.0,
        leading: Callable[[], bool] = lambda: True,
        single: bool = True,
    ):
        self.sessions = sessions
        self.flows = flows
        self.conns = conns
        # ``me`` claims jobs in the store; ``single``: no other manager can use the
        # store (SQLite), so every unfinished job at start is this one's to take up.
        self.me, self.lease_s, self.leading, self.single = me, lease_s, leading, single
        self.books = Books(sessions, me=me, lease_s=lease_s)
        self._workers = workers
        # How many jobs may hold a lock at once: 1, except for slots such as a
        # host's live-migration limit (Hyper-V's MaximumVirtualMachineMigrations).
        self._capacity = capacity or (lambda _s, locks: dict.fromkeys(locks, 1))
        self.retention_days, self.janitor_s = retention_days, janitor_s
        self._queue = threading.Lock()  # one claim pass or takeover at a time here
        self._running: dict[int, threading.Thread] = {}
        self._parents: set[int] = set()  # running jobs that only wait for children
        self._cond = threading.Condition()
        self._kicked = True  # the scheduler has been asked for a pass
        self._stopping = False
        self.stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self.last_pass: dict[str, float] = {}  # thread -> time.time() of its last good pass

    # -- life cycle ---------------------------------------------------------

    def start(self) -> None:
        self.recover()
        for name, fn in (
            ("job-scheduler", self._schedule),
            ("job-janitor", lambda: janitor.run(self)),
        ):
            t = threading.Thread(target=fn, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 30.0) -> None:
        self.stopped.set()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)
        for t in list(self._running.values()):
            t.join(timeout)

    def recover(self) -> list[int]:
        """Take up the jobs nobody runs any more: left by a previous manager, or by a
        replica whose lease ran out (see ``recovery.py``); they settle on threads of
        their own.  Returns their ids."""
        with self._queue:
            with self.sessions.begin() as s:
                mine = set(self._running)
                taken = claims.takeover(s, self.me, mine, self.lease_s, self.single)
            for c in taken:
                self._take_up(c)
        return [c.job_id for c in taken]

    def _take_up(self, c: Claimed) -> None:
        parent = self.flows.for_kind(c.kind).waits_for_children
        if c.state == JobState.NEW:  # claimed, never started
            return self.launch(c, self.execute, parent)
        log.warning("job %d was left by its manager; %s reconciles it", c.job_id, self.me)
        self.launch(c, lambda j: reconcile(self, j), parent)

    def running(self) -> list[int]:
        with self._cond:
            return list(self._running)

    def health(self) -> dict[str, Any]:
        """Seconds since each loop's last good pass; how long the database is away."""
        t = time.time()
        down = self.books.db_down_since
        return {
            **{k: round(t - v, 1) for k, v in self.last_pass.items()},
            "db_down_s": round(time.monotonic() - down, 1) if down is not None else 0.0,
            "running_jobs": len(self._running),
        }

    # -- submission -----------------------------------------------------------

    def submit(self, op: Op, guard: Callable[[Session], None] | None = None, user: str = "") -> int:
        """Validate ``op`` (raising user errors, changing nothing) and queue its job;
        ``guard`` runs in the same transaction and may refuse it (the leader's epoch);
        ``user``: who asked ('' the manager itself)."""
        flow = self.flows.for_kind(op.kind)
        op = flow.prepare(op)
        if flow.finishes_cleanup_first:  # before validation: a leftover can fail it
            self._clean_up_first(flow.vms(op))
        with self.sessions() as s:
            flow.validate(op, s, self.conns)
            op = flow.bind(op, s)
        locks = flow.locks(op)
        steps = flow.steps(op)

        def queue(s: Session) -> int:
            if guard is not None:
                guard(s)
            job = Job(
                submitted_by=self.me,
                user=user,
                kind=op.kind,
                subject=flow.subject(op),
                op=op.to_dict(),
                state=JobState.NEW,
                locks=locks,
                phase="queued",
            )
            job.steps = [
                JobStep(index=i, name=st.name, description=st.description)
                for i, st in enumerate(steps)
            ]
            s.add(job)
            s.flush()
            return job.id

        job_id = self.books.write(queue)  # a store busy for a moment delays it, no more
        self._wake()
        return job_id

    def _clean_up_first(self, vms: list[str]) -> None:
        """A VM with cleanup left by an earlier job: finish it now, or refuse."""
        if not vms:
            return
        with self.sessions() as s:
            rows = pending.blocking(s, vms)
            ids = [p.id for p in rows]
        if not ids:
            return
        janitor.retry_pending(self, ids)
        with self.sessions() as s:
            left = pending.blocking(s, vms)
            if left:
                raise pending.refuse(left)

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
        self._wake()

    def cancel_requested(self, job_id: int) -> bool:
        return bool(
            self.books.read(
                lambda s: s.scalar(select(Job.cancel_requested).where(Job.id == job_id))
            )
        )

    def wait(self, job_id: int, timeout: float = 120.0) -> Job:
        """Block until the job ends (used by tests and the demo; the CLI polls the API)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.sessions() as s:
                job = s.get_one(Job, job_id)
                if JobState(job.state).final:
                    _ = job.steps  # load before the session closes
                    return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.state} after {timeout} s")
            with self._cond:
                self._cond.wait(0.05)

    # -- scheduling -----------------------------------------------------------

    def _schedule(self) -> None:
        # The pass runs outside ``_cond``: it waits for the store, and threads that hold
        # a store transaction may need ``_cond`` (the lease renewal asks for the running
        # jobs).  A wake-up that comes during the pass is kept in ``_kicked``.
        while True:
            with self._cond:
                if self._stopping:
                    return
                if not self._kicked:
                    self._cond.wait(0.5)
                self._kicked = False
                if self._stopping:
                    return
            try:
                self._start_ready()
                self.last_pass["scheduler"] = time.time()
            except Exception:  # a bad pass must not end the scheduler
                log.exception("scheduling pass failed; the next one tries again")

    def _wake(self) -> None:
        with self._cond:
            self._kicked = True
            self._cond.notify_all()

    def _start_ready(self) -> None:
        """Claim and start every queued job whose locks are free."""
        started: list[Claimed] = []
        cancelled: list[int] = []
        with self._queue:
            with self.sessions.begin() as s:
                now = claims.lock_queue(s)
                held = claims.held(s)
                caps: dict[str, int] = {}
                waiting = 0
                workers = len(self._running) - len(self._parents)
                for q in claims.queued(s, self.me, STEAL_AFTER_S):
                    if q.cancel:
                        cancelled.append(claims.claim(s, q.job_id, self.me, now, 0).job_id)
                        continue
                    if q.foreign:
                        continue
                    try:
                        parent = self.flows.for_kind(q.kind).waits_for_children
                    except KeyError:  # one job's trouble is not the queue's
                        log.error("job %d is of unknown kind %r; left queued", q.job_id, q.kind)
                        continue
                    full = not parent and workers >= self._workers
                    unread = set() if full else set(q.locks) - caps.keys()
                    if unread:  # limits read only for a job that could start now
                        caps.update(self._capacity(s, unread))
                    busy = [lk for lk in q.locks if not full and held[lk] >= max(1, caps[lk])]
                    if busy or full:
                        waiting += 1
                        what = ", ".join(f"{lk} (limit {caps[lk]})" for lk in busy)
                        # The position only near the head: deeper in a long queue it would
                        # change, and be written, for every job at every pass.
                        where = f"position {waiting}" if waiting <= 100 else "over 100 ahead"
                        msg = f"queued: {where}, waiting for {what or 'a worker'}"
                        if msg != q.message:  # written only when it changes
                            s.execute(update(Job).where(Job.id == q.job_id).values(message=msg))
                        continue
                    held.update(q.locks)
                    workers += 0 if parent else 1
                    started.append(claims.claim(s, q.job_id, self.me, now, self.lease_s))
            for c in started:
                self.launch(c, self.execute, self.flows.for_kind(c.kind).waits_for_children)
            for job_id in cancelled:  # ended before a takeover could mistake them for left
                self.books.job(job_id, JobState.TERMINATED, "cancelled before it started")

    def launch(self, c: Claimed, fn: Callable[[int], None], parent: bool) -> None:
        """Run ``fn(job_id)`` on a thread of its own, under the job's claim."""
        with self._cond:
            self.books.claims[c.job_id] = c.claim
            t = threading.Thread(target=self._run, args=(c.job_id, fn), daemon=True)
            self._running[c.job_id] = t
            if parent:
                self._parents.add(c.job_id)
            t.start()

    def _run(self, job_id: int, fn: Callable[[int], None]) -> None:
        try:
            fn(job_id)
        except Deposed as exc:  # another replica took it over: it is that one's now
            log.warning("job %d: this replica stops: %s", job_id, exc)
        except Exception:  # the runner itself must survive anything a job does
            log.exception("job %d crashed its thread; a manager restart reconciles it", job_id)
        finally:
            with self._cond:
                self._running.pop(job_id, None)
                self._parents.discard(job_id)
                self.books.claims.pop(job_id, None)
                self._kicked = True  # its locks are free: a queued job may start
                self._cond.notify_all()

    def steps_of(self, job_id: int) -> tuple[Op, list[Step]]:
        op = op_from_dict(self.books.read(lambda s: dict(s.get_one(Job, job_id).op)))
        return op, self.flows.for_kind(op.kind).steps(op)

    # -- execution ------------------------------------------------------------

    def execute(self, job_id: int, start: int = 0) -> None:
        """Run the job's steps from ``start`` (> 0: resumed after a restart)."""
        try:
            _, steps = self.steps_of(job_id)
        except Exception as exc:  # a job that cannot even be read must end, not loop
            if start == 0:
                self.books.job(job_id, JobState.STARTING, started=True)
            self.books.job(job_id, JobState.SHUTTING_DOWN, error=error_dict(exc))
            return self.books.finish(job_id, JobState.EXCEPTION, Rollback.NONE)
        ctx = RunContext(self, job_id)
        # Transitions wait in ``due`` for the next one's transaction: a step done and
        # the next begun are one commit, with nothing in between but a read.
        due: list[Write] = []
        if start == 0:
            due.append(lambda s: set_job(s, job_id, JobState.STARTING, started=True))
        due.append(lambda s: set_job(s, job_id, JobState.RUNNING))
        weights = [max(1, getattr(st, "weight", 1)) for st in steps]
        total = sum(weights)
        for i, step in enumerate(steps):
            if i < start:
                continue
            if ctx.cancelled():
                self.books.together(job_id, due)
                return self._terminate(job_id, steps)
            lo = 100 * sum(weights[:i]) / total
            ctx.span = (lo, lo + 100 * weights[i] / total)
            self.books.together(job_id, [*due, *begin_step(job_id, i, step, int(lo))])
            try:
                result = step.do(ctx)
            except Deposed:
                raise
            except Cancelled as exc:  # the step stopped its own work on a cancel request
                self.books.step(job_id, i, StepState.FAILED, error=error_dict(exc))
                return self._terminate(job_id, steps)
            except Stranded as exc:  # undoing the steps before it would take its ground away
                rollback.strand(self, job_id, i, exc)
                return
            except BaseException as exc:
                log.info("job %d step %s failed: %s", job_id, step.name, exc)
                err = error_dict(exc)
                self.books.step(job_id, i, StepState.FAILED, error=err)
                msg = f"{err['code']}: {err['cause']}; undoing"
                self.books.job(job_id, JobState.SHUTTING_DOWN, message=msg, error=err)
                self.books.finish(job_id, JobState.EXCEPTION, self.undo(job_id, steps))
                return
            due = [
                functools.partial(
                    set_step, job_id=job_id, index=i, state=StepState.DONE, result=result
                )
            ]
        done = [
            lambda s: set_progress(s, job_id, "done", 100, "completed", {}),
            lambda s: set_finish(s, job_id, JobState.COMPLETED, Rollback.NONE),
        ]
        self.books.together(job_id, [*due, *done])

    def _terminate(self, job_id: int, steps: list[Step]) -> None:
        """End a cancelled job: undo what it did, state Terminated."""
        self.books.job(job_id, JobState.SHUTTING_DOWN, message="cancel requested")
        self.books.finish(job_id, JobState.TERMINATED, self.undo(job_id, steps))

    def undo(self, job_id: int, steps: list[Step], include_running: bool = False) -> Rollback:
        return rollback.undo(self, job_id, steps, include_running)
