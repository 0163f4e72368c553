"""Job and step states, with the one table of allowed transitions.

The job states are Hyper-V's ``Msvm_ConcreteJob.JobState`` values 2-10, so an
administrator who knows one knows the other:

* ``Completed``: every step done.
* ``Terminated``: cancelled; completed steps were undone.
* ``Exception``: a step failed; completed steps were undone (see ``rollback``).
* ``Killed``: the manager stopped while the job ran and, on restart, what the
  interrupted step had done could not be told from the hosts; its completed
  steps were undone.  (When the hosts tell, the job is carried on to
  ``Completed``, or rolled back to ``Terminated``.)
"""

from __future__ import annotations

from enum import StrEnum

from whimbrel.errors import WrongState


class JobState(StrEnum):
    NEW = "New"
    STARTING = "Starting"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    SHUTTING_DOWN = "ShuttingDown"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"
    KILLED = "Killed"
    EXCEPTION = "Exception"

    @property
    def final(self) -> bool:
        return self in FINAL_JOB_STATES


FINAL_JOB_STATES = frozenset(
    {JobState.COMPLETED, JobState.TERMINATED, JobState.KILLED, JobState.EXCEPTION}
)

JOB_TRANSITIONS: frozenset[tuple[JobState, JobState]] = frozenset(
    {
        (JobState.NEW, JobState.STARTING),
        (JobState.NEW, JobState.TERMINATED),  # cancelled while queued
        (JobState.NEW, JobState.KILLED),  # manager restarted before it ran
        (JobState.STARTING, JobState.RUNNING),
        (JobState.STARTING, JobState.SHUTTING_DOWN),
        (JobState.RUNNING, JobState.SUSPENDED),
        (JobState.SUSPENDED, JobState.RUNNING),
        (JobState.SUSPENDED, JobState.SHUTTING_DOWN),
        (JobState.RUNNING, JobState.COMPLETED),
        (JobState.RUNNING, JobState.SHUTTING_DOWN),  # undoing after failure or cancel
        (JobState.SHUTTING_DOWN, JobState.TERMINATED),
        (JobState.SHUTTING_DOWN, JobState.EXCEPTION),
        (JobState.SHUTTING_DOWN, JobState.KILLED),
    }
)


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    UNDOING = "undoing"
    UNDONE = "undone"
    UNDO_FAILED = "undo_failed"
    UNDO_PENDING = "undo_pending"  # its host does not answer: undone when it is back


STEP_TRANSITIONS: frozenset[tuple[StepState, StepState]] = frozenset(
    {
        (StepState.PENDING, StepState.RUNNING),
        (StepState.RUNNING, StepState.DONE),
        (StepState.RUNNING, StepState.FAILED),
        (StepState.RUNNING, StepState.UNDOING),  # manager died mid-step: undo it too
        (StepState.DONE, StepState.UNDOING),
        (StepState.UNDOING, StepState.UNDONE),
        (StepState.UNDOING, StepState.UNDO_FAILED),
        (StepState.UNDOING, StepState.UNDO_PENDING),
        (StepState.UNDO_PENDING, StepState.UNDOING),  # its host is back: try again
    }
)


class Rollback(StrEnum):
    NONE = "none"
    CLEAN = "clean"
    FAILED = "failed"
    PENDING = "pending"  # an undo waits for its host to answer again


def check_job_transition(old: JobState, new: JobState) -> None:
    if (old, new) not in JOB_TRANSITIONS:
        raise WrongState(
            "E_JOB_STATE",
            f"a job cannot go from {old.value} to {new.value}",
            "this is a bug in Whimbrel's job runner; report it with 'whimbrel job show'",
        )


def check_step_transition(old: StepState, new: StepState) -> None:
    if (old, new) not in STEP_TRANSITIONS:
        raise WrongState(
            "E_STEP_STATE",
            f"a step cannot go from {old.value} to {new.value}",
            "this is a bug in Whimbrel's job runner; report it with 'whimbrel job show'",
        )
