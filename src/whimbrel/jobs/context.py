"""The context each step runs in: the store, host connections, progress, its job."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from whimbrel.access.vault import is_ref
from whimbrel.drivers.base import HostDriver
from whimbrel.errors import WhimbrelError
from whimbrel.jobs.bookkeeping import set_progress
from whimbrel.ops import Op
from whimbrel.store.models import JobStep

if TYPE_CHECKING:
    from whimbrel.jobs.runner import JobRunner


class RunContext:
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

    def open_secrets(self, s: Session, options: dict[str, str]) -> dict[str, str]:
        vault = self._runner.conns.vault
        if vault is None:  # a pool made without the manager's key (some unit tests)
            if any(is_ref(str(v)) for v in options.values()):
                raise WhimbrelError(
                    "E_SECRET_KEY_MISSING",
                    "a sealed credential is needed but this manager has no key to open it",
                    "start the manager with its key file (WHIMBREL_SECRET_KEY_FILE)",
                )
            return dict(options)
        return vault.open_options(s, options)

    def probe(self, host_name: str, timeout_s: float) -> str:
        conns = self._runner.conns
        return conns.probe(conns.uri_of(host_name), timeout_s)

    def progress(self, phase: str, percent: int, message: str = "", **extra: Any) -> None:
        job_id = self.job_id
        self._runner.books.for_job(
            job_id, lambda s: set_progress(s, job_id, phase, percent, message, extra)
        )

    def step_progress(self, fraction: float, phase: str, message: str = "", **extra: Any) -> None:
        lo, hi = self.span
        pct = int(lo + (hi - lo) * min(1.0, max(0.0, fraction)))
        self.progress(phase, pct, message, **extra)

    def keep_claim(self) -> None:
        """Raise unless this replica still holds the job (before an act that must happen
        once: a fence, a restart)."""
        self._runner.books.for_job(self.job_id, lambda _s: None)

    def cancelled(self) -> bool:
        return self._runner.cancel_requested(self.job_id)

    def result_of(self, step: str) -> dict[str, Any]:
        def go(s: Session) -> dict[str, Any]:
            row = s.scalar(
                select(JobStep).where(JobStep.job_id == self.job_id, JobStep.name == step)
            )
            return dict(row.result or {}) if row is not None else {}

        return self._runner.books.read(go)

    def submit(self, op: Op) -> int:
        return self._runner.submit(op)

    def cancel(self, job_id: int) -> None:
        self._runner.cancel(job_id)
