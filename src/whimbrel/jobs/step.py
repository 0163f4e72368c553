"""A step of a job, and the context every step receives.

A step's ``do`` returns a JSON-serialisable result, which the runner persists
before the next step runs; ``undo`` receives that result, possibly in another
manager process after a restart.  ``do`` must clean up its own partial work
when it raises: only completed steps are undone.  Every step's docstring says
how it is undone (``Undo:``), and every undo first looks at what the hosts hold
and does only what is still needed.

A step the manager was running when it died is first **observed**
(:meth:`Step.observe`): did its work take effect on the hosts, or none of it?
The runner then carries the job on, or rolls it back from there, instead of
replaying an undo against a world that may never have changed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from whimbrel.drivers.base import HostDriver
from whimbrel.ops import Op

StepResult = dict[str, Any] | None


class Truth(StrEnum):
    """What the hosts show of a step that was interrupted."""

    DONE = "done"  # its work is in place: carry the job on
    NOT_DONE = "not done"  # nothing of it is left: undo only the steps before it
    UNKNOWN = "unknown"  # cannot tell: undo it too (every undo tolerates half-done work)


@dataclass(frozen=True)
class Observed:
    truth: Truth
    evidence: str = ""
    result: StepResult = None  # a DONE step's result, as ``do`` would have returned it


UNKNOWN = Observed(Truth.UNKNOWN, "this step cannot observe its own effect")


class JobContext(Protocol):
    """What the runner hands each step: the store, host connections, progress."""

    job_id: int
    sessions: sessionmaker[Session]

    def driver(self, host_name: str) -> HostDriver: ...

    def driver_for_uri(self, uri: str) -> HostDriver: ...

    def reconnect(self, host_name: str) -> HostDriver:
        """Drop the host's connection and open a new one (after the host restarted)."""
        ...

    def open_secrets(self, s: Session, options: dict[str, str]) -> dict[str, str]:
        """``options`` with their sealed secrets opened, for the one call that needs them."""
        ...

    def probe(self, host_name: str, timeout_s: float) -> str:
        """Whether the host answers on a fresh connection now: "" if so, else why not."""
        ...

    def progress(self, phase: str, percent: int, message: str = "", **extra: Any) -> None: ...

    def step_progress(self, fraction: float, phase: str, message: str = "", **extra: Any) -> None:
        """Progress within the running step: ``fraction`` of its share of the bar."""
        ...

    def cancelled(self) -> bool: ...

    def keep_claim(self) -> None:
        """Raise unless this replica still holds the job (right before an act that
        must happen once: a fence, a restart)."""
        ...

    def result_of(self, step: str) -> dict[str, Any]:
        """The persisted result of the earlier step named ``step`` ({} if none)."""
        ...

    def submit(self, op: Op) -> int:
        """Queue a child job (validated like any other); return its id."""
        ...

    def cancel(self, job_id: int) -> None:
        """Ask a child job to stop (one not yet started never runs)."""
        ...


class Step(ABC):
    name: str = "step"
    weight: int = 1  # share of the job's progress bar, relative to the other steps
    # After a restart, a step observed not done is run again instead of rolled back:
    # for steps that act only on what is left to do (a failover's restarts).
    redo: bool = False

    @property
    def description(self) -> str:
        return self.name

    @abstractmethod
    def do(self, ctx: JobContext) -> StepResult: ...

    def undo(self, ctx: JobContext, result: StepResult) -> None:  # noqa: B027
        """Default: the step changed nothing that needs undoing."""

    def observe(self, ctx: JobContext) -> Observed:
        """After a manager restart: whether this step, interrupted, took effect.
        Default: it cannot tell."""
        return UNKNOWN


class FnStep(Step):
    """A step from two callables, for flows whose steps are one-liners."""

    def __init__(
        self,
        name: str,
        description: str,
        do: Callable[[JobContext], StepResult],
        undo: Callable[[JobContext, StepResult], None] | None = None,
        weight: int = 1,
        observe: Callable[[JobContext], Observed] | None = None,
        redo: bool = False,
    ) -> None:
        self.name = name
        self.weight, self.redo = weight, redo
        self._description = description
        self._do = do
        self._undo = undo
        self._observe = observe

    @property
    def description(self) -> str:
        return self._description

    def do(self, ctx: JobContext) -> StepResult:
        return self._do(ctx)

    def undo(self, ctx: JobContext, result: StepResult) -> None:
        if self._undo is not None:
            self._undo(ctx, result)

    def observe(self, ctx: JobContext) -> Observed:
        return self._observe(ctx) if self._observe is not None else UNKNOWN
