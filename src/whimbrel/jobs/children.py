"""Child jobs: a job that runs other jobs, one per VM, and shows their progress.

Maintenance mode drains a host through ordinary ``vm.migrate`` and ``vm.save``
jobs, so each move keeps its own preflight, locks, slot limits (a host's
MaximumVirtualMachineMigrations), undo and progress.  The parent submits
them, watches them, and mirrors each one's phase and percent in its own
progress (``progress.children``) for the CLI and the web console.
On the first failure the children not yet started are cancelled and the
running ones are left to finish: a move half done is worse than one done.
"""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from whimbrel.domain.job import JobState
from whimbrel.errors import WhimbrelError
from whimbrel.jobs.step import JobContext, Truth
from whimbrel.ops import Op
from whimbrel.store.models import Job

POLL_S = 0.25


@dataclass
class Child:
    """One VM's job as the parent sees it."""

    vm: str
    action: str
    op: Op | None  # None for a child re-attached after a restart: it is not submitted again
    to: str = ""
    job: int | None = None
    state: str = "pending"  # pending until submitted, then the job's state
    phase: str = ""
    percent: int = 0
    message: str = ""
    error: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.state in ("refused", "skipped") or (
            self.job is not None and JobState(self.state).final
        )

    @property
    def ok(self) -> bool:
        return self.state == JobState.COMPLETED

    def to_dict(self) -> dict[str, Any]:
        return {
            "vm": self.vm,
            "action": self.action,
            "to": self.to,
            "job": self.job,
            "state": self.state,
            "phase": self.phase,
            "percent": self.percent,
            "message": self.message,
            "error": self.error,
        }


def _read(ctx: JobContext, children: list[Child]) -> None:
    ids = [c.job for c in children if c.job is not None and not c.done]
    if not ids:
        return
    with ctx.sessions() as s:
        rows = {j.id: j for j in s.scalars(select(Job).where(Job.id.in_(ids)))}
        for c in children:
            j = rows.get(c.job) if c.job is not None else None
            if j is not None:
                c.state, c.phase, c.percent, c.message = j.state, j.phase, j.percent, j.message
                c.error = dict(j.error or {})


def _show(ctx: JobContext, children: list[Child], phase: str) -> None:
    done = sum(c.done for c in children)
    pct = sum(100 if c.done else c.percent for c in children) / max(1, len(children)) / 100
    running = [f"{c.vm} {c.phase} {c.percent}%" for c in children if c.state == JobState.RUNNING]
    msg = f"{done}/{len(children)} VMs done" + (f"; {', '.join(running)}" if running else "")
    ctx.step_progress(pct, phase, msg, children=[c.to_dict() for c in children])


def reattach(ctx: JobContext, action: str, timeout_s: float = 3600.0) -> list[Child] | None:
    """After a manager restart: the children of ``action`` this job had submitted (from
    its progress), once each has ended; None if the job had not recorded them.

    Children are jobs of their own, reconciled alongside the parent."""
    with ctx.sessions() as s:
        recorded = s.get_one(Job, ctx.job_id).progress.get("children")
    if not recorded:
        return None
    kids = [
        Child(d["vm"], d["action"], None, d["to"], d["job"], d["state"])
        for d in recorded
        if d["action"] == action
    ]
    if not kids:
        return None
    deadline = time.monotonic() + timeout_s
    while not all(c.done or c.job is None for c in kids) and time.monotonic() < deadline:
        _read(ctx, kids)
        time.sleep(POLL_S)
    _read(ctx, kids)
    return kids


def outcome(kids: list[Child] | None, what: str) -> tuple[Truth, str]:
    """Whether every child of a re-attached step ended well, and the evidence."""
    if kids is None:
        return Truth.UNKNOWN, f"the {what} had not recorded its child jobs"
    bad = [c for c in kids if not c.ok]
    if not bad:
        return Truth.DONE, f"all {len(kids)} child job(s) of the {what} completed"
    told = "; ".join(f"{c.vm}: {c.state} {c.message}".strip() for c in bad)
    return Truth.NOT_DONE, f"{len(bad)} of {len(kids)} child job(s) of the {what} did not: {told}"


def run_children(
    ctx: JobContext, children: list[Child], phase: str, stop_on_failure: bool = True
) -> list[Child]:
    """Submit every child in order and wait for all of them.

    ``stop_on_failure``: after a failure, children not yet started never run
    (a drain); without it every child gets its chance (a failover)."""
    failed = False
    for c in children:
        if (failed and stop_on_failure) or ctx.cancelled():
            c.state, c.message = "skipped", "not started: an earlier VM failed or cancel"
            continue
        try:
            assert c.op is not None, "only children never submitted are submitted"
            c.job = ctx.submit(c.op)
            c.state = JobState.NEW
        except WhimbrelError as exc:
            c.state, c.error, c.message = "refused", exc.to_dict(), f"{exc.code}: {exc.cause}"
            failed = True
    _show(ctx, children, phase)
    cancelled = False
    while not all(c.done for c in children):
        time.sleep(POLL_S)
        _read(ctx, children)
        failure = stop_on_failure and any(c.done and not c.ok for c in children)
        if not cancelled and (ctx.cancelled() or failure):
            cancelled = True
            stop_all = ctx.cancelled()
            for c in children:
                if c.job is not None and not c.done and (stop_all or c.state == JobState.NEW):
                    with suppress(WhimbrelError):  # it may have ended meanwhile
                        ctx.cancel(c.job)
        _show(ctx, children, phase)
    return children
