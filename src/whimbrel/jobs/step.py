"""A step of a job, and the context every step receives.

A step's ``do`` returns a JSON-serialisable result, which the runner persists
before the next step runs; ``undo`` receives that result, possibly in another
manager process after a restart.  ``do`` must clean up its own partial work
when it raises: only completed steps are undone.  Every step's docstring says
how it is undone (``Undo:``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from whimbrel.drivers.base import HostDriver
from whimbrel.ops import Op

StepResult = dict[str, Any] | None


class JobContext(Protocol):
    """What the runner hands each step: the store, host connections, progress."""

    job_id: int
    sessions: sessionmaker[Session]

    def driver(self, host_name: str) -> HostDriver: ...

    def driver_for_uri(self, uri: str) -> HostDriver: ...

    def reconnect(self, host_name: str) -> HostDriver:
        """Drop the host's connection and open a new one (after the host restarted)."""
        ...

    def probe(self, host_name: str, timeout_s: float) -> str:
        """Whether the host answers on a fresh connection now: "" if so, else why not."""
        ...

    def progress(self, phase: str, percent: int, message: str = "", **extra: Any) -> None: ...

    def step_progress(self, fraction: float, phase: str, message: str = "", **extra: Any) -> None:
        """Progress within the running step: ``fraction`` of its share of the bar."""
        ...

    def cancelled(self) -> bool: ...

    def submit(self, op: Op) -> int:
        """Queue a child job (validated like any other); return its id."""
        ...

    def cancel(self, job_id: int) -> None:
        """Ask a child job to stop (one not yet started never runs)."""
        ...


class Step(ABC):
    name: str = "step"
    weight: int = 1  # share of the job's progress bar, relative to the other steps

    @property
    def description(self) -> str:
        return self.name

    @abstractmethod
    def do(self, ctx: JobContext) -> StepResult: ...

    def undo(self, ctx: JobContext, result: StepResult) -> None:  # noqa: B027
        """Default: the step changed nothing that needs undoing."""


class FnStep(Step):
    """A step from two callables, for flows whose steps are one-liners."""

    def __init__(
        self,
        name: str,
        description: str,
        do: Callable[[JobContext], StepResult],
        undo: Callable[[JobContext, StepResult], None] | None = None,
        weight: int = 1,
    ) -> None:
        self.name = name
        self.weight = weight
        self._description = description
        self._do = do
        self._undo = undo

    @property
    def description(self) -> str:
        return self._description

    def do(self, ctx: JobContext) -> StepResult:
        return self._do(ctx)

    def undo(self, ctx: JobContext, result: StepResult) -> None:
        if self._undo is not None:
            self._undo(ctx, result)
